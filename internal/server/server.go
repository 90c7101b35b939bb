// Package server owns drover's control plane: the REST API v1, the agent
// channel, the event stream, authentication and roles, metrics, and the
// scheduler that drives rollouts through the pure engine (load state,
// decide, persist with a version check, then dispatch). Several servers
// may share one PostgreSQL store; every server serves the API and agents,
// and the one holding leadership schedules.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/auditlog"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/web"
	"github.com/drover-dev/drover/internal/webhook"
)

// Deps are the server's collaborators, built by the caller and passed in:
// no globals.
type Deps struct {
	Store    store.Store
	Logger   *slog.Logger
	Registry *prometheus.Registry // nil: a new one
	Now      func() time.Time     // nil: time.Now
	Gates    gate.Evaluator       // nil: gate.Unconfigured, which fails every wave gate
}

// Server is one drover server process.
type Server struct {
	cfg   Config
	st    store.Store
	log   *slog.Logger
	reg   *prometheus.Registry
	now   func() time.Time
	gates gate.Evaluator
	m     *metrics
	// driftEvents counts drift detected by this server (baselines.go).
	driftEvents *prometheus.CounterVec
	users       map[[32]byte]User // configured users by their token's hash
	byName      map[string]User   // and by name
	agentTk     [32]byte
	wake        *waker
	beats       *heartbeats
	sched       *scheduler
	pred        *predictor
	fleet       *fleetCache // holds, fleet budgets and freezes; see fleet.go
	fp          *failpoints // nil unless Config.Failpoints arms crash points

	// auditKey signs the audit log's checkpoints (through the store) and
	// is published at /v1/audit/key; see auditlog.go.
	auditKey *auditlog.Key

	// sec holds the CA, the credentials store, the certificate cache and
	// the failed-authentication limiter, the trusted proxies and the approval
	// floor; see enroll.go, tokens.go, authlimit.go and floor.go.
	sec *security

	// limits bound what each node may send (agentlimits.go); streams
	// count the open event streams (events.go).
	limits  *agentLimits
	streams *streams

	// hooks delivers webhook events (webhooks.go).
	hooks *webhook.Deliverer

	// fl serves FleetLock on its own listener; nil without
	// Config.FleetLock.Listen.
	fl *fleetLock

	mu          sync.Mutex
	addr        string
	metricsAddr string // Config.Metrics.Listen once bound

	fleetLockAddr string // Config.FleetLock.Listen once bound, under mu
}

