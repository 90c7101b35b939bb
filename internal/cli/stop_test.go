package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store/storetest"
)

const slowPlan = `apiVersion: drover.dev/v1
name: slow-%s
target:
  selector: node.labels.group in [%s]
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.16-1"}]
waves:
  - name: all
limits:
  maxInFlight: 8
preflight:
  onFail: ignore # some agents are down on purpose: they could not answer
`

// lineFleet is a real server on SQLite with real agents on simulated
// nodes whose steps are slow, in one process.
type lineFleet struct {
	t      *testing.T
	url    string
	st     storetest.Backend
	states map[string]*driver.SimState
	dirs   map[string]string
	stop   map[string]context.CancelFunc
	wg     sync.WaitGroup
	ctx    context.Context
	token  string
}

func startLineFleet(t *testing.T, nodes ...string) *lineFleet {
	ctx, cancel := context.WithCancel(context.Background())
	url, st, cfg := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Tick, cfg.PollWait = 100*time.Millisecond, 2*time.Second
		cfg.AgentToken = "agent-token-0123456789"
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "root", Role: server.RoleAdmin, Token: "root-token-0123456789a"}}
	})
	f := &lineFleet{t: t, url: url, st: st.(storetest.Backend), states: map[string]*driver.SimState{},
		dirs: map[string]string{}, stop: map[string]context.CancelFunc{}, ctx: ctx, token: cfg.AgentToken}
	t.Cleanup(func() {
		for _, c := range f.stop {
			c()
		}
		f.wg.Wait()
		cancel()
	})
	for i, id := range nodes {
		s := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.11-1"})
		s.ApplyDelay = 5 * time.Second
		f.states[id], f.dirs[id] = s, t.TempDir()
		f.startAgent(id, groupOf(i))
	}
	f.eventually(20*time.Second, "agents registered", func() (bool, string) {
		ns, err := f.client("alice").AllNodes(ctx, "")
		return err == nil && len(ns) == len(nodes), fmt.Sprintf("%d nodes, %v", len(ns), err)
	})
	return f
}

// groupOf is the group label of the i-th node: n1-n3 a, n4-n6 b, n7-n8 c,
// the rest d.
func groupOf(i int) string {
	switch {
	case i < 3:
		return "a"
	case i < 6:
		return "b"
	case i < 8:
		return "c"
	}
	return "d"
}

func (f *lineFleet) startAgent(id, group string) {
	s := f.states[id]
	reg := &driver.Registry{}
	reg.Register(plan.ActionPackage, driver.NewSim(s))
	facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}
	cfg := agent.Config{ServerURL: f.url, StateDir: f.dirs[id], NodeID: id, Token: f.token,
		Labels: map[string]string{"group": group}, Drivers: reg, Heartbeat: 300 * time.Millisecond,
		Facts: func(context.Context) (fleet.Facts, error) { return s.Facts(facts), nil }}
	ctx, cancel := context.WithCancel(f.ctx)
	f.stop[id] = cancel
	f.wg.Add(1)
	go func() { defer f.wg.Done(); _ = agent.Run(ctx, cfg) }()
}

func (f *lineFleet) client(user string) *api.Client {
	return &api.Client{Base: f.url, Token: user + map[string]string{"alice": "-token-0123456789", "root": "-token-0123456789a"}[user]}
}

