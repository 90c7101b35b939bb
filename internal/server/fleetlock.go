package server

// FleetLock: the reboot-coordination protocol of Zincati (Fedora CoreOS)
// and of Flatcar's FleetLock-speaking update agents, as specified in
// github.com/coreos/zincati docs/development/fleetlock/protocol.md and
// served by github.com/coreos/airlock. A client POSTs
// {"client_params": {"id": NODE, "group": GROUP}} with the header
// fleet-lock-protocol: true to /v1/pre-reboot before it reboots and to
// /v1/steady-state once it is up again; 200 means yes, anything else is
// a JSON {"kind": ..., "value": ...}. Each group is a semaphore of
// maxHolders slots. Here a slot is a node hold (kind fleetlock) in the
// store, so FleetLock reboots and drover's rollouts share the fleet
// disruption budgets, freezes and stop-the-line.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// FleetLockConfig turns the FleetLock endpoint on: it is served on its
// own listener (Listen) so that it can be reached only from the nodes'
// network. FleetLock clients send no credentials (Zincati takes only a
// base URL): a request is honoured only for an enrolled node, from a
// peer in AllowedNetworks, and, with ClientCerts, from a client
// certificate the drover CA issued to that node.
type FleetLockConfig struct {
	Listen string `yaml:"listen"` // host:port; "" serves no FleetLock
	// TLS serves FleetLock over TLS with the server's certificate (the
	// drover CA's, or caCert/caKey's): clients must trust that CA.
	TLS bool `yaml:"tls"`
	// ClientCerts requires, over TLS, a client certificate issued by the
	// drover CA whose subject is the node the request names.
	ClientCerts bool `yaml:"clientCerts"`
	// AllowedNetworks are the CIDRs or IPs requests may come from;
	// required unless Listen is a loopback address.
	AllowedNetworks []string `yaml:"allowedNetworks"`
	// Groups are the FleetLock groups by name; none configured means
	// {default: {maxHolders: 1}}, Zincati's default group.
	Groups map[string]FleetLockGroup `yaml:"groups"`
}

// FleetLockGroup is one FleetLock group: at most MaxHolders of its
// nodes reboot at once, and only nodes Selector (CEL over the node, as
// in plans) matches may take its slots ("" admits every node).
type FleetLockGroup struct {
	MaxHolders int    `yaml:"maxHolders"`
	Selector   string `yaml:"selector"`
}

// fleetLockGroupName is the protocol's group name syntax.
var fleetLockGroupName = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// fleetLockDefaultGroup is the group Zincati uses when none is set.
const fleetLockDefaultGroup = "default"

// groups returns the configured groups, or the default one.
func (c FleetLockConfig) groups() map[string]FleetLockGroup {
	if len(c.Groups) == 0 {
		return map[string]FleetLockGroup{fleetLockDefaultGroup: {MaxHolders: 1}}
	}
	return c.Groups
}

func (c FleetLockConfig) validate() []error {
	if c.Listen == "" {
		if c.TLS || c.ClientCerts || len(c.AllowedNetworks) > 0 || len(c.Groups) > 0 {
			return []error{errors.New("fleetlock: listen is required to serve FleetLock")}
		}
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("fleetlock.listen %q: want host:port: %w", c.Listen, err))
	}
	if c.ClientCerts && !c.TLS {
		errs = append(errs, errors.New("fleetlock.clientCerts needs fleetlock.tls"))
	}
	if _, err := parseNetworks("fleetlock.allowedNetworks", c.AllowedNetworks); err != nil {
		errs = append(errs, err)
	}
	if len(c.AllowedNetworks) == 0 && !loopbackListen(c.Listen) {
		errs = append(errs, fmt.Errorf("fleetlock.listen %q is not loopback: FleetLock clients send no credentials, so set fleetlock.allowedNetworks to the nodes' networks (0.0.0.0/0 and ::/0 to accept any peer)", c.Listen))
	}
	for name, g := range c.Groups {
		if !fleetLockGroupName.MatchString(name) {
			errs = append(errs, fmt.Errorf("fleetlock.groups: group name %q: the protocol allows ^[a-zA-Z0-9.-]+$", name))
		}
		if g.MaxHolders < 1 {
			errs = append(errs, fmt.Errorf("fleetlock.groups.%s.maxHolders %d: must be at least 1", name, g.MaxHolders))
		}
		if g.Selector != "" {
			if _, err := fleet.CompileSelector(g.Selector); err != nil {
				errs = append(errs, fmt.Errorf("fleetlock.groups.%s.selector: %w", name, err))
			}
		}
	}
	return errs
}

