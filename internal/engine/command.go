package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the operator rules (Command, Accept). They are matched with
// errors.Is; the shell maps them to its own (the store to ErrConflict and
// ErrForbidden).
var (
	// ErrNotNow: the action does not apply to the rollout or node in its
	// current state (pausing a paused rollout, a report of a step that is
	// not the node's current one, a second different final report).
	ErrNotNow = errors.New("not allowed in the current state")
	// ErrForbidden: the actor may not do this (an author approving their
	// own rollout).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the command names a wave or node the rollout does not
	// have.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the command or report is malformed (an unknown action,
	// a resolution that is not one, a phase agents do not report).
	ErrInvalid = errors.New("invalid")
)

// Action is an operator command on a rollout.
type Action string

const (
	ActApprove  Action = "approve"
	ActPause    Action = "pause"
	ActResume   Action = "resume"
	ActAbort    Action = "abort"
	ActRollback Action = "rollback"
	ActResolve  Action = "resolve"
	ActStop     Action = "stop"
)

// Command is one operator command.
type Command struct {
	Action Action
	Actor  string
	Reason string
	// Wave: approve's wave ("" for the start); rollback's scope ("" for
	// every wave).
	Wave string
	// Node and Resolution: resolve's node and what becomes of it
	// (PhasePending to retry, PhaseQuarantined, PhaseSkipped).
	Node       string
	Resolution Phase
}

// CommandInput is the part of a rollout a command reads.
type CommandInput struct {
	Author        string
	State         RolloutState
	Reason        string
	RollbackScope string
	Waves         []string   // the plan's wave names
	Approvals     []Approval // recorded for the current plan
	// Node is resolve's node state; nil when the node is not in the target.
	Node *NodeState
	// Steps are the rollout's unfinished steps (abort and stop cancel
	// those not begun).
	Steps []OpenStep
	Now   time.Time
}

// OpenStep is an unfinished step of a rollout, with its node's phase.
type OpenStep struct {
	Node      string
	StepID    string
	Rollback  bool
	Delivered bool  // handed to the agent at least once
	Begun     bool  // the agent reported progress of it
	Phase     Phase // the node's phase
	// CancelRequested: a cancel is already pending the agent's answer.
	CancelRequested bool
}

// CommandResult is what the shell persists for a command, in one
// transaction with its audit entry.
type CommandResult struct {
	State         RolloutState
	Reason        string
	RollbackScope string
	// Approval to record (approve); nil when the approval is a repeat,
	// which changes nothing.
	Approval *Approval
	// Resolved is resolve's new node state; the node's unfinished steps
	// are closed so that a late report of them is refused.
	Resolved *NodeState
	// Cancels are the steps to cancel (abort, stop).
	Cancels []Cancellation
	// Repeat: nothing changes (an approval already recorded).
	Repeat bool
}

// Cancellation cancels one step not begun.
//
// Now: the step was never handed out; the shell closes it as cancelled
// and moves the node to To (pending, with Reason) at once: the agent
// never sees it.
//
// Otherwise the step was handed out and the agent may have begun it: the
// shell records that a cancel is requested and tells the agent; the node
// keeps its phase (To; with Reason) until the agent acknowledges it (a
// cancelled report, see Accept) or reports the step's real progress.
type Cancellation struct {
	Node   string
	StepID string
	Now    bool
	To     Phase
	Reason string
}

// Cancel returns the cancellations of the apply steps not known to have
// begun (no report of them yet), for why: those of queued nodes, and of
// unknown nodes (silent agents) whose step may not have begun either. Rollback steps are never
// cancelled: remediation already handed out goes on. A step whose cancel
// is already requested is not requested again.
func Cancel(steps []OpenStep, why string) []Cancellation {
	var out []Cancellation
	for _, st := range steps {
		if st.Rollback || st.Begun || (st.Phase != PhaseQueued && st.Phase != PhaseUnknown) || st.CancelRequested {
			continue
		}
		if !st.Delivered {
			out = append(out, Cancellation{Node: st.Node, StepID: st.StepID, Now: true, To: PhasePending,
				Reason: "cancelled before it was handed out: " + why})
			continue
		}
		out = append(out, Cancellation{Node: st.Node, StepID: st.StepID, To: st.Phase,
			Reason: "cancel requested (" + why + "); waiting for the agent"})
	}
	return out
}

