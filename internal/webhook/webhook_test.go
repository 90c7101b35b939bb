package webhook

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// TestSignVerify: the signature is the HMAC-SHA256 of "timestamp.body",
// hex, prefixed sha256=; a changed body, timestamp or secret fails.
func TestSignVerify(t *testing.T) {
	secret, body := []byte("0123456789abcdef"), []byte(`{"id":1}`)
	// Computed independently: printf '1700000000.{"id":1}' | openssl dgst -sha256 -hmac 0123456789abcdef
	const want = "sha256=4bcaced68dfea90a68df035b89cb7fb26692d899d32a1ccb1b0616cf48e4d1ed"
	got := Sign(secret, 1700000000, body)
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !Verify(secret, 1700000000, body, got) {
		t.Fatal("Verify refused its own signature")
	}
	for name, ok := range map[string]bool{
		"body":      Verify(secret, 1700000000, []byte(`{"id":2}`), got),
		"timestamp": Verify(secret, 1700000001, body, got),
		"secret":    Verify([]byte("another-secret-0000"), 1700000000, body, got),
	} {
		if ok {
			t.Errorf("a changed %s verified", name)
		}
	}
}

func outboxEvent(typ, stream string, detail string) store.OutboxEvent {
	return store.OutboxEvent{Type: typ, Stream: stream, StreamSeq: 4, Entry: store.AuditEntry{Seq: 42,
		At: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), Actor: "bob", Action: "rollout.pause", Object: "rollout/" + stream,
		Rollout: stream, Detail: json.RawMessage(detail)}}
}

// TestBodies: the json body carries the event's place and the audit
// entry's detail; the slack body is one readable line.
func TestBodies(t *testing.T) {
	ev := outboxEvent(api.WebhookRolloutPaused, "web-7", `{"from":"running","to":"paused","reason":"p99 up"}`)
	raw, err := Body(FormatJSON, "ops", ev)
	if err != nil {
		t.Fatal(err)
	}
	var got api.WebhookEvent
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != 42 || got.Type != "rollout.paused" || got.Rollout != "web-7" || got.Sequence != 4 || got.Actor != "bob" ||
		got.Subscription != "ops" || !strings.Contains(string(got.Detail), "p99 up") || got.Summary != "rollout web-7 paused by bob: p99 up" {
		t.Fatalf("json body = %s", raw)
	}
	raw, err = Body(FormatSlack, "ops", ev)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"text":"drover: rollout web-7 paused by bob: p99 up"}` {
		t.Fatalf("slack body = %s", raw)
	}
	line := Summary(outboxEvent(api.WebhookLineStopped, "", `{"reason":"incident 9"}`))
	if line != "the line stopped: nothing is dispatched fleet-wide by bob: incident 9" {
		t.Fatalf("line summary = %q", line)
	}
}

// TestValidate: every mistake is named with the subscription's place and
// name; a good configuration (a secret file too) passes.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("  file-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []Subscription{
		{Name: "ops", URL: "https://hooks.example.com/drover", Secret: "0123456789abcdef0123"},
		{Name: "chat", URL: "https://hooks.slack.com/services/T/B/X", SecretFile: file, Format: "slack", Events: []string{"rollout.halted"}},
	}
	if err := Validate(good); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	bad := []Subscription{
		{URL: "https://a.example/h", Secret: "0123456789abcdef0123"},
		{Name: "dup", URL: "https://a.example/h", Secret: "0123456789abcdef0123"},
		{Name: "dup", URL: "https://a.example/h", Secret: "0123456789abcdef0123"},
		{Name: "ftp", URL: "ftp://a.example/h", Secret: "0123456789abcdef0123"},
		{Name: "creds", URL: "https://u:p@a.example/h", Secret: "0123456789abcdef0123"},
		{Name: "short", URL: "https://a.example/h", Secret: "short"},
		{Name: "both", URL: "https://a.example/h", Secret: "0123456789abcdef0123", SecretFile: file},
		{Name: "none", URL: "https://a.example/h"},
		{Name: "nofile", URL: "https://a.example/h", SecretFile: filepath.Join(dir, "missing")},
		{Name: "typo", URL: "https://a.example/h", Secret: "0123456789abcdef0123", Events: []string{"rollout.halt"}},
		{Name: "fmt", URL: "https://a.example/h", Secret: "0123456789abcdef0123", Format: "xml"},
	}
	err := Validate(bad)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"webhooks[0]: name is required", "webhooks[2] dup: duplicate name", "webhooks[3] ftp: url",
		"webhooks[4] creds: url: no user:password", "webhooks[5] short: secret must be at least 16", "webhooks[6] both: secret and secretFile",
		"webhooks[7] none: secret or secretFile is required", "webhooks[8] nofile: secretFile", `webhooks[9] typo: events: unknown event type "rollout.halt"`,
		`webhooks[10] fmt: format "xml"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "u:p@") {
		t.Errorf("error shows URL credentials: %v", err)
	}
	if err := (Retry{Min: time.Second, Max: time.Millisecond}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "webhookRetry.max") {
		t.Errorf("max below min: %v", err)
	}
}

// TestBackoff: the wait doubles from Min, stays within Max, and is drawn
// from the upper half of its step (jitter).
func TestBackoff(t *testing.T) {
	d := &Deliverer{retry: Retry{Min: 100 * time.Millisecond, Max: time.Second}, rnd: rand.New(rand.NewPCG(1, 2))}
	for n := 1; n <= 12; n++ {
		step := min(100*time.Millisecond<<(n-1), time.Second)
		for range 50 {
			w := d.backoff(n)
			if w < step/2 || w > step {
				t.Fatalf("backoff(%d) = %s, want %s..%s", n, w, step/2, step)
			}
		}
	}
}
