//go:build unix

package driver

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTimeoutKillsGrandchildren: a command that started a child of its
// own (as dpkg starts maintainer scripts) is killed with that child when
// it times out, so nothing it started keeps running or holding locks.
func TestTimeoutKillsGrandchildren(t *testing.T) {
	r := &ExecRunner{Timeout: 500 * time.Millisecond, WaitDelay: time.Second}
	out, _, err := r.Run(context.Background(), nil, "sh", "-c", "sleep 60 & echo $!; wait")
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("no grandchild pid in %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs after its parent timed out", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
