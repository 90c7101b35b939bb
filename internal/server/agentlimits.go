package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
)

// agentLimits applies Config.AgentLimits to the agent channel: what one
// node may send, and how often. A node over a size limit is refused
// (413 too_large: its facts, or a body larger than any valid one) or
// has its input cut (a report's reason and evidence: a report carries a
// step's result, which must not be lost for a long error message); a
// node over a rate is refused (429 rate_limited, Retry-After) before its
// input reaches the store, so that a flooding node costs the others
// little. Times an agent claims are clamped to the server's clock
// window. Every limit applied is counted in
// drover_agent_input_limited_total.
type agentLimits struct {
	cfg     AgentLimits
	facts   *buckets
	reports *buckets
	limited *prometheus.CounterVec // input, action
}

func newAgentLimits(cfg AgentLimits, reg prometheus.Registerer) *agentLimits {
	l := &agentLimits{cfg: cfg,
		facts:   newBuckets(rate.Limit(cfg.FactsPerMinute/60), cfg.FactsBurst),
		reports: newBuckets(rate.Limit(cfg.ReportsPerMinute/60), cfg.ReportsBurst),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_agent_input_limited_total",
			Help: "Agent input refused or cut by the server's limits, by input (facts, report, body, reason, evidence, at, healthySince) and action (too_large, rate_limited, truncated, clamped)."},
			[]string{"input", "action"}),
	}
	reg.MustRegister(l.limited)
	return l
}

// factsBodyBytes is the largest body of a registration or a poll: the
// facts and room for the rest.
func (l *agentLimits) factsBodyBytes() int64 { return int64(l.cfg.MaxFactsBytes) + 64<<10 }

// checkFacts refuses facts whose encoding exceeds MaxFactsBytes, and
// facts sent more often than the node's facts rate.
func (l *agentLimits) checkFacts(w http.ResponseWriter, node string, f fleet.Facts, now time.Time) error {
	b, err := json.Marshal(f)
	if err != nil {
		return badRequest("facts: %v", err)
	}
	if len(b) > l.cfg.MaxFactsBytes {
		l.limited.WithLabelValues("facts", "too_large").Inc()
		return &httpError{status: http.StatusRequestEntityTooLarge, code: api.CodeTooLarge,
			msg: fmt.Sprintf("node %s: facts are %d bytes encoded, over the server's limit of %d (agentMaxFactsBytes)", node, len(b), l.cfg.MaxFactsBytes)}
	}
	return l.take(w, l.facts, "facts", node, now, "agentFactsPerMinute")
}

// checkReport refuses a report over the node's report rate.
func (l *agentLimits) checkReport(w http.ResponseWriter, node string, now time.Time) error {
	return l.take(w, l.reports, "report", node, now, "agentReportsPerMinute")
}

func (l *agentLimits) take(w http.ResponseWriter, b *buckets, input, node string, now time.Time, key string) error {
	wait, ok := b.take(node, now)
	if ok {
		return nil
	}
	l.limited.WithLabelValues(input, "rate_limited").Inc()
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &httpError{status: http.StatusTooManyRequests, code: api.CodeRateLimited,
		msg: fmt.Sprintf("node %s sends %s more often than the server allows (%s %g, burst %d); retry in %ds",
			node, input, key, b.perSecond()*60, b.burst, secs)}
}

// reason cuts a report's reason to MaxReasonBytes, on a rune boundary,
// ending it with a marker of how much was cut.
func (l *agentLimits) reason(s string) string {
	if len(s) <= l.cfg.MaxReasonBytes {
		return s
	}
	l.limited.WithLabelValues("reason", "truncated").Inc()
	return cutString(s, l.cfg.MaxReasonBytes)
}

// cutString shortens s to at most n bytes, ending it with a marker of the
// bytes left out.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	marker := fmt.Sprintf(" …[truncated: %d bytes]", len(s))
	keep := max(0, n-len(marker))
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + fmt.Sprintf(" …[truncated: %d bytes]", len(s)-keep)
}

// evidence encodes a report's evidence within MaxEvidenceBytes: its
// top-level entries in key order while they fit; the ones that do not
// are listed under "truncated" with their sizes, next to the size and
// SHA-256 of the whole evidence as sent.
func (l *agentLimits) evidence(ev map[string]any) (json.RawMessage, error) {
	if ev == nil {
		return nil, nil
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, badRequest("evidence: %v", err)
	}
	if len(raw) <= l.cfg.MaxEvidenceBytes {
		return raw, nil
	}
	l.limited.WithLabelValues("evidence", "truncated").Inc()
	sum := sha256.Sum256(raw)
	cut := map[string]int{}
	note := map[string]any{"bytes": len(raw), "sha256": hex.EncodeToString(sum[:]), "limit": l.cfg.MaxEvidenceBytes, "dropped": cut}
	// Room for the note: every dropped key with a size of up to 10 digits.
	budget := l.cfg.MaxEvidenceBytes - 256
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		budget -= len(k) + 16
	}
	kept := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(ev)) {
		b, _ := json.Marshal(ev[k])
		if n := len(b) + len(k) + 4; n <= budget && k != "truncated" {
			kept[k] = json.RawMessage(b)
			budget -= n
		} else {
			cut[k] = len(b)
		}
	}
	kept["truncated"] = note
	out, err := json.Marshal(kept)
	if err != nil || len(out) > l.cfg.MaxEvidenceBytes {
		// Too many keys to list: keep the note's size and digest alone.
		delete(note, "dropped")
		out, err = json.Marshal(map[string]any{"truncated": note})
	}
	return out, err
}

// clock clamps a time an agent claims to [now-ClockWindow,
// now+ClockSkew]; zero stays zero. input names it for the metric.
func (l *agentLimits) clock(input string, t, now time.Time) time.Time {
	switch {
	case t.IsZero():
		return t
	case t.Before(now.Add(-l.cfg.ClockWindow)):
		l.limited.WithLabelValues(input, "clamped").Inc()
		return now.Add(-l.cfg.ClockWindow)
	case t.After(now.Add(l.cfg.ClockSkew)):
		l.limited.WithLabelValues(input, "clamped").Inc()
		return now.Add(l.cfg.ClockSkew)
	}
	return t
}

// buckets are token buckets, one per node. Full buckets are dropped
// when the map has grown, so that its size follows the nodes active
// recently, not every name ever seen.
type buckets struct {
	limit rate.Limit
	burst int
	mu    sync.Mutex
	nodes map[string]*rate.Limiter
	sweep int // sweep when the map reaches this size
}

func newBuckets(limit rate.Limit, burst int) *buckets {
	return &buckets{limit: limit, burst: burst, nodes: map[string]*rate.Limiter{}, sweep: 1024}
}

func (b *buckets) perSecond() float64 { return float64(b.limit) }

// take takes a token of node's bucket at now; when there is none, it
// returns how long until there is one.
func (b *buckets) take(node string, now time.Time) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.nodes[node]
	if !ok {
		if len(b.nodes) >= b.sweep {
			for id, l := range b.nodes {
				if l.TokensAt(now) >= float64(b.burst) {
					delete(b.nodes, id)
				}
			}
			b.sweep = max(1024, 2*len(b.nodes))
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.nodes[node] = l
	}
	if l.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - l.TokensAt(now)
	return time.Duration(missing / float64(b.limit) * float64(time.Second)), false
}
