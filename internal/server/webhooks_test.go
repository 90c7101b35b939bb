package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
	"github.com/drover-dev/drover/internal/webhook"
)

const hookSecret = "hook-secret-0123456789abcdef"

// receiver is a real local HTTP webhook receiver that checks every
// delivery's signature and can be taken down: answering 503, or with
// its listener closed (connection refused), then brought back on the
// same address.
type receiver struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	status   int                         // answer while up; 503 to play down
	refuse   func(api.WebhookEvent) bool // answer 503 to the events it selects
	first    []api.WebhookEvent          // each event at its first arrival, in arrival order
	seen     map[int64]bool
	attempts int
	dups     int      // events received again after a 2xx
	failures []string // bad signatures, bad bodies
	got      chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, status: http.StatusOK, seen: map[int64]bool{}, got: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() { r.down() })
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener: connections are refused.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) setStatus(code int) {
	r.mu.Lock()
	r.status = code
	r.mu.Unlock()
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	ts, err := strconv.ParseInt(req.Header.Get(webhook.HeaderTimestamp), 10, 64)
	switch {
	case err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute:
		r.failures = append(r.failures, "timestamp "+req.Header.Get(webhook.HeaderTimestamp))
	case !webhook.Verify([]byte(hookSecret), ts, body, req.Header.Get(webhook.HeaderSignature)):
		r.failures = append(r.failures, "bad signature "+req.Header.Get(webhook.HeaderSignature))
	}
	if r.status != http.StatusOK {
		w.WriteHeader(r.status)
		return
	}
	var ev api.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil || (ev.ID == 0 && ev.Type != api.WebhookTest) || ev.Type == "" {
		r.failures = append(r.failures, fmt.Sprintf("body %s: %v", body, err))
	}
	if req.Header.Get(webhook.HeaderDelivery) != strconv.FormatInt(ev.ID, 10) || req.Header.Get(webhook.HeaderEvent) != ev.Type {
		r.failures = append(r.failures, "headers do not match the body")
	}
	if ev.Type == api.WebhookTest {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.refuse != nil && r.refuse(ev) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !r.seen[ev.ID] {
		r.seen[ev.ID] = true
		r.first = append(r.first, ev)
	} else {
		r.dups++
	}
	w.WriteHeader(http.StatusNoContent)
	select {
	case r.got <- struct{}{}:
	default:
	}
}

// events returns what arrived, first arrivals in order.
func (r *receiver) events() ([]api.WebhookEvent, int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]api.WebhookEvent(nil), r.first...), r.attempts, append([]string(nil), r.failures...)
}

// waitFor waits until n distinct events arrived.
func (r *receiver) waitFor(t *testing.T, n int, within time.Duration) []api.WebhookEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		evs, attempts, _ := r.events()
		if len(evs) >= n {
			return evs
		}
		select {
		case <-r.got:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d events arrived within %s (%d attempts)", len(evs), n, within, attempts)
		}
	}
}

// checkOrder checks that every stream's events arrived in sequence
// order from 1 without a gap, and returns the types per stream.
func checkOrder(t *testing.T, evs []api.WebhookEvent) map[string][]string {
	t.Helper()
	types := map[string][]string{}
	for _, ev := range evs {
		if want := int64(len(types[ev.Rollout]) + 1); ev.Sequence != want {
			t.Fatalf("stream %q: event %d (%s) arrived with sequence %d, want %d (out of order or a gap)", ev.Rollout, ev.ID, ev.Type, ev.Sequence, want)
		}
		types[ev.Rollout] = append(types[ev.Rollout], ev.Type)
	}
	return types
}

// hookServer runs a server on the SQLite database in dir (or the
// database an edit sets) with one
// webhook subscription to url (short backoff) until the returned stop
// is called; stop waits for Run to return and closes the store.
func hookServer(t *testing.T, dir, url string, edit ...func(*Config)) (*Server, func()) {
	t.Helper()
	return hookServerAt(t, dir, url, nil, edit...)
}

