package engine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/scenarios")

// TestScenarios replays the scripts in testdata/scenarios/*.txt (txtar
// archives holding a fleet, a plan and a script) through Assign and Decide,
// acting as the shell would, and compares the transcript with the archive's
// "want" file. Run with -rewrite to regenerate after an intended change.
//
// Script commands:
//
//	assign [SEED]               assign nodes to waves
//	decide                      decide and apply the decision
//	advance DURATION            move the clock
//	report NODES PHASE [gate=V] [REASON...]   the agent reports (NODES: ids, wave:W, or all-active)
//	finish [fail=ID,ID] [apply-fail=ID]       every queued/running node becomes verifying (gate pass, or fail)
//	gate WAVE NAME VERDICT REASON...          a wave-gate result at now
//	approve BY [WAVE]
//	pause REASON... | resume | rollback [WAVE] | abort [REASON...] | stop REASON...
//	resolve NODE retry|quarantine|skip        operator commands, through CommandInput.Apply
//	deliver NODES               the agents receive their open steps (NODES as for report, or all)
//	expire NODES                the agents' leases end (Expire)
//	line-stop REASON... | line-lift           a fleet-wide stop-the-line
//	alerts [NAME...]            set the firing blocking alerts
//	explain NODE
//	hold NODE ROLLOUT NAME      another rollout holds NODE; unhold NODE ends it
//	fleet-budget NAME PER|- LIMIT [DOMAIN:NODE/HOLDER...]   a fleet budget over every node, with slots others hold
//	fleet-freeze NAME UNTIL ZONE [KEY=VALUE] [REASON...]    a fleet freeze in force until start+UNTIL (covering nodes with label KEY=VALUE)
//	fleet-clear                 no fleet budgets or freezes
//	preflight NODES ok|fail [REASON...]       the agents answer the node pre-flight (NODES as for report)
//
// A script without a preflight command has every node pass its pre-flight
// as soon as it is asked: the shell prints so and decides again.
//
// Reports go through Accept against the node's current step, as the store
// does; a refused report or command is printed, not fatal.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d scenarios, want at least 5", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := runScenario(t, ar)
			wantIdx := -1
			for i, f := range ar.Files {
				if f.Name == "want" {
					wantIdx = i
				}
			}
			if *rewrite {
				if wantIdx < 0 {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					wantIdx = len(ar.Files) - 1
				}
				ar.Files[wantIdx].Data = []byte(got)
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if wantIdx < 0 {
				t.Fatalf("%s has no want file; run with -rewrite", file)
			}
			if want := string(ar.Files[wantIdx].Data); got != want {
				t.Errorf("transcript differs from %s (run go test -rewrite to accept):\n%s", file, diffLines(want, got))
			}
		})
	}
}

type scenario struct {
	t       *testing.T
	p       *plan.Plan
	fleet   []*fleet.Node
	in      Input
	start   time.Time
	out     strings.Builder
	byID    map[string]int
	started map[string]int // apply starts per node, to check the no-double-start rule
	steps   map[string]*scenarioStep
	// passPreflight: the script never answers the node pre-flight, so
	// every asked node passes at once and the shell decides again.
	passPreflight bool
}

// scenarioStep is the shell's record of a node's current step.
type scenarioStep struct {
	id        string
	rollback  bool
	delivered bool
	cancelReq bool
	begun     bool
	finished  bool
	result    string
}

func runScenario(t *testing.T, ar *txtar.Archive) string {
	s := &scenario{t: t, started: map[string]int{}, steps: map[string]*scenarioStep{}}
	s.start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	var script string
	for _, f := range ar.Files {
		switch f.Name {
		case "fleet":
			s.fleet = parseFleet(t, string(f.Data))
		case "plan.yaml":
			p, err := plan.Parse("plan.yaml", f.Data)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			s.p = p
		case "script":
			script = string(f.Data)
		}
	}
	if s.p == nil || s.fleet == nil || script == "" {
		t.Fatal("scenario needs fleet, plan.yaml and script files")
	}
	s.passPreflight = !regexp.MustCompile(`(?m)^preflight `).MatchString(script)
	s.in = Input{RolloutID: "r1", Author: "alice", Plan: s.p, Now: s.start, Seed: 1, Waves: map[string]WaveStatus{}}
	s.in.State = RolloutRunning
	if s.p.Approvals.Start > 0 {
		s.in.State = RolloutPendingApproval
	}
	for ln, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fmt.Fprintf(&s.out, "> %s\n", line)
		if err := s.do(strings.Fields(line)); err != nil {
			t.Fatalf("script line %d %q: %v", ln+1, line, err)
		}
	}
	return s.out.String()
}

