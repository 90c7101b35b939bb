package server

import (
	"runtime"
	"testing"
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
