package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// heapInuse is the heap in use after garbage collection (twice: what
// sync.Pools dropped at the first is freed at the second).
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// heapPeak samples the heap in use (garbage included) until stop is
// closed, and returns the highest sample.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// floodFacts are facts of about size bytes encoded whose every package
// version changes with gen: the worst case for the facts audit.
func floodFacts(size, gen int) fleet.Facts {
	f := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: fmt.Sprintf("6.1.0-%d", gen), Packages: map[string]string{}}
	pad := strings.Repeat("p", 32)
	for i := 0; i*56 < size; i++ {
		f.Packages[fmt.Sprintf("pkg%05d", i)] = fmt.Sprintf("%d.%s", gen, pad)
	}
	return f
}

// agentPost sends one agent-channel request as node (shared agent
// token) and returns the status.
func agentPost(ctx context.Context, c *http.Client, base, node, path string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer agent-token-0123456789")
	req.Header.Set("Drover-Node", node)
	req.Header.Set(api.HeaderProtocol, "1")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFloodCompromisedNode: a compromised node floods the agent channel
// from 6 connections (40 polls with 206 KiB of facts changing every
// time, 20 registrations with 900 KiB of facts, 160 reports with 100 KiB
// of reason and 100 KiB of evidence dated 2001) while an honest node
// polls and reports. The audit log grows by a bounded diff per accepted
// facts update, at the node's facts rate; the server's heap is the same
// after the flood as before; the honest node is never refused.
func TestFloodCompromisedNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, base := runTestServer(t, ctx, func(c *Config) {
		c.PollWait = 50 * time.Millisecond // polls without steps answer soon
	})
	st, cfg := srv.st, srv.cfg
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	for _, n := range []string{"evil", "good"} {
		if code, err := agentPost(ctx, hc, base, n, api.PathRegister, mustJSON(t, api.RegisterRequest{NodeID: n, Facts: floodFacts(1000, 0)})); code != 200 {
			t.Fatalf("register %s: %d %v", n, code, err)
		}
	}
	const factsSize = 240 << 10
	bigFacts := mustJSON(t, api.RegisterRequest{NodeID: "evil", Facts: floodFacts(1<<20, 0)})
	bigReport := mustJSON(t, api.StepReport{NodeID: "evil", StepID: "evil/step", Phase: "failed",
		Reason: strings.Repeat("r", 100<<10), Evidence: map[string]any{"log": strings.Repeat("e", 100<<10)}, At: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)})
	// The polls' bodies, made before measuring: each differs from the
	// one before.
	var polls [][]byte
	for g := 1; g <= 12; g++ {
		f := floodFacts(factsSize, g)
		polls = append(polls, mustJSON(t, api.PollRequest{NodeID: "evil", Facts: &f}))
	}
	factsBytes := len(mustJSON(t, floodFacts(factsSize, 1)))
	head, err := st.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := heapInuse()
	stopPeak := make(chan struct{})
	peak := heapPeak(stopPeak)

	var mu sync.Mutex
	statuses := map[string]map[int]int{} // kind -> status -> count
	count := func(kind string, code int) {
		mu.Lock()
		defer mu.Unlock()
		if statuses[kind] == nil {
			statuses[kind] = map[int]int{}
		}
		statuses[kind][code]++
	}
	// The flood sends a fixed number of requests of each kind, more than
	// the limits let through however fast it goes (at most 20 s): 40
	// polls with facts (10 tokens, 1 more per 10 s), 160 reports (60
	// tokens, 2 more a second), 20 registrations over the size limit.
	floodCtx, endFlood := context.WithTimeout(ctx, 20*time.Second)
	defer endFlood()
	var wg sync.WaitGroup
	flood := func(kind, path string, n int, body func(i int) []byte) {
		defer wg.Done()
		for i := 0; i < n && floodCtx.Err() == nil; i++ {
			if code, err := agentPost(floodCtx, hc, base, "evil", path, body(i)); err == nil {
				count(kind, code)
			}
		}
	}
	for w := range 2 {
		wg.Add(3)
		go flood("register", api.PathRegister, 10, func(int) []byte { return bigFacts })
		go flood("poll", api.PathPoll, 20, func(i int) []byte { return polls[(2*i+w)%len(polls)] })
		go flood("report", api.PathReport, 80, func(int) []byte { return bigReport })
	}
	flooding := make(chan struct{})
	go func() { wg.Wait(); close(flooding) }()
	var honestWorst time.Duration
	honestRefused := 0
