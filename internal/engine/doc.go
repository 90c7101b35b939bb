// Package engine owns drover's rollout state machine: which wave each
// node belongs to (Assign, once per rollout); from a rollout's persisted
// state, what to do next (Decide, on every event or tick); and the rules
// for what people and agents say: operator commands (CommandInput.Apply),
// agent reports (Accept), cancellation of steps not begun (Cancel) and
// leases (Expire, RestartLease). The store and the simulator call these;
// no rule lives anywhere else.
//
// The engine is a pure function in the manner of etcd's raft: no I/O, no
// clock, no logger, no globals. Time comes in as Input.Now and randomness
// as Input.Seed; reasons come out as text. The live server and the
// simulator call the same code, so a dry run predicts the live run. A test
// (imports_test.go) fails the build if the package imports os, net,
// database/sql, log or log/slog, or calls time.Now.
//
// The caller (the "shell") must, for each Decision, in order: persist the
// node and wave transitions and the rollout state; persist the starts and
// rollbacks with their step IDs (marking nodes queued or rolling-back);
// only then dispatch them; then decide again at NextAt or on the next
// event. Persist before you send: a crash between the two re-derives the
// same step IDs, which agents treat as idempotency keys.
//
// See README.md in this directory for the vocabulary (phases, wave states,
// budgets, limits) and the safety rules the property tests check.
package engine
