package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
)

// AgentsConfig configures the many-lightweight-agents benchmark.
type AgentsConfig struct {
	Drover    Command // the drover binary; the servers run as its processes
	Agents    int
	Heartbeat time.Duration // poll period; the server's pollWait is set to it
	Duration  time.Duration // measurement window of the idle fleet
	// APIDuration is the REST load window (0 skips it); APIWorkers
	// goroutines each issue one request, pause APIPause, and so on.
	APIDuration time.Duration
	APIWorkers  int
	APIPause    time.Duration
	SourceAddrs int    // loopback source addresses 127.0.0.2.. (1 = the default address only)
	WorkDir     string // "" means a temporary directory, removed afterwards
	CPUProfile  string // the (first) server's CPU profile ("" none)
	MemProfile  string // the (first) server's allocations profile ("" none)
	// Servers is the number of server processes (default 1); agent i
	// registers with and polls server i mod Servers, and moves to the
	// next server when its poll fails. More than one needs Store.
	Servers int
	// Store is the URL of an empty PostgreSQL database the servers
	// share; "" means SQLite in the work directory.
	Store string
	// KillWindow, if positive, adds a last phase: the REST load runs for
	// KillWindow and a third of the way in the leading server is killed
	// (SIGKILL). Needs Servers > 1.
	KillWindow time.Duration
	// HTTP2 makes the agents speak prior-knowledge HTTP/2 (h2c) to
	// servers serving it: the polls share connections (250 streams
	// each, the Go server's default), where HTTP/1.1 takes a connection,
	// and a file descriptor on each side, per agent.
	HTTP2    bool
	Progress io.Writer
}

// AgentsResult is what the many-agents benchmark measured.
type AgentsResult struct {
	Agents           int     `json:"agents"`
	HeartbeatSeconds float64 `json:"heartbeatSeconds"`
	DurationSeconds  float64 `json:"durationSeconds"`
	Store            string  `json:"store"`                    // "sqlite" or "postgres"
	RegisterSeconds  float64 `json:"registerSeconds"`          // registering every agent
	RegisterCPU      float64 `json:"registerServerCpuSeconds"` // the servers' CPU over the registration
	Polling          int     `json:"pollingAgents"`            // polls held at the end of the window (drover_agents_connected, summed over the servers)
	PollsPerSecond   float64 `json:"pollsPerSecond"`           // polls answered during the window
	PollErrors       int64   `json:"pollErrors"`
	HTTP2Responses   int64   `json:"http2Responses"` // agent requests (registrations and polls) answered over HTTP/2
	LastPollError    string  `json:"lastPollError,omitempty"`
	// Server process cost over the window, summed over the servers: CPU
	// from /proc/PID/stat in percent of one core; RSS from
	// /proc/PID/status (max of 1 s samples and at the end); the Go heap
	// from its /metrics. Servers has each server's own.
	ServerCPUPercent float64       `json:"serverCpuPercent"`
	ServerRSSMiB     float64       `json:"serverRssMiB"`
	ServerRSSMaxMiB  float64       `json:"serverRssMaxMiB"`
	GoHeapInuseMiB   float64       `json:"goHeapInuseMiB"`
	GoHeapAllocMiB   float64       `json:"goHeapAllocMiB"`
	Goroutines       float64       `json:"goroutines"`
	Servers          []ServerStat  `json:"servers,omitempty"`
	LoadAvg          [2][3]float64 `json:"loadAvg"` // /proc/loadavg at the start and at the end of the run
	// The REST load, while the agents poll, on a fleet with one rollout
	// over every node held for approval.
	APIRolloutNodes  int                  `json:"apiRolloutNodes,omitempty"`
	APICreateSeconds float64              `json:"apiCreateSeconds,omitempty"` // creating that rollout
	APIRequests      int                  `json:"apiRequests,omitempty"`
	APIErrors        int64                `json:"apiErrors,omitempty"`
	APIServerCPU     float64              `json:"apiServerCpuPercent,omitempty"`
	API              map[string]RouteStat `json:"api,omitempty"`
	APIPollsPerSec   float64              `json:"apiPollsPerSecond,omitempty"`
	APIPollErrors    int64                `json:"apiPollErrors,omitempty"`
	APIServerRSSMiB  float64              `json:"apiServerRssMiB,omitempty"`
	APIGoHeapInuseMB float64              `json:"apiGoHeapInuseMiB,omitempty"`
	APIError         string               `json:"apiError,omitempty"` // the REST phase failed (e.g. creating the rollout)
	Kill             *KillResult          `json:"kill,omitempty"`
}

