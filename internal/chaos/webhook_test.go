package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/webhook"
)

// TestWebhookCrash: a real `drover server` killed with SIGKILL after a
// receiver acknowledged an event but before the acknowledgement was
// stored, with later events committed and not yet sent. The next life
// sends the acknowledged event again (at least once) and then every
// other, in order, without a gap.
func TestWebhookCrash(t *testing.T) {
	bin := buildDrover(t)
	dir := t.TempDir()
	const secret = "chaos-webhook-secret-0123456789"

	var mu sync.Mutex
	var received []api.WebhookEvent // every 2xx-answered delivery, in arrival order
	var bad []string
	up := false
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		ts, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderTimestamp), 10, 64)
		if !webhook.Verify([]byte(secret), ts, body, r.Header.Get(webhook.HeaderSignature)) {
			bad = append(bad, "bad signature")
		}
		if !up {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev api.WebhookEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			bad = append(bad, err.Error())
		}
		received = append(received, ev)
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()

	cfg := serverConfig{Listen: freePort(t), DataDir: filepath.Join(dir, "server"), ServerID: "chaos",
		Lease: 10 * time.Second, PollWait: 2 * time.Second, Tick: 100 * time.Millisecond,
		Extra: fmt.Sprintf("webhooks:\n  - name: ops\n    url: %s/hook\n    secret: %s\nwebhookRetry:\n  min: 20ms\n  max: 200ms\n  poll: 50ms\n", recv.URL, secret)}
	p := newServerProc(t, bin, dir, cfg)
	if err := p.start("webhook-delivered=3"); err != nil {
		t.Fatal(err)
	}
	c := p.client()
	ctx := t.Context()
	const pairs = 3
	for i := range pairs {
		if _, err := c.StopLine(ctx, fmt.Sprintf("incident %d", i)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.LiftLine(ctx, "fixed"); err != nil {
			t.Fatal(err)
		}
	}
	// All six committed while the receiver is down; now it comes up and
	// the server dies acknowledging the third.
	mu.Lock()
	up = true
	mu.Unlock()
	select {
	case <-p.exited():
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not die at webhook-delivered=3")
	}
	if !p.killedBySIGKILL() {
		t.Fatalf("the server ended %s, not by SIGKILL", p.exitState())
	}
	mu.Lock()
	if len(received) != 3 {
		t.Fatalf("%d events acknowledged before the crash, want 3", len(received))
	}
	mu.Unlock()
	if err := p.start(""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= 2*pairs+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries after the restart, want %d", n, 2*pairs+1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // nothing more should come
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("bad deliveries: %v", bad)
	}
	var seqs []int64
	for _, ev := range received {
		seqs = append(seqs, ev.Sequence)
	}
	// 1, 2, 3 (the crash), 3 again (never recorded), 4, 5, 6.
	if want := fmt.Sprint([]int64{1, 2, 3, 3, 4, 5, 6}); fmt.Sprint(seqs) != want {
		t.Fatalf("sequences received %v, want %s", seqs, want)
	}
	for i, ev := range received {
		want := api.WebhookLineStopped
		if ev.Sequence%2 == 0 {
			want = api.WebhookLineLifted
		}
		if ev.Type != want {
			t.Fatalf("delivery %d: %s, want %s", i, ev.Type, want)
		}
	}
}
