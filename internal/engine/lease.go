package engine

import "time"

// Expire returns the transition of a node whose agent was last seen at
// lastSeen and whose lease ended before now, or false when the node keeps
// its phase: only nodes in flight with an agent at work (queued, running,
// verifying, rolling-back) become unknown, and keep their slot until the
// agent reports again or an operator resolves them. A zero lastSeen means
// never seen.
func Expire(st NodeState, lastSeen, leaseUntil, now time.Time) (NodeTransition, bool) {
	switch st.Phase {
	case PhaseQueued, PhaseRunning, PhaseVerifying, PhaseRollingBack:
	default:
		return NodeTransition{}, false
	}
	if !leaseUntil.Before(now) {
		return NodeTransition{}, false
	}
	seen := "never"
	if !lastSeen.IsZero() {
		seen = lastSeen.UTC().Format(time.RFC3339)
	}
	return NodeTransition{From: st.Phase, To: PhaseUnknown, Reason: "agent silent since " + seen}, true
}

// RestartLease is an agent's lease after a new leader's first tick at
// now: the server's own downtime never counts against an agent, so every
// lease runs at least one full window from then. A lease already longer
// is kept.
func RestartLease(until, now time.Time, lease time.Duration) time.Time {
	if fresh := now.Add(lease); fresh.After(until) {
		return fresh
	}
	return until
}