// ServerStat is one server's share over the idle window.
type ServerStat struct {
	Registered int     `json:"registered"` // agents that registered with it
	Polling    int     `json:"polling"`    // polls it held at the end (drover_agents_connected)
	Leader     bool    `json:"leader"`
	CPUPercent float64 `json:"cpuPercent"`
	RSSMiB     float64 `json:"rssMiB"`
	RSSMaxMiB  float64 `json:"rssMaxMiB"`
}

// KillResult is the kill phase: REST reads spread over the servers (a
// client whose request fails moves to the next server and retries, as
// behind a load balancer), one server killed, and what the fleet did.
type KillResult struct {
	Killed             int     `json:"killed"` // index of the killed server
	KilledLeader       bool    `json:"killedLeader"`
	NewLeader          int     `json:"newLeader"`          // index of the server leading at the end (-1: none)
	LeaderAfterSeconds float64 `json:"leaderAfterSeconds"` // kill → a surviving server reports leading
	// REST reads in three phases: before the kill, the heartbeat after
	// it (the killed server's agents move), and the rest of the window.
	Before, During, After PhaseStat
	Retried               int64 `json:"retried"` // requests that failed on one server and were retried on another
	// The agents: how many moved to another server, poll errors after
	// the kill, polls held at the end on the survivors, polls answered
	// per second from one heartbeat after the kill to the end.
	AgentsMoved      int64        `json:"agentsMoved"`
	PollErrors       int64        `json:"pollErrors"`
	PollingAfter     int          `json:"pollingAfter"`
	PollsPerSecAfter float64      `json:"pollsPerSecondAfter"`
	Survivors        []ServerStat `json:"survivors"` // CPU and RSS over the whole kill window
	WindowSeconds    float64      `json:"windowSeconds"`
	KillAtSeconds    float64      `json:"killAtSeconds"`   // into the window
	Error            string       `json:"error,omitempty"` // the phase failed
	LastPollError    string       `json:"lastPollError,omitempty"`
}

// PhaseStat is the client-side latency of the REST reads in one phase;
// a retried request counts once, with the time of both attempts.
type PhaseStat struct {
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"` // failed on every server
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	MaxMs    float64 `json:"maxMs"`
}

// RouteStat is one REST route's latency: client-side quantiles, and the
// server's own from its drover_api_request_seconds histogram (bucket
// interpolation, so coarse).
type RouteStat struct {
	Requests    int     `json:"requests"`
	ClientP50Ms float64 `json:"clientP50Ms"`
	ClientP99Ms float64 `json:"clientP99Ms"`
	ServerP50Ms float64 `json:"serverP50Ms"`
	ServerP99Ms float64 `json:"serverP99Ms"`
}

