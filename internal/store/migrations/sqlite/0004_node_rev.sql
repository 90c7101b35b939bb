-- Node revisions: every change of a rollout node takes the next value of
-- its rollout's node_rev counter (bumped under the rollout row's lock, so
-- revisions commit in order), and stores it in the node's rev. A reader
-- that has seen revision R loads only the nodes with rev > R instead of
-- the whole rollout.
ALTER TABLE rollouts ADD COLUMN node_rev BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollout_nodes ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE INDEX rollout_nodes_rev ON rollout_nodes (rollout_id, rev);