// Apply returns the rollout after cmd, or why cmd does not apply (an
// error wrapping ErrNotNow, ErrForbidden or ErrInvalid). It is the one
// implementation of the operator rules:
//
//   - approve: a non-terminal rollout; never by its author; a repeat
//     changes nothing. Decide starts the rollout or wave once enough
//     approvals are recorded.
//   - pause: running -> paused. resume: paused -> running.
//   - abort: any non-terminal state -> aborted; steps not begun are
//     cancelled, steps under way finish and are reported.
//   - rollback: any non-terminal state but rolling-back -> rolling-back,
//     scope cmd.Wave ("" for every wave).
//   - resolve: a failed, unknown or rollback-unhealthy node of a
//     non-terminal rollout -> pending (retry; its attempt is kept, so the
//     next start is attempt+1), quarantined or skipped.
//   - stop: running, paused or rolling-back -> paused ("stopped by ...");
//     steps not begun are cancelled, steps under way finish. resume lifts
//     it. A rollout waiting for approvals has nothing to stop.
func (in CommandInput) Apply(cmd Command) (CommandResult, error) {
	out := CommandResult{State: in.State, Reason: in.Reason, RollbackScope: in.RollbackScope}
	notIn := func() error {
		return fmt.Errorf("cannot %s a rollout that is %s: %w", cmd.Action, in.State, ErrNotNow)
	}
	if cmd.Actor == "" {
		return out, fmt.Errorf("%s: no actor: %w", cmd.Action, ErrInvalid)
	}
	by := cmd.Actor + withReason(cmd.Reason)
	switch cmd.Action {
	case ActApprove:
		if in.State.Terminal() {
			return out, notIn()
		}
		if cmd.Actor == in.Author {
			return out, fmt.Errorf("%s is the author of the rollout and cannot approve it: %w", cmd.Actor, ErrForbidden)
		}
		if slices.ContainsFunc(in.Approvals, func(a Approval) bool { return a.By == cmd.Actor && a.Wave == cmd.Wave }) {
			out.Repeat = true
			return out, nil
		}
		out.Approval = &Approval{By: cmd.Actor, Wave: cmd.Wave, At: in.Now}
	case ActPause:
		if in.State != RolloutRunning {
			return out, notIn()
		}
		out.State, out.Reason = RolloutPaused, "paused by "+by
	case ActResume:
		if in.State != RolloutPaused {
			return out, notIn()
		}
		out.State, out.Reason = RolloutRunning, ""
	case ActAbort:
		if in.State.Terminal() {
			return out, notIn()
		}
		out.State, out.Reason = RolloutAborted, "aborted by "+by
		out.Cancels = Cancel(in.Steps, out.Reason)
	case ActStop:
		switch in.State {
		case RolloutRunning, RolloutPaused, RolloutRollingBack:
		case RolloutPendingApproval:
			return out, fmt.Errorf("cannot stop a rollout that is waiting for approvals (nothing is dispatched; abort it to end it): %w", ErrNotNow)
		default:
			return out, notIn()
		}
		out.State, out.Reason, out.RollbackScope = RolloutPaused, "stopped by "+by, ""
		out.Cancels = Cancel(in.Steps, out.Reason)
	case ActRollback:
		if in.State.Terminal() || in.State == RolloutRollingBack {
			return out, notIn()
		}
		if cmd.Wave != "" && !slices.Contains(in.Waves, cmd.Wave) {
			return out, fmt.Errorf("rollback: the plan has no wave %q: %w", cmd.Wave, ErrNotFound)
		}
		out.State, out.RollbackScope = RolloutRollingBack, cmd.Wave
		out.Reason = "rollback ordered by " + by
	case ActResolve:
		if in.State.Terminal() {
			return out, notIn()
		}
		st, err := in.resolve(cmd)
		if err != nil {
			return out, err
		}
		out.Resolved = &st
	default:
		return out, fmt.Errorf("unknown command %q (want approve, pause, resume, abort, rollback, resolve or stop): %w", cmd.Action, ErrInvalid)
	}
	return out, nil
}

// resolve is the node state an operator's resolution gives.
func (in CommandInput) resolve(cmd Command) (NodeState, error) {
	to := cmd.Resolution
	switch to {
	case PhasePending, PhaseQuarantined, PhaseSkipped:
	default:
		return NodeState{}, fmt.Errorf("resolution %q: want pending (retry), quarantined or skipped: %w", cmd.Resolution, ErrInvalid)
	}
	if cmd.Node == "" {
		return NodeState{}, fmt.Errorf("resolve: no node given: %w", ErrInvalid)
	}
	if in.Node == nil {
		return NodeState{}, fmt.Errorf("node %s is not in the rollout's target: %w", cmd.Node, ErrNotFound)
	}
	st := *in.Node
	if st.Phase != PhaseFailed && st.Phase != PhaseUnknown && st.Phase != PhaseRollbackUnhealthy {
		return NodeState{}, fmt.Errorf("node %s is %s; only failed, unknown or rollback-unhealthy nodes can be resolved: %w", cmd.Node, st.Phase, ErrNotNow)
	}
	st.Phase, st.Since, st.Gate, st.HealthySince = to, in.Now, "", time.Time{}
	st.Reason = fmt.Sprintf("%s by %s%s", to, cmd.Actor, withReason(cmd.Reason))
	if to == PhasePending {
		st.Reason = "retry ordered by " + cmd.Actor + withReason(cmd.Reason)
	}
	return st, nil
}

func withReason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
