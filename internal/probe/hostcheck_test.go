package probe

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
)

// TestHostCheckProbe: a host check runs through the prober with its
// retries, compares with the snapshot the prober took, and its reason
// names the probe as other probes' do.
func TestHostCheckProbe(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{"sys/class/net/eth0/mtu": {Data: []byte("1400\n")}}
	pr := &Prober{Clock: &stepClock{}, Host: &hostcheck.Host{FS: fsys, GOOS: "linux"}}
	p := plan.Probe{Name: "uplink", Kind: plan.ProbeMTU, Interfaces: []string{"eth0"}, Retries: 2, Interval: plan.Duration(time.Second)}
	base := pr.HostSnapshot(ctx, []plan.Probe{{Kind: plan.ProbeHTTP}, p})
	if base == nil || base.MTUs["eth0"] != 1400 {
		t.Fatalf("snapshot %+v", base)
	}
	if res := pr.RunAgainst(ctx, p, base); res.Verdict != engine.Pass {
		t.Fatalf("unchanged: %+v", res)
	}
	fsys["sys/class/net/eth0/mtu"] = &fstest.MapFile{Data: []byte("9000\n")}
	res := pr.RunAgainst(ctx, p, base)
	if want := "uplink: mtu eth0: eth0: MTU 9000, was 1400 before the step (after 3 tries)"; res.Verdict != engine.Fail || res.Reason != want {
		t.Errorf("changed: %+v\nwant reason %q", res, want)
	}
	// Without the snapshot the probe fails: it never passes unread.
	if res := pr.Run(ctx, p); res.Verdict != engine.Fail || res.Reason != "uplink: mtu eth0: no snapshot of the host from before the step to compare with (after 3 tries)" {
		t.Errorf("no snapshot: %+v", res)
	}
	if s := pr.HostSnapshot(ctx, []plan.Probe{{Kind: plan.ProbeDNS}}); s != nil {
		t.Errorf("a snapshot for probes that need none: %+v", s)
	}
}

// TestHostCheckCommandsThroughRunner: the default host runs its commands
// through the prober's Runner (the agent's), so that they are the ones
// it logs and bounds.
func TestHostCheckCommandsThroughRunner(t *testing.T) {
	ctx := context.Background()
	r := script{"iptables -V": {out: "iptables v1.8.9 (nf_tables)\n"}}
	pr := &Prober{Runner: r, GOOS: "linux"}
	p := plan.Probe{Kind: plan.ProbeFirewallBackend}
	base := pr.HostSnapshot(ctx, []plan.Probe{p})
	r["iptables -V"] = struct {
		out string
		err error
	}{out: "iptables v1.8.9 (legacy)\n"}
	if res := pr.RunAgainst(ctx, p, base); res.Reason != "firewall-backend: iptables backend is legacy, was nf_tables before the step (after 1 try)" {
		t.Errorf("%+v", res)
	}
	var _ driver.Runner = r
}
