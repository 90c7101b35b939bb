package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

var (
	allPhases = []engine.Phase{engine.PhasePending, engine.PhaseQueued, engine.PhaseRunning, engine.PhaseVerifying,
		engine.PhaseSucceeded, engine.PhaseFailed, engine.PhaseQuarantined, engine.PhaseRollingBack, engine.PhaseRolledBack,
		engine.PhaseUnknown, engine.PhaseSkipped}
	reported = []engine.Phase{engine.PhaseRunning, engine.PhaseVerifying, engine.PhaseSucceeded, engine.PhaseFailed,
		engine.PhaseRollingBack, engine.PhaseRolledBack, engine.PhaseInterrupted, engine.PhaseCancelled, engine.PhaseQueued, "bogus"}
	allStates = []engine.RolloutState{engine.RolloutPendingApproval, engine.RolloutRunning, engine.RolloutPaused,
		engine.RolloutRollingBack, engine.RolloutHalted, engine.RolloutSucceeded, engine.RolloutFailed, engine.RolloutAborted}
	verdicts = []engine.Verdict{"", engine.Pass, engine.Fail, engine.Inconclusive}
)

func pick[T any](rng *rand.Rand, s []T) T { return s[rng.IntN(len(s))] }

// TestAcceptProperties checks the report rules over random reports, node
// states and step records: a stale report is always refused; a repeated
// final report never changes anything; attempt and wave never change; a
// cancel is accepted only when requested and leaves the node pending; an
// interruption is retried at most once, never under onInterrupted fail
// in a live rollout, and never for a rollback; in a rollout that ended a
// failing verdict, or a passing one past the soak, settles the node and
// closes its step.
func TestAcceptProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for c := range 20000 {
		in := engine.ReportInput{
			State:         pick(rng, allStates),
			OnInterrupted: pick(rng, []plan.InterruptAction{plan.InterruptRetry, plan.InterruptFail}),
			Node: engine.NodeState{Phase: pick(rng, allPhases), Wave: "w", Attempt: 1 + rng.IntN(3), Since: t0,
				Interruptions: rng.IntN(3), Gate: pick(rng, verdicts), Reason: "before"},
			Step: engine.StepStatus{Current: rng.IntN(5) > 0, Rollback: rng.IntN(4) == 0, Finished: rng.IntN(3) == 0,
				CancelRequested: rng.IntN(3) == 0},
			Report:     engine.Report{Phase: pick(rng, reported), Gate: pick(rng, verdicts), Reason: "r", At: t0.Add(time.Minute)},
			MinHealthy: time.Duration(rng.IntN(3)) * time.Minute,
		}
		if rng.IntN(2) == 0 {
			in.Report.HealthySince = t0.Add(time.Duration(rng.IntN(3)-1) * time.Minute)
		}
		if in.Step.Finished {
			in.Step.Result = string(pick(rng, reported))
		}
		out, err := engine.Accept(in)
		where := fmt.Sprintf("case %d: %+v", c, in)
		if !in.Step.Current && err == nil {
			t.Fatalf("%s: stale report accepted", where)
		}
		if err != nil {
			if !errors.Is(err, engine.ErrNotNow) && !errors.Is(err, engine.ErrInvalid) {
				t.Fatalf("%s: error %v wraps neither ErrNotNow nor ErrInvalid", where, err)
			}
			if out.Changed || out.Finish {
				t.Fatalf("%s: refused report changes something: %+v", where, out)
			}
			continue
		}
		if in.Step.Finished && (out.Changed || out.Finish) {
			t.Fatalf("%s: report of a finished step changed something: %+v", where, out)
		}
		if out.Node.Attempt != in.Node.Attempt || out.Node.Wave != in.Node.Wave {
			t.Fatalf("%s: attempt or wave changed: %+v", where, out.Node)
		}
		if out.Changed != (out.Node != in.Node) {
			t.Fatalf("%s: Changed=%v but the states differ=%v", where, out.Changed, out.Node != in.Node)
		}
		if in.Step.Finished {
			continue
		}
		switch in.Report.Phase {
		case engine.PhaseCancelled:
			if !in.Step.CancelRequested || in.Step.Rollback {
				t.Fatalf("%s: cancel accepted without a request", where)
			}
			if out.Node.Phase != engine.PhasePending || !out.Finish {
				t.Fatalf("%s: acknowledged cancel leaves %s, finish=%v", where, out.Node.Phase, out.Finish)
			}
		case engine.PhaseInterrupted:
			if out.Node.Interruptions != in.Node.Interruptions+1 || !out.Finish {
				t.Fatalf("%s: interruption not counted or step not closed", where)
			}
			retried := out.Node.Phase == engine.PhasePending && !in.State.Terminal()
			if retried && (in.Node.Interruptions > 0 || in.OnInterrupted == plan.InterruptFail || in.Step.Rollback) {
				t.Fatalf("%s: interruption retried against the rules", where)
			}
			if out.Node.Phase != engine.PhasePending && out.Node.Phase != engine.PhaseFailed {
				t.Fatalf("%s: interrupted node is %s", where, out.Node.Phase)
			}
		}
		settles := in.State.Terminal() && !in.Step.Rollback && in.Report.Phase == engine.PhaseVerifying &&
			(in.Report.Gate == engine.Fail || (in.Report.Gate == engine.Pass && !in.Report.HealthySince.IsZero() &&
				!in.Report.At.Before(in.Report.HealthySince.Add(in.MinHealthy))))
		if settles && (out.Node.Phase == engine.PhaseVerifying || !out.Finish) {
			t.Fatalf("%s: a verdict after the rollout ended left the node %s (finish %v)", where, out.Node.Phase, out.Finish)
		}
		if !settles && engine.FinalPhase(in.Report.Phase) != out.Finish {
			t.Fatalf("%s: finish=%v for phase %s", where, out.Finish, in.Report.Phase)
		}
	}
}

