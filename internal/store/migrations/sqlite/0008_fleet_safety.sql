-- Fleet safety. node_holds says who holds each node: at most one holder
-- per node (the primary key), so two rollouts, or two servers, cannot
-- both dispatch a step to it. A rollout takes the hold in the commit
-- that dispatches the step (ApplyCommit); the triggers below release it
-- when the node leaves the in-flight phases, when the rollout ends and
-- when the node or rollout is deleted. holder_kind 'rollout' is the only
-- kind written today; other slot holders (FleetLock clients) take rows of
-- their own kind and count against the same budgets.
CREATE TABLE node_holds (
	node_id     TEXT PRIMARY KEY,
	holder_kind TEXT NOT NULL,
	holder      TEXT NOT NULL,
	holder_name TEXT NOT NULL DEFAULT '',
	since       INTEGER NOT NULL
);
CREATE INDEX node_holds_holder ON node_holds (holder_kind, holder);

-- Holds of the in-flight nodes of rollouts running when this migration
-- runs (the first rollout in ID order wins a node two of them hold).
INSERT INTO node_holds (node_id, holder_kind, holder, holder_name, since)
SELECT rn.node_id, 'rollout', rn.rollout_id, r.name, rn.since FROM rollout_nodes rn JOIN rollouts r ON r.id = rn.rollout_id
WHERE r.state NOT IN ('succeeded', 'failed', 'aborted', 'halted')
	AND rn.phase IN ('queued', 'running', 'verifying', 'failed', 'rolling-back', 'unknown')
ORDER BY rn.rollout_id, rn.idx
ON CONFLICT (node_id) DO NOTHING;

CREATE TRIGGER node_holds_release AFTER UPDATE OF phase ON rollout_nodes
WHEN NEW.phase NOT IN ('queued', 'running', 'verifying', 'failed', 'rolling-back', 'unknown')
BEGIN DELETE FROM node_holds WHERE node_id = NEW.node_id AND holder_kind = 'rollout' AND holder = NEW.rollout_id; END;

CREATE TRIGGER node_holds_rollout_end AFTER UPDATE OF state ON rollouts
WHEN NEW.state IN ('succeeded', 'failed', 'aborted', 'halted')
BEGIN DELETE FROM node_holds WHERE holder_kind = 'rollout' AND holder = NEW.id; END;

CREATE TRIGGER node_holds_rollout_gone AFTER DELETE ON rollouts
BEGIN DELETE FROM node_holds WHERE holder_kind = 'rollout' AND holder = OLD.id; END;

CREATE TRIGGER node_holds_node_gone AFTER DELETE ON nodes
BEGIN DELETE FROM node_holds WHERE node_id = OLD.id; END;

-- Fleet disruption budgets: at most max_unavailable ("3" or "25%") of the
-- nodes the selector matches held at once, per domain of the per label.
CREATE TABLE fleet_budgets (
	name            TEXT PRIMARY KEY,
	selector        TEXT NOT NULL DEFAULT '',
	max_unavailable TEXT NOT NULL,
	per             TEXT NOT NULL DEFAULT '',
	version         INTEGER NOT NULL,
	created_by      TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
);

-- Fleet freezes: calendar is a JSON window.CalendarSpec (time zone,
-- local start and end, RRULE, exceptions); source names the iCalendar
-- file and UID it was imported from, if any.
CREATE TABLE fleet_freezes (
	name       TEXT PRIMARY KEY,
	calendar   TEXT NOT NULL,
	selector   TEXT NOT NULL DEFAULT '',
	reason     TEXT NOT NULL DEFAULT '',
	source     TEXT NOT NULL DEFAULT '',
	version    INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
