-- The approval floor (server configuration) is applied when a rollout is
-- created and stored with it, so that every server and every restart
-- agrees and no later change lowers it: approvals_needed is how many
-- distinct approvers other than the author the start needs (0: the
-- plan's own), approval_floor why the floor raised it ('' when not).
ALTER TABLE rollouts ADD COLUMN approvals_needed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollouts ADD COLUMN approval_floor TEXT NOT NULL DEFAULT '';

-- Dashboard sessions: the browser's cookie holds a random session token,
-- never an API token; the store keeps its SHA-256 only. A session lasts
-- until expires_at or its sign-out (revoked_at), and only while the
-- credential it was opened with (source: 'api:HASH' of an API token or
-- 'config:NAME' of a configured user) still authenticates.
CREATE TABLE ui_sessions (
	hash       TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	source     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