func (c *AgentsConfig) defaults() error {
	if c.Agents < 1 {
		return fmt.Errorf("agents %d: must be positive", c.Agents)
	}
	if c.Drover.Path == "" {
		return errors.New("no drover binary")
	}
	if c.Heartbeat < time.Second {
		return fmt.Errorf("heartbeat %s: must be at least 1s", c.Heartbeat)
	}
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	c.Servers = max(c.Servers, 1)
	if c.Servers > 1 && c.Store == "" {
		return fmt.Errorf("%d servers: they must share a PostgreSQL database (store)", c.Servers)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		return errors.New("store: must be a postgres:// URL")
	}
	if c.KillWindow > 0 && c.Servers < 2 {
		return errors.New("killing a server needs at least 2 servers")
	}
	c.APIWorkers = max(c.APIWorkers, 1)
	c.SourceAddrs = max(c.SourceAddrs, 1)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// fleetRun is one run of the many-agents benchmark.
type fleetRun struct {
	cfg      AgentsConfig
	bases    []string // the servers' URLs
	agentTok string
	clients  []*http.Client
	polls    atomic.Int64
	errs     atomic.Int64
	moved    atomic.Int64
	h2       atomic.Int64 // agent requests answered over HTTP/2
	lastErr  atomic.Value // string: the last poll error
}

// RunAgents runs the many-agents benchmark once.
func RunAgents(ctx context.Context, cfg AgentsConfig) (res AgentsResult, _ error) {
	if err := cfg.defaults(); err != nil {
		return AgentsResult{}, fmt.Errorf("agents bench: %w", err)
	}
	res = AgentsResult{Agents: cfg.Agents, HeartbeatSeconds: cfg.Heartbeat.Seconds(), DurationSeconds: cfg.Duration.Seconds(), Store: "sqlite"}
	if cfg.Store != "" {
		res.Store = "postgres"
	}
	res.LoadAvg[0] = loadAvg()
	defer func() { res.LoadAvg[1] = loadAvg() }()
	dir, cleanup, err := workDir(cfg.WorkDir)
	if err != nil {
		return res, err
	}
	defer cleanup()
	so := ServerOptions{DataDir: filepath.Join(dir, "server"), Database: cfg.Store, HTTP2: cfg.HTTP2, PollWait: cfg.Heartbeat, Tick: time.Second,
		Lease: 3 * cfg.Heartbeat, AgentToken: token(), UserToken: token(), CPUProfile: cfg.CPUProfile, MemProfile: cfg.MemProfile}
	if cfg.Servers > 1 {
		so.AuditKey = filepath.Join(dir, "audit.key") // the first server creates it
	}
	fr := &fleetRun{cfg: cfg, agentTok: so.AgentToken}
	var srvs []*serverProc
	defer func() {
		for _, p := range srvs {
			p.stop()
		}
	}()
	// One at a time: the first migrates the database, the others find it
	// migrated.
	for i := range cfg.Servers {
		o := so
		o.DataDir = filepath.Join(dir, fmt.Sprintf("server%d", i))
		if i > 0 {
			o.CPUProfile, o.MemProfile = "", ""
		}
		name := "server.log"
		if cfg.Servers > 1 {
			name = fmt.Sprintf("server%d.log", i)
		}
		p, err := startServer(ctx, cfg.Drover, o, dir, name)
		if err != nil {
			return res, fmt.Errorf("server %d: %w", i, err)
		}
		srvs = append(srvs, p)
		fr.bases = append(fr.bases, "http://"+p.addr)
	}
	for i := range cfg.SourceAddrs {
		fr.clients = append(fr.clients, loopbackClient(i, cfg.SourceAddrs, cfg.Agents/cfg.SourceAddrs+16, cfg.HTTP2))
	}
	defer func() {
		for _, c := range fr.clients {
			c.CloseIdleConnections()
		}
	}()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * cfg.APIWorkers}}
	defer hc.CloseIdleConnections()
	if _, err := waitAnyLeader(ctx, hc, fr.bases, 30*time.Second); err != nil {
		return res, err
	}

	fmt.Fprintf(cfg.Progress, "registering %d agents with %d server(s)\n", cfg.Agents, cfg.Servers)
	t0 := time.Now()
	regCPU0, err := cpuOf(srvs)
	if err != nil {
		return res, err
	}
	if err := fr.registerAll(ctx); err != nil {
		return res, err
	}
	res.RegisterSeconds = time.Since(t0).Seconds()
	regCPU1, err := cpuOf(srvs)
	if err != nil {
		return res, err
	}
	res.RegisterCPU = (regCPU1 - regCPU0).Seconds()
	fmt.Fprintf(cfg.Progress, "registered in %.1f s; polling\n", res.RegisterSeconds)

	pctx, stopPolls := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range cfg.Agents {
		wg.Go(func() { fr.pollLoop(pctx, i) })
	}
	defer func() { stopPolls(); wg.Wait() }()
	// Warm up: one full heartbeat, so that every agent holds a poll and
	// the first, staggered polls are behind us.
	if err := sleepCtx(ctx, cfg.Heartbeat+cfg.Heartbeat/2); err != nil {
		return res, err
	}
	fmt.Fprintf(cfg.Progress, "measuring the idle fleet for %s\n", cfg.Duration)
	all := make([]int, len(srvs))
	for i := range all {
		all[i] = i
	}
	w, err := fr.window(ctx, srvs, all, hc, cfg.Duration, nil)
	if err != nil {
		return res, err
	}
	res.ServerCPUPercent, res.ServerRSSMiB, res.ServerRSSMaxMiB = w.cpuPercent, w.rssMiB, w.rssMaxMiB
	res.GoHeapInuseMiB = w.sum("go_memstats_heap_inuse_bytes") / (1 << 20)
	res.GoHeapAllocMiB = w.sum("go_memstats_heap_alloc_bytes") / (1 << 20)
	res.Goroutines = w.sum("go_goroutines")
	res.Polling = int(w.sum("drover_agents_connected"))
	res.PollsPerSecond, res.PollErrors = w.pollsPerSec, w.pollErrs
	res.HTTP2Responses = fr.h2.Load()
	res.LastPollError = fr.lastPollError()
	if cfg.Servers > 1 {
		res.Servers = w.servers
		for i := range res.Servers {
			res.Servers[i].Registered = cfg.Agents / cfg.Servers
			if i < cfg.Agents%cfg.Servers {
				res.Servers[i].Registered++
			}
		}
	}

	cl := &api.Client{Base: fr.bases[0], Token: so.UserToken, HTTP: hc}
	// A failed later phase is reported in the result, not instead of it:
	// the idle fleet's figures stand.
	if cfg.APIDuration > 0 {
		if err := fr.apiPhase(ctx, cl, srvs, hc, &res); err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			res.APIError = err.Error()
		}
	}
	if cfg.KillWindow > 0 {
		k, err := fr.killPhase(ctx, srvs, hc, so.UserToken)
		if err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			k.Error = err.Error()
		}
		res.Kill = &k
	}
	return res, nil
}

