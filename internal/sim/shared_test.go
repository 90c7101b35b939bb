package sim_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/sim"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the want files of testdata/shared from the simulator")

// TestSharedTranscripts runs each transcript of testdata/shared through
// the simulator (virtual clock) and through a live server with real
// agents on simulated nodes, and compares the outcomes: the rollout's
// state and reason, each wave's state and counts, and which operator
// commands were refused. The script's commands are given whenever the
// rollout waits with nothing in flight (here, at a wave's approval gate),
// so that both runs see them at the same point. Both outcomes must equal
// the transcript's "want" (run with -rewrite to regenerate it from the
// simulator).
//
// Script lines: ACTION ACTOR-or-REASON as `drover rollout` takes them:
//
//	approve BY WAVE | pause | resume | abort REASON... | stop REASON... | rollback WAVE
//
// The operator (pause, resume, abort, stop, rollback) is alice, the
// rollout's author.
func TestSharedTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/shared/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d shared transcripts, want at least 4", len(files))
	}
	live := startLive(t, 5)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var planText string
			var script []engine.Command
			var fleetText string
			wantIdx := -1
			for i, f := range ar.Files {
				switch f.Name {
				case "plan.yaml":
					planText = string(f.Data)
				case "script":
					script = parseCommands(t, string(f.Data))
				case "fleet":
					fleetText = string(f.Data)
				case "want":
					wantIdx = i
				}
			}
			simOut := runSim(t, planText, fleetText, script)
			if *rewrite {
				if wantIdx < 0 {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					wantIdx = len(ar.Files) - 1
				}
				ar.Files[wantIdx].Data = []byte(simOut)
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
			} else if wantIdx < 0 || string(ar.Files[wantIdx].Data) != simOut {
				t.Fatalf("simulator outcome differs from %s (run -rewrite):\n%s", file, simOut)
			}
			liveOut := live.run(t, planText, fleetText, script)
			if liveOut != simOut {
				t.Fatalf("the live server and the simulator disagree:\nsimulator:\n%s\nlive:\n%s", simOut, liveOut)
			}
		})
	}
}

func parseCommands(t *testing.T, text string) []engine.Command {
	var out []engine.Command
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		c := engine.Command{Action: engine.Action(f[0]), Actor: "alice"}
		switch c.Action {
		case engine.ActApprove:
			c.Actor, c.Wave = f[1], f[2]
		case engine.ActRollback:
			c.Wave = f[1]
		default:
			c.Reason = strings.Join(f[1:], " ")
		}
		out = append(out, c)
	}
	return out
}

func parseFleet(text string) []*fleet.Node {
	var nodes []*fleet.Node
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		n := &fleet.Node{ID: f[0], Labels: map[string]string{}, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n.Labels[k] = v
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// outcome is the comparable part of a run.
type outcome struct {
	state   engine.RolloutState
	reason  string
	waves   []string
	refused []string
}

func (o outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state: %s\nreason: %s\n", o.state, o.reason)
	for _, w := range o.waves {
		fmt.Fprintf(&b, "%s\n", w)
	}
	for _, r := range o.refused {
		fmt.Fprintf(&b, "refused: %s\n", r)
	}
	return b.String()
}

func waveLine(name string, st engine.WaveState, succeeded, rolledBack, pending, other int) string {
	return fmt.Sprintf("wave %s: %s; %d succeeded, %d rolled back, %d untouched, %d other", name, st, succeeded, rolledBack, pending, other)
}

func runSim(t *testing.T, planText, fleetText string, script []engine.Command) string {
	p, err := plan.Parse("plan.yaml", []byte(planText))
	if err != nil {
		t.Fatal(err)
	}
	res, err := sim.Run(context.Background(), sim.Config{Plan: p, Nodes: parseFleet(fleetText), Seed: 1, Author: "alice",
		Commands: script, ManualApprovals: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.InvariantViolations > 0 {
		t.Fatalf("simulator: %d violations: %v", res.InvariantViolations, res.Violations)
	}
	o := outcome{state: res.State, reason: res.Reason}
	for _, w := range res.Waves {
		o.waves = append(o.waves, waveLine(w.Name, w.State, w.Succeeded, w.RolledBack, w.Untouched, w.Nodes-w.Succeeded-w.RolledBack-w.Untouched))
	}
	for _, n := range res.Notes {
		if what, _, ok := strings.Cut(n, " refused: "); ok {
			o.refused = append(o.refused, what)
		}
	}
	return o.String()
}

// liveFleet is a server on SQLite with one real agent per node of the
// transcripts' fleet (same IDs and labels), steps taking 100 ms.
type liveFleet struct {
	url string
	ctx context.Context
}

func startLive(t *testing.T, n int) *liveFleet {
	ctx, cancel := context.WithCancel(context.Background())
	url, _, cfg := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Tick, cfg.PollWait = 50*time.Millisecond, time.Second
		cfg.AgentToken = "agent-token-0123456789"
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "bob", Role: server.RoleApprover, Token: "bob-token-0123456789ab"}}
	})
	l := &liveFleet{url: url, ctx: ctx}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	zones := []string{"a", "b", "a", "b", "c"}
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		s := driver.NewSimState(id, "debian", "6.1.0-26-amd64", map[string]string{"openssl": "3.0.11-1"})
		s.ApplyDelay = 100 * time.Millisecond
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(s))
		facts := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}
		acfg := agent.Config{ServerURL: l.url, StateDir: t.TempDir(), NodeID: id, Token: cfg.AgentToken,
			Labels: map[string]string{"zone": zones[i%len(zones)]}, Drivers: reg, Heartbeat: 200 * time.Millisecond,
			Facts: func(context.Context) (fleet.Facts, error) { return s.Facts(facts), nil }}
		wg.Add(1)
		go func() { defer wg.Done(); _ = agent.Run(ctx, acfg) }()
	}
	c := l.client("alice")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ns, err := c.AllNodes(ctx, ""); err == nil && len(ns) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agents not registered within 20s")
		}
	}
	return l
}

