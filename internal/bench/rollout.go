package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
)

// RolloutConfig configures the rolling no-op benchmark.
type RolloutConfig struct {
	Drover   Command // the drover binary; agents and the server run as its processes
	Agents   int     // N real agent processes
	Batch    int     // K: the plan's maxInFlight
	WorkDir  string  // "" means a new temporary directory, removed afterwards
	PollWait time.Duration
	Tick     time.Duration
	Lease    time.Duration
	// CPUProfile, if set, is where the server process writes a CPU
	// profile of its whole life.
	CPUProfile string
	// HostFacts runs the agents with the caller's PATH, so that each
	// collects the host's real facts (dpkg-query, systemctl, container
	// runtimes...) at start and after its step. By default their PATH
	// holds only true and test: N agents sharing this machine's cores
	// would otherwise spend them on N fact collections, which on a real
	// fleet run on N machines, after the step's final report.
	HostFacts bool
	// Step, if positive, is how long each node's step takes: the action
	// runs the trusted artifact "sleep" (a copy of /bin/sleep) for Step
	// instead of "true".
	Step time.Duration
	// Probe, if positive, is the node soak (gates.node.minHealthy): each
	// agent keeps its probe passing for Probe before its final report,
	// and the server waits for that report.
	Probe    time.Duration
	Progress io.Writer // progress lines; nil discards
}

// RolloutResult is what the rolling no-op benchmark measured. Durations
// are in seconds or milliseconds as their names say.
type RolloutResult struct {
	Agents              int     `json:"agents"`
	Batch               int     `json:"batch"`
	Rounds              int     `json:"rounds"` // ceil(agents / batch)
	AgentStartupSeconds float64 `json:"agentStartupSeconds"`
	// WallSeconds runs from the moment POST /v1/rollouts returned to the
	// rollout's transition to succeeded (the audit entry's time; server
	// and bench share the host clock).
	WallSeconds float64 `json:"wallSeconds"`
	// ObservedWallSeconds is the same span as the bench's 200 ms polling
	// of GET /v1/rollouts/{id} saw it.
	ObservedWallSeconds float64 `json:"observedWallSeconds"`
	// MinStepMs is the measured time of one node's real work: running
	// /bin/true and the probe `test -e /tmp` one after the other through
	// the agent's own exec runner (median of 30 runs, before the agents
	// start).
	MinStepMs float64 `json:"minStepMs"`
	// LimitSeconds = rounds x MinStepMs: the rollout's duration if
	// dispatching, reporting and deciding cost nothing.
	LimitSeconds          float64 `json:"limitSeconds"`
	OverheadMsPerNodeStep float64 `json:"overheadMsPerNodeStep"` // (wall - limit) / agents
	// Per node step, from the audit trail: dispatch to succeeded, and its
	// parts: dispatch to the agent's healthy report (poll wake-up,
	// journal, the work, the report), healthy to succeeded (the
	// scheduler's reaction). The agent's part splits at its running
	// report for the nodes that sent one (a step done within the agent's
	// progress coalescing time reports only its result; 0 when none did):
	// dispatch to running, running to healthy.
	StepP50Ms     float64 `json:"stepLatencyP50Ms"`
	StepP99Ms     float64 `json:"stepLatencyP99Ms"`
	AgentP50Ms    float64 `json:"dispatchToHealthyP50Ms"`
	AgentP99Ms    float64 `json:"dispatchToHealthyP99Ms"`
	Running       int     `json:"runningReports"` // nodes whose running report was not coalesced away
	DeliverP50Ms  float64 `json:"dispatchToRunningP50Ms"`
	DeliverP99Ms  float64 `json:"dispatchToRunningP99Ms"`
	ExecP50Ms     float64 `json:"runningToHealthyP50Ms"`
	ExecP99Ms     float64 `json:"runningToHealthyP99Ms"`
	JudgeP50Ms    float64 `json:"healthyToSucceededP50Ms"`
	JudgeP99Ms    float64 `json:"healthyToSucceededP99Ms"`
	ServerCPUSecs float64 `json:"serverCpuSeconds"` // CPU the server used during the rollout
	ServerRSSMiB  float64 `json:"serverRssMiB"`
	Reports       float64 `json:"agentReports"`       // step reports the server took during the rollout
	Conflicts     float64 `json:"schedulerConflicts"` // decisions re-taken after a version conflict
	Passes        float64 `json:"schedulerDecisions"` // engine.Decide calls during the rollout
	AuditEntries  int     `json:"auditEntries"`       // audit entries of the rollout
	State         string  `json:"state"`
	// StepSeconds and ProbeSeconds are the configured step and soak
	// (0 for the no-op). IdealSeconds = rounds x (step + probe) and
	// Ratio = wallSeconds / idealSeconds, both 0 when neither is set.
	StepSeconds  float64 `json:"stepSeconds"`
	ProbeSeconds float64 `json:"probeSeconds"`
	IdealSeconds float64 `json:"idealSeconds"`
	Ratio        float64 `json:"ratio"`
}

