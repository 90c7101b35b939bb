// Package webhook delivers drover's webhook events: halts, pauses,
// inconclusive gates, approvals requested and given, failure budget
// breaches, stop-the-line raised and lifted, rollouts ended, and drift
// (node.drift). The store writes each event to an outbox in the
// transaction that commits the change (store.WebhookEventOf); this
// package reads the outbox on the leader and POSTs each event to every
// subscription that wants it, signed with HMAC-SHA256, retried with
// capped exponential backoff and jitter until the receiver answers 2xx,
// in order per rollout: event N+1 of a rollout is sent only once N is
// acknowledged, and one rollout's stuck event does not hold back the
// others. Delivery is at least once: a receiver deduplicates by event ID.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// Store is what the deliverer needs of the store.
type Store interface {
	OpenWebhook(ctx context.Context, name string, now time.Time) error
	NextWebhookEvents(ctx context.Context, name string, events []string, limit int) ([]store.OutboxEvent, error)
	AckWebhook(ctx context.Context, name, stream string, id, term int64, now time.Time) error
	PendingWebhook(ctx context.Context, name string, events []string) (store.WebhookPending, error)
	PruneWebhookOutbox(ctx context.Context, before time.Time) (int64, error)
}

var _ Store = store.Store(nil)

// Deps are the deliverer's collaborators.
type Deps struct {
	Store Store
	// Leader reports the leadership term this server holds; false while
	// it does not lead (then nothing is sent).
	Leader func() (term int64, ok bool)
	// Changed, if not nil, returns a channel closed at the next local
	// commit, so that events go out without waiting for the poll.
	Changed  func() <-chan struct{}
	Logger   *slog.Logger
	Registry prometheus.Registerer // nil: metrics are not registered
	Now      func() time.Time      // nil: time.Now
	Client   *http.Client          // nil: a client with Retry.Timeout that follows no redirect
	Rand     *rand.Rand            // jitter; nil: seeded at random
	// Delivered, if not nil, is called after a receiver answered 2xx
	// and before the acknowledgement is stored: the crash tests' hook.
	Delivered func()
}

// parallel bounds the deliveries in flight at once; minGap is the
// shortest time between two reads of the outbox woken by local commits.
const (
	parallel = 8
	minGap   = 50 * time.Millisecond
)

// sub is a validated subscription with its secret read.
type sub struct {
	Subscription
	secret []byte
}

// key names one subscription's stream (a rollout, or "" for fleet-wide).
type key struct{ sub, stream string }

// streamState is the in-memory retry state of one stream: reset on a
// restart, when the next attempt goes out at once (at least once).
type streamState struct {
	inflight bool
	acked    int64 // highest ID acknowledged through this deliverer
	attempts int   // consecutive failures of the head event
	retryAt  time.Time
}

// subStatus is what GET /v1/webhooks shows of this server's attempts.
type subStatus struct {
	sent, failed int64
	lastErr      string
}

// Deliverer sends the outbox's events to the subscriptions.
type Deliverer struct {
	subs   []sub
	retry  Retry
	d      Deps
	log    *slog.Logger
	client *http.Client
	sem    chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[key]*streamState
	status  map[string]*subStatus
	rnd     *rand.Rand

	sent, failed *prometheus.CounterVec
	latency      prometheus.Histogram
}

// New validates subs and retry (after defaults) and builds a
// deliverer; it does no I/O beyond reading secret files.
func New(subs []Subscription, retry Retry, deps Deps) (*Deliverer, error) {
	if err := Validate(subs); err != nil {
		return nil, err
	}
	retry = retry.WithDefaults()
	if err := retry.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Leader == nil {
		return nil, errors.New("webhook: Store and Leader are required")
	}
	d := &Deliverer{retry: retry, d: deps, log: deps.Logger, client: deps.Client, sem: make(chan struct{}, parallel),
		streams: map[key]*streamState{}, status: map[string]*subStatus{}, rnd: deps.Rand}
	for _, s := range subs {
		sec, err := s.secret()
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", s.Name, err)
		}
		if s.Format == "" {
			s.Format = FormatJSON
		}
		d.subs = append(d.subs, sub{Subscription: s, secret: sec})
		d.status[s.Name] = &subStatus{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.d.Now == nil {
		d.d.Now = time.Now
	}
	if d.rnd == nil {
		d.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: retry.Timeout,
			// A redirect is a failure: the configured URL is the one
			// trusted, and a redirect would carry the body elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	d.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_webhook_deliveries_total",
		Help: "Webhook events delivered (acknowledged with a 2xx), by subscription."}, []string{"subscription"})
	d.failed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_webhook_delivery_failures_total",
		Help: "Webhook delivery attempts that failed (no answer, or not 2xx), by subscription; each is retried."}, []string{"subscription"})
	d.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "drover_webhook_delivery_lag_seconds",
		Help:    "Time from an event's commit to its acknowledgement by a receiver.",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}})
	if deps.Registry != nil {
		deps.Registry.MustRegister(d.sent, d.failed, d.latency, &pendingCollector{d: d})
	}
	return d, nil
}

