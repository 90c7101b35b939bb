-- Node pre-flight: one row per (rollout or dry run, node) asked what a
-- change would do. payload is the agent's PreflightRequest (the actions),
-- handed out on every poll of the node until answered_at is set or the
-- deadline passes; report is the agent's PreflightReport as received.
-- The server answers itself (answered_at = asked_at) for nodes it need
-- not ask: an agent too old to run a pre-flight, a compatibility rule the
-- node breaks. rollout_id names a rollout or a dry run (no foreign key).
CREATE TABLE node_preflights (
	rollout_id  TEXT NOT NULL,
	node_id     TEXT NOT NULL,
	asked_at    BIGINT NOT NULL,
	deadline    BIGINT NOT NULL,
	payload     TEXT NOT NULL,
	answered_at BIGINT NOT NULL DEFAULT 0,
	ok          BIGINT NOT NULL DEFAULT 0,
	reason      TEXT NOT NULL DEFAULT '',
	report      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (rollout_id, node_id)
);
CREATE INDEX node_preflights_open ON node_preflights (node_id, answered_at);