// parseNetworks reads CIDRs or single IPs.
func parseNetworks(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for i, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: want a CIDR (10.0.0.0/8) or an IP", key, i, s))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// fleetLock serves the protocol; built by newFleetLock once the
// configuration is valid.
type fleetLock struct {
	s        *Server
	locks    store.FleetLocks
	groups   map[string]FleetLockGroup
	sels     map[string]*fleet.Selector
	networks []netip.Prefix
	log      *slog.Logger

	requests *prometheus.CounterVec

	// refused remembers the last refusal audited per node, so that a
	// client retrying every few minutes audits a refusal once, not at
	// every retry; a success forgets it.
	mu      sync.Mutex
	refused map[string]string
}

func newFleetLock(s *Server) (*fleetLock, error) {
	locks, ok := store.AsFleetLocks(s.st)
	if !ok {
		return nil, fmt.Errorf("fleetlock: store %T keeps no FleetLock slots", s.st)
	}
	fl := &fleetLock{s: s, locks: locks, groups: s.cfg.FleetLock.groups(), sels: map[string]*fleet.Selector{},
		log: s.log.With("component", "fleetlock"), refused: map[string]string{}}
	for name, g := range fl.groups {
		if g.Selector != "" {
			sel, err := fleet.CompileSelector(g.Selector)
			if err != nil {
				return nil, fmt.Errorf("fleetlock group %s: %w", name, err)
			}
			fl.sels[name] = sel
		}
	}
	var err error
	if fl.networks, err = parseNetworks("fleetlock.allowedNetworks", s.cfg.FleetLock.AllowedNetworks); err != nil {
		return nil, err
	}
	fl.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_fleetlock_requests_total",
		Help: "FleetLock requests by endpoint (pre-reboot, steady-state) and result (ok or the refusal's kind)."}, []string{"endpoint", "result"})
	s.reg.MustRegister(fl.requests, &fleetLockCollector{fl: fl,
		holders: prometheus.NewDesc("drover_fleetlock_holders", "Nodes holding a slot of a FleetLock group (rebooting).", []string{"group"}, nil),
		max:     prometheus.NewDesc("drover_fleetlock_max_holders", "A FleetLock group's slots.", []string{"group"}, nil)})
	return fl, nil
}

// fleetLockError is the protocol's error body; status is the HTTP code.
type fleetLockError struct {
	status int
	Kind   string `json:"kind"`
	Value  string `json:"value"`
}

func (e *fleetLockError) Error() string { return e.Kind + ": " + e.Value }

func flErr(status int, kind, format string, args ...any) *fleetLockError {
	return &fleetLockError{status: status, Kind: kind, Value: fmt.Sprintf(format, args...)}
}

// fleetLockRequest is the protocol's body.
type fleetLockRequest struct {
	ClientParams *struct {
		ID    string `json:"id"`
		Group string `json:"group"`
	} `json:"client_params"`
}

// maxFleetLockBody bounds a request body: the protocol's is a few dozen
// bytes.
const maxFleetLockBody = 4 << 10

func (fl *fleetLock) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pre-reboot", fl.serve("pre-reboot", fl.preReboot))
	mux.HandleFunc("POST /v1/steady-state", fl.serve("steady-state", fl.steadyState))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeFleetLockError(w, flErr(http.StatusNotFound, "not_found",
			"%s %s: FleetLock serves POST /v1/pre-reboot and POST /v1/steady-state", r.Method, r.URL.Path))
	})
	return mux
}

func writeFleetLockError(w http.ResponseWriter, e *fleetLockError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(e)
}

