-- Exposure history: one row per period a node was exposed to an
-- advisory (status affected, fixed-not-running or live-patched), opened
-- when exposure is first computed so (first_seen), closed when it is
-- computed not-affected (remediated_at; 0 while open). status is the
-- latest computation's, last_seen when it last changed (or the period
-- closed): an unchanged computation writes nothing. Times in Unix
-- nanoseconds.
CREATE TABLE exposure_history (
	advisory_id   TEXT NOT NULL,
	node_id       TEXT NOT NULL,
	status        TEXT NOT NULL,
	first_seen    BIGINT NOT NULL,
	last_seen     BIGINT NOT NULL,
	remediated_at BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (advisory_id, node_id, first_seen)
);
-- At most one open period a node and advisory, whichever computation
-- (a request, the sweep, another server) records it first.
CREATE UNIQUE INDEX exposure_history_open ON exposure_history (advisory_id, node_id) WHERE remediated_at = 0;
CREATE INDEX exposure_history_open_node ON exposure_history (node_id) WHERE remediated_at = 0;
-- Reboot debt: nodes whose facts say a reboot is required or whose
-- running kernel is older than the newest installed, since when (first
-- computed so; last_seen when its kernels last changed); the row goes
-- when the debt is paid.
CREATE TABLE reboot_debt (
	node_id   TEXT PRIMARY KEY,
	since     BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	running   TEXT NOT NULL DEFAULT '',
	installed TEXT NOT NULL DEFAULT ''
);