func parseFleet(t *testing.T, text string) []*fleet.Node {
	var nodes []*fleet.Node
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n := &fleet.Node{ID: f[0], Labels: map[string]string{}}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("fleet: %q is not key=value", kv)
			}
			switch k {
			case "os.family":
				n.Facts.OS.Family = v
			case "os.version":
				n.Facts.OS.Version = v
			case "hardware.class":
				n.Facts.Hardware.Class = v
			default:
				n.Labels[k] = v
			}
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func (s *scenario) do(args []string) error {
	in := &s.in
	switch args[0] {
	case "assign":
		a, err := Assign(s.p, s.fleet, 1)
		if err != nil {
			return err
		}
		in.Nodes = a.Nodes
		s.byID = map[string]int{}
		perWave := map[string][]string{}
		for i, n := range a.Nodes {
			s.byID[n.ID] = i
			w := n.State.Wave
			if n.State.Phase == PhaseSkipped {
				w = "(skipped: " + n.State.Reason + ")"
			}
			perWave[w] = append(perWave[w], n.ID)
		}
		for _, w := range s.p.Waves {
			fmt.Fprintf(&s.out, "wave %s: %s\n", w.Name, strings.Join(perWave[w.Name], " "))
			delete(perWave, w.Name)
		}
		for _, k := range sortedKeys(perWave) {
			fmt.Fprintf(&s.out, "%s: %s\n", k, strings.Join(perWave[k], " "))
		}
		for _, u := range a.Uncovered {
			var kv []string
			for _, k := range sortedKeys(u.Values) {
				kv = append(kv, k+"="+u.Values[k])
			}
			blocking := ""
			if u.Blocking {
				blocking = " blocking"
			}
			fmt.Fprintf(&s.out, "uncovered%s in %s: %s (%s)\n", blocking, u.Wave, strings.Join(kv, " "), u.Reason)
		}
	case "decide":
		s.decide()
	case "advance":
		d, err := plan.ParseDuration(args[1])
		if err != nil {
			return err
		}
		in.Now = in.Now.Add(d.D())
	case "report":
		ids, err := s.nodes(args[1])
		if err != nil {
			return err
		}
		var gate Verdict
		rest := args[3:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "gate=") {
			gate = Verdict(strings.TrimPrefix(rest[0], "gate="))
			rest = rest[1:]
		}
		for _, i := range ids {
			s.report(i, Phase(args[2]), gate, strings.Join(rest, " "))
		}
	case "finish":
		fail, applyFail := map[string]bool{}, map[string]bool{}
		for _, a := range args[1:] {
			k, v, _ := strings.Cut(a, "=")
			for _, id := range strings.Split(v, ",") {
				if k == "fail" {
					fail[id] = true
				} else {
					applyFail[id] = true
				}
			}
		}
		for i := range in.Nodes {
			st := &in.Nodes[i].State
			id := in.Nodes[i].ID
			switch st.Phase {
			case PhaseQueued, PhaseRunning:
				switch {
				case applyFail[id]:
					s.report(i, PhaseFailed, "", "apply failed: simulated")
				case fail[id]:
					s.report(i, PhaseVerifying, Fail, "http probe: 503 Service Unavailable")
				default:
					s.report(i, PhaseVerifying, Pass, "")
				}
			case PhaseRollingBack:
				if applyFail[id] {
					s.report(i, PhaseFailed, "", "rollback failed: simulated")
				} else {
					s.report(i, PhaseRolledBack, "", "rolled back")
				}
			}
		}
	case "gate":
		in.Gates = append(in.Gates, GateResult{Wave: args[1], Gate: args[2], Verdict: Verdict(args[3]), Reason: strings.Join(args[4:], " "), At: in.Now})
	case "approve":
		c := Command{Action: ActApprove, Actor: args[1]}
		if len(args) > 2 {
			c.Wave = args[2]
		}
		s.command(c)
	case "pause", "resume", "abort", "stop":
		s.command(Command{Action: Action(args[0]), Actor: "op", Reason: strings.Join(args[1:], " ")})
	case "rollback":
		c := Command{Action: ActRollback, Actor: "op"}
		if len(args) > 1 {
			c.Wave = args[1]
		}
		s.command(c)
	case "resolve":
		to := map[string]Phase{"retry": PhasePending, "quarantine": PhaseQuarantined, "skip": PhaseSkipped}[args[2]]
		s.command(Command{Action: ActResolve, Actor: "op", Node: args[1], Resolution: to})
	case "deliver":
		ids, err := s.nodes(args[1])
		if err != nil {
			return err
		}
		for _, i := range ids {
			if st := s.steps[in.Nodes[i].ID]; st != nil && !st.finished {
				st.delivered = true
			}
		}
	case "expire":
		ids, err := s.nodes(args[1])
		if err != nil {
			return err
		}
		for _, i := range ids {
			n := &in.Nodes[i]
			if t, ok := Expire(n.State, time.Time{}, in.Now.Add(-time.Second), in.Now); ok {
				fmt.Fprintf(&s.out, "  node %s %s -> %s: %s\n", n.ID, t.From, t.To, t.Reason)
				n.State.Phase, n.State.Since, n.State.Reason = t.To, in.Now, t.Reason
			}
		}
	case "line-stop":
		in.LineStop = strings.Join(args[1:], " ")
	case "line-lift":
		in.LineStop = ""
	case "alerts":
		in.BlockingAlerts = args[1:]
	case "break-glass":
		in.BreakGlass = strings.Join(args[1:], " ")
	case "explain":
		fmt.Fprintf(&s.out, "%s\n", Explain(*in, args[1]))
	case "preflight":
		ids, err := s.nodes(args[1])
		if err != nil {
			return err
		}
		if in.Preflight == nil {
			return fmt.Errorf("preflight: no node was asked")
		}
		for _, i := range ids {
			in.Preflight.Results[in.Nodes[i].ID] = PreflightResult{OK: args[2] == "ok", Reason: strings.Join(args[3:], " "), At: in.Now}
		}
	case "hold", "unhold", "fleet-budget", "fleet-freeze", "fleet-clear":
		return s.fleetCmd(args)
	case "limits":
		var parts []string
		for _, l := range Decide(*in).Limits {
			parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %s", l.Key, l.Domain))+fmt.Sprintf(" %d/%d", l.InUse, l.Limit))
		}
		fmt.Fprintf(&s.out, "limits: %s\n", strings.Join(parts, "; "))
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	return nil
}

func (s *scenario) nodes(spec string) ([]int, error) {
	var out []int
	if spec == "all" {
		for i := range s.in.Nodes {
			out = append(out, i)
		}
		return out, nil
	}
	if w, ok := strings.CutPrefix(spec, "wave:"); ok {
		for i, n := range s.in.Nodes {
			if n.State.Wave == w {
				out = append(out, i)
			}
		}
		return out, nil
	}
	for _, id := range strings.Split(spec, ",") {
		i, ok := s.byID[id]
		if !ok {
			return nil, fmt.Errorf("unknown node %q", id)
		}
		out = append(out, i)
	}
	return out, nil
}

// report applies what an agent would report through Accept, as the
// store does, printing a refusal.
func (s *scenario) report(i int, ph Phase, gate Verdict, reason string) {
	n := &s.in.Nodes[i]
	step := s.steps[n.ID]
	if step == nil {
		step = &scenarioStep{} // a report with no step: Accept refuses it as stale
	}
	r := Report{Phase: ph, Gate: gate, Reason: reason, At: s.in.Now}
	if ph == PhaseVerifying && gate == Pass {
		r.HealthySince = s.in.Now
		if n.State.Gate == Pass && !n.State.HealthySince.IsZero() {
			r.HealthySince = n.State.HealthySince // still passing: the soak goes on
		}
	}
	res, err := Accept(ReportInput{State: s.in.State, OnInterrupted: s.p.Gates.OnInterrupted, MinHealthy: s.p.Gates.Node.MinHealthy.D(), Node: n.State,
		Step:   StepStatus{Current: step.id != "", Rollback: step.rollback, Finished: step.finished, Result: step.result, CancelRequested: step.cancelReq},
		Report: r})
	if err != nil {
		fmt.Fprintf(&s.out, "  report %s %s refused: %v\n", n.ID, ph, err)
		return
	}
	step.delivered = true
	step.begun = step.begun || ph != PhaseCancelled
	if res.Changed {
		if res.Node.Phase == PhasePending {
			delete(s.started, n.ID) // cancelled or interrupted: nothing applied, may start again
		}
		if res.Node.Phase != ph {
			fmt.Fprintf(&s.out, "  node %s %s -> %s: %s\n", n.ID, n.State.Phase, res.Node.Phase, res.Node.Reason)
		}
		n.State = res.Node
	}
	if res.Finish {
		step.finished, step.result = true, res.Result
	}
}

// markFailed records how the nodes' applies ended in Input.Before, as
// the server does from its steps (a failure wins): the localisation of
// failures counts rolled-back nodes by it.
func (s *scenario) markFailed() {
	for _, n := range s.in.Nodes {
		ph := n.State.Phase
		if n.State.Rollback || (ph != PhaseFailed && ph != PhaseQuarantined && ph != PhaseSucceeded) {
			continue
		}
		if s.in.Before == nil {
			s.in.Before = map[string]Phase{}
		}
		if ph == PhaseSucceeded {
			if s.in.Before[n.ID] != PhaseFailed {
				s.in.Before[n.ID] = PhaseSucceeded
			}
			continue
		}
		s.in.Before[n.ID] = PhaseFailed
	}
}

// command applies an operator command through CommandInput.Apply, as
// the store does, and prints its result or refusal.
func (s *scenario) command(c Command) {
	in := &s.in
	ci := CommandInput{Author: in.Author, State: in.State, Reason: in.Reason, RollbackScope: in.RollbackScope, Now: in.Now}
	for _, w := range s.p.Waves {
		ci.Waves = append(ci.Waves, w.Name)
	}
	ci.Approvals = in.Approvals
	if i, ok := s.byID[c.Node]; ok {
		st := in.Nodes[i].State
		ci.Node = &st
	}
	for _, n := range in.Nodes {
		if st := s.steps[n.ID]; st != nil && !st.finished {
			ci.Steps = append(ci.Steps, OpenStep{Node: n.ID, StepID: st.id, Rollback: st.rollback, Delivered: st.delivered,
				Begun: st.begun, Phase: n.State.Phase, CancelRequested: st.cancelReq})
		}
	}
	res, err := ci.Apply(c)
	if err != nil {
		fmt.Fprintf(&s.out, "  refused: %v\n", err)
		return
	}
	if res.Repeat {
		fmt.Fprintf(&s.out, "  repeat: nothing changes\n")
		return
	}
	if res.State != in.State || res.Reason != in.Reason {
		fmt.Fprintf(&s.out, "  rollout %s -> %s%s\n", in.State, res.State, withReason(res.Reason))
	}
	in.State, in.Reason, in.RollbackScope = res.State, res.Reason, res.RollbackScope
	if res.Approval != nil {
		in.Approvals = append(in.Approvals, *res.Approval)
	}
	if res.Resolved != nil {
		i := s.byID[c.Node]
		fmt.Fprintf(&s.out, "  node %s %s -> %s: %s\n", c.Node, in.Nodes[i].State.Phase, res.Resolved.Phase, res.Resolved.Reason)
		in.Nodes[i].State = *res.Resolved
		delete(s.started, c.Node) // an ordered retry may start again
		if st := s.steps[c.Node]; st != nil && !st.finished {
			st.finished, st.result = true, "resolved:"+string(res.Resolved.Phase)
		}
	}
	for _, cn := range res.Cancels {
		i := s.byID[cn.Node]
		st := &in.Nodes[i].State
		step := s.steps[cn.Node]
		if cn.Now {
			fmt.Fprintf(&s.out, "  cancel %s now: %s -> %s\n", cn.StepID, st.Phase, cn.To)
			step.finished, step.result = true, string(PhaseCancelled)
			delete(s.started, cn.Node)
			st.Phase, st.Since = cn.To, in.Now
		} else {
			fmt.Fprintf(&s.out, "  cancel %s requested\n", cn.StepID)
			step.cancelReq = true
		}
		st.Reason = cn.Reason
	}
}

// decide runs Decide, prints the decision and applies it as the shell must.
func (s *scenario) decide() {
	in := &s.in
	s.markFailed()
	d := Decide(*in)
	w := &s.out
	fmt.Fprintf(w, "@%s state=%s", fmtDur(in.Now.Sub(s.start)), d.State)
	if d.Reason != "" {
		fmt.Fprintf(w, " reason=%q", d.Reason)
	}
	if d.RollbackScope != "" {
		fmt.Fprintf(w, " scope=%s", d.RollbackScope)
	}
	fmt.Fprintln(w)
	if d.Breach != "" {
		fmt.Fprintf(w, "  breach: %s\n", d.Breach)
	}
	for _, e := range d.Events {
		fmt.Fprintf(w, "  event: %s\n", e)
	}
	for _, t := range d.Nodes {
		fmt.Fprintf(w, "  node %s %s -> %s: %s\n", t.Node, t.From, t.To, t.Reason)
	}
	if len(d.AskPreflight) > 0 {
		fmt.Fprintf(w, "  ask pre-flight: %s\n", strings.Join(d.AskPreflight, " "))
		in.Preflight = &PreflightStatus{AskedAt: in.Now, Results: map[string]PreflightResult{}}
		if s.passPreflight {
			for _, n := range d.AskPreflight {
				in.Preflight.Results[n] = PreflightResult{OK: true, At: in.Now}
			}
			fmt.Fprintf(w, "  pre-flight: all %d nodes pass\n", len(d.AskPreflight))
			defer s.decide()
		}
	}
	if len(d.Starts) > 0 {
		fmt.Fprintf(w, "  start: %s\n", startIDs(d.Starts))
	}
	if len(d.Rollbacks) > 0 {
		fmt.Fprintf(w, "  rollback: %s\n", startIDs(d.Rollbacks))
	}
	for _, wt := range d.Waits {
		fmt.Fprintf(w, "  wait %d (%s): %s\n", wt.Count, strings.Join(wt.Nodes, " "), wt.Reason)
	}
	if len(d.Evaluate) > 0 {
		fmt.Fprintf(w, "  evaluate: %s\n", strings.Join(d.Evaluate, " "))
	}
	if !d.NextAt.IsZero() {
		fmt.Fprintf(w, "  next: @%s\n", fmtDur(d.NextAt.Sub(s.start)))
	}

	for _, t := range d.Nodes {
		switch t.To {
		case PhaseSucceeded, PhaseFailed, PhaseQuarantined, PhaseSkipped, PhaseRolledBack:
			if st := s.steps[t.Node]; st != nil && !st.finished {
				st.finished, st.result = true, string(t.To) // the store closes a settled node's step
			}
		}
	}
	for _, st := range d.Starts {
		s.started[st.Node]++
		s.steps[st.Node] = &scenarioStep{id: st.StepID}
	}
	for _, st := range d.Rollbacks {
		s.steps[st.Node] = &scenarioStep{id: st.StepID, rollback: true}
	}
	Apply(in, d, s.byID)
	s.markFailed()
	for id, c := range s.started {
		if c > 1 {
			s.t.Errorf("node %s started %d times", id, c)
		}
	}
}

func startIDs(ss []Start) string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.Node)
	}
	return strings.Join(ids, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// diffLines shows the first differing lines of two transcripts.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, a, b)
		}
	}
	return "(no line differs)"
}

