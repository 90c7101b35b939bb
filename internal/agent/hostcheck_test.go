package agent

import (
	"fmt"
	"testing"
	"testing/fstest"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
)

// TestHostCheckAgainstSnapshot: the agent journals a snapshot of the
// host before the step's first action, and its mtu probe compares with
// it after the step: the MTU the step changed fails the step, with the
// old and new values. The node's /sys is a file system in memory (the
// build host's MTUs cannot be changed by a test); the MTUs are those of
// drover-fleet:bookworm's interfaces.
func TestHostCheckAgainstSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		fsys := fstest.MapFS{
			"sys/class/net/eth0/mtu": {Data: []byte("1400\n")},
			"sys/class/net/lo/mtu":   {Data: []byte("65536\n")},
		}
		cfg := n.config(t, srv)
		cfg.HostCheck = &hostcheck.Host{FS: fsys, GOOS: "linux"}
		cfg.afterAppend = func(r record) {
			// The step's action changes eth0's MTU as it is applied.
			if r.Type == recAction && r.Stage == stageSnapshot {
				fsys["sys/class/net/eth0/mtu"] = &fstest.MapFile{Data: []byte("1280\n")}
			}
		}
		stop, _ := start(t, cfg)
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = []plan.Probe{{Kind: plan.ProbeMTU, Interval: plan.Duration(10 * time.Second)}}
		srv.dispatch(step)
		final, _ := srv.final(t)
		want := "node probes did not pass within 5m0s: mtu: eth0: MTU 1280, was 1400 before the step (after 1 try)"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		// The report carries what the host was before the step.
		if hb, _ := final.Evidence["hostBefore"].(map[string]any); hb == nil || fmt.Sprint(hb["mtus"]) != "map[eth0:1400 lo:65536]" {
			t.Errorf("evidence hostBefore %v", final.Evidence["hostBefore"])
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// The snapshot is in the journal: a restarted agent compares with
		// the host as it was before the step, not as it found it.
		st, ok := readJournal(t, n.dir).step(step.ID)
		if !ok || st.Host == nil || st.Host.MTUs["eth0"] != 1400 || st.Host.MTUs["lo"] != 65536 {
			t.Fatalf("journaled snapshot %+v", st.Host)
		}
	})
}

// TestHostCheckUnsupportedRefused: a Linux host check sent to a node of
// another system is refused before anything runs, not passed unread.
func TestHostCheckUnsupportedRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		cfg.HostCheck = &hostcheck.Host{GOOS: "windows"}
		stop, _ := start(t, cfg)
		defer stop()
		step := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = []plan.Probe{{Kind: plan.ProbeMounts}}
		srv.dispatch(step)
		final, _ := srv.final(t)
		want := "probe 1 (mounts): mounts probes are not supported on windows (they read Linux interfaces); nothing was run"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if v, _ := n.state.Version("openssl"); v != "3.0.11-1~deb12u2" {
			t.Errorf("openssl %s: the step ran", v)
		}
	})
}
