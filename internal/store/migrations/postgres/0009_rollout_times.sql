-- The moments a rollout's metrics are measured between (store.RolloutTimes),
-- set by the transactions that cause them: the metrics survive restarts
-- and read the same on every server. Rollouts stored before this keep
-- what can be told: ended = last update of an ended rollout, started =
-- creation of one that left pending-approval.
ALTER TABLE rollouts ADD COLUMN started_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN first_failure_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN halted_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN rollback_dispatched_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN rollback_done_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN recovered_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN ended_at BIGINT NOT NULL DEFAULT 0;
UPDATE rollouts SET ended_at = updated_at WHERE state IN ('succeeded', 'failed', 'aborted', 'halted');
UPDATE rollouts SET started_at = created_at WHERE state <> 'pending-approval';