// fleetCmd plays what the shell loads about the rest of the fleet.
func (s *scenario) fleetCmd(args []string) error {
	in := &s.in
	if in.Fleet == nil {
		in.Fleet = &Fleet{Held: map[string]Holder{}}
	}
	f := in.Fleet
	switch args[0] {
	case "hold":
		f.Held[args[1]] = Holder{Kind: "rollout", ID: args[2], Name: args[3]}
	case "unhold":
		delete(f.Held, args[1])
	case "fleet-clear":
		f.Budgets, f.Freezes = nil, nil
	case "fleet-budget":
		per := args[2]
		if per == "-" {
			per = ""
		}
		var limit int
		if _, err := fmt.Sscan(args[3], &limit); err != nil {
			return err
		}
		b := FleetBudget{Name: args[1], Per: per, Of: make([]int32, len(in.Nodes))}
		dom := func(v string) int32 {
			for j, d := range b.Domains {
				if d.Value == v {
					return int32(j)
				}
			}
			b.Domains = append(b.Domains, BudgetDomain{Value: v, Limit: limit})
			return int32(len(b.Domains) - 1)
		}
		for i, n := range in.Nodes {
			v := ""
			if per != "" {
				v = n.Value(per)
			}
			b.Of[i] = dom(v)
		}
		for _, h := range args[4:] {
			d, nh, _ := strings.Cut(h, ":")
			node, holder, _ := strings.Cut(nh, "/")
			bd := &b.Domains[dom(d)]
			bd.Held++
			bd.Holders = append(bd.Holders, fmt.Sprintf("%s (%s)", node, holder))
		}
		f.Budgets = append(f.Budgets, b)
	case "fleet-freeze":
		d, err := plan.ParseDuration(args[2])
		if err != nil {
			return err
		}
		loc, err := time.LoadLocation(args[3])
		if err != nil {
			return err
		}
		fz := FleetFreeze{Name: args[1], Until: s.start.Add(d.D()).In(loc)}
		rest := args[4:]
		if len(rest) > 0 && strings.Contains(rest[0], "=") {
			k, v, _ := strings.Cut(rest[0], "=")
			fz.Covers = make([]bool, len(in.Nodes))
			for i, n := range in.Nodes {
				fz.Covers[i] = n.Value(k) == v
			}
			rest = rest[1:]
		}
		fz.Reason = strings.Join(rest, " ")
		f.Freezes = append(f.Freezes, fz)
	}
	return nil
}
