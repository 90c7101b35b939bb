// Package sim rehearses a rollout on a virtual clock: it drives the pure
// engine (engine.Assign once, then engine.Decide in a loop) exactly as the
// live control plane does, against simulated agents, and checks every
// decision against the plan's safety rules.
//
// # The shell contract
//
// Run follows the order the live server follows: Assign the target, then
// repeatedly build an engine.Input from the persisted state, Decide, apply
// the decision (node transitions, wave transitions, the rollout state, then
// Starts as queued and Rollbacks as rolling-back), "dispatch" the starts to
// simulated agents, and evaluate the wave gates of the waves listed in
// Decision.Evaluate. The same Input.Nodes slice is reused for every call.
//
// # Simulated agents
//
// A queued node becomes running after a dispatch latency, and after its
// step duration it either fails ("apply failed: ...",
// when an apply Failure hits it) or starts verifying with its node gates
// reported: Gate=pass with HealthySince set, or Gate=fail when a health
// Failure says the change hurts this node. The engine itself moves verifying
// nodes to succeeded or failed, and stuck nodes to failed past their
// deadlines. A rolling-back node becomes rolled-back after
// Config.RollbackDuration (or failed, "rollback failed: ...", when injected
// with the "rollback" kind).
//
// Both durations, and a rollback's, come from Config.Durations: the plan's
// model by default (PlanDurations: a dispatch latency of 1–2 s,
// Config.StepDuration, Config.RollbackDuration), or a model learned from
// a fleet's step history (History.Model: per action kind, OS family and
// version, hardware class, with coarser fallbacks), whose notes say per
// wave where the timings come from.
//
// Whether a Failure hits a node is drawn once per (node, failure) from the
// seed, independently of event order: the same seed gives the same run.
//
// # Starting mid-rollout
//
// With Config.From a run starts from a rollout's state instead of
// assigning: nodes done stay done, nodes in flight finish after the rest
// of a duration drawn longer than what has elapsed, waves keep their
// states and times. Result.Delays names the windows and freezes the run
// waited for. A server's live ETA is such a run.
//
// # Wave gates
//
// For each wave the engine lists in Decision.Evaluate, every gate of
// plan.Gates.Wave (or one implicit gate named "health" when the plan has
// none) is evaluated as a metric gate would see it: Fail when at least one
// changed node of the wave is hurt by a health Failure (the reason says how
// many and what they share, e.g. "simulated: 2 of 6 nodes degraded
// (hardware.class=gen3)"), Pass otherwise; with Config.GateTiming each
// gate reaches its verdict through gate.Tracker, after its initial delay,
// interval and count, as on a server. Only the latest result per wave
// and gate is kept in Input.Gates. A delta or statistical gate of a wave
// that leaves no unchanged node to compare with (gate.Baseline, as on a
// server) compares the wave with itself before the change: an event and
// its reasons say so.
//
// # Time
//
// Decide costs O(nodes). The simulator therefore quantizes time: events
// (agent reports) are kept in a heap and processed in ticks of Config.Tick
// virtual time; Decide runs once at the end of each tick in which anything
// happened, or at the tick holding Decision.NextAt. With Tick 0 the tick
// grows with the fleet (see AutoTick). Approvals are granted at start: a
// rollout that needs approvals is auto-approved, and the Result says so.
//
// # Invariants
//
// Checker verifies every decision against the plan (concurrency, per-domain
// caps, hold-back, maintenance windows and freezes, rate, restarts, failure
// budgets, stopped rollouts) and CheckAssignment verifies canary coverage.
// Both are exported for the engine's property tests. A violation is always
// a bug in the engine (or in the checker).
package sim