// benchPlan is the no-op plan: one script action running the trusted
// artifact "true", one command probe, one wave of every agent, at most
// batch nodes in flight. The scheduler keeps batch nodes busy at all
// times (a sliding window), so the ideal duration is ceil(N/K) steps.
//
// With a positive step the action runs the artifact "sleep" for step;
// with a positive probe the node gate soaks for probe (minHealthy).
func benchPlan(batch int, step, probe time.Duration) string {
	action := `      script:
        artifact: "true"
        rollback: none`
	if step > 0 {
		action = fmt.Sprintf(`      script:
        artifact: "sleep"
        args: ["%s"]
        rollback: none`, strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	}
	soak := ""
	if probe > 0 {
		soak = fmt.Sprintf("\n    minHealthy: %s", probe)
	}
	return fmt.Sprintf(`apiVersion: drover.dev/v1
name: bench-noop
target:
  selector: node.labels.bench == "noop"
change:
  actions:
    - name: noop
%s
  reboot: never
waves:
  - name: all
limits:
  maxInFlight: %d
gates:
  node:
    probes:
      - kind: command
        command: [test, -e, /tmp]%s
`, action, batch, soak)
}

func (c *RolloutConfig) defaults() error {
	if c.Agents < 1 || c.Batch < 1 {
		return fmt.Errorf("agents (%d) and batch (%d) must be positive", c.Agents, c.Batch)
	}
	if c.Drover.Path == "" {
		return errors.New("no drover binary")
	}
	if c.PollWait <= 0 {
		c.PollWait = 5 * time.Second
	}
	if c.Tick <= 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Step < 0 || c.Probe < 0 {
		return fmt.Errorf("step (%s) and probe (%s) must not be negative", c.Step, c.Probe)
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// workDir returns the directory to work in and a function removing it
// if it was made here.
func workDir(dir string) (string, func(), error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("work dir: %w", err)
		}
		return dir, func() {}, nil
	}
	d, err := os.MkdirTemp("", "drover-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("work dir: %w", err)
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

func token() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RunRollout runs the rolling no-op benchmark once.
func RunRollout(ctx context.Context, cfg RolloutConfig) (RolloutResult, error) {
	if err := cfg.defaults(); err != nil {
		return RolloutResult{}, fmt.Errorf("rollout bench: %w", err)
	}
	res := RolloutResult{Agents: cfg.Agents, Batch: cfg.Batch, Rounds: (cfg.Agents + cfg.Batch - 1) / cfg.Batch}
	dir, cleanup, err := workDir(cfg.WorkDir)
	if err != nil {
		return res, err
	}
	defer cleanup()
	trusted := filepath.Join(dir, "trusted")
	if err := installTool(trusted, "true"); err != nil {
		return res, err
	}
	if cfg.Step > 0 {
		if err := installTool(trusted, "sleep"); err != nil {
			return res, err
		}
	}
	pathEnv := "PATH=" + os.Getenv("PATH")
	if !cfg.HostFacts {
		bin := filepath.Join(dir, "bin")
		if err := linkTools(bin, "true", "test"); err != nil {
			return res, err
		}
		pathEnv = "PATH=" + bin
	}
	step, err := measureStep(ctx, 30)
	if err != nil {
		return res, err
	}
	res.MinStepMs = ms(step)
	res.LimitSeconds = (time.Duration(res.Rounds) * step).Seconds()
	fmt.Fprintf(cfg.Progress, "one node's work (/bin/true + test -e /tmp): %.2f ms; limit for %d rounds: %.3f s\n", res.MinStepMs, res.Rounds, res.LimitSeconds)
	if cfg.Step > 0 || cfg.Probe > 0 {
		res.StepSeconds, res.ProbeSeconds = cfg.Step.Seconds(), cfg.Probe.Seconds()
		res.IdealSeconds = float64(res.Rounds) * (cfg.Step + cfg.Probe).Seconds()
		fmt.Fprintf(cfg.Progress, "step %s, probe %s: ideal ceil(%d/%d) x %s = %.3f s\n", cfg.Step, cfg.Probe,
			cfg.Agents, cfg.Batch, cfg.Step+cfg.Probe, res.IdealSeconds)
	}

	so := ServerOptions{DataDir: filepath.Join(dir, "server"), PollWait: cfg.PollWait, Tick: cfg.Tick, Lease: cfg.Lease,
		AgentToken: token(), UserToken: token(), CPUProfile: cfg.CPUProfile}
	srv, err := startServer(ctx, cfg.Drover, so, dir, "server.log")
	if err != nil {
		return res, err
	}
	defer srv.stop()
	base := "http://" + srv.addr
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer hc.CloseIdleConnections()
	cl := &api.Client{Base: base, Token: so.UserToken, HTTP: hc}
	if err := waitLeader(ctx, hc, base); err != nil {
		return res, err
	}

	fmt.Fprintf(cfg.Progress, "starting %d agents\n", cfg.Agents)
	start := time.Now()
	agents, err := startAgents(ctx, cfg, base, so.AgentToken, trusted, filepath.Join(dir, "agents"), pathEnv)
	defer stopAll(agents)
	if err != nil {
		return res, err
	}
	if err := waitPolling(ctx, hc, base, cfg.Agents, agents); err != nil {
		return res, err
	}
	res.AgentStartupSeconds = time.Since(start).Seconds()
	fmt.Fprintf(cfg.Progress, "%d agents registered and polling after %.2f s\n", cfg.Agents, res.AgentStartupSeconds)

	before, err := scrape(ctx, hc, base)
	if err != nil {
		return res, err
	}
	cpu0, err := procCPU(srv.pid)
	if err != nil {
		return res, err
	}
	ro, err := cl.CreateRollout(ctx, "bench.yaml", benchPlan(cfg.Batch, cfg.Step, cfg.Probe))
	created := time.Now()
	if err != nil {
		return res, fmt.Errorf("create rollout: %w", err)
	}
	if ro.Total != cfg.Agents {
		return res, fmt.Errorf("rollout %s targets %d nodes, want %d", ro.ID, ro.Total, cfg.Agents)
	}
	fmt.Fprintf(cfg.Progress, "rollout %s created\n", ro.ID)
	shown := 0 // rounds reported in progress lines
	for !ro.State.Terminal() {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if ro, err = cl.GetRollout(ctx, ro.ID, false); err != nil {
			return res, fmt.Errorf("get rollout: %w", err)
		}
		shown = progressRounds(cfg, res.Rounds, shown, ro.Counts[string(engine.PhaseSucceeded)], time.Since(created))
	}
	res.ObservedWallSeconds = time.Since(created).Seconds()
	res.State = string(ro.State)
	cpu1, err := procCPU(srv.pid)
	if err != nil {
		return res, err
	}
	res.ServerCPUSecs = (cpu1 - cpu0).Seconds()
	if rss, err := procRSS(srv.pid); err == nil {
		res.ServerRSSMiB = float64(rss) / (1 << 20)
	}
	after, err := scrape(ctx, hc, base)
	if err != nil {
		return res, err
	}
	res.Reports = sumPrefix(after, "drover_node_step_reports_total") - sumPrefix(before, "drover_node_step_reports_total")
	res.Conflicts = after["drover_scheduler_conflicts_total"] - before["drover_scheduler_conflicts_total"]
	res.Passes = after["drover_decide_seconds_count"] - before["drover_decide_seconds_count"]
	if ro.State != engine.RolloutSucceeded {
		return res, fmt.Errorf("rollout %s ended %s: %s", ro.ID, ro.State, ro.Reason)
	}
	entries, err := rolloutAudit(ctx, cl, ro.ID)
	if err != nil {
		return res, err
	}
	res.AuditEntries = len(entries)
	done, err := stepTimings(entries, &res)
	if err != nil {
		return res, err
	}
	res.WallSeconds = done.Sub(created).Seconds()
	res.OverheadMsPerNodeStep = (res.WallSeconds - res.LimitSeconds) * 1000 / float64(cfg.Agents)
	if res.IdealSeconds > 0 {
		res.Ratio = math.Round(res.WallSeconds/res.IdealSeconds*1000) / 1000
		fmt.Fprintf(cfg.Progress, "makespan %.3f s, ideal %.3f s, ratio %.3f\n", res.WallSeconds, res.IdealSeconds, res.Ratio)
	}
	return res, nil
}

// progressRounds prints one line per round of K nodes that succeeded
// since the last call (the window slides, so a "round" is K more nodes
// done, not a wave barrier), with the ideal time of that round when a
// step or probe duration is set. It returns the rounds shown so far.
func progressRounds(cfg RolloutConfig, rounds, shown, done int, elapsed time.Duration) int {
	target := done / cfg.Batch
	if done >= cfg.Agents {
		target = rounds
	}
	for shown < min(target, rounds) {
		shown++
		line := fmt.Sprintf("round %d/%d: %d/%d nodes succeeded after %.2f s", shown, rounds, min(shown*cfg.Batch, cfg.Agents), cfg.Agents, elapsed.Seconds())
		if ideal := time.Duration(shown) * (cfg.Step + cfg.Probe); ideal > 0 {
			line += fmt.Sprintf(" (ideal %.2f s)", ideal.Seconds())
		}
		fmt.Fprintln(cfg.Progress, line)
	}
	return shown
}

// installTool copies the named tool (as the PATH finds it) into the
// trusted directory as an artifact of the same name (a copy, not a link:
// the verifier refuses files others may write and resolves links).
func installTool(dir, tool string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trusted dir: %w", err)
	}
	src, err := exec.LookPath(tool)
	if err != nil {
		return fmt.Errorf("trusted dir: %w", err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("trusted dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, tool), b, 0o755); err != nil {
		return fmt.Errorf("trusted dir: %w", err)
	}
	return nil
}

// linkTools makes dir a PATH directory holding only the named tools,
// linked to where the caller's PATH finds them.
func linkTools(dir string, tools ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tools dir: %w", err)
	}
	for _, t := range tools {
		p, err := exec.LookPath(t)
		if err != nil {
			return fmt.Errorf("tools dir: %w", err)
		}
		if p, err = filepath.Abs(p); err != nil {
			return fmt.Errorf("tools dir: %w", err)
		}
		if err := os.Symlink(p, filepath.Join(dir, t)); err != nil {
			return fmt.Errorf("tools dir: %w", err)
		}
	}
	return nil
}

// measureStep returns the median time of one node's real work, run
// through the agent's exec runner: the artifact /bin/true, then the probe.
func measureStep(ctx context.Context, n int) (time.Duration, error) {
	r := driver.NewExecRunner(time.Minute)
	ds := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if _, _, err := r.Run(ctx, nil, "true"); err != nil {
			return 0, fmt.Errorf("measure step: %w", err)
		}
		if _, _, err := r.Run(ctx, nil, "test", "-e", "/tmp"); err != nil {
			return 0, fmt.Errorf("measure step: %w", err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

func waitLeader(ctx context.Context, hc *http.Client, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return fmt.Errorf("healthz: %w", err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			var h struct {
				Leader bool `json:"leader"`
			}
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if err == nil && h.Leader {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("server did not lead within 30s")
}

// agentProc is one agent process.
type agentProc struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startAgents(ctx context.Context, cfg RolloutConfig, base, tok, trusted, dir, pathEnv string) ([]*agentProc, error) {
	var out []*agentProc
	for i := range cfg.Agents {
		id := fmt.Sprintf("bench-%05d", i)
		sd := filepath.Join(dir, id)
		if err := os.MkdirAll(sd, 0o700); err != nil {
			return out, fmt.Errorf("agent %s: %w", id, err)
		}
		// No CommandContext: agents are stopped by stopAll, with SIGTERM.
		cmd := exec.Command(cfg.Drover.Path, append(append([]string(nil), cfg.Drover.Args...),
			"agent", "--server", base, "--state-dir", sd, "--node-id", id, "--accept", "script",
			"--trusted-dir", trusted, "--allow-command-probes", "--label", "bench=noop")...)
		cmd.Env = append(append(os.Environ(), cfg.Drover.Env...), "DROVER_AGENT_TOKEN="+tok, "DROVER_LOG=warn", pathEnv)
		logf, err := os.Create(filepath.Join(dir, id+".log"))
		if err != nil {
			return out, fmt.Errorf("agent %s: %w", id, err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return out, fmt.Errorf("agent %s: start: %w (raise `ulimit -u`?)", id, err)
		}
		p := &agentProc{cmd: cmd, done: make(chan error, 1), log: logf.Name()}
		go func() {
			err := cmd.Wait()
			logf.Close()
			p.done <- err
		}()
		out = append(out, p)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// stopAll sends SIGTERM to every agent, then waits for them (SIGKILL
// after 10 s).
func stopAll(ps []*agentProc) {
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// waitPolling waits until n agents hold a poll on the server.
func waitPolling(ctx context.Context, hc *http.Client, base string, n int, ps []*agentProc) error {
	deadline := time.Now().Add(5*time.Minute + time.Duration(n)*100*time.Millisecond)
	for time.Now().Before(deadline) {
		m, err := scrape(ctx, hc, base)
		if err == nil && int(m["drover_agents_connected"]) >= n {
			return nil
		}
		for _, p := range ps {
			select {
			case err := <-p.done:
				p.done <- err
				b, _ := os.ReadFile(p.log)
				return fmt.Errorf("agent exited before the rollout (%v): %s", errOrExit(err), strings.TrimSpace(string(b)))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%d agents not all polling after the deadline", n)
}

func sumPrefix(m metrics, name string) float64 {
	t := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

// rolloutAudit returns every audit entry of a rollout.
func rolloutAudit(ctx context.Context, cl *api.Client, id string) ([]api.AuditEntry, error) {
	var all []api.AuditEntry
	after := int64(0)
	for {
		page, err := cl.ListAudit(ctx, after, 5000, id)
		if err != nil {
			return nil, fmt.Errorf("audit of %s: %w", id, err)
		}
		all = append(all, page.Entries...)
		if page.Next == 0 {
			return all, nil
		}
		after = page.Next
	}
}

// stepTimings fills the step latency quantiles from a rollout's audit
// trail and returns when the rollout succeeded.
func stepTimings(entries []api.AuditEntry, res *RolloutResult) (time.Time, error) {
	type times struct{ dispatch, running, healthy, succeeded time.Time }
	nodes := map[string]*times{}
	get := func(obj string) *times {
		id := strings.TrimPrefix(obj, "node/")
		t := nodes[id]
		if t == nil {
			t = &times{}
			nodes[id] = t
		}
		return t
	}
	var done time.Time
	for _, e := range entries {
		var d struct {
			To   string `json:"to"`
			Gate string `json:"gate"`
		}
		_ = json.Unmarshal(e.Detail, &d)
		switch {
		case e.Action == "step.dispatch":
			get(e.Object).dispatch = e.At
		case e.Action == "node.phase" && strings.HasPrefix(e.Actor, "agent:"):
			t := get(e.Object)
			if d.To == string(engine.PhaseRunning) {
				t.running = e.At
			}
			if d.Gate == string(engine.Pass) {
				t.healthy = e.At
			}
		case e.Action == "node.phase" && d.To == string(engine.PhaseSucceeded):
			get(e.Object).succeeded = e.At
		case e.Action == "rollout.state" && d.To == string(engine.RolloutSucceeded):
			done = e.At
		}
	}
	if done.IsZero() {
		return done, errors.New("audit trail: no transition to succeeded")
	}
	var step, agent, deliver, exec, judge []time.Duration
	for id, t := range nodes {
		if t.dispatch.IsZero() || t.succeeded.IsZero() {
			return done, fmt.Errorf("audit trail: node %s lacks its dispatch or success", id)
		}
		step = append(step, t.succeeded.Sub(t.dispatch))
		if t.healthy.IsZero() {
			continue
		}
		agent = append(agent, t.healthy.Sub(t.dispatch))
		judge = append(judge, t.succeeded.Sub(t.healthy))
		if !t.running.IsZero() {
			deliver = append(deliver, t.running.Sub(t.dispatch))
			exec = append(exec, t.healthy.Sub(t.running))
		}
	}
	for _, s := range [][]time.Duration{step, agent, deliver, exec, judge} {
		slices.Sort(s)
	}
	res.Running = len(deliver)
	res.StepP50Ms, res.StepP99Ms = ms(quantile(step, .5)), ms(quantile(step, .99))
	res.AgentP50Ms, res.AgentP99Ms = ms(quantile(agent, .5)), ms(quantile(agent, .99))
	res.DeliverP50Ms, res.DeliverP99Ms = ms(quantile(deliver, .5)), ms(quantile(deliver, .99))
	res.ExecP50Ms, res.ExecP99Ms = ms(quantile(exec, .5)), ms(quantile(exec, .99))
	res.JudgeP50Ms, res.JudgeP99Ms = ms(quantile(judge, .5)), ms(quantile(judge, .99))
	return done, nil
}
