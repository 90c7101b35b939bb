-- The rollout you rehearse is the rollout you get. A dry run on a live
-- server is stored with the seed it drew and the assignment it made
-- (rehearsal.Record as gzip-compressed JSON: every inventory node's wave, canary
-- membership and the values the assignment read), so that a rollout
-- created from it reproduces it or says which nodes moved and why.
-- Kept 30 days, at most the 500 newest (CreateDryRun prunes).
CREATE TABLE dry_runs (
	id                TEXT PRIMARY KEY,
	name              TEXT NOT NULL,
	author            TEXT NOT NULL,
	plan              BLOB NOT NULL,
	plan_sha256       TEXT NOT NULL,
	seed              INTEGER NOT NULL,
	assignment        BLOB NOT NULL,
	assignment_sha256 TEXT NOT NULL,
	created_at        INTEGER NOT NULL
);
CREATE INDEX dry_runs_created ON dry_runs (created_at, id);

-- A rollout's assignment hash (rehearsal.Hash: its node-to-wave list)
-- and the dry run it was created from ('' when none). Rollouts created
-- before this migration have '' and keep the approvals they had.
ALTER TABLE rollouts ADD COLUMN assignment_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN dry_run TEXT NOT NULL DEFAULT '';

-- Approvals bind to the plan's hash and the assignment's: an approval
-- counts only while both are the rollout's.
CREATE TABLE approvals_new (
	rollout_id        TEXT NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
	wave              TEXT NOT NULL,
	by_user           TEXT NOT NULL,
	plan_sha256       TEXT NOT NULL,
	assignment_sha256 TEXT NOT NULL DEFAULT '',
	at                INTEGER NOT NULL,
	PRIMARY KEY (rollout_id, wave, by_user, plan_sha256, assignment_sha256)
);
INSERT INTO approvals_new (rollout_id, wave, by_user, plan_sha256, at) SELECT rollout_id, wave, by_user, plan_sha256, at FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