// lastPollError is the last poll error seen ("" none).
func (fr *fleetRun) lastPollError() string {
	s, _ := fr.lastErr.Load().(string)
	return s
}

// cpuOf is the servers' CPU time so far, summed.
func cpuOf(srvs []*serverProc) (time.Duration, error) {
	var t time.Duration
	for _, p := range srvs {
		c, err := procCPU(p.pid)
		if err != nil {
			return 0, err
		}
		t += c
	}
	return t, nil
}

// apiPhase measures REST latency on the first server with a rollout
// over the fleet present.
func (fr *fleetRun) apiPhase(ctx context.Context, cl *api.Client, srvs []*serverProc, hc *http.Client, res *AgentsResult) error {
	cfg := fr.cfg
	tc := time.Now()
	ro, err := cl.CreateRollout(ctx, "api.yaml", apiPlan)
	if err != nil {
		return fmt.Errorf("create rollout: %w", err)
	}
	res.APIRolloutNodes = ro.Total
	res.APICreateSeconds = time.Since(tc).Seconds()
	fmt.Fprintf(cfg.Progress, "REST load on rollout %s (%d nodes) for %s\n", ro.ID, ro.Total, cfg.APIDuration)
	load := &apiLoad{cl: cl, rollout: ro.ID, workers: cfg.APIWorkers, pause: cfg.APIPause}
	w, err := fr.window(ctx, srvs, []int{0}, hc, cfg.APIDuration, load)
	if err != nil {
		return err
	}
	res.APIServerCPU, res.APIServerRSSMiB = w.cpuPercent, w.rssMiB
	res.APIGoHeapInuseMB = w.after[0]["go_memstats_heap_inuse_bytes"] / (1 << 20)
	res.APIPollsPerSec, res.APIPollErrors = w.pollsPerSec, w.pollErrs
	res.API = map[string]RouteStat{}
	for route, ds := range load.lat {
		slices.Sort(ds)
		pattern := "GET " + route // the server's route label
		res.API[route] = RouteStat{Requests: len(ds), ClientP50Ms: ms(quantile(ds, .5)), ClientP99Ms: ms(quantile(ds, .99)),
			ServerP50Ms: secMs(histogramQuantile(w.before[0], w.after[0], "drover_api_request_seconds", `route="`+pattern+`"`, .5)),
			ServerP99Ms: secMs(histogramQuantile(w.before[0], w.after[0], "drover_api_request_seconds", `route="`+pattern+`"`, .99))}
		res.APIRequests += len(ds)
	}
	res.APIErrors = load.errs.Load()
	return nil
}

// apiPlan targets every simulated agent and waits for a start approval,
// so it is never dispatched: its GET is a full rollout view of the fleet.
const apiPlan = `apiVersion: drover.dev/v1
name: bench-api
target:
  selector: node.labels.bench == "sim"
change:
  actions:
    - name: noop
      script:
        artifact: "true"
        rollback: none
  reboot: never
waves:
  - name: canary
    nodes: 1%
    canary: true
  - name: rest
limits:
  maxInFlight: 5%
approvals:
  start: 1
`

func secMs(s float64) float64 {
	if math.IsNaN(s) {
		return -1
	}
	return math.Round(s*1e5) / 100
}

