-- Step history and rollout predictions.
--
-- steps.timing: the agent's split of an apply step's time (JSON of
-- api.StepTiming: executionSeconds, rebootSeconds, probeSeconds; ''
-- when the agent sent none).
--
-- step_timings: one row per apply step that settled healthy, with the
-- node's keys as they were (action kinds of the plan, OS family and
-- version, hardware class) and the step's times: dispatched (the step
-- written), started (the agent's first report), healthy (the probes
-- passed), settled (the node succeeded). execution_ns, reboot_ns and
-- probe_ns split started..healthy as the agent measured it (all in
-- execution_ns for an agent that measured nothing).
--
-- rollout_predictions: the simulation of a rollout run at its creation
-- (JSON of the server's prediction: per wave start and end, makespan,
-- the model's notes).
ALTER TABLE steps ADD COLUMN timing TEXT NOT NULL DEFAULT '';

CREATE TABLE step_timings (
	step_id        TEXT PRIMARY KEY,
	rollout_id     TEXT NOT NULL,
	node_id        TEXT NOT NULL,
	action         TEXT NOT NULL,
	os_family      TEXT NOT NULL DEFAULT '',
	os_version     TEXT NOT NULL DEFAULT '',
	hardware_class TEXT NOT NULL DEFAULT '',
	dispatched_at  BIGINT NOT NULL,
	started_at     BIGINT NOT NULL,
	healthy_at     BIGINT NOT NULL,
	settled_at     BIGINT NOT NULL,
	execution_ns   BIGINT NOT NULL,
	reboot_ns      BIGINT NOT NULL DEFAULT 0,
	probe_ns       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX step_timings_settled ON step_timings (settled_at);

CREATE TABLE rollout_predictions (
	rollout_id TEXT PRIMARY KEY REFERENCES rollouts (id) ON DELETE CASCADE,
	prediction TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
