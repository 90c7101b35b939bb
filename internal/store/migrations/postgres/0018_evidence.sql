-- Evidence bundles (internal/evidence): one row per bundle a node's agent
-- captured, when a step or its node probes failed (reason 'failure',
-- before the rollback) or on an operator's request ('on-demand'). body is
-- the bundle's JSON, gzip-compressed; sha256 is the hex SHA-256 of that
-- JSON (uncompressed) and size its length, both also in the audit entry
-- that records the bundle. The server prunes bundles past the retention
-- (evidence.maxAge, evidence.perNode).
CREATE TABLE evidence_bundles (
	id          TEXT PRIMARY KEY,
	node_id     TEXT NOT NULL,
	rollout_id  TEXT NOT NULL DEFAULT '',
	step_id     TEXT NOT NULL DEFAULT '',
	reason      TEXT NOT NULL,
	request_id  TEXT NOT NULL DEFAULT '',
	captured_at BIGINT NOT NULL,
	stored_at   BIGINT NOT NULL,
	sha256      TEXT NOT NULL,
	size        BIGINT NOT NULL,
	body        BYTEA NOT NULL
);
CREATE INDEX evidence_bundles_node ON evidence_bundles (node_id, stored_at);
CREATE INDEX evidence_bundles_stored ON evidence_bundles (stored_at);
-- On-demand evidence requests: handed out on every poll of the node until
-- answered (bundle_id set) or past the deadline.
CREATE TABLE evidence_requests (
	id          TEXT PRIMARY KEY,
	node_id     TEXT NOT NULL,
	actor       TEXT NOT NULL,
	asked_at    BIGINT NOT NULL,
	deadline    BIGINT NOT NULL,
	payload     TEXT NOT NULL,
	bundle_id   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX evidence_requests_open ON evidence_requests (node_id, bundle_id);