// loopbackClient returns a client whose connections leave from
// 127.0.0.(2+i) when n > 1, so that n clients share out the ephemeral
// ports of n source addresses; with h2c its requests are multiplexed
// over prior-knowledge HTTP/2 connections.
func loopbackClient(i, n, conns int, h2c bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if n > 1 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
	}
	t := &http.Transport{DialContext: d.DialContext, MaxIdleConns: conns,
		MaxIdleConnsPerHost: conns, IdleConnTimeout: 5 * time.Minute, DisableCompression: true, ForceAttemptHTTP2: false}
	if h2c {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		t.Protocols = p
	}
	return &http.Client{Transport: t}
}

func (fr *fleetRun) client(i int) *http.Client { return fr.clients[i%len(fr.clients)] }

func nodeID(i int) string { return fmt.Sprintf("sim-%05d", i) }

// facts are a simulated node's facts: a Debian host with a few dozen
// packages, as a real agent reports them.
func simFacts(i int) fleet.Facts {
	pk := make(map[string]string, 40)
	for j := range 40 {
		pk[fmt.Sprintf("pkg-%02d", j)] = fmt.Sprintf("1.%d.%d-1", j, i%7)
	}
	return fleet.Facts{OS: fleet.OS{Family: "debian", Name: "Debian GNU/Linux", Version: "12"}, Kernel: "6.1.0-26-amd64",
		Arch: "amd64", Hardware: fleet.Hardware{Class: []string{"gen1", "gen2", "gen3"}[i%3]}, BootID: fmt.Sprintf("boot-%d", i),
		Packages: pk}
}