// serve checks the peer, the protocol header and the body, then runs op
// for the node and group the body names.
func (fl *fleetLock) serve(endpoint string, op func(ctx context.Context, req store.FleetLockRequest) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := fl.identify(r)
		if err == nil {
			err = op(r.Context(), req)
		}
		var fe *fleetLockError
		var refusal *store.FleetLockRefusal
		switch {
		case err == nil:
			fl.requests.WithLabelValues(endpoint, "ok").Inc()
			fl.forget(req.Node)
			w.WriteHeader(http.StatusOK)
			return
		case errors.As(err, &fe):
		case errors.As(err, &refusal):
			fe = flErr(http.StatusConflict, refusal.Kind, "%s", refusal.Reason)
			if refusal.Kind == store.FleetLockUnknownNode {
				fe.status = http.StatusForbidden
			}
			fl.auditRefusal(r.Context(), req, endpoint, refusal)
		default:
			fl.log.Error("fleetlock request failed", "endpoint", endpoint, "node", req.Node, "group", req.Group, "err", err)
			fe = flErr(http.StatusInternalServerError, "internal_error", "drover could not record the request; retry later")
		}
		fl.requests.WithLabelValues(endpoint, fe.Kind).Inc()
		fl.log.Info("fleetlock request refused", "endpoint", endpoint, "node", req.Node, "group", req.Group, "peer", r.RemoteAddr,
			"kind", fe.Kind, "reason", fe.Value)
		writeFleetLockError(w, fe)
	}
}

// identify checks everything a request carries before the store sees it.
func (fl *fleetLock) identify(r *http.Request) (store.FleetLockRequest, error) {
	req := store.FleetLockRequest{Peer: r.RemoteAddr, Now: fl.s.now()}
	if len(fl.networks) > 0 {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !fl.allowed(ap.Addr()) {
			return req, flErr(http.StatusForbidden, "forbidden_network", "peer %s is not in fleetlock.allowedNetworks", r.RemoteAddr)
		}
	}
	if h := r.Header.Get("fleet-lock-protocol"); h != "true" {
		return req, flErr(http.StatusBadRequest, "missing_protocol_header", "header fleet-lock-protocol: true is required (got %q)", h)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFleetLockBody+1))
	if err != nil {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", "body: %v", err)
	}
	if len(body) > maxFleetLockBody {
		return req, flErr(http.StatusRequestEntityTooLarge, "invalid_client_identity", "body: larger than %d bytes", maxFleetLockBody)
	}
	var in fleetLockRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", "body is not a FleetLock request: %v", err)
	}
	if in.ClientParams == nil {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", `body has no "client_params" object`)
	}
	req.Node, req.Group = in.ClientParams.ID, in.ClientParams.Group
	if req.Node == "" {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", `client_params.id is empty: set it to the node's drover node ID`)
	}
	if req.Group == "" {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", "client_params.group is empty")
	}
	if err := fleet.ValidID(req.Node); err != nil {
		return req, flErr(http.StatusBadRequest, "invalid_client_identity", "client_params.id: %v", err)
	}
	g, ok := fl.groups[req.Group]
	if !ok {
		return req, flErr(http.StatusBadRequest, "unknown_group", "FleetLock group %q is not configured (fleetlock.groups: %s)", req.Group, strings.Join(fl.groupNames(), ", "))
	}
	req.MaxHolders, req.Selector = g.MaxHolders, fl.sels[req.Group]
	if fl.s.cfg.FleetLock.ClientCerts {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return req, flErr(http.StatusUnauthorized, "client_certificate_required", "a client certificate of the drover CA for node %s is required", req.Node)
		}
		id, err := fl.s.authenticateCert(r) // the agent channel's checks: CA, validity, the node's current certificate
		if err != nil {
			return req, flErr(http.StatusUnauthorized, "client_certificate_refused", "%v", err)
		}
		if id.agent != req.Node {
			return req, flErr(http.StatusForbidden, "client_certificate_mismatch", "the client certificate is node %s's, the request names node %s", id.agent, req.Node)
		}
	}
	return req, nil
}

