package engine

import (
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// Report is what an agent says about one step.
type Report struct {
	Phase Phase // running, verifying, succeeded, failed, rolling-back, rolled-back, interrupted, cancelled
	// Gate is the node-gate verdict of a verifying report, and of a
	// rolled-back one: the probes run again after the rollback (Pass:
	// verified healthy; Fail: restored but still unhealthy; "" from an
	// agent that does not probe after a rollback).
	Gate         Verdict
	HealthySince time.Time
	Reason       string
	At           time.Time
}

// StepStatus is the shell's record of the step a report is about.
type StepStatus struct {
	// Current: the step is the node's current step in the rollout.
	Current  bool
	Rollback bool
	// Finished and Result: the step was closed with that result
	// (a final phase, "cancelled", "interrupted", or "resolved:...").
	Finished        bool
	Result          string
	CancelRequested bool
}

// ReportInput is everything Accept reads.
type ReportInput struct {
	State         RolloutState // the rollout's
	OnInterrupted plan.InterruptAction
	// MinHealthy is the plan's node soak (gates.node.minHealthy): in a
	// rollout that ended, a passing node settles once it has passed that
	// long.
	MinHealthy time.Duration
	Node       NodeState
	Step       StepStatus
	Report     Report
}

// ReportResult is what the shell persists for an accepted report.
type ReportResult struct {
	// Node is the node's new state; Changed says whether it differs from
	// the input's (nothing to write when it does not).
	Node    NodeState
	Changed bool
	// Finish closes the step with Result.
	Finish bool
	Result string
}

// FinalPhase reports whether a reported phase ends its step.
func FinalPhase(p Phase) bool {
	switch p {
	case PhaseSucceeded, PhaseFailed, PhaseRolledBack, PhaseInterrupted, PhaseCancelled:
		return true
	}
	return false
}

// resultOf is the result a report closes its step with: its phase, but
// rollback-unhealthy for a rollback reported rolled back with a failing
// gate.
func resultOf(r Report, step StepStatus) Phase {
	if r.Phase == PhaseRolledBack && r.Gate == Fail && step.Rollback {
		return PhaseRollbackUnhealthy
	}
	return r.Phase
}

// Accept applies an agent's report to its node, or says why it is
// refused (an error wrapping ErrNotNow or ErrInvalid). The rules:
//
//   - only the node's current step may be reported (a late report of an
//     earlier step is stale); a report repeating a finished step's result
//     changes nothing, and so does a passing soak report of a step
//     already judged succeeded; any other report of a finished step is
//     refused.
//   - cancelled acknowledges a cancel of a step the agent had not begun:
//     refused unless a cancel was requested; the node (queued, or unknown
//     while its agent was silent) goes back to pending with its attempt
//     (it carries nothing).
//   - interrupted: the agent crashed or the node rebooted mid-step and the
//     agent undid what had begun. With gates.onInterrupted retry (the
//     default) the node's first interruption sends it back to pending, to
//     be dispatched again once limits allow (the report itself proves the
//     agent is back); a second one, or onInterrupted fail, fails the node
//     (it counts against the budget). In a rollout that ended the node is
//     pending: it carries nothing. A rollback step is never retried.
//   - rolled-back with a failing gate: the rollback restored the node but
//     its probes still fail; the node becomes rollback-unhealthy (out of
//     service until a human resolves it) and the step's result says so.
//   - in a rollout that ended (aborted, halted, ...), nothing decides any
//     more: a node passing for its soak (MinHealthy) becomes succeeded and
//     a failing one failed, and its step is closed, so that the view
//     shows what the node carries (never verifying for ever).
//   - otherwise the node takes the reported phase, gate and reason (the
//     engine's Decide judges soaks and deadlines).
func Accept(in ReportInput) (ReportResult, error) {
	r, st := in.Report, in.Node
	out := ReportResult{Node: st}
	switch r.Phase {
	case PhaseRunning, PhaseVerifying, PhaseSucceeded, PhaseFailed, PhaseRollingBack, PhaseRolledBack, PhaseInterrupted, PhaseCancelled:
	default:
		return out, fmt.Errorf("phase %q is not one an agent reports: %w", r.Phase, ErrInvalid)
	}
	if !in.Step.Current {
		return out, fmt.Errorf("stale report: not the node's current step: %w", ErrNotNow)
	}
	if in.Step.Finished {
		switch {
		case in.Step.Result == string(resultOf(r, in.Step)):
			return out, nil // a repeated final report
		case in.Step.Result == string(PhaseSucceeded) && r.Phase == PhaseVerifying && r.Gate == Pass:
			return out, nil // the soak report of a step the engine already judged healthy
		}
		return out, fmt.Errorf("step already finished as %s, report says %s: %w", in.Step.Result, r.Phase, ErrNotNow)
	}
	next := st
	next.Phase, next.Gate, next.HealthySince, next.Reason = r.Phase, r.Gate, r.HealthySince, r.Reason
	switch r.Phase {
	case PhaseCancelled:
		if !in.Step.CancelRequested || in.Step.Rollback {
			return out, fmt.Errorf("cancelled report of a step no cancel was requested for: %w", ErrNotNow)
		}
		next.Phase, next.Gate, next.HealthySince = PhasePending, "", time.Time{}
		next.Reason = "cancelled before it began; the agent acknowledged" + withReason(r.Reason)
	case PhaseInterrupted:
		next.Gate, next.HealthySince = "", time.Time{}
		next.Interruptions = st.Interruptions + 1
		what := orElse(r.Reason, "the step was interrupted")
		switch {
		case in.Step.Rollback:
			next.Phase, next.Rollback = PhaseFailed, true
			next.Reason = "rollback interrupted: " + what
		case in.State.Terminal():
			next.Phase = PhasePending
			next.Reason = fmt.Sprintf("interrupted; not retried: rollout %s: %s", in.State, what)
		case in.OnInterrupted == plan.InterruptFail:
			next.Phase = PhaseFailed
			next.Reason = "interrupted (onInterrupted: fail): " + what
		case st.Interruptions >= 1:
			next.Phase = PhaseFailed
			next.Reason = fmt.Sprintf("interrupted %d times; counts as a failure: %s", next.Interruptions, what)
		default:
			next.Phase = PhasePending
			next.Reason = "interrupted; retried once the limits allow (onInterrupted: retry): " + what
		}
	case PhaseRolledBack:
		if phase := resultOf(r, in.Step); phase == PhaseRollbackUnhealthy {
			next.Phase, next.HealthySince = phase, time.Time{}
			next.Reason = "rolled back but still unhealthy: " + orElse(r.Reason, "node probes failed after the rollback")
		}
	case PhaseVerifying:
		if in.State.Terminal() && !in.Step.Rollback {
			switch {
			case r.Gate == Pass && !r.HealthySince.IsZero() && !r.At.Before(r.HealthySince.Add(in.MinHealthy)):
				next.Phase = PhaseSucceeded
				next.Reason = fmt.Sprintf("healthy after the rollout was %s: carries the change", in.State)
			case r.Gate == Fail:
				next.Phase = PhaseFailed
				next.Reason = fmt.Sprintf("node gate failed after the rollout was %s: %s", in.State, orElse(r.Reason, "probe failed"))
			}
		}
	}
	if next.Phase != st.Phase {
		next.Since = r.At
	}
	out.Node = next
	out.Changed = next != st
	switch {
	case FinalPhase(r.Phase):
		out.Finish, out.Result = true, string(resultOf(r, in.Step))
	case r.Phase == PhaseVerifying && (next.Phase == PhaseSucceeded || next.Phase == PhaseFailed):
		out.Finish, out.Result = true, string(next.Phase) // settled after the rollout ended: nothing else will close it
	}
	return out, nil
}