// New validates cfg and builds a server on deps.Store.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if deps.Store == nil {
		return nil, errors.New("server: no store")
	}
	s := &Server{cfg: cfg, st: deps.Store, log: deps.Logger, reg: deps.Registry, now: deps.Now, gates: deps.Gates,
		users: map[[32]byte]User{}, byName: map[string]User{}, agentTk: sha256.Sum256([]byte(cfg.AgentToken)), wake: newWaker(),
		beats: newHeartbeats()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.gates == nil {
		s.gates = gate.Unconfigured{}
	}
	for _, u := range cfg.Users {
		s.users[sha256.Sum256([]byte(u.Token))] = u
		s.byName[u.Name] = u
	}
	fp, err := parseFailpoints(cfg.Failpoints)
	if err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if fp != nil {
		s.log.Warn("failpoints armed: this server kills itself at them", "failpoints", cfg.Failpoints)
	}
	s.fp = fp
	s.now = fp.offsetClock(s.now)
	if err := s.initAuditKey(); err != nil {
		return nil, err
	}
	if err := s.initSecurity(); err != nil {
		return nil, err
	}
	s.m = newMetrics(s.reg)
	s.driftMetrics()
	s.limits = newAgentLimits(cfg.AgentLimits, s.reg)
	s.streams = newStreams(cfg.StreamLimits, s.reg)
	s.sched = newScheduler(s)
	s.pred = newPredictor(s)
	s.fleet = &fleetCache{s: s}
	s.reg.MustRegister(newFleetCollector(s.fleet), newRolloutCollector(s.st, s.sched, s.log))
	if c := newInventoryCollector(s.st, s.log); c != nil {
		s.reg.MustRegister(c)
	}
	if c := newExposureCollector(s.st, func() time.Time { return s.now() }, s.log); c != nil {
		s.reg.MustRegister(c)
	}
	if s.hooks, err = webhook.New(cfg.Webhooks, cfg.WebhookRetry, webhook.Deps{Store: s.st, Logger: s.log.With("component", "webhook"),
		Registry: s.reg, Now: s.now, Changed: s.wake.changed, Leader: s.sched.leaderTerm,
		Delivered: func() { s.fp.hit(fpWebhookDelivered) }}); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.FleetLock.Listen != "" {
		if s.fl, err = newFleetLock(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run serves on cfg.Listen and campaigns for leadership until ctx ends.
// ready, if not nil, is called with the bound address once listening.
func (s *Server) Run(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.TLS {
		ln = tls.NewListener(ln, s.TLSConfig())
	} else {
		s.log.Warn("serving plain HTTP: tokens cross the network in clear and agents cannot use client certificates; for tests on loopback only")
	}
	if s.cfg.Metrics.Listen != "" {
		stop, err := s.serveMetrics(ctx, func(addr string) {
			s.mu.Lock()
			s.metricsAddr = addr
			s.mu.Unlock()
		})
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	if s.fl != nil {
		stop, err := s.fl.listen(ctx, func(addr string) {
			s.mu.Lock()
			s.fleetLockAddr = addr
			s.mu.Unlock()
		})
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No WriteTimeout: long polls and event streams set their own
		// deadlines through http.ResponseController.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.cfg.PlainHTTP2 && !s.cfg.TLS {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Protocols = p
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- s.sched.run(ctx) }()
	hooksCtx, stopHooks := context.WithCancel(ctx)
	defer stopHooks()
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		_ = s.hooks.Run(hooksCtx)
	}()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		s.sweepExposure(sweepCtx)
	}()
	beatsCtx, stopBeats := context.WithCancel(ctx)
	defer stopBeats()
	beatsDone := make(chan struct{})
	go func() {
		defer close(beatsDone)
		s.beats.run(beatsCtx, s.st, flushInterval(s.cfg.Lease, s.cfg.PollWait), s.log)
	}()
	s.log.Info("server listening", "addr", s.addr, "server_id", s.cfg.ServerID)
	if ready != nil {
		ready(s.addr)
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	s.sched.stop()
	stopBeats()
	<-beatsDone // the last heartbeats are written before the caller closes the store
	stopSweep()
	<-sweepDone // no exposure is recorded after the caller closes the store
	stopHooks()
	<-hooksDone // no delivery is recorded after the caller closes the store
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Addr is the bound address once Run listens.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// FleetLockAddr is the bound address of the FleetLock listener
// (Config.FleetLock.Listen) once Run listens; "" without one.
func (s *Server) FleetLockAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fleetLockAddr
}

// MetricsAddr is the bound address of the separate metrics listener
// (Config.Metrics.Listen) once Run listens; "" without one.
func (s *Server) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metricsAddr
}

// Registry is the server's metrics registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handler is the server's HTTP handler: REST API, agent channel, events,
// metrics, health and the dashboard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	s.artifactRoutes(mux)
	if s.cfg.Metrics.Listen == "" {
		s.handle(mux, pathMetrics, s.metricsHandler())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "serverId": s.cfg.ServerID, "leader": s.sched.leading()})
	})
	// The dashboard: a client of this same mux's REST API, in-process.
	mux.Handle("/", web.Handler(mux, web.Options{Logger: s.log.With("component", "web"), Now: s.now}))
	return mux
}

// identity is who is calling, read from the connection's credentials.
type identity struct {
	user  string // user name, or "agent:NODE"
	role  Role
	agent string // node ID for agents
	// source is the user's credential: "config:NAME" or "api:HASH";
	// session is the hash of the dashboard session used, "" for none.
	source, session string
}