func (f *lineFleet) eventually(within time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within %s: %s", what, within, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drover runs the CLI as user.
func (f *lineFleet) drover(user string, args ...string) (int, string) {
	env := map[string]string{"DROVER_SERVER": f.url, "DROVER_TOKEN": f.client(user).Token}
	var out bytes.Buffer
	code := Main(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
	return code, out.String()
}

// journal is what a node's agent journal says, by step: "begun" when the
// agent took the step on, then its result phase ("cancelled" for a
// cancel acknowledged before it began).
func (f *lineFleet) journal(id string) map[string][]string {
	f.t.Helper()
	out := map[string][]string{}
	file, err := os.Open(filepath.Join(f.dirs[id], agent.JournalFile))
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		f.t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r struct {
			Type   string `json:"type"`
			Step   string `json:"step"`
			Report *struct {
				Phase string `json:"phase"`
				Gate  string `json:"gate"`
			} `json:"report"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			f.t.Fatalf("journal of %s: %v", id, err)
		}
		switch r.Type {
		case "step":
			out[r.Step] = append(out[r.Step], "begun")
		case "result", "cancelled":
			out[r.Step] = append(out[r.Step], r.Report.Phase+"/"+r.Report.Gate)
		}
	}
	return out
}

// carries reports whether the node carries the change.
func (f *lineFleet) carries(id string) bool {
	return f.states[id].Facts(fleet.Facts{}).Packages["openssl"] == "3.0.16-1"
}

// TestStopTheLine stops the line mid-wave with slow steps (5 s) and
// checks, against the agents' journals and the nodes' packages, that:
// steps under way finish; a step handed out but not begun is cancelled
// and its agent acknowledges it; steps never handed out (their agents
// down) are cancelled at once and never begin, even once the agents are
// back; nothing is dispatched after the stop was acknowledged; `drover
// stop` waits, with progress, until nothing is in flight and says so;
// and the rollout views show what each node carries. Then the line is
// lifted and rollout a is aborted while its last two steps run: they end
// as they really do (succeeded after the abort, not verifying for ever)
// and the counts count what the nodes carry.
func TestStopTheLine(t *testing.T) {
	f := startLineFleet(t, "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10", "n11")
	ctx := context.Background()
	alice := f.client("alice")
	// n7 and n8's agents go down: their steps stay undelivered. So do
	// n9..n11's, after a last poll hands them rollout b's steps (an agent
	// that died right after its poll was answered): handed out, never
	// begun.
	for _, id := range []string{"n7", "n8", "n9", "n10", "n11"} {
		f.stop[id]()
	}
	a, err := alice.CreateRollout(ctx, "a.yaml", fmt.Sprintf(slowPlan, "a", `"a", "b", "c"`))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually(10*time.Second, "n1..n3 running in rollout a", func() (bool, string) {
		ro, err := alice.GetRollout(ctx, a.ID, true)
		running := 0
		for _, n := range ro.Nodes {
			if n.Phase == engine.PhaseRunning && n.ID <= "n3" && len(n.ID) == 2 {
				running++
			}
		}
		return err == nil && running == 3, fmt.Sprintf("%v %v", ro.Counts, err)
	})
	b, err := alice.CreateRollout(ctx, "b.yaml", fmt.Sprintf(slowPlan, "b", `"d"`))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually(5*time.Second, "rollout b's steps dispatched", func() (bool, string) {
		n, err := f.st.ExecRaw(ctx, "UPDATE steps SET created_at = created_at WHERE rollout_id = ?", b.ID)
		return err == nil && n == 3, fmt.Sprintf("%d dispatched, %v", n, err)
	})
	for _, id := range []string{"n9", "n10", "n11"} {
		if steps, err := f.st.PendingSteps(ctx, id, time.Now()); err != nil || len(steps) != 1 {
			t.Fatalf("hand out %s's step: %v %v", id, steps, err)
		}
	}
	// The agents that took rollout b's steps come back while drover stop
	// waits: they hear of the cancels and acknowledge them.
	go func() {
		time.Sleep(500 * time.Millisecond)
		for _, id := range []string{"n9", "n10", "n11"} {
			f.startAgent(id, "d")
		}
	}()

	acked := time.Now()
	code, out := f.drover("alice", "stop", "--all", "--reason", "incident 7", "--interval", "100ms")
	took := time.Since(acked)
	t.Logf("drover stop --all took %s:\n%s", took.Round(time.Millisecond), out)
	wantOutput(t, code, ExitOK, out, "", "line stopped: nothing is dispatched; 2 step(s) cancelled before they were handed out, 3 cancel(s) sent to agents",
		"in flight:", "(cancel sent)", "nothing in flight", a.ID+": running;", b.ID+": running;")

	// What the journals say, and what the views show.
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "n6"} {
		j := f.journal(id)
		if got := strings.Join(j[a.ID+"/"+id+"/apply/1"], " "); got != "begun verifying/pass" || !f.carries(id) {
			t.Errorf("%s: journal of rollout a's step: %q, carries %v; want it run to its end", id, got, f.carries(id))
		}
	}
	for _, id := range []string{"n9", "n10", "n11"} {
		if got := strings.Join(f.journal(id)[b.ID+"/"+id+"/apply/1"], " "); got != "cancelled/" || f.carries(id) {
			t.Errorf("%s: journal of rollout b's step: %q, carries %v; want only its cancelled acknowledgement", id, got, f.carries(id))
		}
	}
	ra := f.rolloutNodes(a.ID)
	rb := f.rolloutNodes(b.ID)
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5", "n6"} {
		if ra[id].Phase != engine.PhaseSucceeded {
			t.Errorf("rollout a shows %s %s (%s); its journal says it ran to its end", id, ra[id].Phase, ra[id].Reason)
		}
	}
	for id, n := range rb {
		if n.Phase != engine.PhasePending || !strings.Contains(n.Reason, "the agent acknowledged") {
			t.Errorf("rollout b shows %s %s (%s); its journal says cancelled before it began", id, n.Phase, n.Reason)
		}
	}
	// n7 and n8 come back: nothing is handed out to them.
	back := time.Now()
	f.startAgent("n7", "c")
	f.startAgent("n8", "c")
	// Their polls are held for PollWait (2 s) when nothing is pending:
	// a poll seen after that means an earlier one was answered, empty.
	f.eventually(15*time.Second, "n7 and n8 polled twice since they came back", func() (bool, string) {
		var seen []string
		for _, id := range []string{"n7", "n8"} {
			n, err := f.st.GetNode(ctx, id)
			if err != nil || !n.LastSeen.After(back.Add(2500*time.Millisecond)) {
				return false, fmt.Sprintf("%s last seen %s (%v)", id, n.LastSeen, err)
			}
			seen = append(seen, id)
		}
		return true, strings.Join(seen, " ")
	})
	for _, id := range []string{"n7", "n8"} {
		if j := f.journal(id); len(j) != 0 || f.carries(id) {
			t.Errorf("%s began a step while the line is stopped: %v", id, j)
		}
		if n := f.rolloutNodes(a.ID)[id]; n.Phase != engine.PhasePending || !strings.Contains(n.Reason, "cancelled before it was handed out") {
			t.Errorf("rollout a shows %s %s (%s)", id, n.Phase, n.Reason)
		}
	}
	entries, err := f.st.ListAudit(ctx, 0, 5000, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Action == "step.dispatch" && e.At.After(acked) {
			t.Errorf("a step was dispatched after the stop was acknowledged: %s %s", e.At, e.Detail)
		}
	}

	// Lift (admin only), then abort both rollouts mid-step.
	if code, out := f.drover("alice", "stop", "--lift", "--reason", "incident 7 over"); code == ExitOK || !strings.Contains(out, "needs role admin") {
		t.Fatalf("an operator lifted the line: exit %d\n%s", code, out)
	}
	code, out = f.drover("root", "stop", "--lift", "--reason", "incident 7 over")
	wantOutput(t, code, ExitOK, out, "", "line stop lifted")
	f.eventually(10*time.Second, "n7, n8 running in rollout a", func() (bool, string) {
		ns := f.rolloutNodes(a.ID)
		return ns["n7"].Phase == engine.PhaseRunning && ns["n8"].Phase == engine.PhaseRunning, fmt.Sprint(ns["n7"].Phase, ns["n8"].Phase)
	})
	if code, out := f.drover("alice", "rollout", "abort", a.ID, "--reason", "enough"); code != ExitOK {
		t.Fatalf("abort %s: exit %d\n%s", a.ID, code, out)
	}
	f.eventually(15*time.Second, "nothing in flight after the aborts", func() (bool, string) {
		st, err := alice.Line(ctx)
		return err == nil && st.InFlight == 0, fmt.Sprintf("%+v %v", st.Rollouts, err)
	})
	ro, err := alice.GetRollout(ctx, a.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	carrying := 0
	for _, n := range ro.Nodes {
		j := f.journal(n.ID)[n.StepID] // n7 and n8 run attempt 2: attempt 1 was cancelled
		ran := strings.Join(j, " ") == "begun verifying/pass"
		if ran != f.carries(n.ID) {
			t.Errorf("%s: journal %q but carries %v", n.ID, j, f.carries(n.ID))
		}
		if ran {
			carrying++
		}
		if ran != (n.Phase == engine.PhaseSucceeded) {
			t.Errorf("aborted rollout shows %s %s (%s); its journal says %q", n.ID, n.Phase, n.Reason, j)
		}
	}
	if ro.State != engine.RolloutAborted || ro.Counts["succeeded"] != carrying || carrying != 8 {
		t.Errorf("aborted rollout: %s, counts %v; %d nodes carry the change", ro.State, ro.Counts, carrying)
	}
	t.Logf("rollout a after the abort: %s", progress(ro.Tally()))
}

func (f *lineFleet) rolloutNodes(id string) map[string]api.RolloutNode {
	f.t.Helper()
	ro, err := f.client("alice").GetRollout(context.Background(), id, true)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]api.RolloutNode{}
	for _, n := range ro.Nodes {
		out[n.ID] = n
	}
	return out
}

// TestInterruptedStepRetried: an agent stopped in the middle of a step
// (its apply under way) restarts, finds the step begun and unfinished in
// its journal, undoes it and reports it interrupted; the server counts
// it as an interruption, not a failure (gates.onInterrupted: retry, the
// default), dispatches the step again as attempt 2, and the rollout
// succeeds.
func TestInterruptedStepRetried(t *testing.T) {
	f := startLineFleet(t, "n1")
	ctx := context.Background()
	alice := f.client("alice")
	ro, err := alice.CreateRollout(ctx, "a.yaml", fmt.Sprintf(slowPlan, "a", `"a"`))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually(10*time.Second, "n1 running", func() (bool, string) {
		n := f.rolloutNodes(ro.ID)["n1"]
		return n.Phase == engine.PhaseRunning, string(n.Phase)
	})
	f.stop["n1"]() // the agent dies while the package is being applied
	f.wg.Wait()
	if f.carries("n1") {
		t.Fatal("the change was applied before the agent stopped; the test needs it mid-step")
	}
	f.startAgent("n1", "a")
	f.eventually(30*time.Second, "rollout succeeded", func() (bool, string) {
		got, err := alice.GetRollout(ctx, ro.ID, true)
		return err == nil && got.State == engine.RolloutSucceeded, fmt.Sprintf("%s %v %v", got.State, got.Counts, err)
	})
	n := f.rolloutNodes(ro.ID)["n1"]
	j := f.journal("n1")
	if got := strings.Join(j[ro.ID+"/n1/apply/1"], " "); got != "begun interrupted/" {
		t.Errorf("journal of attempt 1: %q, want it begun and reported interrupted", got)
	}
	if n.Attempt != 2 || !f.carries("n1") || strings.Join(j[ro.ID+"/n1/apply/2"], " ") != "begun verifying/pass" {
		t.Errorf("n1 after the retry: attempt %d, carries %v, journal of attempt 2 %q", n.Attempt, f.carries("n1"), j[ro.ID+"/n1/apply/2"])
	}
	entries, err := f.st.ListAudit(ctx, 0, 5000, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		if e.Action == "node.phase" && strings.Contains(string(e.Detail), `"reported":"interrupted"`) &&
			strings.Contains(string(e.Detail), `"to":"pending"`) {
			found = true
		}
	}
	if !found {
		t.Error("no audit entry of the interruption sending n1 back to pending")
	}
}