// post sends one agent-channel request as node i to server srv.
func (fr *fleetRun) post(ctx context.Context, i, srv int, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fr.bases[srv]+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+fr.agentTok)
	req.Header.Set("Drover-Node", nodeID(i))
	req.Header.Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	resp, err := fr.client(i).Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor == 2 {
		fr.h2.Add(1)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: status %d: %s", path, resp.StatusCode, bytes.TrimSpace(data[:min(len(data), 200)]))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// registerAll registers every agent, 32 at a time, agent i with server
// i mod the number of servers.
func (fr *fleetRun) registerAll(ctx context.Context) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= fr.cfg.Agents || ctx.Err() != nil {
					return
				}
				req := api.RegisterRequest{NodeID: nodeID(i), Facts: simFacts(i), AgentVersion: "bench",
					Labels: map[string]string{"bench": "sim", "zone": []string{"a", "b", "c"}[i%3]}}
				if err := fr.post(ctx, i, i%len(fr.bases), api.PathRegister, req, nil); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("register %s: %w", nodeID(i), err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// pollLoop is one lightweight agent: it long-polls server i mod the
// number of servers, and polls again a heartbeat after the previous poll
// began (at once when the server held the poll that long). A failed poll
// moves it to the next server, after 1 to 2 s. The first poll is spread
// over one heartbeat.
func (fr *fleetRun) pollLoop(ctx context.Context, i int) {
	hb := fr.cfg.Heartbeat
	if sleepCtx(ctx, time.Duration(rand.Int64N(int64(hb)))) != nil {
		return
	}
	req := api.PollRequest{NodeID: nodeID(i), BootID: fmt.Sprintf("boot-%d", i)}
	home, moved := i%len(fr.bases), false
	for {
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, hb+30*time.Second)
		var resp api.PollResponse
		err := fr.post(pctx, i, home, api.PathPoll, req, &resp)
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait := hb - time.Since(start)
		if err != nil {
			fr.errs.Add(1)
			fr.lastErr.Store(err.Error())
			wait = max(wait, time.Second+rand.N(time.Second))
			if len(fr.bases) > 1 {
				home = (home + 1) % len(fr.bases)
				if !moved {
					moved = true
					fr.moved.Add(1)
				}
			}
		} else {
			fr.polls.Add(1)
		}
		if wait > 0 && sleepCtx(ctx, wait) != nil {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// windowStats is the servers' cost over one measurement window.
type windowStats struct {
	cpuPercent, rssMiB, rssMaxMiB float64 // summed over the servers
	servers                       []ServerStat
	before, after                 []metrics // of each server measured
	pollsPerSec                   float64
	pollErrs                      int64
}

// sum adds a metric over the servers measured, at the end of the window.
func (w windowStats) sum(name string) float64 {
	var t float64
	for _, m := range w.after {
		t += m[name]
	}
	return t
}

// window measures servers srvs[which...] over d, running load (if not
// nil) meanwhile.
func (fr *fleetRun) window(ctx context.Context, srvs []*serverProc, which []int, hc *http.Client, d time.Duration, load *apiLoad) (windowStats, error) {
	w := windowStats{servers: make([]ServerStat, len(which)), before: make([]metrics, len(which)), after: make([]metrics, len(which))}
	cpu0 := make([]time.Duration, len(which))
	for j, s := range which {
		var err error
		if w.before[j], err = scrape(ctx, hc, fr.bases[s]); err != nil {
			return w, err
		}
		if cpu0[j], err = procCPU(srvs[s].pid); err != nil {
			return w, err
		}
	}
	polls0, errs0 := fr.polls.Load(), fr.errs.Load()
	t0 := time.Now()
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if load != nil {
		load.start(lctx, &wg)
	}
	err := sampleRSS(ctx, t0.Add(d), srvs, which, w.servers)
	stop()
	wg.Wait()
	if err != nil {
		return w, err
	}
	elapsed := time.Since(t0)
	for j, s := range which {
		st, err := serverCost(srvs[s].pid, cpu0[j], elapsed, &w.servers[j])
		if err != nil {
			return w, err
		}
		w.servers[j] = st
		w.cpuPercent += st.CPUPercent
		w.rssMiB += st.RSSMiB
		w.rssMaxMiB += st.RSSMaxMiB
		if w.after[j], err = scrape(ctx, hc, fr.bases[s]); err != nil {
			return w, err
		}
		w.servers[j].Polling = int(w.after[j]["drover_agents_connected"])
		w.servers[j].Leader = w.after[j]["drover_leader"] == 1
	}
	w.cpuPercent, w.rssMiB, w.rssMaxMiB = round1(w.cpuPercent), round1(w.rssMiB), round1(w.rssMaxMiB)
	w.pollsPerSec = round1(float64(fr.polls.Load()-polls0) / elapsed.Seconds())
	w.pollErrs = fr.errs.Load() - errs0
	return w, nil
}

// sampleRSS records each server's maximum RSS, sampled every second,
// until the deadline.
func sampleRSS(ctx context.Context, until time.Time, srvs []*serverProc, which []int, into []ServerStat) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Now().Before(until) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for j, s := range which {
			if rss, err := procRSS(srvs[s].pid); err == nil {
				into[j].RSSMaxMiB = max(into[j].RSSMaxMiB, float64(rss)/(1<<20))
			}
		}
	}
	return nil
}

// serverCost is a server's CPU since cpu0 (over elapsed) and its RSS now,
// keeping the maximum RSS sampled in st.
func serverCost(pid int, cpu0, elapsed time.Duration, st *ServerStat) (ServerStat, error) {
	out := *st
	cpu1, err := procCPU(pid)
	if err != nil {
		return out, err
	}
	out.CPUPercent = round1(100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds())
	rss, err := procRSS(pid)
	if err != nil {
		return out, err
	}
	out.RSSMiB = round1(float64(rss) / (1 << 20))
	out.RSSMaxMiB = round1(max(out.RSSMaxMiB, out.RSSMiB))
	return out, nil
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// apiLoad is the bounded REST load: workers cycle through the routes.
type apiLoad struct {
	cl      *api.Client
	rollout string
	workers int
	pause   time.Duration

	mu   sync.Mutex
	lat  map[string][]time.Duration
	errs atomic.Int64
}

func (l *apiLoad) start(ctx context.Context, wg *sync.WaitGroup) {
	l.lat = map[string][]time.Duration{}
	routes := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"/v1/nodes", func(ctx context.Context) error { _, err := l.cl.ListNodes(ctx, "", "", 100); return err }},
		{"/v1/rollouts", func(ctx context.Context) error { _, err := l.cl.ListRollouts(ctx); return err }},
		{"/v1/rollouts/{id}", func(ctx context.Context) error { _, err := l.cl.GetRollout(ctx, l.rollout, false); return err }},
	}
	for w := range l.workers {
		wg.Go(func() {
			for n := w; ; n++ {
				r := routes[n%len(routes)]
				t0 := time.Now()
				err := r.call(ctx)
				d := time.Since(t0)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					l.errs.Add(1)
				} else {
					l.mu.Lock()
					l.lat[r.name] = append(l.lat[r.name], d)
					l.mu.Unlock()
				}
				if sleepCtx(ctx, l.pause) != nil {
					return
				}
			}
		})
	}
}