// TestCommandProperties checks the operator rules over random rollouts:
// nothing applies to a rollout that ended but refusals; an author never
// approves; pause, stop and abort never leave a rollout running; abort
// and stop cancel exactly the apply steps of queued nodes (at once if
// never handed out, else by asking the agent) and never a step begun or
// a rollback; every other command cancels nothing.
func TestCommandProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 3))
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for c := range 20000 {
		in := engine.CommandInput{Author: "alice", State: pick(rng, allStates), Waves: []string{"canary", "rest"}, Now: t0}
		for i := range rng.IntN(6) {
			in.Steps = append(in.Steps, engine.OpenStep{Node: fmt.Sprintf("n%d", i), StepID: fmt.Sprintf("r/n%d/apply/1", i),
				Rollback: rng.IntN(4) == 0, Delivered: rng.IntN(2) == 0, Begun: rng.IntN(4) == 0, Phase: pick(rng, allPhases),
				CancelRequested: rng.IntN(4) == 0})
		}
		if rng.IntN(2) == 0 {
			st := engine.NodeState{Phase: pick(rng, allPhases), Attempt: 1}
			in.Node = &st
		}
		actions := []engine.Action{engine.ActApprove, engine.ActPause, engine.ActResume, engine.ActAbort, engine.ActRollback,
			engine.ActResolve, engine.ActStop, "dance"}
		cmd := engine.Command{Action: pick(rng, actions), Actor: pick(rng, []string{"alice", "bob", ""}),
			Wave: pick(rng, []string{"", "canary", "nope"}), Node: "n0",
			Resolution: pick(rng, []engine.Phase{engine.PhasePending, engine.PhaseQuarantined, engine.PhaseSkipped, engine.PhaseSucceeded})}
		out, err := in.Apply(cmd)
		where := fmt.Sprintf("case %d: %s by %q on %s", c, cmd.Action, cmd.Actor, in.State)
		if err != nil {
			if !errors.Is(err, engine.ErrNotNow) && !errors.Is(err, engine.ErrInvalid) && !errors.Is(err, engine.ErrForbidden) &&
				!errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("%s: error %v wraps no rule error", where, err)
			}
			continue
		}
		if in.State.Terminal() {
			t.Fatalf("%s: command applied to a rollout that ended", where)
		}
		if cmd.Action == engine.ActApprove && cmd.Actor == in.Author {
			t.Fatalf("%s: author approved", where)
		}
		switch cmd.Action {
		case engine.ActPause, engine.ActStop:
			if out.State != engine.RolloutPaused {
				t.Fatalf("%s: -> %s", where, out.State)
			}
		case engine.ActAbort:
			if out.State != engine.RolloutAborted {
				t.Fatalf("%s: -> %s", where, out.State)
			}
		case engine.ActResolve:
			if out.Resolved == nil || (in.Node.Phase != engine.PhaseFailed && in.Node.Phase != engine.PhaseUnknown) {
				t.Fatalf("%s: resolved a %v node", where, in.Node)
			}
		}
		cancels := cmd.Action == engine.ActAbort || cmd.Action == engine.ActStop
		want := 0
		for _, st := range in.Steps {
			if (st.Phase == engine.PhaseQueued || st.Phase == engine.PhaseUnknown) && !st.Rollback && !st.Begun && !st.CancelRequested {
				want++
			}
		}
		if !cancels {
			want = 0
		}
		if len(out.Cancels) != want {
			t.Fatalf("%s: %d cancels, want %d", where, len(out.Cancels), want)
		}
		for _, cn := range out.Cancels {
			for _, st := range in.Steps {
				if st.StepID == cn.StepID && st.Delivered == cn.Now {
					t.Fatalf("%s: step %s delivered=%v cancelled now=%v", where, st.StepID, st.Delivered, cn.Now)
				}
			}
		}
	}
}

