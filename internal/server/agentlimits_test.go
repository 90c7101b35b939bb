package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

func testLimits() *agentLimits {
	return newAgentLimits(DefaultConfig().AgentLimits, prometheus.NewRegistry())
}

func TestReasonCut(t *testing.T) {
	l := testLimits()
	if got := l.reason("disk full"); got != "disk full" {
		t.Fatalf("short reason changed to %q", got)
	}
	long := strings.Repeat("é", 5000) // 10,000 bytes, two per rune
	got := l.reason(long)
	if len(got) > l.cfg.MaxReasonBytes || !utf8.ValidString(got) || !strings.HasPrefix(got, "éé") {
		t.Fatalf("cut reason: %d bytes, valid UTF-8 %v: %.40q", len(got), utf8.ValidString(got), got)
	}
	kept := strings.Count(got, "é") * 2
	if want := fmt.Sprintf(" …[truncated: %d bytes]", 10000-kept); !strings.HasSuffix(got, want) {
		t.Fatalf("cut reason ends %q, want %q", got[len(got)-40:], want)
	}
	if n := counter(t, l.limited.WithLabelValues("reason", "truncated")); n != 1 {
		t.Fatalf("reason truncations counted %g, want 1", n)
	}
}

func TestEvidenceBounded(t *testing.T) {
	l := testLimits()
	small := map[string]any{"snapshot": map[string]any{"openssl": "3.0.11"}}
	raw, err := l.evidence(small)
	if err != nil || string(raw) != `{"snapshot":{"openssl":"3.0.11"}}` {
		t.Fatalf("small evidence = %s, %v", raw, err)
	}
	if raw, _ := l.evidence(nil); raw != nil {
		t.Fatalf("no evidence = %s", raw)
	}
	big := map[string]any{"snapshot": map[string]any{"openssl": "3.0.11"}, "outcome": strings.Repeat("x", 200<<10),
		"log": strings.Repeat("y", 50<<10)}
	raw, err = l.evidence(big)
	if err != nil || len(raw) > l.cfg.MaxEvidenceBytes {
		t.Fatalf("big evidence: %d bytes, %v", len(raw), err)
	}
	var got struct {
		Snapshot  map[string]string `json:"snapshot"`
		Log       string            `json:"log"`
		Outcome   *string           `json:"outcome"`
		Truncated struct {
			Bytes   int            `json:"bytes"`
			SHA256  string         `json:"sha256"`
			Limit   int            `json:"limit"`
			Dropped map[string]int `json:"dropped"`
		} `json:"truncated"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	whole, _ := json.Marshal(big)
	if got.Snapshot["openssl"] != "3.0.11" || len(got.Log) != 50<<10 || got.Outcome != nil ||
		got.Truncated.Bytes != len(whole) || len(got.Truncated.SHA256) != 64 || got.Truncated.Dropped["outcome"] != 200<<10+2 {
		t.Fatalf("big evidence kept %+v", got.Truncated)
	}
	// Thousands of keys: no room to list them; the note stands alone.
	many := map[string]any{}
	for i := range 20000 {
		many[fmt.Sprintf("key-%05d", i)] = i
	}
	raw, err = l.evidence(many)
	if err != nil || len(raw) > l.cfg.MaxEvidenceBytes || !strings.Contains(string(raw), `"truncated"`) {
		t.Fatalf("evidence of many keys: %d bytes, %v", len(raw), err)
	}
}

func TestAgentClockClamped(t *testing.T) {
	l := testLimits()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ in, want time.Time }{
		{time.Time{}, time.Time{}},
		{now.Add(-time.Minute), now.Add(-time.Minute)},
		{time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-l.cfg.ClockWindow)},
		{now.Add(30 * time.Second), now.Add(30 * time.Second)},
		{now.Add(24 * time.Hour), now.Add(l.cfg.ClockSkew)},
	} {
		if got := l.clock("at", c.in, now); !got.Equal(c.want) {
			t.Errorf("clock(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if n := counter(t, l.limited.WithLabelValues("at", "clamped")); n != 2 {
		t.Fatalf("clamps counted %g, want 2", n)
	}
}

func TestBuckets(t *testing.T) {
	b := newBuckets(1, 3) // one a second, burst 3
	now := time.Now()
	for i := range 3 {
		if _, ok := b.take("n1", now); !ok {
			t.Fatalf("take %d within the burst refused", i)
		}
	}
	wait, ok := b.take("n1", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("take past the burst: ok %v, wait %s", ok, wait)
	}
	if _, ok := b.take("n2", now); !ok {
		t.Fatal("another node's bucket was emptied by n1")
	}
	if _, ok := b.take("n1", now.Add(time.Second)); !ok {
		t.Fatal("no token a second later")
	}
	// Full buckets (of nodes quiet since) are swept once the map has
	// doubled: the map follows the nodes active recently.
	for i := range 3000 {
		b.take(fmt.Sprintf("old%d", i), now)
	}
	for i := range 5000 {
		b.take(fmt.Sprintf("new%d", i), now.Add(time.Hour))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.nodes {
		if strings.HasPrefix(id, "old") {
			t.Fatalf("%d buckets kept, among them %s, full for an hour", len(b.nodes), id)
		}
	}
}

// TestAgentInputLimits: over-limit facts are refused with 413 and never
// stored; facts and reports over a node's rate get 429 with Retry-After
// while another node is unaffected; both are counted in
// drover_agent_input_limited_total.
func TestAgentInputLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.AgentLimits.FactsBurst, cfg.AgentLimits.FactsPerMinute = 2, 6
	cfg.AgentLimits.ReportsBurst, cfg.AgentLimits.ReportsPerMinute = 3, 60
	cfg.PollWait = 10 * time.Millisecond // polls without steps answer at once
	clock := &testClock{t: time.Now()}
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(cfg, Deps{Store: st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	agent := func(node string) []string {
		return []string{"Drover-Node", node, api.HeaderProtocol, "1"}
	}
	const tok = "agent-token-0123456789"
	huge := fleet.Facts{OS: fleet.OS{Family: "debian"}, Packages: map[string]string{}}
	for i := range 8000 {
		huge.Packages[fmt.Sprintf("package-%05d", i)] = "1.2.3-4+deb12u1"
	}
	code, ae, _ := call(t, h, "POST", api.PathRegister, tok, api.RegisterRequest{NodeID: "n1", Facts: huge}, agent("n1")...)
	if code != 413 || ae.Code != api.CodeTooLarge || !strings.Contains(ae.Error, "agentMaxFactsBytes") {
		t.Fatalf("register with %d packages: %d %+v", len(huge.Packages), code, ae)
	}
	if _, err := st.GetNode(context.Background(), "n1"); err == nil {
		t.Fatal("a node whose facts were refused was registered")
	}
	facts := func(gen int) *fleet.Facts {
		return &fleet.Facts{OS: fleet.OS{Family: "debian"}, Kernel: fmt.Sprintf("6.1.0-%d", gen)}
	}
	for _, n := range []string{"n1", "n2"} {
		if code, ae, _ := call(t, h, "POST", api.PathRegister, tok, api.RegisterRequest{NodeID: n, Facts: *facts(0)}, agent(n)...); code != 200 {
			t.Fatalf("register %s: %d %+v", n, code, ae)
		}
	}
	// n1 has used one token of two by registering.
	if code, ae, _ := call(t, h, "POST", api.PathPoll, tok, api.PollRequest{NodeID: "n1", Facts: facts(1)}, agent("n1")...); code == 429 {
		t.Fatalf("second facts update refused: %+v", ae)
	}
	body, _ := json.Marshal(api.PollRequest{NodeID: "n1", Facts: facts(2)})
	req := httptest.NewRequest("POST", api.PathPoll, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Drover-Node", "n1")
	req.Header.Set(api.HeaderProtocol, "1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var e api.Error
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != 429 || e.Code != api.CodeRateLimited || rec.Header().Get("Retry-After") != "10" || !strings.Contains(e.Error, "agentFactsPerMinute") {
		t.Fatalf("third facts update: %d %+v, Retry-After %q", rec.Code, e, rec.Header().Get("Retry-After"))
	}
	if n, _ := st.GetNode(context.Background(), "n1"); n.Facts.Kernel != "6.1.0-1" {
		t.Fatalf("refused facts were stored: kernel %s", n.Facts.Kernel)
	}
	// n2 is not slowed by n1.
	if code, ae, _ := call(t, h, "POST", api.PathRegister, tok, api.RegisterRequest{NodeID: "n2", Facts: *facts(1)}, agent("n2")...); code != 200 {
		t.Fatalf("n2 facts update while n1 floods: %d %+v", code, ae)
	}
	clock.Add(10 * time.Second)
	if code, ae, _ := call(t, h, "POST", api.PathPoll, tok, api.PollRequest{NodeID: "n1", Facts: facts(2)}, agent("n1")...); code == 429 {
		t.Fatalf("facts update after the bucket refilled refused: %+v", ae)
	}

	// Reports: the bucket is checked before the body is read, so a
	// refused report costs the store nothing.
	for i := range 3 {
		if code, ae, _ := call(t, h, "POST", api.PathReport, tok, api.StepReport{NodeID: "n1", StepID: "nope", Phase: "running"}, agent("n1")...); code != 409 {
			t.Fatalf("report %d: %d %+v, want 409 (unknown step)", i, code, ae)
		}
	}
	if code, ae, _ := call(t, h, "POST", api.PathReport, tok, "not even JSON", agent("n1")...); code != 429 || ae.Code != api.CodeRateLimited {
		t.Fatalf("fourth report: %d %+v, want 429", code, ae)
	}
	if code, _, _ := call(t, h, "POST", api.PathReport, tok, api.StepReport{NodeID: "n2", StepID: "nope", Phase: "running"}, agent("n2")...); code != 409 {
		t.Fatalf("n2's report while n1 floods: %d", code)
	}
	for _, c := range []struct {
		input, action string
		want          float64
	}{{"facts", "too_large", 1}, {"facts", "rate_limited", 1}, {"report", "rate_limited", 1}} {
		if n := counter(t, s.limits.limited.WithLabelValues(c.input, c.action)); n != c.want {
			t.Errorf("drover_agent_input_limited_total{input=%q,action=%q} = %g, want %g", c.input, c.action, n, c.want)
		}
	}
}

// counter reads a counter's value.
func counter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestLimitsConfig: the limits are read from the configuration file's
// top-level keys and validated with the key named.
func TestLimitsConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.yaml")
	yml := `agentMaxFactsBytes: 131072
agentMaxReasonBytes: 512
agentMaxEvidenceBytes: 32768
agentFactsPerMinute: 2
agentFactsBurst: 4
agentReportsPerMinute: 30
agentReportsBurst: 20
agentClockWindow: 30m
agentClockSkew: 30s
eventStreamsPerIdentity: 2
eventStreamsTotal: 64
eventStreamWriteTimeout: 5s
`
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	if err := cfg.LoadFile(path); err != nil {
		t.Fatal(err)
	}
	want := AgentLimits{MaxFactsBytes: 128 << 10, MaxReasonBytes: 512, MaxEvidenceBytes: 32 << 10, FactsPerMinute: 2, FactsBurst: 4,
		ReportsPerMinute: 30, ReportsBurst: 20, ClockWindow: 30 * time.Minute, ClockSkew: 30 * time.Second}
	if cfg.AgentLimits != want || cfg.StreamLimits != (StreamLimits{PerIdentity: 2, Total: 64, WriteTimeout: 5 * time.Second}) {
		t.Fatalf("loaded %+v %+v", cfg.AgentLimits, cfg.StreamLimits)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.AgentLimits = AgentLimits{}
	cfg.StreamLimits = StreamLimits{PerIdentity: 4, Total: 2}
	err := cfg.Validate()
	for _, key := range []string{"agentMaxFactsBytes", "agentMaxReasonBytes", "agentMaxEvidenceBytes", "agentFactsPerMinute",
		"agentFactsBurst", "agentReportsPerMinute", "agentReportsBurst", "agentClockWindow", "eventStreamsTotal", "eventStreamWriteTimeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("invalid limits: error %v does not name %s", err, key)
		}
	}
}

// TestReportClockAndReason: through the agent channel, a report dated
// 2001 with a 10 KiB reason is accepted; the reason is cut with a marker,
// the node's phase time is clamped to the clock window, and the audit
// entry is dated by the server's clock with the agent's claim kept as
// agent_at. A final report with a long reason is accepted too.
func TestReportClockAndReason(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, base := runTestServer(t, ctx, func(c *Config) {
		c.Tick, c.PollWait = 50*time.Millisecond, 200*time.Millisecond
	})
	st, cfg := srv.st, srv.cfg
	hc := &http.Client{}
	if code, err := agentPost(ctx, hc, base, "n1", api.PathRegister, mustJSON(t, api.RegisterRequest{NodeID: "n1",
		Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}})); code != 200 {
		t.Fatalf("register: %d %v", code, err)
	}
	c := &api.Client{Base: base, Token: alice}
	ro, err := c.CreateRollout(ctx, "p.yaml", testPlan)
	if err != nil {
		t.Fatal(err)
	}
	var step string
	eventually(t, 30*time.Second, "a step for n1", func() bool {
		steps, err := st.PendingSteps(ctx, "n1", time.Now())
		if err == nil && len(steps) > 0 {
			step = steps[0].ID
		}
		return step != ""
	})
	start := time.Now()
	long := strings.Repeat("apt: E: ", 10<<10/8)
	if code, err := agentPost(ctx, hc, base, "n1", api.PathReport, mustJSON(t, api.StepReport{NodeID: "n1", StepID: step,
		Phase: "running", Reason: long, At: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)})); code != 204 {
		t.Fatalf("running report: %d %v", code, err)
	}
	data, err := st.LoadRollout(ctx, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range data.Nodes {
		if n.NodeID == "n1" && (n.State.Phase != "running" || n.State.Since.Before(start.Add(-cfg.AgentLimits.ClockWindow-time.Second))) {
			t.Errorf("n1 after a report dated 2001: %s since %s, want running since no earlier than the clock window", n.State.Phase, n.State.Since)
		}
	}
	if code, err := agentPost(ctx, hc, base, "n1", api.PathReport, mustJSON(t, api.StepReport{NodeID: "n1", StepID: step,
		Phase: "failed", Reason: long + " the end", At: time.Now()})); code != 204 {
		t.Fatalf("final report with a long reason: %d %v", code, err)
	}
	es, err := st.ListAudit(ctx, 0, 1000, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	var phases []store.AuditEntry
	for _, e := range es {
		if e.Action == "node.phase" && e.Actor == "agent:n1" {
			phases = append(phases, e)
		}
	}
	if len(phases) != 2 {
		t.Fatalf("%d node.phase entries by the agent, want 2", len(phases))
	}
	for i, e := range phases {
		var d struct {
			Reason  string `json:"reason"`
			AgentAt string `json:"agent_at"`
		}
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if e.At.Before(start) || len(d.Reason) > cfg.AgentLimits.MaxReasonBytes || !strings.Contains(d.Reason, "…[truncated: ") {
			t.Errorf("entry %d at %s, reason of %d bytes %q", e.Seq, e.At, len(d.Reason), d.Reason[max(0, len(d.Reason)-40):])
		}
		if i == 0 && d.AgentAt != "2001-01-01T00:00:00Z" {
			t.Errorf("running report's agent_at = %q, want the agent's claim", d.AgentAt)
		}
	}
}
