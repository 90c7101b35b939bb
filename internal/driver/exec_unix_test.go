//go:build unix

package driver

import (
	"context"
	"errors"
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

// TestCallerDeadlineKillsProcessGroup: a hung command (sleep 3600, with a
// child of its own) under a runner without a timeout of its own is killed
// with its whole process group when the caller's context ends, as the
// agent's per-step bound (change.timeout) ends it.
func TestCallerDeadlineKillsProcessGroup(t *testing.T) {
	r := &ExecRunner{WaitDelay: time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	out, _, err := r.Run(ctx, nil, "sh", "-c", "sleep 3600 & echo $!; sleep 3600")
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the caller's deadline, got %v", err)
	}
	if took > 3*time.Second {
		t.Errorf("Run returned %s after a 300ms deadline", took)
	}
	pid, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if perr != nil {
		t.Fatalf("no child pid in %q", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("child sleep %d still runs after the deadline", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
