package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// newTestServerWith is newTestServer with cfg changed by edit.
func newTestServerWith(t testing.TB, edit func(*Config)) *Server {
	t.Helper()
	cfg := testConfig(t)
	edit(&cfg)
	st, err := store.Open(context.Background(), filepath.Join(cfg.DataDir, "drover.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(cfg, Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runTestServer starts newTestServerWith(t, edit) on a loopback port for
// the test's life; it returns the server and its base URL.
func runTestServer(t testing.TB, ctx context.Context, edit func(*Config)) (*Server, string) {
	t.Helper()
	srv := newTestServerWith(t, edit)
	runCtx, stop := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(runCtx, func(a string) { ready <- a }) }()
	t.Cleanup(func() { stop(); <-done })
	return srv, "http://" + <-ready
}

// openStream opens an event stream as token; it returns the answer's
// status and, on 200, a reader of the stream's lines.
func openStream(t *testing.T, ctx context.Context, base, token, query string, hdr ...string) (int, *bufio.Scanner, func()) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil, func() {}
	}
	return 200, bufio.NewScanner(resp.Body), func() { resp.Body.Close() }
}

// nextID reads the stream up to its next event and returns its id.
func nextID(t *testing.T, sc *bufio.Scanner) int64 {
	t.Helper()
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
	return 0
}

// TestEventStreamStartsAtHead: a stream without a position starts at
// the head of the log (no replay); ?after= and Last-Event-ID replay
// from the position given, Last-Event-ID first.
func TestEventStreamStartsAtHead(t *testing.T) {
	s := newTestServer(t)
	seedNodes(t, s, 3) // audit entries 1..3
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	_, head, closeHead := openStream(t, ctx, hs.URL, vera, "")
	defer closeHead()
	_, all, closeAll := openStream(t, ctx, hs.URL, vera, "?after=0")
	defer closeAll()
	_, resumed, closeResumed := openStream(t, ctx, hs.URL, vera, "?after=0", "Last-Event-ID", "2") // a reconnecting EventSource
	defer closeResumed()
	if _, err := s.st.SetNodeLabels(ctx, "deb-a", map[string]string{"zone": "b"}, 0, "alice"); err != nil {
		t.Fatal(err)
	}
	s.wake.broadcast()
	if id := nextID(t, head); id != 4 {
		t.Errorf("stream without a position began with entry %d, want 4 (the first new one)", id)
	}
	if id := nextID(t, all); id != 1 {
		t.Errorf("stream after=0 began with entry %d, want 1", id)
	}
	if id := nextID(t, resumed); id != 3 {
		t.Errorf("stream with Last-Event-ID 2 began with entry %d, want 3", id)
	}
	if code, _, _ := openStream(t, ctx, hs.URL, vera, "?after=-1"); code != 400 {
		t.Errorf("after=-1: %d, want 400", code)
	}
}

// TestEventStreamCaps: streams beyond the per-identity cap or the
// server's cap are refused with 429; a stream that ends frees its slot.
func TestEventStreamCaps(t *testing.T) {
	s := newTestServerWith(t, func(c *Config) { c.StreamLimits.PerIdentity, c.StreamLimits.Total = 2, 3 })
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	open := func(token string, want int) {
		t.Helper()
		code, _, c := openStream(t, ctx, hs.URL, token, "")
		closers = append(closers, c)
		if code != want {
			t.Fatalf("stream: %d, want %d", code, want)
		}
	}
	open(vera, 200)
	open(vera, 200)
	code, ae, _ := callStream(t, hs.URL, vera)
	if code != 429 || ae.Code != api.CodeRateLimited || !strings.Contains(ae.Error, "eventStreamsPerIdentity") {
		t.Fatalf("third stream of one identity: %d %+v", code, ae)
	}
	open(bob, 200)
	code, ae, _ = callStream(t, hs.URL, alice)
	if code != 429 || !strings.Contains(ae.Error, "eventStreamsTotal") {
		t.Fatalf("stream past the server's cap: %d %+v", code, ae)
	}
	closers[0]()
	eventually(t, 10*time.Second, "a closed stream frees its slot", func() bool { return gauge(t, s.streams.gauge) == 2 })
	open(alice, 200)
	if n := counter(t, s.streams.refused.WithLabelValues("identity")) + counter(t, s.streams.refused.WithLabelValues("server")); n != 2 {
		t.Errorf("refusals counted %g, want 2", n)
	}
}