// authenticate reads the caller's identity from the request's
// credentials. Agents present the agent token and name their node in
// Drover-Node; client certificates replace both with enrolment.
func (s *Server) authenticate(r *http.Request) (identity, error) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return s.authenticateCert(r)
	}
	tok := bearer(r)
	if tok == "" {
		return identity{}, errUnauthorized
	}
	sum := sha256.Sum256([]byte(tok))
	if node := r.Header.Get("Drover-Node"); node != "" {
		// The insecure shared agent token (Config.AgentToken), if set.
		if s.cfg.AgentToken == "" || subtle.ConstantTimeCompare(sum[:], s.agentTk[:]) != 1 {
			return identity{}, errUnauthorized
		}
		return identity{user: "agent:" + node, agent: node}, nil
	}
	// Map lookup by hash: the token itself is never compared byte by byte.
	if u, ok := s.users[sum]; ok {
		return identity{user: u.Name, role: u.Role, source: "config:" + u.Name}, nil
	}
	// Only tokens of the API's shapes are looked up in the store.
	switch {
	case strings.HasPrefix(tok, prefixAPI):
		return s.authenticateAPIToken(r.Context(), sum)
	case strings.HasPrefix(tok, prefixSession):
		return s.authenticateSession(r.Context(), sum)
	}
	return identity{}, errUnauthorized
}

var errUnauthorized = &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: "missing or invalid token"}

// allowed reports whether role may perform an action needing need.
func allowed(have, need Role) bool {
	switch need {
	case RoleViewer:
		return have != ""
	case RoleOperator:
		return have == RoleOperator || have == RoleAdmin
	case RoleApprover:
		return have == RoleApprover || have == RoleAdmin
	case RoleAdmin:
		return have == RoleAdmin
	}
	return false
}

// waker wakes long polls and event streams when something changed.
//
// It also spares the leader most reads of an agent's pending steps: a
// poll that found none marks the node idle, stamped with the node's
// notification count and the leadership epoch taken before the read.
// Only the leader creates steps, and it notifies each node it commits a
// step for, so the mark holds until then; a change of leadership (another
// server may have created steps meanwhile) or idleTTL ends every mark.
type waker struct {
	mu    sync.Mutex
	nodes map[string]chan struct{}
	all   chan struct{} // closed and replaced on every broadcast
	gen   map[string]uint64
	epoch uint64
	idle  map[string]idleMark
}

// idleMark is when a read of a node's pending steps found none.
type idleMark struct {
	epoch, gen uint64
	at         time.Time
}

// idleTTL bounds how long a poll trusts an idle mark without reading.
const idleTTL = time.Minute

func newWaker() *waker {
	return &waker{nodes: map[string]chan struct{}{}, all: make(chan struct{}), gen: map[string]uint64{}, idle: map[string]idleMark{}}
}

// stamp is taken before reading node's pending steps.
func (w *waker) stamp(node string, now time.Time) idleMark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return idleMark{epoch: w.epoch, gen: w.gen[node], at: now}
}

// markIdle records that the read stamped m found no pending step.
func (w *waker) markIdle(node string, m idleMark) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idle[node] = m
}

// isIdle reports whether node has had no step since a read found none.
func (w *waker) isIdle(node string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, ok := w.idle[node]
	return ok && m.epoch == w.epoch && m.gen == w.gen[node] && now.Sub(m.at) < idleTTL && !now.Before(m.at)
}

// newEpoch ends every idle mark: leadership was won or lost.
func (w *waker) newEpoch() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.epoch++
	clear(w.idle)
}

// forget drops a removed node.
func (w *waker) forget(node string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.idle, node)
	delete(w.gen, node)
}

// node returns the channel that is signalled when node has new steps.
func (w *waker) node(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.nodes[id]
	if !ok {
		c = make(chan struct{}, 1)
		w.nodes[id] = c
	}
	return c
}

// notify wakes node's poll: the leader committed a step for it.
func (w *waker) notify(id string) {
	w.mu.Lock()
	w.gen[id]++
	delete(w.idle, id)
	w.mu.Unlock()
	c := w.node(id)
	select {
	case c <- struct{}{}:
	default:
	}
}

// changed returns a channel closed at the next broadcast.
func (w *waker) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all
}

func (w *waker) broadcast() {
	w.mu.Lock()
	close(w.all)
	w.all = make(chan struct{})
	w.mu.Unlock()
}
