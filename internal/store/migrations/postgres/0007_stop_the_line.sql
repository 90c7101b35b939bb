-- Stop-the-line and interrupted steps.
-- line_stop holds the fleet-wide stop while one is in force (one row, or
-- none while the line runs); every commit that dispatches a step checks
-- it in its own transaction, so no server walks around it.
-- steps.cancel_requested_at: a cancel of a handed-out step waits for the
-- agent's answer (NULL: none requested). steps.begun_at: the agent's
-- first accepted report of the step (NULL: not known to have begun).
-- rollout_nodes.interruptions counts the node's interrupted steps
-- (plan gates.onInterrupted).
CREATE TABLE line_stop (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	reason  TEXT NOT NULL,
	by_user TEXT NOT NULL,
	at      BIGINT NOT NULL
);
ALTER TABLE steps ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE steps ADD COLUMN begun_at BIGINT;
ALTER TABLE rollout_nodes ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