// Run delivers until ctx ends, then waits for the attempts in flight.
// Only while Leader reports leadership does it read the outbox and send.
func (d *Deliverer) Run(ctx context.Context) error {
	defer d.wg.Wait()
	if len(d.subs) == 0 {
		return nil
	}
	opened := false
	var pruned time.Time
	for {
		var changed <-chan struct{}
		if d.d.Changed != nil {
			changed = d.d.Changed()
		}
		if !opened {
			opened = d.open(ctx)
		}
		if term, ok := d.d.Leader(); ok && opened {
			d.pass(ctx, term)
			if now := d.d.Now(); now.Sub(pruned) > time.Hour {
				if n, err := d.d.Store.PruneWebhookOutbox(ctx, now.Add(-d.retry.Retention)); err != nil {
					d.log.Warn("prune webhook outbox", "err", err)
				} else {
					pruned = now
					if n > 0 {
						d.log.Info("webhook outbox pruned", "events", n)
					}
				}
			}
		}
		t := time.NewTimer(d.retry.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
			// Local commits (agents' reports among them) can come by the
			// thousand a second: read the outbox at most every minGap.
			t.Stop()
			t = time.NewTimer(min(minGap, d.retry.Poll))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// open registers every subscription (idempotent): a subscription new to
// the database is sent the events committed from then on.
func (d *Deliverer) open(ctx context.Context) bool {
	for _, s := range d.subs {
		if err := d.d.Store.OpenWebhook(ctx, s.Name, d.d.Now()); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("open webhook subscription", "subscription", s.Name, "err", err)
			}
			return false
		}
	}
	return true
}

// pass starts a delivery of every stream's head event that is not in
// flight and not waiting for its backoff.
func (d *Deliverer) pass(ctx context.Context, term int64) {
	for _, s := range d.subs {
		evs, err := d.d.Store.NextWebhookEvents(ctx, s.Name, s.Events, 100)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("read webhook outbox", "subscription", s.Name, "err", err)
			}
			continue
		}
		now := d.d.Now()
		heads := map[string]bool{}
		for _, ev := range evs {
			heads[ev.Stream] = true
		}
		d.forget(s.Name, heads, len(evs) == 100)
		for _, ev := range evs {
			k := key{s.Name, ev.Stream}
			d.mu.Lock()
			st := d.streams[k]
			if st == nil {
				st = &streamState{}
				d.streams[k] = st
			}
			busy := st.inflight || ev.ID() <= st.acked || now.Before(st.retryAt)
			if !busy {
				select {
				case d.sem <- struct{}{}:
					st.inflight = true
				default:
					busy = true // all slots taken: the next pass
				}
			}
			d.mu.Unlock()
			if busy {
				continue
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() { <-d.sem }()
				d.deliver(ctx, s, ev, term, st)
			}()
		}
	}
}

// forget drops the retry state of the subscription's streams with
// nothing pending (none in heads, unless heads was cut at its limit) and
// nothing in flight, so that the state does not grow with every rollout
// ever notified.
func (d *Deliverer) forget(sub string, heads map[string]bool, cut bool) {
	if cut {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, st := range d.streams {
		if k.sub == sub && !heads[k.stream] && !st.inflight {
			delete(d.streams, k)
		}
	}
}

// deliver makes one attempt to send ev to s and records its outcome:
// acknowledged (the stream's cursor moves on) or failed (the stream
// backs off).
func (d *Deliverer) deliver(ctx context.Context, s sub, ev store.OutboxEvent, term int64, st *streamState) {
	err := d.send(ctx, s, ev)
	if err == nil {
		if d.d.Delivered != nil {
			d.d.Delivered()
		}
		err = d.d.Store.AckWebhook(ctx, s.Name, ev.Stream, ev.ID(), term, d.d.Now())
		if err != nil {
			err = fmt.Errorf("delivered, but not recorded (it will be sent again): %w", err)
		}
	}
	now := d.d.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	st.inflight = false
	ss := d.status[s.Name]
	if err == nil {
		st.acked, st.attempts, st.retryAt = ev.ID(), 0, time.Time{}
		ss.sent++
		ss.lastErr = ""
		d.sent.WithLabelValues(s.Name).Inc()
		d.latency.Observe(now.Sub(ev.Entry.At).Seconds())
		d.log.Debug("webhook delivered", "subscription", s.Name, "event", ev.ID(), "type", ev.Type, "rollout", ev.Stream, "sequence", ev.StreamSeq)
		return
	}
	if ctx.Err() != nil {
		return // shutting down: not the receiver's failure
	}
	st.attempts++
	wait := d.backoff(st.attempts)
	st.retryAt = now.Add(wait)
	ss.failed++
	ss.lastErr = err.Error()
	d.failed.WithLabelValues(s.Name).Inc()
	d.log.Warn("webhook delivery failed", "subscription", s.Name, "event", ev.ID(), "type", ev.Type, "rollout", ev.Stream,
		"sequence", ev.StreamSeq, "attempt", st.attempts, "retry_in", wait, "err", err)
}

// backoff is the wait after the n-th consecutive failure: Min doubled
// n-1 times, capped at Max, drawn uniformly from its upper half.
func (d *Deliverer) backoff(n int) time.Duration {
	w := d.retry.Min
	for i := 1; i < n && w < d.retry.Max; i++ {
		w *= 2
	}
	w = min(w, d.retry.Max)
	return w/2 + time.Duration(d.rnd.Int64N(int64(w/2)+1))
}

// send POSTs ev to s once; nil when the receiver answered 2xx.
func (d *Deliverer) send(ctx context.Context, s sub, ev store.OutboxEvent) error {
	body, err := Body(s.Format, s.Name, ev)
	if err != nil {
		return err
	}
	ts := d.d.Now().Unix()
	ctx, cancel := context.WithTimeout(ctx, d.retry.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "drover-webhook/1")
	req.Header.Set(HeaderEvent, ev.Type)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(ev.ID(), 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(s.secret, ts, body))
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", redact(s.URL), errors.Unwrap(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s", redact(s.URL), resp.Status)
	}
	return nil
}

