-- Credentials: enrolment tokens, API tokens and the current client
-- certificate of every enrolled node. Tokens are stored as the hex
-- SHA-256 of the token, never the token itself.
CREATE TABLE enroll_tokens (
	hash       TEXT PRIMARY KEY,
	labels     TEXT NOT NULL,        -- JSON object the node is limited to
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	used_at    INTEGER NOT NULL DEFAULT 0, -- 0 until used (single use)
	used_by    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE api_tokens (
	hash       TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	role       TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0 -- 0: does not expire
);

-- The one current certificate of each enrolled node: a certificate with
-- another serial (an older one, or one of a removed node) is refused.
CREATE TABLE node_certs (
	node_id   TEXT PRIMARY KEY,
	serial    TEXT NOT NULL,
	spki      TEXT NOT NULL,
	labels    TEXT NOT NULL, -- JSON: labels the enrolment token limited it to
	not_after INTEGER NOT NULL,
	issued_at INTEGER NOT NULL
);

-- A break-glass override of a rollout: an admin's recorded decision that
-- the rollout may start nodes during the plan's freezes.
CREATE TABLE rollout_break_glass (
	rollout TEXT PRIMARY KEY,
	actor   TEXT NOT NULL,
	reason  TEXT NOT NULL,
	at      INTEGER NOT NULL
);
