package engine

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
//	pause REASON... | resume | rollback [WAVE] | abort
//	alerts [NAME...]            set the firing blocking alerts
//	explain NODE
//	hold NODE ROLLOUT NAME      another rollout holds NODE; unhold NODE ends it
//	fleet-budget NAME PER|- LIMIT [DOMAIN:NODE/HOLDER...]   a fleet budget over every node, with slots others hold
//	fleet-freeze NAME UNTIL ZONE [KEY=VALUE] [REASON...]    a fleet freeze in force until start+UNTIL (covering nodes with label KEY=VALUE)
//	fleet-clear                 no fleet budgets or freezes
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
}

func runScenario(t *testing.T, ar *txtar.Archive) string {
	s := &scenario{t: t, started: map[string]int{}}
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
			fmt.Fprintf(&s.out, "uncovered in %s: %s (%s)\n", u.Wave, strings.Join(kv, " "), u.Reason)
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
		a := Approval{By: args[1], At: in.Now}
		if len(args) > 2 {
			a.Wave = args[2]
		}
		in.Approvals = append(in.Approvals, a)
	case "pause":
		in.State, in.Reason = RolloutPaused, strings.Join(args[1:], " ")
	case "resume":
		in.State, in.Reason = RolloutRunning, ""
	case "rollback":
		in.State, in.Reason, in.RollbackScope = RolloutRollingBack, "operator ordered a rollback", ""
		if len(args) > 1 {
			in.RollbackScope = args[1]
		}
	case "abort":
		in.State = RolloutAborted
	case "alerts":
		in.BlockingAlerts = args[1:]
	case "break-glass":
		in.BreakGlass = strings.Join(args[1:], " ")
	case "explain":
		fmt.Fprintf(&s.out, "%s\n", Explain(*in, args[1]))
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

// report applies what an agent would report, as the shell persists it.
func (s *scenario) report(i int, ph Phase, gate Verdict, reason string) {
	st := &s.in.Nodes[i].State
	st.Phase, st.Since, st.Reason = ph, s.in.Now, reason
	if ph == PhaseVerifying {
		st.Gate = gate
		if gate == Pass {
			st.HealthySince = s.in.Now
		}
	}
}

// decide runs Decide, prints the decision and applies it as the shell must.
func (s *scenario) decide() {
	in := &s.in
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
	for _, e := range d.Events {
		fmt.Fprintf(w, "  event: %s\n", e)
	}
	for _, t := range d.Nodes {
		fmt.Fprintf(w, "  node %s %s -> %s: %s\n", t.Node, t.From, t.To, t.Reason)
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

	for _, st := range d.Starts {
		s.started[st.Node]++
	}
	Apply(in, d, s.byID)
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
