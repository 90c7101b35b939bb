//go:build unix

package agent

import (
	"runtime"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestIdleFootprint measures an idle agent: the heap it keeps (HeapInuse
// after GC, agent started minus before) and the CPU time per heartbeat
// (one poll round trip through the in-process fake server, JSON both ways,
// timers). It logs the figures; run with -v to see them. The resident
// memory of agent processes is TestIdleProcessFootprint's (Linux).
func TestIdleFootprint(t *testing.T) {
	const beats = 2000
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.Logger = nil
		var before, idle runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		stop, _ := start(t, cfg)
		time.Sleep(time.Minute) // registered, polling
		synctest.Wait()
		srv.mu.Lock()
		polls0 := len(srv.polls)
		srv.polls = nil
		srv.mu.Unlock()
		var r0, r1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
		time.Sleep(beats * DefaultHeartbeat)
		synctest.Wait()
		syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
		srv.mu.Lock()
		polls := len(srv.polls)
		srv.polls = nil // the fake's own record is not the agent's heap
		srv.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&idle)
		cpu := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) * time.Nanosecond
		t.Logf("idle agent: %d polls in %s of heartbeats (%d before), CPU %s per heartbeat (agent + in-process fake server), heap in use %+d KiB over the test's baseline (%d KiB total)",
			polls, beats*DefaultHeartbeat, polls0, cpu/time.Duration(max(polls, 1)), (int64(idle.HeapInuse)-int64(before.HeapInuse))/1024, idle.HeapInuse/1024)
		if polls < beats-1 || polls > beats+1 {
			t.Errorf("%d polls in %d heartbeats", polls, beats)
		}
		stop()
	})
}
