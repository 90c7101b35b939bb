// Package plan owns drover's rollout plan format, version drover.dev/v1:
// its Go types, the strict YAML decoder that locates every problem as
// FILE:LINE:COL, validation, defaults (including ramp expansion), the
// effective-plan YAML writer and the JSON Schema generated from the types.
// It does no I/O beyond ParseFile reading its file, and reads no clock.
//
// # Parsing
//
// Parse decodes by walking yaml.v3's node tree, so that every error has a
// line and a column, and reports all problems at once as Errors. It
// validates the plan as written, then applies Defaults and returns the
// effective plan, in which every field the engine reads is explicit.
// Positions survive: Plan.Where and Plan.Errorf locate errors found later
// (against an inventory, say) in the user's file.
//
// # Semantics
//
// Target: the target selector chooses every node the rollout may touch;
// percents ("20%") are of the target, rounded up (Quantity.Of), except in
// caps, where a percent is of the domain (the nodes sharing the key's
// value), and in a wave's failure budget, where it is of the wave.
//
// Assignment: nodes are assigned to waves once, when the rollout starts,
// in plan order. A wave takes, among the target nodes no earlier wave
// took and its selector allows, the number its nodes says; with no nodes
// it takes all of them. A canary wave picks its nodes spread across the
// distinct values of its spread keys (default os.family, os.version,
// hardware.class, zone), so the few nodes it changes represent the fleet.
// Nodes of a held-back domain (limits.holdBack) go to no wave in until,
// nor to any wave that does not come after all of them.
//
// Ordering: a wave starts when every wave in its after list has succeeded.
// A wave without after comes after the previous wave in the list; the
// first has none; "after: []" makes a wave a root, so waves can run in
// parallel (a DAG). Cycles are errors. A ramp is one wave growing in
// cumulative steps; Defaults expands it into waves NAME-1..NAME-k (see
// Defaults).
//
// Limits: a node starts only when every limit allows it: maxInFlight (of
// the target, default 1), each cap (per domain of its key: a label such as
// zone, or a fact such as os.family), the start rate, its maintenance
// window (the window named by its windows.label label, or windows.default;
// no window means any time; no start within windows.cutoff of the
// window's end), no freeze covering now (from inclusive, to exclusive),
// and after jitter.
//
// Budgets: a failure budget is breached when failures exceed maxFailures,
// failures > max, not >=: a budget of 0 breaches on the first failure, a
// budget of 2 on the third. Every wave has a budget (default 0, acting as
// the plan's failureBudget.onBreach, or rollback-wave); the plan-wide
// budget exists only when its maxFailures is set.
//
// Gates: node probes run after each node's step and must pass (for
// minHealthy) before healthyDeadline; wave gates judge fleet metrics after
// the wave's bake time, against a baseline for delta, before-after and
// statistical modes. No data fails a gate unless onNoData says
// inconclusive. A failed wave gate does gates.onFail.
//
// Consent: what runs on a node is also the node's decision. A command
// probe's command runs only on agents that allow command probes; a
// command probe may name a signed artifact instead. RefusedAction and
// RefusedProbe say what an agent with a given policy (fleet.AgentPolicy)
// refuses: the agent applies them to each step, the server to a plan's
// target nodes at creation, where target.onRefusal decides between
// refusing the rollout (the default) and letting those nodes fail.
package plan
