// Package demo owns `drover demo`, the embedded default: a real server on
// SQLite in a temporary directory and a heterogeneous fleet of real agents
// in the same process, talking to it over HTTP on loopback, changing
// simulated nodes through the sim driver. Wave gates are the production
// gate code on Prometheus's own PromQL engine, embedded, over the
// simulated nodes' metrics. It runs two bundled plans: a
// change that hurts one hardware class (caught by the canary, rolled
// back) and a good change rolled through the whole fleet.
package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

//go:embed plans/*.yaml
var plans embed.FS

// Options configure a demo run.
type Options struct {
	Nodes    int           // fleet size; default 40
	Keep     bool          // keep serving after the plans ran, until ctx ends
	Progress io.Writer     // progress lines; nil for none
	Logger   *slog.Logger  // server and agent logs; nil discards
	Step     time.Duration // how long one simulated step takes; default 1.5s
	Dir      string        // working directory; "" makes and removes a temp dir
	Listen   string        // server address; default 127.0.0.1:0
	// Ready, if set, is called once the fleet is up, with how to reach the
	// server (Keep mode prints it).
	Ready func(Access)
	// Plans, if set, are plan files run on the demo fleet, in order,
	// instead of the bundled plans; the simulated change is good on
	// every node (only the plan's own gates and limits can stop it).
	Plans []string
	// TLS serves TLS with the built-in CA; every agent enrols with its
	// own single-use token and then talks with its client certificate.
	// Off, the demo is plain HTTP on loopback and agents use the
	// insecure shared agent token (fine for a demo, never for a fleet).
	TLS bool
}

// Access says how to reach a running demo server.
type Access struct {
	URL      string
	CACert   []byte // PEM of the CA to trust (TLS only)
	Users    []server.User
	DataDir  string
	Database string
}

// Summary is what the demo did, as `drover demo --json` prints it.
type Summary struct {
	Server   string           `json:"server"`
	Nodes    int              `json:"nodes"`
	Rollouts []RolloutSummary `json:"rollouts"`
	// Exposure: each of the demo's advisories, nodes by status before
	// the rollouts and after them.
	Exposure []ExposureSummary `json:"exposure"`
	Seconds  float64           `json:"seconds"`
}

// RolloutSummary is one rollout's outcome.
type RolloutSummary struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Title      string `json:"title"`
	State      string `json:"state"`
	Halted     bool   `json:"halted"`
	HaltReason string `json:"haltReason"`
	// Localisation: what the failed nodes share, one sentence a finding
	// (none when too few failed to tell).
	Localisation    []string      `json:"localisation,omitempty"`
	NodesSucceeded  int           `json:"nodesSucceeded"`
	NodesUnchanged  int           `json:"nodesUnchanged"` // of NodesSucceeded, those whose step changed nothing (already up to date)
	NodesFailed     int           `json:"nodesFailed"`
	NodesRolledBack int           `json:"nodesRolledBack"`
	NodesTouched    int           `json:"nodesTouched"`
	TouchedOutside  []string      `json:"touchedOutsideCanary,omitempty"`
	Seconds         float64       `json:"seconds"`
	Waves           []WaveSummary `json:"waves"`
}

// WaveSummary is one wave's outcome.
type WaveSummary struct {
	Name       string  `json:"name"`
	State      string  `json:"state"`
	Nodes      int     `json:"nodes"`
	Succeeded  int     `json:"succeeded"`
	Failed     int     `json:"failed"`
	RolledBack int     `json:"rolledBack"`
	Seconds    float64 `json:"seconds"`
}

// scenario is one plan and how the simulated fleet reacts to it.
type scenario struct {
	file  string // a bundled plan's name in plans, or a plan file
	text  []byte // a plan file's text; nil for a bundled plan
	title string
	// hurts says whether the change hurts a node of this hardware class.
	hurts func(class string) bool
}