func (l *liveFleet) client(user string) *api.Client {
	tokens := map[string]string{"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab"}
	return &api.Client{Base: l.url, Token: tokens[user]}
}

// run creates the rollout as alice, gives each command when the
// rollout waits with nothing in flight, and reads the outcome once it
// ends or nothing is left to give.
func (l *liveFleet) run(t *testing.T, planText, fleetText string, script []engine.Command) string {
	ctx := l.ctx
	if want := "n1 zone=a\nn2 zone=b\nn3 zone=a\nn4 zone=b\nn5 zone=c\n"; fleetText != want {
		t.Fatalf("the live fleet is %q; transcripts must use it", want)
	}
	alice := l.client("alice")
	ro, err := alice.CreateRollout(ctx, "plan.yaml", planText)
	if err != nil {
		t.Fatal(err)
	}
	var refused []string
	for {
		ro = l.settle(t, ro.ID)
		if ro.State.Terminal() || len(script) == 0 {
			break
		}
		c := script[0]
		script = script[1:]
		req := api.CommandRequest{Reason: c.Reason, Wave: c.Wave}
		if _, err := l.client(c.Actor).Command(ctx, ro.ID, string(c.Action), 0, req); err != nil {
			refused = append(refused, fmt.Sprintf("%s by %s", c.Action, c.Actor))
		}
	}
	o := outcome{state: ro.State, reason: ro.Reason, refused: refused}
	for _, w := range ro.Waves {
		s, rb, p := w.Counts["succeeded"], w.Counts["rolled-back"], w.Counts["pending"]
		o.waves = append(o.waves, waveLine(w.Name, w.State, s, rb, p, w.Nodes-s-rb-p))
	}
	return o.String()
}

// settle waits until the rollout ended, or waits with nothing in flight
// and no change for ten scheduler ticks.
func (l *liveFleet) settle(t *testing.T, id string) api.Rollout {
	c := l.client("alice")
	var last api.Rollout
	stable := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ro, err := c.GetRollout(l.ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if ro.State.Terminal() {
			line, err := c.Line(l.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(line.Rollouts, func(r api.LineRollout) bool { return r.ID == id }) {
				return ro
			}
		}
		inFlight := ro.Counts["queued"] + ro.Counts["running"] + ro.Counts["verifying"] + ro.Counts["rolling-back"]
		if inFlight == 0 && ro.Version == last.Version && ro.State == last.State {
			stable++
		} else {
			stable = 0
		}
		if stable >= 10 {
			return ro
		}
		last = ro
	}
	t.Fatalf("rollout %s did not settle within 30s: %s %v", id, last.State, last.Counts)
	return last
}
