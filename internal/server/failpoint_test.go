package server

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestParseFailpoints(t *testing.T) {
	if fp, err := parseFailpoints(""); fp != nil || err != nil {
		t.Fatalf("empty spec: got %v, %v; want nil, nil", fp, err)
	}
	var none *failpoints
	none.hit(fpAfterCommit) // a nil set is a no-op
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		if _, err := parseFailpoints("after-commit=1"); err == nil {
			t.Fatal("failpoints accepted on an OS without SIGKILL")
		}
		return
	}
	for _, bad := range []string{"nope=1", "after-commit=0", "after-commit=x", "after-commit=-2"} {
		if _, err := parseFailpoints(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	fp, err := parseFailpoints(" after-decide=3, during-poll ")
	if err != nil {
		t.Fatal(err)
	}
	var killed []string
	fp.kill = func(point string, hit int) { killed = append(killed, point) }
	for range 5 {
		fp.hit(fpAfterDecide)
		fp.hit(fpDuringPoll)
		fp.hit(fpAfterCommit) // not armed
	}
	if want := []string{fpDuringPoll, fpAfterDecide}; len(killed) != 2 || killed[0] != want[0] || killed[1] != want[1] {
		t.Fatalf("killed at %v, want %v (each once, at its armed hit)", killed, want)
	}
}

func TestConfigRejectsUnknownFailpoint(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AgentToken = "agent-token-0123456789"
	cfg.Users = []User{{Name: "a", Role: RoleAdmin, Token: "0123456789abcdef"}}
	if err := cfg.LoadEnv(func(k string) string {
		if k == "DROVER_FAILPOINTS" {
			return "after-comit=1"
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a misspelt failpoint was accepted")
	}
}

// TestFailpointClock: "clock=PATH" shifts the server's clock by the
// duration in the file, read again as the file changes; without the
// pseudo-failpoint the clock is the one given.
func TestFailpointClock(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("failpoints are unix-only")
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return base }
	if _, err := parseFailpoints("clock="); err == nil {
		t.Fatal("clock= without a path accepted")
	}
	var none *failpoints
	if got := none.offsetClock(now)(); !got.Equal(base) {
		t.Fatalf("no failpoints: %s, want %s", got, base)
	}
	file := filepath.Join(t.TempDir(), "clock")
	fp, err := parseFailpoints("clock=" + file + ",after-commit=2")
	if err != nil {
		t.Fatal(err)
	}
	clock := fp.offsetClock(now)
	if got := clock(); !got.Equal(base) {
		t.Fatalf("no clock file: %s, want %s", got, base)
	}
	for _, off := range []time.Duration{90 * time.Second, -2 * time.Minute} {
		if err := os.WriteFile(file, []byte(off.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
		if got := clock(); !got.Equal(base.Add(off)) {
			t.Fatalf("offset %s: %s, want %s", off, got, base.Add(off))
		}
	}
}