// callStream opens a stream expecting a refusal and returns its error.
func callStream(t *testing.T, base, token string) (int, api.Error, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return 200, api.Error{}, nil
	}
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e, b
}

// TestEventStreamDropsNonReader: a client that stops reading is dropped
// once a write blocks past the write timeout, while a reading client on
// the same server gets every event.
func TestEventStreamDropsNonReader(t *testing.T) {
	s := newTestServerWith(t, func(c *Config) { c.StreamLimits.WriteTimeout = 200 * time.Millisecond })
	seedNodes(t, s, 1)
	hs := smallBufferServer(s.Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	stuck, code := rawStream(t, hs.Listener.Addr().String(), vera)
	defer stuck.Close()
	if code != 200 {
		t.Fatalf("stream: %d", code)
	}
	_, reader, closeReader := openStream(t, ctx, hs.URL, bob, "")
	defer closeReader()
	eventually(t, 10*time.Second, "both streams open", func() bool { return gauge(t, s.streams.gauge) == 2 })
	head, _ := s.st.AuditHead(ctx)
	const updates = 400 // ~5 KB each: far more than the socket buffers hold
	got := make(chan error, 1)
	go func() {
		want := head + 1
		for want <= head+updates && reader.Scan() {
			v, ok := strings.CutPrefix(reader.Text(), "id: ")
			if !ok {
				continue
			}
			if v != strconv.FormatInt(want, 10) {
				got <- fmt.Errorf("reading stream got entry %s, want %d", v, want)
				return
			}
			want++
		}
		if want <= head+updates {
			got <- fmt.Errorf("reading stream ended before entry %d: %v", want, reader.Err())
			return
		}
		got <- nil
	}()
	burst(t, s, "deb-a", updates)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the non-reading stream dropped", func() bool { return gauge(t, s.streams.gauge) == 1 })
	if n := counter(t, s.streams.dropped); n != 1 {
		t.Fatalf("drops counted %g, want 1", n)
	}
}

// rawStream opens an event stream on a bare connection and reads only
// the answer's header, whose status it returns: the stream is never read.
func rawStream(t testing.TB, addr, token string) (net.Conn, int) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: drover\r\nAuthorization: Bearer %s\r\n\r\n", token)
	var hdr []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(hdr), "\r\n\r\n") {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("read header: %v (so far %q)", err, hdr)
		}
		hdr = append(hdr, b[0])
	}
	code := 0
	if _, err := fmt.Sscanf(string(hdr), "HTTP/1.1 %d", &code); err != nil {
		t.Fatalf("stream answer: %q", hdr)
	}
	return c, code
}

// burst appends n node.facts entries of about 5 KB each (50 package
// changes) and wakes the streams.
func burst(t testing.TB, s *Server, node string, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		f := fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Packages: map[string]string{}}
		for p := range 50 {
			f.Packages[fmt.Sprintf("package-%02d-with-a-long-name", p)] = fmt.Sprintf("%d.0-%s", i, strings.Repeat("v", 20))
		}
		if _, err := s.st.UpsertNode(context.Background(), store.NodeRecord{ID: node, Facts: f, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 0 {
			s.wake.broadcast()
		}
	}
	s.wake.broadcast()
}

// smallBufferServer serves h on loopback with 32 KiB socket send
// buffers (no autotuning up to megabytes): a client that does not read
// blocks the server's writes after a little data, as over a real
// network, without the test writing megabytes per stream.
func smallBufferServer(h http.Handler) *httptest.Server {
	hs := httptest.NewUnstartedServer(h)
	hs.Listener = smallBuffers{hs.Listener}
	hs.Start()
	return hs
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(32 << 10)
	}
	return c, err
}

func gauge(t testing.TB, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// eventually polls cond every 20ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
