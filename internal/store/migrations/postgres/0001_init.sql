-- drover store schema, version 1 (PostgreSQL). Times are Unix nanoseconds UTC
-- (0 = zero time, NULL = not yet for steps), JSON is text, booleans are 0/1.

CREATE TABLE nodes (
	id            TEXT PRIMARY KEY,
	facts         TEXT NOT NULL,
	labels        TEXT NOT NULL,
	version       BIGINT NOT NULL,
	agent_version TEXT NOT NULL DEFAULT '',
	protocol      INTEGER NOT NULL DEFAULT 0,
	registered_at BIGINT NOT NULL,
	last_seen     BIGINT NOT NULL,
	lease_until   BIGINT NOT NULL
);

CREATE TABLE rollouts (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	author         TEXT NOT NULL,
	plan           BYTEA NOT NULL,
	plan_sha256    TEXT NOT NULL,
	state          TEXT NOT NULL,
	reason         TEXT NOT NULL DEFAULT '',
	rollback_scope TEXT NOT NULL DEFAULT '',
	seed           BIGINT NOT NULL,
	version        BIGINT NOT NULL,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state);
CREATE INDEX rollouts_created ON rollouts (created_at, id);

CREATE TABLE rollout_nodes (
	rollout_id    TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	node_id       TEXT NOT NULL,
	idx           INTEGER NOT NULL,
	phase         TEXT NOT NULL,
	wave          TEXT NOT NULL DEFAULT '',
	attempt       INTEGER NOT NULL DEFAULT 0,
	since         BIGINT NOT NULL DEFAULT 0,
	started_at    BIGINT NOT NULL DEFAULT 0,
	healthy_since BIGINT NOT NULL DEFAULT 0,
	gate          TEXT NOT NULL DEFAULT '',
	reason        TEXT NOT NULL DEFAULT '',
	rollback      INTEGER NOT NULL DEFAULT 0,
	step_id       TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (rollout_id, node_id)
);
CREATE UNIQUE INDEX rollout_nodes_order ON rollout_nodes (rollout_id, idx);
CREATE INDEX rollout_nodes_step ON rollout_nodes (step_id) WHERE step_id <> '';
CREATE INDEX rollout_nodes_node ON rollout_nodes (node_id, phase);

CREATE TABLE waves (
	rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	pos        INTEGER NOT NULL,
	state      TEXT NOT NULL,
	started_at BIGINT NOT NULL DEFAULT 0,
	bake_from  BIGINT NOT NULL DEFAULT 0,
	ended_at   BIGINT NOT NULL DEFAULT 0,
	reason     TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (rollout_id, name)
);

-- A step ID is the engine's idempotency key: the primary key is what makes
-- "no step is dispatched twice" hold.
CREATE TABLE steps (
	id           TEXT PRIMARY KEY,
	rollout_id   TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	node_id      TEXT NOT NULL,
	kind         TEXT NOT NULL,
	attempt      INTEGER NOT NULL,
	term         BIGINT NOT NULL,
	payload      TEXT NOT NULL DEFAULT 'null',
	created_at   BIGINT NOT NULL,
	delivered_at BIGINT,
	finished_at  BIGINT,
	result       TEXT NOT NULL DEFAULT '',
	evidence     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX steps_pending ON steps (node_id, created_at, id) WHERE finished_at IS NULL;
CREATE INDEX steps_rollout ON steps (rollout_id);

CREATE TABLE gate_results (
	id         BIGSERIAL PRIMARY KEY,
	rollout_id TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	wave       TEXT NOT NULL,
	gate       TEXT NOT NULL,
	verdict    TEXT NOT NULL,
	reason     TEXT NOT NULL DEFAULT '',
	at         BIGINT NOT NULL
);
CREATE INDEX gate_results_latest ON gate_results (rollout_id, wave, gate, at, id);

CREATE TABLE approvals (
	rollout_id  TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	wave        TEXT NOT NULL,
	by_user     TEXT NOT NULL,
	plan_sha256 TEXT NOT NULL,
	at          BIGINT NOT NULL,
	PRIMARY KEY (rollout_id, wave, by_user, plan_sha256)
);

CREATE TABLE audit (
	seq     BIGINT PRIMARY KEY,
	at      BIGINT NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	object  TEXT NOT NULL,
	rollout TEXT NOT NULL DEFAULT '',
	detail  TEXT NOT NULL,
	prev    BYTEA NOT NULL,
	hash    BYTEA NOT NULL
);
CREATE INDEX audit_rollout ON audit (rollout, seq);

-- The chain's head: the one row every audit append locks, so that
-- sequence numbers are allocated without gaps under concurrent writers.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x'::bytea);

CREATE TABLE leader (
	id     INTEGER PRIMARY KEY CHECK (id = 1),
	term   BIGINT NOT NULL,
	holder TEXT NOT NULL DEFAULT '',
	since  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO leader (id, term) VALUES (1, 0);