// ErrUnknown: no subscription has that name.
var ErrUnknown = errors.New("no such webhook subscription")

// Test sends one webhook.test event to the named subscription now, by
// actor, outside the outbox (nothing is stored or retried), and returns
// the receiver's verdict; ErrUnknown for an unknown name.
func (d *Deliverer) Test(ctx context.Context, name, actor string) (api.WebhookTestResult, error) {
	for _, s := range d.subs {
		if s.Name != name {
			continue
		}
		ev := store.OutboxEvent{Type: api.WebhookTest, Entry: store.AuditEntry{At: d.d.Now(), Actor: actor, Action: api.WebhookTest,
			Object: "webhook/" + name, Detail: json.RawMessage(`{"message":"a test delivery from drover: nothing happened"}`)}}
		out := api.WebhookTestResult{Name: name, Target: redact(s.URL), Delivered: true}
		if err := d.send(ctx, s, ev); err != nil {
			out.Delivered, out.Error = false, err.Error()
		}
		d.log.Info("webhook test", "subscription", name, "actor", actor, "delivered", out.Delivered, "err", out.Error)
		return out, nil
	}
	return api.WebhookTestResult{}, fmt.Errorf("%q: %w", name, ErrUnknown)
}

// Status lists the subscriptions with what waits for them and this
// server's delivery counts.
func (d *Deliverer) Status(ctx context.Context) ([]api.Webhook, error) {
	out := make([]api.Webhook, 0, len(d.subs))
	for _, s := range d.subs {
		p, err := d.d.Store.PendingWebhook(ctx, s.Name, s.Events)
		if err != nil {
			return nil, err
		}
		w := api.Webhook{Name: s.Name, Target: redact(s.URL), Format: s.Format, Events: s.Events, Pending: p.Events}
		if w.Events == nil {
			w.Events = []string{}
		}
		if !p.Oldest.IsZero() {
			t := p.Oldest.UTC()
			w.OldestPending = &t
		}
		d.mu.Lock()
		ss := d.status[s.Name]
		w.Sent, w.Failed = ss.sent, ss.failed
		if p.Events > 0 {
			w.LastError = ss.lastErr // an attempt that failed after later ones succeeded is history once nothing waits
		}
		d.mu.Unlock()
		out = append(out, w)
	}
	return out, nil
}

// pendingCollector reports, at scrape time, each subscription's
// undelivered events and the age of the oldest (the delivery lag).
type pendingCollector struct{ d *Deliverer }

var (
	pendingDesc = prometheus.NewDesc("drover_webhook_pending_events",
		"Webhook events committed and not yet acknowledged by the subscription's receiver.", []string{"subscription"}, nil)
	oldestDesc = prometheus.NewDesc("drover_webhook_oldest_pending_seconds",
		"Age of the oldest webhook event not yet acknowledged by the subscription's receiver (0 when none).", []string{"subscription"}, nil)
)

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc; ch <- oldestDesc }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := c.d.d.Now()
	for _, s := range c.d.subs {
		p, err := c.d.d.Store.PendingWebhook(ctx, s.Name, s.Events)
		if err != nil {
			c.d.log.Warn("webhook pending metric", "subscription", s.Name, "err", err)
			continue
		}
		age := 0.0
		if !p.Oldest.IsZero() {
			age = max(0, now.Sub(p.Oldest).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(p.Events), s.Name)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, s.Name)
	}
}