honest:
	for i := 0; ; i++ {
		select {
		case <-flooding:
			break honest
		default:
		}
		start := time.Now()
		code, err := agentPost(ctx, hc, base, "good", api.PathPoll, mustJSON(t, api.PollRequest{NodeID: "good"}))
		if err != nil || code != 200 {
			honestRefused++
		}
		if i%2 == 0 {
			if code, err := agentPost(ctx, hc, base, "good", api.PathReport,
				mustJSON(t, api.StepReport{NodeID: "good", StepID: "good/none", Phase: "running", At: time.Now()})); err != nil || code != 409 {
				honestRefused++
			}
		}
		honestWorst = max(honestWorst, time.Since(start))
	}
	close(stopPeak)
	peakHeap := <-peak
	after := heapInuse()

	es, err := st.ListAudit(ctx, head, 100000, "")
	if err != nil {
		t.Fatal(err)
	}
	auditBytes, factsUpdates := 0, 0
	for _, e := range es {
		auditBytes += len(store.AuditRecord(e))
		if e.Action == "node.facts" {
			factsUpdates++
		}
	}
	t.Logf("flood statuses: %v", statuses)
	t.Logf("audit: %d entries, %d bytes; %d facts updates accepted of %d bytes each: %d audit bytes per update (%.1f%% of the facts)",
		len(es), auditBytes, factsUpdates, factsBytes, auditBytes/max(1, factsUpdates), 100*float64(auditBytes)/float64(max(1, factsUpdates)*factsBytes))
	t.Logf("heap in use: %.1f MiB before, %.1f MiB after (GC'd), peak %.1f MiB during; honest node: worst request %s, %d refused",
		mib(before), mib(after), mib(peakHeap), honestWorst, honestRefused)

	runtime.KeepAlive(polls)
	runtime.KeepAlive(bigFacts)
	runtime.KeepAlive(bigReport)
	polled := statuses["poll"]
	if polled[429] == 0 || statuses["register"][413] == 0 || statuses["report"][429] == 0 {
		t.Fatalf("the flood was not limited: %v", statuses)
	}
	// Facts rate: burst 10 (less the registration) and 6 a minute. An
	// accepted poll repeating the facts of the one before audits nothing.
	if polled[200] > cfg.AgentLimits.FactsBurst || factsUpdates > polled[200] {
		t.Errorf("%d facts updates audited, %d polls accepted; want at most the burst of %d", factsUpdates, polled[200], cfg.AgentLimits.FactsBurst)
	}
	if auditBytes > factsUpdates*16<<10+len(es)*2<<10 {
		t.Errorf("audit grew by %d bytes for %d facts updates: not bounded", auditBytes, factsUpdates)
	}
	if after > before+16<<20 {
		t.Errorf("heap grew from %.1f to %.1f MiB", mib(before), mib(after))
	}
	if honestRefused > 0 {
		t.Errorf("the honest node was refused %d times during the flood", honestRefused)
	}
	// The compromised node dated its report 2001; reports of unknown
	// steps write nothing, and every entry of the flood is dated by the
	// server's clock.
	for _, e := range es {
		if e.At.Year() < 2026 {
			t.Errorf("audit entry %d (%s) dated %s", e.Seq, e.Action, e.At)
		}
	}
}

// TestFloodEventStreams: 1,000 event streams that never read, 10 per
// viewer of 100, then a burst of 400 events of ~5 KB. The streams
// beyond the caps (8 per identity, 256 in all) are refused; the 256
// accepted are dropped by the write deadline once their socket buffers
// fill; the server's heap is the same after as before.
func TestFloodEventStreams(t *testing.T) {
	s := newTestServerWith(t, func(c *Config) {
		c.StreamLimits.WriteTimeout = 500 * time.Millisecond
		for i := range 100 {
			c.Users = append(c.Users, User{Name: fmt.Sprintf("viewer%03d", i), Role: RoleViewer, Token: fmt.Sprintf("viewer%03d-token-0123456789", i)})
		}
	})
	seedNodes(t, s, 1)
	var conns atomic.Int64 // the server's open connections
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener = smallBuffers{hs.Listener}
	hs.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Add(-1)
		}
	}
	hs.Start()
	defer hs.Close()
	burst(t, s, "deb-a", 50) // warm the store's caches before measuring
	before := heapInuse()

	status := map[int]int{}
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range 1000 {
		c, code := rawStream(t, hs.Listener.Addr().String(), fmt.Sprintf("viewer%03d-token-0123456789", i/10))
		clients = append(clients, c)
		status[code]++
	}
	open := heapInuse()
	if status[200] != 256 || status[429] != 744 {
		t.Fatalf("streams: %v; want 256 accepted and 744 refused", status)
	}
	if id, all := counter(t, s.streams.refused.WithLabelValues("identity")), counter(t, s.streams.refused.WithLabelValues("server")); id != 64 || all != 680 {
		t.Fatalf("refused %g per identity and %g at the server's cap; want 64 and 680", id, all)
	}

	stopPeak := make(chan struct{})
	peak := heapPeak(stopPeak)
	start := time.Now()
	burst(t, s, "deb-a", 400)
	eventually(t, 30*time.Second, "every non-reading stream dropped", func() bool { return gauge(t, s.streams.gauge) == 0 })
	took := time.Since(start)
	close(stopPeak)
	peakHeap := <-peak
	after := heapInuse()
	// The refused clients hold their connections open and idle, as an
	// attacker would; closing them gives back their buffers.
	for _, c := range clients {
		c.Close()
	}
	eventually(t, 10*time.Second, "the server's connections closed", func() bool { return conns.Load() == 0 })
	closed := heapInuse()
	t.Logf("1,000 streams (%d accepted, %d refused), 400 events of ~5 KB: heap in use %.1f MiB before, %.1f MiB with the 1,000 connections open, "+
		"%.1f MiB after the burst (GC'd; peak %.1f MiB during it), %.1f MiB once the connections closed; all %g accepted streams dropped within %s of the burst's start",
		status[200], status[429], mib(before), mib(open), mib(after), mib(peakHeap), mib(closed), counter(t, s.streams.dropped), took.Round(10*time.Millisecond))
	if n := counter(t, s.streams.dropped); n != 256 {
		t.Errorf("dropped %g streams, want 256", n)
	}
	if after > open+8<<20 || closed > before+8<<20 {
		t.Errorf("heap: %.1f MiB before, %.1f with the connections, %.1f after the burst, %.1f closed: not flat",
			mib(before), mib(open), mib(after), mib(closed))
	}
}