func (fl *fleetLock) allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range fl.networks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (fl *fleetLock) groupNames() []string {
	out := make([]string, 0, len(fl.groups))
	for name := range fl.groups {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (fl *fleetLock) preReboot(ctx context.Context, req store.FleetLockRequest) error {
	already, err := fl.locks.FleetLockAcquire(ctx, req)
	if err != nil {
		return err
	}
	if !already {
		fl.log.Info("fleetlock slot taken", "node", req.Node, "group", req.Group, "peer", req.Peer)
		fl.changed(ctx)
	}
	return nil
}

func (fl *fleetLock) steadyState(ctx context.Context, req store.FleetLockRequest) error {
	released, err := fl.locks.FleetLockRelease(ctx, req.Node, req.Group, req.Peer, req.Now)
	if err != nil {
		return err
	}
	if released {
		fl.log.Info("fleetlock slot released", "node", req.Node, "group", req.Group, "peer", req.Peer)
		fl.changed(ctx)
	}
	return nil
}

// changed makes rollouts (and the holders metric) see the hold at once.
func (fl *fleetLock) changed(ctx context.Context) {
	fl.s.fleetChanged()
	if _, err := fl.s.fleet.view(ctx, true); err != nil {
		fl.log.Warn("fleet view not refreshed", "err", err)
	}
}

// auditRefusal audits a refusal unless it repeats the last one audited
// for the node. Refusals of unknown nodes are logged and counted but not
// audited: anyone who can reach the listener could otherwise grow the
// audit log with made-up node IDs.
func (fl *fleetLock) auditRefusal(ctx context.Context, req store.FleetLockRequest, endpoint string, r *store.FleetLockRefusal) {
	if r.Kind == store.FleetLockUnknownNode {
		return
	}
	key := endpoint + "\x00" + req.Group + "\x00" + r.Kind + "\x00" + r.Reason
	fl.mu.Lock()
	same := fl.refused[req.Node] == key
	fl.refused[req.Node] = key
	fl.mu.Unlock()
	if same {
		return
	}
	if err := fl.locks.FleetLockRefused(ctx, req, endpoint, r); err != nil {
		fl.log.Warn("fleetlock refusal not audited", "node", req.Node, "err", err)
	}
}

func (fl *fleetLock) forget(node string) {
	fl.mu.Lock()
	delete(fl.refused, node)
	fl.mu.Unlock()
}

// listen serves FleetLock on its listener until stop is called.
func (fl *fleetLock) listen(ctx context.Context, ready func(addr string)) (stop func(), err error) {
	cfg := fl.s.cfg.FleetLock
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fleetlock listen %s: %w", cfg.Listen, err)
	}
	if cfg.TLS {
		tc := fl.s.TLSConfig()
		if tc == nil {
			ln.Close()
			return nil, errors.New("fleetlock.tls: the server has no CA to serve TLS with")
		}
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{Handler: fl.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(fl.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fl.log.Error("fleetlock listener failed", "addr", ln.Addr().String(), "err", err)
		}
	}()
	fl.log.Info("fleetlock listening", "addr", ln.Addr().String(), "tls", cfg.TLS, "groups", strings.Join(fl.groupNames(), ","))
	if ready != nil {
		ready(ln.Addr().String())
	}
	return func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}, nil
}

// fleetLockCollector reports each group's holders from the latest fleet
// view (refreshed after every FleetLock change and every scheduler
// tick).
type fleetLockCollector struct {
	fl           *fleetLock
	holders, max *prometheus.Desc
}

func (c *fleetLockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.holders
	ch <- c.max
}

func (c *fleetLockCollector) Collect(ch chan<- prometheus.Metric) {
	fc := c.fl.s.fleet
	fc.mu.Lock()
	fv := fc.cur
	fc.mu.Unlock()
	n := map[string]int{}
	if fv != nil {
		for _, h := range fv.state.Holds {
			if h.Kind == disruption.HolderFleetLock {
				n[h.Holder]++
			}
		}
	}
	for name, g := range c.fl.groups {
		ch <- prometheus.MustNewConstMetric(c.holders, prometheus.GaugeValue, float64(n[name]), name)
		ch <- prometheus.MustNewConstMetric(c.max, prometheus.GaugeValue, float64(g.MaxHolders), name)
	}
}

// releaseFleetLock releases a node's FleetLock slot for an admin: a node
// that never came back from its reboot would hold it, and a budget slot
// with it, for good. Only admins: it loosens the fleet budgets.
func (s *Server) releaseFleetLock(w http.ResponseWriter, r *http.Request, id identity) error {
	locks, ok := store.AsFleetLocks(s.st)
	if !ok {
		return &httpError{status: http.StatusNotImplemented, code: api.CodeInternal, msg: "this store keeps no FleetLock slots"}
	}
	var req api.ReleaseFleetLockRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return badRequest("releasing a FleetLock slot needs a reason")
	}
	h, err := locks.FleetLockBreak(r.Context(), r.PathValue("id"), id.user, req.Reason, s.now())
	if err != nil {
		return err
	}
	s.log.Warn("fleetlock slot released by an operator", "node", h.Node, "group", h.Holder, "by", id.user, "reason", req.Reason)
	s.fleetChanged()
	writeJSON(w, http.StatusOK, api.Hold{Node: h.Node, Kind: h.Kind, Holder: h.Holder, Name: h.Name, Since: h.Since})
	return nil
}