// scenarios are the plans to run: the files given, or the bundled ones.
func scenarios(files []string) ([]scenario, error) {
	var out []scenario
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		out = append(out, scenario{file: f, text: text, title: f, hurts: func(string) bool { return false }})
	}
	if len(out) > 0 {
		return out, nil
	}
	return []scenario{
		{file: "plans/1-hurts-gen3.yaml", title: "a change that hurts one hardware class (gen3)",
			hurts: func(class string) bool { return class == "gen3" }},
		{file: "plans/2-good-change.yaml", title: "a good change rolled through the whole fleet",
			hurts: func(string) bool { return false }},
	}, nil
}

// Run runs the demo and returns its summary.
func Run(ctx context.Context, o Options) (*Summary, error) {
	start := time.Now()
	if o.Nodes == 0 {
		o.Nodes = 40
	}
	if o.Step == 0 {
		o.Step = 1500 * time.Millisecond
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "drover-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	scs, err := scenarios(o.Plans)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The control plane.
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.DataDir, cfg.ServerID = o.Listen, filepath.Join(dir, "server"), "demo"
	cfg.Lease, cfg.PollWait, cfg.Tick = 10*time.Second, 3*time.Second, 250*time.Millisecond
	cfg.TLS = o.TLS
	if !o.TLS {
		cfg.AgentToken = token() // insecure: plain HTTP on loopback only
	}
	cfg.Users = []server.User{
		{Name: "alice", Role: server.RoleOperator, Token: token()},
		{Name: "bob", Role: server.RoleApprover, Token: token()},
		{Name: "admin", Role: server.RoleAdmin, Token: token()},
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.DSN(), log)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	fl, err := demoFleet(o.Nodes)
	if err != nil {
		return nil, err
	}
	nodes := newSimFleet(fl, o.Step)
	// Wave gates run as in production, on Prometheus's engine over the
	// simulated nodes' metrics (see metrics.go).
	mets, err := newMetrics(log)
	if err != nil {
		return nil, err
	}
	var scraper sync.WaitGroup
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	defer func() { stopScrape(); scraper.Wait() }()
	scraper.Go(func() { mets.scrape(scrapeCtx, nodes, log) })
	srv, err := server.New(cfg, server.Deps{Store: st, Logger: log.With("component", "server"),
		Registry: prometheus.NewRegistry(), Gates: mets.gates})
	if err != nil {
		return nil, err
	}
	ready := make(chan string, 1)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Run(ctx, func(addr string) { ready <- addr }) }()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
		if o.TLS {
			base = "https://" + addr
		}
	case err := <-srvErr:
		return nil, fmt.Errorf("server: %w", err)
	}
	fmt.Fprintf(progress, "drover demo: server on %s (SQLite in %s)\n", base, cfg.DataDir)
	fmt.Fprintf(progress, "drover demo: wave gates run on Prometheus's PromQL engine, embedded, over the simulated nodes' metrics\n")

	// The fleet: one real agent per simulated node.
	var wg sync.WaitGroup
	agentCtx, stopAgents := context.WithCancel(ctx)
	defer func() { stopAgents(); wg.Wait() }()
	hc := tlsClient(srv.CACertPEM())
	admin := &api.Client{Base: base, Token: cfg.Users[2].Token, HTTP: hc}
	for _, n := range nodes.list {
		acfg, err := n.agentConfig(base, cfg.AgentToken, filepath.Join(dir, "agents", n.node.ID), log)
		if err != nil {
			return nil, err
		}
		if o.TLS {
			id, err := enrolAgent(ctx, admin, srv.CAHash(), &acfg)
			if err != nil {
				return nil, err
			}
			wg.Add(1)
			go func() { defer wg.Done(); _ = id.RenewLoop(agentCtx) }()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := agent.Run(agentCtx, acfg); err != nil && agentCtx.Err() == nil {
				log.Error("agent stopped", "node", n.node.ID, "err", err)
			}
		}()
	}
	alice := &api.Client{Base: base, Token: cfg.Users[0].Token, HTTP: hc}
	if err := waitFleet(ctx, alice, len(nodes.list)); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "drover demo: %d agents registered: %s\n", len(nodes.list), fleetMix(fl))
	if o.Ready != nil {
		o.Ready(Access{URL: base, CACert: srv.CACertPEM(), Users: cfg.Users, DataDir: cfg.DataDir, Database: cfg.DSN()})
	}

	sum := &Summary{Server: base, Nodes: len(nodes.list)}
	advIDs, err := importAdvisories(ctx, alice)
	if err != nil {
		return nil, err
	}
	if sum.Exposure, err = exposureCounts(ctx, alice, advIDs); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "drover demo: %d advisories imported (Debian, Ubuntu, Red Hat, Microsoft); exposure (drover exposure --advisory ID):\n", len(advIDs))
	printExposure(progress, sum.Exposure, false)
	for i, sc := range scs {
		nodes.setScenario(sc)
		text := sc.text
		if text == nil {
			if text, err = plans.ReadFile(sc.file); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(progress, "\n== rollout %d: %s\n", i+1, sc.title)
		rs, err := runRollout(ctx, alice, filepath.Base(sc.file), string(text), progress)
		if err != nil {
			return nil, err
		}
		rs.Title = sc.title
		sum.Rollouts = append(sum.Rollouts, *rs)
	}
	if len(advIDs) > 0 {
		// The agents report their new packages after each step; give the
		// last ones a heartbeat to arrive. Interrupted meanwhile, the
		// summary goes without the exposure after the rollouts.
		select {
		case <-ctx.Done():
		case <-time.After(3 * time.Second):
		}
	}
	if len(advIDs) > 0 && ctx.Err() == nil {
		after, err := exposureCounts(ctx, alice, advIDs)
		if err != nil {
			return nil, err
		}
		for i := range sum.Exposure {
			sum.Exposure[i].After = after[i].Before
		}
		fmt.Fprintf(progress, "\n== exposure after the rollouts\n")
		printExposure(progress, sum.Exposure, true)
	}
	sum.Seconds = time.Since(start).Seconds()
	if o.Keep {
		<-ctx.Done()
	}
	return sum, nil
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// waitFleet waits until n nodes are registered and online.
func waitFleet(ctx context.Context, c *api.Client, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes, err := c.AllNodes(ctx, "")
		if err == nil {
			online := 0
			for _, nd := range nodes {
				if nd.Online {
					online++
				}
			}
			if online >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only some of %d agents registered within 30s (last error: %v)", n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fleetMix(nodes []*fleet.Node) string {
	count := map[string]int{}
	for _, n := range nodes {
		k := n.Facts.OS.Family + " " + n.Facts.OS.Version
		if n.Facts.Kubelet != "" {
			k = "kubernetes " + n.Facts.OS.Family
		}
		count[k]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", count[k], k))
	}
	return strings.Join(parts, ", ")
}

// runRollout creates a rollout, prints its progress wave by wave until it
// ends, and summarises it.
func runRollout(ctx context.Context, c *api.Client, file, text string, progress io.Writer) (*RolloutSummary, error) {
	started := time.Now()
	ro, err := c.CreateRollout(ctx, file, text)
	if err != nil {
		return nil, fmt.Errorf("create rollout: %w", err)
	}
	fmt.Fprintf(progress, "created %s: %d nodes in waves %s\n", ro.ID, ro.Total, waveNames(ro))
	if n := len(ro.Uncovered); n > 0 {
		fmt.Fprintf(progress, "  wave %s: %s; %d combinations of its spread keys stay uncovered (drover rollout get %s lists them)\n",
			ro.Uncovered[0].Wave, ro.Uncovered[0].Reason, n, ro.ID)
	}
	last := map[string]string{}
	lastWait := ""
	preflightShown := false
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ro, err = c.GetRollout(ctx, ro.ID, true)
		if err != nil {
			return nil, err
		}
		for _, w := range ro.Waves {
			line := fmt.Sprintf("%s: %s", w.State, w.Tally().Summary())
			if last[w.Name] != line {
				fmt.Fprintf(progress, "  %5.1fs  wave %-7s %s\n", time.Since(started).Seconds(), w.Name, line)
				last[w.Name] = line
			}
		}
		if len(ro.Waits) > 0 && ro.Waits[0].Reason != lastWait {
			lastWait = ro.Waits[0].Reason
			who := fmt.Sprintf("%d nodes wait", ro.Waits[0].Count)
			if ro.Waits[0].Count == 1 {
				who = "1 node waits"
			}
			fmt.Fprintf(progress, "  %5.1fs  %s: %s\n", time.Since(started).Seconds(), who, lastWait)
		}
		if !preflightShown {
			// Every rollout pre-flights its nodes before the canary: say
			// how it went once every node answered.
			v, err := c.Preflight(ctx, ro.ID)
			switch {
			case api.Code(err) == api.CodeNotFound: // not asked yet
			case err != nil:
				return nil, fmt.Errorf("rollout %s pre-flight: %w", ro.ID, err)
			case v.Waiting == 0:
				preflightShown = true
				fmt.Fprintf(progress, "  %5.1fs  pre-flight: %d nodes asked, %d passed, %d failed, %d unavailable, answered in %.1fs\n",
					time.Since(started).Seconds(), v.Asked, v.Passed, v.Failed, v.Unavailable, lastAnswer(v).Sub(v.AskedAt).Seconds())
				for _, n := range v.Nodes {
					if n.State != "passed" {
						fmt.Fprintf(progress, "           e.g. %s %s: %s\n", n.Node, n.State, n.Reason)
						break
					}
				}
			}
		}
		if ro.State.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rollout %s did not finish within 3 minutes (state %s: %s)", ro.ID, ro.State, ro.Reason)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	rs := summarize(ro, time.Since(started))
	if rs.Halted {
		fmt.Fprintf(progress, "  halted: %s\n", rs.HaltReason)
		for _, f := range rs.Localisation {
			fmt.Fprintf(progress, "  localised: %s\n", f)
		}
		if len(rs.Localisation) == 0 && rs.NodesFailed > 0 {
			what := fmt.Sprintf("%d failed nodes are", rs.NodesFailed)
			if rs.NodesFailed == 1 {
				what = "1 failed node is"
			}
			fmt.Fprintf(progress, "  not localised: %s too few to tell what the failed nodes share (one-sided Fisher exact test, alpha 0.05)\n", what)
		}
	}
	fmt.Fprintf(progress, "  %s in %.1fs: %d succeeded (%d changed, %d already up to date), %d failed, %d rolled back, %d touched\n",
		rs.State, rs.Seconds, rs.NodesSucceeded, rs.NodesSucceeded-rs.NodesUnchanged, rs.NodesUnchanged, rs.NodesFailed, rs.NodesRolledBack, rs.NodesTouched)
	return rs, nil
}

// lastAnswer is when the last node answered its pre-flight.
func lastAnswer(v api.PreflightView) time.Time {
	last := v.AskedAt
	for _, n := range v.Nodes {
		if n.AnsweredAt.After(last) {
			last = n.AnsweredAt
		}
	}
	return last
}

func waveNames(ro api.Rollout) string {
	var parts []string
	for _, w := range ro.Waves {
		parts = append(parts, fmt.Sprintf("%s(%d)", w.Name, w.Nodes))
	}
	return strings.Join(parts, " → ")
}

// summarize turns a finished rollout into its summary. A node is touched
// when any step (apply or rollback) was dispatched to it.
func summarize(ro api.Rollout, took time.Duration) *RolloutSummary {
	t := ro.Tally()
	rs := &RolloutSummary{ID: ro.ID, Name: ro.Name, State: string(ro.State), Seconds: math.Round(took.Seconds()*10) / 10,
		NodesSucceeded: t.Succeeded, NodesUnchanged: t.Unchanged, NodesFailed: t.FailedEver(), NodesRolledBack: t.RolledBack}
	if ro.State == engine.RolloutHalted || ro.State == engine.RolloutFailed {
		rs.Halted, rs.HaltReason = true, ro.Reason
	}
	for _, f := range ro.Localisation {
		rs.Localisation = append(rs.Localisation, f.Text)
	}
	canary := map[string]bool{}
	for _, w := range ro.Waves {
		if w.Canary {
			canary[w.Name] = true
		}
	}
	for _, n := range ro.Nodes {
		if n.Attempt > 0 {
			rs.NodesTouched++
			if rs.Halted && !canary[n.Wave] {
				rs.TouchedOutside = append(rs.TouchedOutside, n.ID)
			}
		}
	}
	for _, w := range ro.Waves {
		wt := w.Tally()
		ws := WaveSummary{Name: w.Name, State: string(w.State), Nodes: w.Nodes, Succeeded: wt.Succeeded,
			Failed: wt.FailedEver(), RolledBack: wt.RolledBack}
		if !w.StartedAt.IsZero() && !w.EndedAt.IsZero() {
			ws.Seconds = math.Round(w.EndedAt.Sub(w.StartedAt).Seconds()*10) / 10
		}
		rs.Waves = append(rs.Waves, ws)
	}
	return rs
}

// demoFleet is the heterogeneous fleet: Debian 11/12, Ubuntu 22.04/24.04,
// RHEL 8/9, SLES 15, Windows Server 2019/2022, macOS 14 and Kubernetes
// workers (role=kubernetes-node), over three zones, three hardware
// classes and three tiers: the fleet `drover simulate --nodes N`
// generates, with the same facts and labels.
func demoFleet(n int) ([]*fleet.Node, error) {
	mix, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		return nil, err
	}
	return fleet.Generate(fleet.GenSpec{N: n, Mix: mix, Zones: 3, HardwareClasses: 3}, 7)
}

// simFleet is the demo's simulated machines, by node ID.
type simFleet struct {
	mu   sync.Mutex
	sc   scenario
	list []*simNode
	byID map[string]*simNode
}

type simNode struct {
	node  *fleet.Node
	state *driver.SimState
}

func newSimFleet(nodes []*fleet.Node, step time.Duration) *simFleet {
	f := &simFleet{byID: map[string]*simNode{}}
	for _, n := range nodes {
		pkgs := maps.Clone(n.Facts.Packages) // Generate shares package maps between nodes
		if pkgs == nil {
			pkgs = map[string]string{}
		}
		pkgs["telemetry-agent"] = "7.1.4"
		n.Facts.Packages = pkgs
		sn := &simNode{node: n, state: driver.NewSimState(n.ID, n.Facts.OS.Family, n.Facts.Kernel, pkgs)}
		sn.state.ApplyDelay = step
		if f := n.Facts.OS.Family; f != "windows" && f != "macos" {
			// Operators hold their monitoring agent so that an unattended
			// upgrade does not move it: the facts report the hold.
			sn.state.SetHold("telemetry-agent", true)
		}
		for rt, v := range map[string]string{"containerd": n.Facts.Runtime.Containerd, "docker": n.Facts.Runtime.Docker, "cri-o": n.Facts.Runtime.CRIO} {
			sn.state.SetRuntime(rt, v)
		}
		class := n.Facts.Hardware.Class
		sn.state.Hurts = func(a plan.Action) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.sc.hurts != nil && f.sc.hurts(class)
		}
		f.list = append(f.list, sn)
		f.byID[n.ID] = sn
	}
	return f
}

func (f *simFleet) setScenario(sc scenario) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sc = sc
}

// agentConfig is a real agent for the simulated node: its drivers are the
// sim driver, its probes see the simulated node's health.
func (n *simNode) agentConfig(base, token, stateDir string, log *slog.Logger) (agent.Config, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return agent.Config{}, err
	}
	reg := &driver.Registry{}
	sim := driver.NewSim(n.state)
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode, plan.ActionScript} {
		reg.Register(k, sim)
	}
	base0 := n.node.Facts
	return agent.Config{
		ServerURL: base, StateDir: stateDir, NodeID: n.node.ID, Token: token, Labels: n.node.Labels,
		Drivers: reg,
		Facts: func(context.Context) (fleet.Facts, error) {
			return n.state.Facts(base0), nil
		},
		Rebooter:        n.state,
		Runner:          n.state.Runner(nil),
		ProbeHTTPClient: &http.Client{Transport: n.state.Transport(), Timeout: 5 * time.Second},
		Logger:          log.With("node", n.node.ID),
		Heartbeat:       2 * time.Second,
		Version:         "demo",
	}, nil
}