// hookServerAt is hookServer on the clock now (nil: time.Now).
func hookServerAt(t *testing.T, dir, url string, now func() time.Time, edit ...func(*Config)) (*Server, func()) {
	t.Helper()
	cfg := testConfig(t)
	cfg.DataDir = dir
	cfg.Tick = 50 * time.Millisecond
	cfg.Webhooks = []webhook.Subscription{{Name: "ops", URL: url, Secret: hookSecret}}
	cfg.WebhookRetry = webhook.Retry{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Poll: 20 * time.Millisecond, Timeout: time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	st, err := store.Open(context.Background(), cfg.DSN(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Deps{Store: st, Now: now})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- s.Run(ctx, func(string) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			st.Close()
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// makeEvents commits webhook events through the API: per rollout
// approval.requested, approval.given and rollout.ended; and pairs times
// line.stopped then line.lifted. It returns the rollout IDs.
func makeEvents(t *testing.T, s *Server, rollouts, pairs int) []string {
	t.Helper()
	h := s.Handler()
	seedNodes(t, s, 3)
	var ids []string
	for range rollouts {
		status, e, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: testPlan + "approvals:\n  start: 1\n"})
		if status != 201 {
			t.Fatalf("create: %d %v", status, e)
		}
		var ro api.Rollout
		_ = json.Unmarshal(body, &ro)
		ids = append(ids, ro.ID)
		if status, e, _ := call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/approve", bob, nil); status != 200 {
			t.Fatalf("approve: %d %v", status, e)
		}
	}
	for i := range pairs {
		if status, e, _ := call(t, h, "POST", "/v1/line/stop", alice, api.LineRequest{Reason: fmt.Sprintf("incident %d", i)}); status != 200 {
			t.Fatalf("stop the line: %d %v", status, e)
		}
		if status, e, _ := call(t, h, "POST", "/v1/line/lift", "root-token-0123456789a", api.LineRequest{Reason: "fixed"}); status != 200 {
			t.Fatalf("lift the line: %d %v", status, e)
		}
	}
	for _, id := range ids {
		if status, e, _ := call(t, h, "POST", "/v1/rollouts/"+id+"/abort", alice, api.CommandRequest{Reason: "test over"}); status != 200 {
			t.Fatalf("abort: %d %v", status, e)
		}
	}
	return ids
}

// wantStreams checks the types each stream received.
func wantStreams(t *testing.T, got map[string][]string, ids []string, pairs int) {
	t.Helper()
	for _, id := range ids {
		want := []string{api.WebhookApprovalRequested, api.WebhookApprovalGiven, api.WebhookRolloutEnded}
		if fmt.Sprint(got[id]) != fmt.Sprint(want) {
			t.Errorf("rollout %s received %v, want %v", id, got[id], want)
		}
	}
	var line []string
	for range pairs {
		line = append(line, api.WebhookLineStopped, api.WebhookLineLifted)
	}
	if fmt.Sprint(got[""]) != fmt.Sprint(line) {
		t.Errorf("fleet-wide stream received %v, want %v", got[""], line)
	}
	if len(got) != len(ids)+1 {
		t.Errorf("streams received: %v", got)
	}
}

// TestWebhookReceiverDown: a receiver that answers 503, then refuses
// connections, then comes back gets every event afterwards, signed, in
// order per rollout, without a gap. The outage is seconds, not a minute:
// the backoff is capped at 200ms here (the default cap is 5m).
func TestWebhookReceiverDown(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable)
	s, _ := hookServer(t, t.TempDir(), r.url())
	ids := makeEvents(t, s, 2, 3)
	const total = 2*3 + 3*2
	waitAttempts := func(n int) {
		deadline := time.Now().Add(10 * time.Second)
		for _, a, _ := r.events(); a < n; _, a, _ = r.events() {
			if time.Now().After(deadline) {
				t.Fatalf("only %d delivery attempts while the receiver was down", a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitAttempts(6) // several streams retried while 503
	r.down()        // now connection refused
	time.Sleep(time.Second)
	// The status shows the backlog and the last error, to an admin only.
	status, _, body := call(t, s.Handler(), "GET", "/v1/webhooks", "root-token-0123456789a", nil)
	var list api.WebhookList
	if err := json.Unmarshal(body, &list); err != nil || status != 200 || len(list.Webhooks) != 1 {
		t.Fatalf("GET /v1/webhooks: %d %s", status, body)
	}
	if w := list.Webhooks[0]; w.Pending != total || w.OldestPending == nil || w.Failed == 0 || w.LastError == "" || w.Target != "http://"+r.addr {
		t.Fatalf("status while down: %+v", w)
	}
	if status, _, _ := call(t, s.Handler(), "GET", "/v1/webhooks", vera, nil); status != http.StatusForbidden {
		t.Fatalf("a viewer reading the webhooks: %d", status)
	}
	if evs, _, _ := r.events(); len(evs) != 0 {
		t.Fatalf("events accepted while down: %d", len(evs))
	}
	r.setStatus(http.StatusOK)
	r.up()
	evs := r.waitFor(t, total, 10*time.Second)
	wantStreams(t, checkOrder(t, evs), ids, 3)
	if _, attempts, failures := r.events(); len(failures) > 0 {
		t.Fatalf("bad deliveries: %v", failures)
	} else {
		t.Logf("%d events delivered in %d attempts", len(evs), attempts)
	}
	// The deliverer records the acknowledgements: nothing is pending.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, body = call(t, s.Handler(), "GET", "/v1/webhooks", "root-token-0123456789a", nil)
		list = api.WebhookList{}
		_ = json.Unmarshal(body, &list)
		if w := list.Webhooks[0]; w.Pending == 0 && w.LastError == "" && w.OldestPending == nil && w.Sent == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still pending after delivery: %+v", list.Webhooks[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebhookServerRestart: events committed while the receiver was
// down are in the outbox, not in the stopped server's memory: a new
// server on the same database delivers every one, in order.
func TestWebhookServerRestart(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	s, stop := hookServer(t, dir, r.url())
	ids := makeEvents(t, s, 1, 2)
	const total = 3 + 2*2
	stop() // with every event undelivered
	if evs, _, _ := r.events(); len(evs) != 0 {
		t.Fatalf("events accepted while down: %d", len(evs))
	}
	r.setStatus(http.StatusOK)
	hookServer(t, dir, r.url())
	evs := r.waitFor(t, total, 10*time.Second)
	wantStreams(t, checkOrder(t, evs), ids, 2)
	if _, _, failures := r.events(); len(failures) > 0 {
		t.Fatalf("bad deliveries: %v", failures)
	}
	if len(evs) != total {
		t.Fatalf("%d events, want %d", len(evs), total)
	}
}

// TestOpenAPIWebhooks: the OpenAPI file's webhooks section names every
// event type and the signature headers.
func TestOpenAPIWebhooks(t *testing.T) {
	var doc struct {
		Webhooks map[string]struct {
			Post struct {
				Description string `json:"description"`
				Parameters  []struct {
					Name string `json:"name"`
				} `json:"parameters"`
			} `json:"post"`
		} `json:"webhooks"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	post := doc.Webhooks["droverEvent"].Post
	for _, typ := range api.WebhookEventTypes {
		if !strings.Contains(post.Description, typ) {
			t.Errorf("openapi.json webhooks: event type %s not documented", typ)
		}
	}
	var names []string
	for _, p := range post.Parameters {
		names = append(names, p.Name)
	}
	for _, h := range []string{webhook.HeaderEvent, webhook.HeaderDelivery, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		if !slices.Contains(names, h) {
			t.Errorf("openapi.json webhooks: header %s not documented (have %v)", h, names)
		}
	}
}

// TestWebhookSharedPostgres: two servers on one PostgreSQL send each
// event once, whichever server committed it (only the leader delivers);
// when the leader stops, the other takes over and delivers the rest, in
// order.
func TestWebhookSharedPostgres(t *testing.T) {
	dsn := storetest.NewPostgres(t).CreateDB(t)
	key := filepath.Join(t.TempDir(), "audit.key")
	r := newReceiver(t)
	shared := func(id string) func(*Config) {
		return func(cfg *Config) { cfg.ServerID, cfg.Database, cfg.AuditKey = id, dsn, key }
	}
	a, stopA := hookServer(t, t.TempDir(), r.url(), shared("server-a"))
	waitLeader := func(s *Server) {
		deadline := time.Now().Add(20 * time.Second)
		for !s.sched.leading() {
			if time.Now().After(deadline) {
				t.Fatalf("%s never led", s.cfg.ServerID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLeader(a)
	b, _ := hookServer(t, t.TempDir(), r.url(), shared("server-b"))
	ids := makeEvents(t, b, 2, 2) // committed through the server that does not lead
	const first = 2*3 + 2*2
	evs := r.waitFor(t, first, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // time for a second sender to show itself
	if _, _, failures := r.events(); len(failures) > 0 {
		t.Fatalf("bad deliveries: %v", failures)
	}
	r.mu.Lock()
	dups := r.dups
	r.mu.Unlock()
	if dups != 0 {
		t.Fatalf("%d events were delivered twice by two servers", dups)
	}
	wantStreams(t, checkOrder(t, evs), ids, 2)

	// The leader goes; the events committed meanwhile reach the receiver
	// through the other server.
	r.setStatus(http.StatusServiceUnavailable)
	stopA()
	h := b.Handler()
	for i := range 2 {
		if status, e, _ := call(t, h, "POST", "/v1/line/stop", alice, api.LineRequest{Reason: fmt.Sprintf("after failover %d", i)}); status != 200 {
			t.Fatalf("stop the line: %d %v", status, e)
		}
		if status, e, _ := call(t, h, "POST", "/v1/line/lift", "root-token-0123456789a", api.LineRequest{Reason: "fixed"}); status != 200 {
			t.Fatalf("lift the line: %d %v", status, e)
		}
	}
	waitLeader(b)
	r.setStatus(http.StatusOK)
	evs = r.waitFor(t, first+4, 20*time.Second)
	wantStreams(t, checkOrder(t, evs), ids, 4)
}

// TestWebhookConfigFile: the webhooks: and webhookRetry: keys load from
// the configuration file, and a mistake is named by Validate.
func TestWebhookConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drover.yaml")
	yml := `webhooks:
  - name: ops
    url: https://hooks.example.com/drover
    secret: 0123456789abcdef0123
    events: [rollout.halted, line.stopped]
  - name: chat
    url: https://hooks.slack.com/services/T/B/X
    secret: 0123456789abcdef0123
    format: slack
webhookRetry:
  min: 2s
  max: 10m
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	if err := cfg.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhooks) != 2 || cfg.Webhooks[0].Events[1] != "line.stopped" || cfg.Webhooks[1].Format != "slack" ||
		cfg.WebhookRetry.Min != 2*time.Second || cfg.WebhookRetry.Max != 10*time.Minute {
		t.Fatalf("loaded %+v %+v", cfg.Webhooks, cfg.WebhookRetry)
	}
	cfg.Webhooks[1].Format = "teams"
	cfg.WebhookRetry.Max = time.Second
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `webhooks[1] chat: format "teams"`) || !strings.Contains(err.Error(), "webhookRetry.max 1s") {
		t.Fatalf("Validate = %v", err)
	}
}

// TestWebhookStuckRollout: a receiver that refuses one rollout's events
// still gets the other rollout's and the fleet-wide ones; once it takes
// them, the stuck rollout's arrive, in order.
func TestWebhookStuckRollout(t *testing.T) {
	r := newReceiver(t)
	var stuck string
	r.mu.Lock()
	r.refuse = func(ev api.WebhookEvent) bool { return stuck == "" || ev.Rollout == stuck }
	r.mu.Unlock()
	s, _ := hookServer(t, t.TempDir(), r.url())
	ids := makeEvents(t, s, 2, 1)
	r.mu.Lock()
	stuck = ids[0]
	r.mu.Unlock()
	evs := r.waitFor(t, 3+2, 10*time.Second)
	for _, ev := range evs {
		if ev.Rollout == ids[0] {
			t.Fatalf("an event of the refused rollout was accepted: %+v", ev)
		}
	}
	r.mu.Lock()
	r.refuse = nil
	r.mu.Unlock()
	evs = r.waitFor(t, 2*3+2, 10*time.Second)
	wantStreams(t, checkOrder(t, evs), ids, 1)
}

// TestWebhookBudgetBreach runs a real server and a real agent whose
// apply fails: the wave's failure budget (0) is breached, the wave rolled
// back and the rollout halts. The receiver gets budget.breached, then
// rollout.halted, in the rollout's order, with readable summaries.
func TestWebhookBudgetBreach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := newReceiver(t)
	srv, base := runTestServer(t, ctx, func(c *Config) {
		c.Tick, c.PollWait = 100*time.Millisecond, time.Second
		c.Webhooks = []webhook.Subscription{{Name: "ops", URL: r.url(), Secret: hookSecret}}
		c.WebhookRetry = webhook.Retry{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond, Poll: 20 * time.Millisecond}
	})
	st := driver.NewSimState("d1", "debian", "6.1.0-26-amd64", map[string]string{"app": "1.9.0"})
	st.FailApply = func(plan.Action) error { return fmt.Errorf("dpkg: error processing package app (--configure)") }
	reg := &driver.Registry{}
	reg.Register(plan.ActionPackage, driver.NewSim(st))
	startSimAgent(t, ctx, base, srv.cfg.AgentToken, "d1", st, reg, appRunner{&atomic.Bool{}}, fleet.Facts{OS: fleet.OS{Family: "debian"}})
	c := &api.Client{Base: base, Token: alice}
	waitNodes(t, ctx, c, 1)
	ro, err := c.CreateRollout(ctx, "app.yaml", rollbackVerifyPlan)
	if err != nil {
		t.Fatal(err)
	}
	if ro = waitEnded(t, ctx, c, ro.ID, 60*time.Second); ro.State != engine.RolloutHalted {
		t.Fatalf("rollout %s (%s), want halted", ro.State, ro.Reason)
	}
	evs := r.waitFor(t, 2, 10*time.Second)
	got := checkOrder(t, evs)[ro.ID]
	if want := []string{api.WebhookBudgetBreached, api.WebhookRolloutHalted}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rollout events %v, want %v", got, want)
	}
	if s := evs[0].Summary; !strings.Contains(s, "breached its failure budget") || !strings.Contains(s, "1 failed > budget 0") {
		t.Fatalf("summary %q", s)
	}
}

// TestWebhookTestEvent: an admin sends a webhook.test event and reads
// the receiver's verdict; an unknown name is 404, a viewer 403.
func TestWebhookTestEvent(t *testing.T) {
	r := newReceiver(t)
	s, _ := hookServer(t, t.TempDir(), r.url())
	h := s.Handler()
	const root = "root-token-0123456789a"
	status, _, body := call(t, h, "POST", "/v1/webhooks/ops/test", root, nil)
	var res api.WebhookTestResult
	if err := json.Unmarshal(body, &res); err != nil || status != 200 || !res.Delivered || res.Target != "http://"+r.addr {
		t.Fatalf("test delivery: %d %s", status, body)
	}
	r.setStatus(http.StatusServiceUnavailable)
	status, _, body = call(t, h, "POST", "/v1/webhooks/ops/test", root, nil)
	res = api.WebhookTestResult{}
	if err := json.Unmarshal(body, &res); err != nil || status != 200 || res.Delivered || !strings.Contains(res.Error, "503") {
		t.Fatalf("test delivery to a receiver down: %d %s", status, body)
	}
	if status, e, _ := call(t, h, "POST", "/v1/webhooks/nope/test", root, nil); status != 404 || e.Code != api.CodeNotFound {
		t.Fatalf("unknown subscription: %d %v", status, e)
	}
	if status, _, _ := call(t, h, "POST", "/v1/webhooks/ops/test", vera, nil); status != 403 {
		t.Fatalf("a viewer testing a webhook: %d", status)
	}
	if _, _, failures := r.events(); len(failures) > 0 {
		t.Fatalf("bad deliveries: %v", failures)
	}
}

// stepClock is a server clock the test moves on.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestWebhookReceiverDownAMinute: the case, with the default
// retry policy (1s doubling, capped at 5m): a receiver refusing
// connections for a minute of the server's clock gets every event once
// it is back, in order, within one more backoff step. The server's clock
// is moved by the test (one second per 20ms), so the minute takes about
// a second of the test's time; the receiver and the network are real.
func TestWebhookReceiverDownAMinute(t *testing.T) {
	r := newReceiver(t)
	r.down()
	clock := &stepClock{t: time.Now()}
	s, _ := hookServerAt(t, t.TempDir(), r.url(), clock.now, func(c *Config) {
		c.WebhookRetry = webhook.Retry{Poll: 10 * time.Millisecond} // the defaults otherwise
	})
	ids := makeEvents(t, s, 2, 2)
	const total = 2*3 + 2*2
	start := clock.now()
	for clock.now().Sub(start) < time.Minute {
		clock.advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	status, _, body := call(t, s.Handler(), "GET", "/v1/webhooks", "root-token-0123456789a", nil)
	var list api.WebhookList
	if err := json.Unmarshal(body, &list); err != nil || status != 200 || list.Webhooks[0].Pending != total || list.Webhooks[0].Failed == 0 {
		t.Fatalf("after a minute down: %d %s", status, body)
	}
	failed := list.Webhooks[0].Failed
	r.up()
	back := clock.now()
	for {
		if evs, _, _ := r.events(); len(evs) >= total {
			break
		}
		if clock.now().Sub(back) > 3*time.Minute {
			t.Fatalf("not delivered within 3 minutes of the receiver's return")
		}
		clock.advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	took := clock.now().Sub(back)
	evs, _, failures := r.events()
	if len(failures) > 0 {
		t.Fatalf("bad deliveries: %v", failures)
	}
	wantStreams(t, checkOrder(t, evs), ids, 2)
	// After ~60s of failures the next wait is at most 64s (the doubling
	// from 1s: 1+2+4+8+16+32 = 63 before it); twice that leaves room for
	// a loaded machine, whose deliverer lags the test's clock.
	if took > 128*time.Second {
		t.Fatalf("backlog delivered %s after the receiver came back; want within about one backoff step (64s)", took)
	}
	t.Logf("down 60s (server clock), %d failed attempts; all %d events delivered %s after the receiver came back", failed, total, took)
}
