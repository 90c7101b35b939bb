package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

const (
	agentToken = "chaos-agent-token-0123456789"
	adminToken = "chaos-admin-token-0123456789"
)

// built is the drover binary of this test run, built on first use and
// shared by every test of the package (test-only state; the binary is
// removed when the run ends by TestMain).
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildDrover returns the drover binary, building it once per test run.
func buildDrover(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Fatalf("the chaos tests need SIGKILL and failpoints; %s has neither", runtime.GOOS)
	}
	built.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if built.dir, built.err = os.MkdirTemp("", "drover-chaos-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "drover")
		out, err := exec.Command(goBin, "build", "-o", built.path, "github.com/drover-dev/drover/cmd/drover").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build drover: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// freePort returns a loopback address nothing listens on now; a server
// restarted on it keeps the URL its agents know.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// serverConfig is what the tests write into a server's YAML file.
type serverConfig struct {
	Listen, DataDir, Database, ServerID, Prometheus string
	// AuditKey is the audit signing key file; servers sharing one
	// PostgreSQL must share it ("" means DataDir/audit.key).
	AuditKey              string
	Lease, PollWait, Tick time.Duration
	// Extra is appended to the YAML as it is (top-level keys).
	Extra string
}

func (c serverConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\nserverId: %s\n", c.Listen, c.ServerID)
	// Always a data dir of the test's own: the default is relative to the
	// working directory, which is the package's source directory.
	fmt.Fprintf(&b, "dataDir: %s\n", c.DataDir)
	if c.Database != "" {
		fmt.Fprintf(&b, "database: %q\n", c.Database)
	}
	if c.AuditKey != "" {
		fmt.Fprintf(&b, "auditKey: %s\n", c.AuditKey)
	}
	if c.Prometheus != "" {
		fmt.Fprintf(&b, "prometheus: %s\n", c.Prometheus)
	}
	// tls: false — the agents use the shared agent token, the server's insecure test mode.
	fmt.Fprintf(&b, "lease: %s\npollWait: %s\ntick: %s\nagentToken: %s\ntls: false\nlogLevel: info\n", c.Lease, c.PollWait, c.Tick, agentToken)
	fmt.Fprintf(&b, "users:\n  - name: admin\n    role: admin\n    token: %s\n", adminToken)
	b.WriteString(c.Extra)
	return b.String()
}

// serverProc is one `drover server` process; start runs it again on the
// same configuration (same address, same store) after it died.
type serverProc struct {
	t      *testing.T
	bin    string
	cfg    serverConfig
	file   string
	logf   *os.File
	logBuf *lockedBuffer // the current life's output, for failpoint lines

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	state *os.ProcessState
	lives int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newServerProc(t *testing.T, bin, dir string, cfg serverConfig) *serverProc {
	t.Helper()
	file := filepath.Join(dir, cfg.ServerID+".yaml")
	if err := os.WriteFile(file, []byte(cfg.yaml()), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, cfg.ServerID+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &serverProc{t: t, bin: bin, cfg: cfg, file: file, logf: logf}
	t.Cleanup(func() {
		p.kill()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("server %s log (last 6000 bytes):\n%s", cfg.ServerID, tail(string(b), 6000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *serverProc) url() string { return "http://" + p.cfg.Listen }

func (p *serverProc) client() *api.Client {
	return &api.Client{Base: p.url(), Token: adminToken}
}

// start runs the server with the given failpoints and waits until it
// answers /healthz.
func (p *serverProc) start(failpoints string) error {
	p.mu.Lock()
	p.lives++
	fmt.Fprintf(p.logf, "\n===== life %d, DROVER_FAILPOINTS=%q =====\n", p.lives, failpoints)
	buf := &lockedBuffer{}
	p.logBuf = buf
	cmd := exec.Command(p.bin, "server", "--config", p.file)
	cmd.Env = append(os.Environ(), "DROVER_FAILPOINTS="+failpoints)
	cmd.Stdout = io.MultiWriter(p.logf, buf)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start server %s: %w", p.cfg.ServerID, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.state = cmd, done, nil
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if healthz(p.url()) != nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("server %s exited while starting: %s\n%s", p.cfg.ServerID, p.exitState(), tail(buf.String(), 3000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server %s not healthy within 30s", p.cfg.ServerID)
		}
	}
}

// exited returns a channel closed when the current life ends.
func (p *serverProc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *serverProc) exitState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

// killedBySIGKILL reports whether the last life ended by SIGKILL.
func (p *serverProc) killedBySIGKILL() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return false
	}
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// kill SIGKILLs the current life (if running) and waits for it.
func (p *serverProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// health is a server's /healthz answer; nil when it does not answer.
type health struct {
	OK       bool   `json:"ok"`
	ServerID string `json:"serverId"`
	Leader   bool   `json:"leader"`
}

var healthClient = &http.Client{Timeout: 2 * time.Second}

func healthz(base string) *health {
	resp, err := healthClient.Get(base + "/healthz")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var h health
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		return nil
	}
	return &h
}

// fakePrometheus answers every instant query with one series at 0.05, so
// that a threshold gate with max 0.5 passes and its result is stored
// (which the gate-evaluation failpoint needs).
func fakePrometheus(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		now := float64(time.Now().UnixNano()) / 1e9
		switch r.URL.Path {
		case "/api/v1/query":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"chaos_error_ratio"},"value":[%f,"0.05"]}]}}`, now)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"not served by the fake"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// ledgerEntry is one driver call of an agent: which node, which step (the
// step its agent's journal last took on), apply or rollback, and when.
type ledgerEntry struct {
	Node, Step, Op string
	Start, End     time.Time
	Err            string
}

// ledger records every Apply and Rollback of the fleet's drivers.
type ledger struct {
	mu        sync.Mutex
	entries   []ledgerEntry
	onApplied func(node, step string) // nil: nothing; called after an Apply returns
}

func newLedger() *ledger { return &ledger{} }

func (l *ledger) add(e ledgerEntry) {
	l.mu.Lock()
	l.entries = append(l.entries, e)
	hook := l.onApplied
	l.mu.Unlock()
	if hook != nil && e.Op == "apply" {
		hook(e.Node, e.Step)
	}
}

func (l *ledger) all() []ledgerEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ledgerEntry(nil), l.entries...)
}

// journalStep returns the step the agent whose state directory is dir
// executes: the last step its write-ahead journal took on. The agent
// records a step there before anything else is done for it (a resumed
// step keeps its record), and executes one step at a time, so every
// driver call belongs to that step. "" when there is none, or the
// journal cannot be read.
func journalStep(dir string) string {
	f, err := os.Open(filepath.Join(dir, agent.JournalFile))
	if err != nil {
		return ""
	}
	defer f.Close()
	var step string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var rec struct{ Type, Step string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Type == "step" {
			step = rec.Step
		}
	}
	return step
}

// ledgerDriver wraps a node's sim driver and writes every Apply and
// Rollback into the ledger, attributed to the step its agent's journal
// shows it executing.
type ledgerDriver struct {
	node, dir string
	sim       *driver.Sim
	l         *ledger
}

func (d ledgerDriver) Name() string { return d.sim.Name() }
func (d ledgerDriver) Preflight(ctx context.Context, a plan.Action) (driver.Change, error) {
	return d.sim.Preflight(ctx, a)
}
func (d ledgerDriver) Snapshot(ctx context.Context, a plan.Action) (driver.Snapshot, error) {
	return d.sim.Snapshot(ctx, a)
}
func (d ledgerDriver) Verify(ctx context.Context, a plan.Action) error { return d.sim.Verify(ctx, a) }
func (d ledgerDriver) VerifyRollback(ctx context.Context, a plan.Action, s driver.Snapshot) error {
	return d.sim.VerifyRollback(ctx, a, s)
}

func (d ledgerDriver) Apply(ctx context.Context, a plan.Action) (driver.Outcome, error) {
	e := ledgerEntry{Node: d.node, Step: journalStep(d.dir), Op: "apply", Start: time.Now()}
	out, err := d.sim.Apply(ctx, a)
	e.End = time.Now()
	if err != nil {
		e.Err = err.Error()
	}
	d.l.add(e)
	return out, err
}

func (d ledgerDriver) Rollback(ctx context.Context, a plan.Action, s driver.Snapshot) (driver.Outcome, error) {
	e := ledgerEntry{Node: d.node, Step: journalStep(d.dir), Op: "rollback", Start: time.Now()}
	out, err := d.sim.Rollback(ctx, a, s)
	e.End = time.Now()
	if err != nil {
		e.Err = err.Error()
	}
	d.l.add(e)
	return out, err
}

// simNode is one simulated machine with its real agent.
type simNode struct {
	id, zone, class, family string
	state                   *driver.SimState
	dir                     string
	server                  string // URL its agent talks to

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// fleetOf is the test fleet: n nodes over zones a, b, c and hardware
// classes gen1..gen3, Debian and RHEL, all with openssl 3.0.14.
type simFleet struct {
	nodes []*simNode
	byID  map[string]*simNode
	l     *ledger
	log   *slog.Logger
	step  time.Duration

	// Set by the campaign before the agents start (nil: as they are):
	// wrapDriver and wrapRunner wrap a node's driver and command runner
	// (faults), serverURL is the URL its agent talks to (a proxy), and
	// supervise runs an agent again after it stopped with an error, as
	// systemd's Restart=always would.
	wrapDriver func(sn *simNode, d driver.Driver) driver.Driver
	wrapRunner func(sn *simNode, r driver.Runner) driver.Runner
	serverURL  func(sn *simNode) string
	supervise  bool
}

func newSimFleet(t *testing.T, dir string, n int, step time.Duration, hurts func(class string) bool, servers func(i int) string) *simFleet {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "agents.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	f := &simFleet{byID: map[string]*simNode{}, l: newLedger(), step: step,
		log: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	zones := []string{"a", "b", "c"}
	for i := range n {
		sn := &simNode{id: fmt.Sprintf("n%02d", i), zone: zones[i%3], class: fmt.Sprintf("gen%d", (i/3)%3+1),
			family: []string{"debian", "rhel"}[i%2], server: servers(i)}
		sn.dir = filepath.Join(dir, "agents", sn.id)
		if err := os.MkdirAll(sn.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		sn.state = driver.NewSimState(sn.id, sn.family, "6.1.0-26-amd64", map[string]string{"openssl": "3.0.14"})
		sn.state.ApplyDelay = step
		if hurts != nil && hurts(sn.class) {
			sn.state.Hurts = func(plan.Action) bool { return true }
		}
		if err := sn.state.Persist(filepath.Join(sn.dir, "sim.json")); err != nil {
			t.Fatal(err)
		}
		f.nodes = append(f.nodes, sn)
		f.byID[sn.id] = sn
	}
	t.Cleanup(f.stopAll)
	return f
}

func (f *simFleet) agentConfig(sn *simNode) agent.Config {
	reg := &driver.Registry{}
	var ld driver.Driver = ledgerDriver{node: sn.id, dir: sn.dir, sim: driver.NewSim(sn.state), l: f.l}
	if f.wrapDriver != nil {
		ld = f.wrapDriver(sn, ld)
	}
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode} {
		reg.Register(k, ld)
	}
	runner := sn.state.Runner(nil)
	if f.wrapRunner != nil {
		runner = f.wrapRunner(sn, runner)
	}
	url := sn.server
	if f.serverURL != nil {
		url = f.serverURL(sn)
	}
	base := fleet.Facts{OS: fleet.OS{Family: sn.family, Version: "12"}, Arch: "amd64", Hardware: fleet.Hardware{Class: sn.class}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return agent.Config{
		ServerURL: url, StateDir: sn.dir, NodeID: sn.id, Token: agentToken,
		Labels:     map[string]string{"zone": sn.zone, "env": "prod"},
		HTTPClient: &http.Client{Transport: tr},
		Drivers:    reg,
		Facts:      func(context.Context) (fleet.Facts, error) { return sn.state.Facts(base), nil },
		Rebooter:   sn.state,
		Runner:     runner,
		// The plan's probe is the simulated node's health command.
		AllowCommandProbes: true,
		Logger:             f.log.With("node", sn.id),
		Heartbeat:          200 * time.Millisecond,
		MaxBackoff:         300 * time.Millisecond,
		Version:            "chaos",
	}
}

// start runs (or runs again, on the same journal and simulated disk) a
// node's agent.
func (f *simFleet) start(sn *simNode) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sn.cancel, sn.done = cancel, done
	cfg := f.agentConfig(sn)
	go func() {
		defer close(done)
		for {
			err := agent.Run(ctx, cfg)
			if err == nil || ctx.Err() != nil {
				return
			}
			f.log.Error("agent stopped", "node", sn.id, "err", err)
			if !f.supervise {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

// stop ends a node's agent as a crash would (its context is cancelled
// wherever it is) and waits for it.
func (f *simFleet) stop(sn *simNode) {
	sn.mu.Lock()
	cancel, done := sn.cancel, sn.done
	sn.cancel, sn.done = nil, nil
	sn.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (f *simFleet) startAll() {
	for _, sn := range f.nodes {
		f.start(sn)
	}
}

func (f *simFleet) stopAll() {
	for _, sn := range f.nodes {
		f.stop(sn)
	}
}

// waitOnline waits until every node of the fleet is registered and online.
func waitOnline(ctx context.Context, c *api.Client, n int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes, err := c.AllNodes(ctx, "")
		online := 0
		for _, nd := range nodes {
			if nd.Online {
				online++
			}
		}
		if err == nil && online >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d agents online after 30s (last error: %v)", online, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allAudit reads the whole audit log.
func allAudit(ctx context.Context, c *api.Client) ([]api.AuditEntry, error) {
	var out []api.AuditEntry
	var after int64
	for {
		page, err := c.ListAudit(ctx, after, 1000, "")
		if err != nil {
			return nil, fmt.Errorf("list audit after %d: %w", after, err)
		}
		out = append(out, page.Entries...)
		if len(page.Entries) == 0 {
			return out, nil
		}
		after = page.Entries[len(page.Entries)-1].Seq
	}
}

// limits are the caps a plan sets, checked against what happened.
type limits struct {
	maxInFlight int
	zoneCap     int
}

// dispatch is one step.dispatch audit entry.
type dispatch struct {
	Step, Kind, Node string
	Term             int64
}

// replay rebuilds every node's phase from the audit log, transaction by
// transaction (entries of one transaction share their time and actor),
// and returns the dispatched steps and the largest numbers of nodes in
// flight, overall and per zone, seen between transactions.
func replay(entries []api.AuditEntry, rollout string, zoneOf map[string]string) (ds []dispatch, maxAll int, maxZone map[string]int, err error) {
	phase := map[string]engine.Phase{}
	maxZone = map[string]int{}
	measure := func() {
		all, zone := 0, map[string]int{}
		for n, ph := range phase {
			if ph.InFlight() {
				all++
				zone[zoneOf[n]]++
			}
		}
		maxAll = max(maxAll, all)
		for z, c := range zone {
			maxZone[z] = max(maxZone[z], c)
		}
	}
	for i, e := range entries {
		if e.Rollout != rollout {
			continue
		}
		node, isNode := strings.CutPrefix(e.Object, "node/")
		switch e.Action {
		case "step.dispatch":
			var d struct {
				Step string `json:"step"`
				Kind string `json:"kind"`
				Term int64  `json:"term"`
			}
			if err := json.Unmarshal(e.Detail, &d); err != nil || !isNode {
				return nil, 0, nil, fmt.Errorf("audit %d: step.dispatch %s: %v", e.Seq, e.Detail, err)
			}
			ds = append(ds, dispatch{Step: d.Step, Kind: d.Kind, Node: node, Term: d.Term})
			if d.Kind == "rollback" {
				phase[node] = engine.PhaseRollingBack
			} else {
				phase[node] = engine.PhaseQueued
			}
		case "node.phase":
			var d struct {
				To engine.Phase `json:"to"`
			}
			if err := json.Unmarshal(e.Detail, &d); err != nil || !isNode {
				return nil, 0, nil, fmt.Errorf("audit %d: node.phase %s: %v", e.Seq, e.Detail, err)
			}
			phase[node] = d.To
		}
		last := i == len(entries)-1
		if last || !entries[i+1].At.Equal(e.At) || entries[i+1].Actor != e.Actor {
			measure()
		}
	}
	return ds, maxAll, maxZone, nil
}

// maxOverlap returns the largest number of ledger entries (per key)
// running at the same instant.
func maxOverlap(es []ledgerEntry, key func(ledgerEntry) string) map[string]int {
	return maxAtOnce(es, func(e ledgerEntry) (time.Time, time.Time) { return e.Start, e.End }, key)
}

// errorsOf collects check failures.
type checks struct{ errs []error }

func (c *checks) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}
func (c *checks) err() error { return errors.Join(c.errs...) }