// TestLineStopProperties decides random rollouts with the line stopped:
// never a start nor a rollback, whatever the phases.
func TestLineStopProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for c := range 200 {
		nodes := randomFleet(rng, 1+rng.IntN(60))
		p, err := plan.Parse("random.yaml", []byte(randomPlan(rng)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := engine.Assign(p, nodes, uint64(c))
		if err != nil {
			continue
		}
		in := engine.Input{RolloutID: "r", Plan: p, Nodes: a.Nodes, Now: t0, State: pick(rng, allStates[1:4]),
			LineStop: "stopped by op: test", Waves: map[string]engine.WaveStatus{}}
		for _, w := range p.Waves {
			in.Waves[w.Name] = engine.WaveStatus{State: engine.WaveRunning, StartedAt: t0.Add(-time.Hour)}
		}
		for i := range in.Nodes {
			if in.Nodes[i].State.Phase == engine.PhasePending {
				in.Nodes[i].State.Phase = pick(rng, allPhases[:10])
				in.Nodes[i].State.Since = t0.Add(-time.Minute)
			}
		}
		d := engine.Decide(in)
		if len(d.Starts) > 0 || len(d.Rollbacks) > 0 {
			t.Fatalf("case %d: line stopped but %d starts, %d rollbacks", c, len(d.Starts), len(d.Rollbacks))
		}
	}
}

// TestLeaseProperties: a restarted lease runs at least a full window from
// the new leader's first tick and never shortens a lease; only nodes
// with an agent at work expire, and only past their lease.
func TestLeaseProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 1))
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for c := range 20000 {
		now := t0.Add(time.Duration(rng.IntN(3600)) * time.Second)
		until := t0.Add(time.Duration(rng.IntN(7200)) * time.Second)
		lease := time.Duration(1+rng.IntN(120)) * time.Second
		got := engine.RestartLease(until, now, lease)
		if got.Before(now.Add(lease)) || got.Before(until) {
			t.Fatalf("case %d: RestartLease(%s, %s, %s) = %s", c, until, now, lease, got)
		}
		st := engine.NodeState{Phase: pick(rng, allPhases)}
		tr, ok := engine.Expire(st, time.Time{}, until, now)
		if ok != (st.Phase.InFlight() && st.Phase != engine.PhaseFailed && st.Phase != engine.PhaseUnknown && until.Before(now)) {
			t.Fatalf("case %d: Expire(%s, lease until %s, now %s) = %v", c, st.Phase, until, now, ok)
		}
		if ok && (tr.To != engine.PhaseUnknown || tr.From != st.Phase) {
			t.Fatalf("case %d: expiry %+v", c, tr)
		}
		if _, expired := engine.Expire(st, time.Time{}, got, now); expired {
			t.Fatalf("case %d: a restarted lease expired at once", c)
		}
	}
}
