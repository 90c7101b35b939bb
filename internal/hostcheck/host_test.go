package hostcheck

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/drover-dev/drover/internal/plan"
)

// capturedRunner answers commands with outputs captured from real hosts
// (testdata): the commands themselves (iptables, systemctl) are not
// installed on the build host, so a runner stands in for exec.
type capturedRunner map[string][]byte

func (r capturedRunner) run(_ context.Context, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	out, ok := r[cmd]
	if !ok {
		return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	return out, nil
}

// roundTrip passes s through JSON, as the agent's journal does.
func roundTrip(t *testing.T, s *Snapshot) *Snapshot {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out Snapshot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestMountsReadOnlyAfterStep(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"proc/self/mountinfo": {Data: readTestdata(t, "mountinfo-bookworm-tmpfs.txt")},
		"srv/data":            {Mode: os.ModeDir},
	}
	h := &Host{FS: fsys, GOOS: "linux"}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeMounts}))
	all := plan.Probe{Kind: plan.ProbeMounts}
	data := plan.Probe{Kind: plan.ProbeMounts, Paths: []string{"/srv/data"}}
	for _, p := range []plan.Probe{all, data} {
		if err := h.Check(ctx, p, base); err != nil {
			t.Errorf("unchanged mounts %v: %v", p.Paths, err)
		}
	}
	// /proc/sys was read-only before the step: not a failure.
	fsys["proc/self/mountinfo"] = &fstest.MapFile{Data: readTestdata(t, "mountinfo-bookworm-ro.txt")}
	for _, p := range []plan.Probe{all, data} {
		err := h.Check(ctx, p, base)
		if err == nil || !strings.Contains(err.Error(), "/srv/data read-only (tmpfs)") {
			t.Errorf("remounted ro %v: got %v", p.Paths, err)
		}
	}
	gone := plan.Probe{Kind: plan.ProbeMounts, Paths: []string{"/srv/data"}}
	fsys["proc/self/mountinfo"] = &fstest.MapFile{Data: readTestdata(t, "mountinfo-bookworm.txt")}
	if err := h.Check(ctx, gone, base); err == nil || err.Error() != "/srv/data no longer mounted" {
		t.Errorf("unmounted: got %v", err)
	}
	if err := h.Check(ctx, all, nil); !errors.Is(err, ErrNoBaseline) {
		t.Errorf("no baseline: got %v", err)
	}
}

func TestFirewallBackendSwitched(t *testing.T) {
	ctx := context.Background()
	r := capturedRunner{"iptables -V": readTestdata(t, "iptables-V-nft.txt")}
	h := &Host{Run: r.run, GOOS: "linux"}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeFirewallBackend}))
	p := plan.Probe{Kind: plan.ProbeFirewallBackend}
	if err := h.Check(ctx, p, base); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	r["iptables -V"] = readTestdata(t, "iptables-V-legacy.txt")
	if err := h.Check(ctx, p, base); err == nil || err.Error() != "iptables backend is legacy, was nf_tables before the step" {
		t.Errorf("switched: got %v", err)
	}
	delete(r, "iptables -V")
	if err := h.Check(ctx, p, base); err == nil || err.Error() != "iptables backend is none, was nf_tables before the step" {
		t.Errorf("removed: got %v", err)
	}
}

func TestFailedUnitsNew(t *testing.T) {
	ctx := context.Background()
	cmd := "systemctl list-units --failed --plain --no-legend --no-pager"
	r := capturedRunner{cmd: []byte("motd-news.service loaded failed failed Message of the Day\n")}
	h := &Host{Run: r.run, GOOS: "linux"}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeFailedUnits}))
	p := plan.Probe{Kind: plan.ProbeFailedUnits}
	if err := h.Check(ctx, p, base); err != nil {
		t.Fatalf("failed before, still failed: %v", err)
	}
	r[cmd] = []byte("motd-news.service loaded failed failed Message of the Day\nnginx.service loaded failed failed nginx\n")
	if err := h.Check(ctx, p, base); err == nil || err.Error() != "units failed since the step began: nginx.service" {
		t.Errorf("new failure: got %v", err)
	}
	// systemctl unusable before the step: the probe fails, naming why.
	h2 := &Host{Run: capturedRunner{}.run, GOOS: "linux"}
	base2 := h2.Snapshot(ctx, []plan.ProbeKind{plan.ProbeFailedUnits})
	if err := h2.Check(ctx, p, base2); !errors.Is(err, ErrNoBaseline) || !strings.Contains(err.Error(), "systemctl") {
		t.Errorf("no systemctl: got %v", err)
	}
}

// The MTUs are those of drover-fleet:bookworm's interfaces (cat
// /sys/class/net/*/mtu: eth0 1400, lo 65536).
func TestMTUChanged(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{
		"sys/class/net/eth0/mtu":        {Data: []byte("1400\n")},
		"sys/class/net/lo/mtu":          {Data: []byte("65536\n")},
		"sys/class/net/bonding_masters": {Data: []byte("\n")},
	}
	h := &Host{FS: fsys, GOOS: "linux"}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeMTU}))
	all := plan.Probe{Kind: plan.ProbeMTU}
	if err := h.Check(ctx, all, base); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	fsys["sys/class/net/eth0/mtu"] = &fstest.MapFile{Data: []byte("1280\n")}
	if err := h.Check(ctx, all, base); err == nil || err.Error() != "eth0: MTU 1280, was 1400 before the step" {
		t.Errorf("changed: got %v", err)
	}
	if err := h.Check(ctx, plan.Probe{Kind: plan.ProbeMTU, Interfaces: []string{"lo"}}, base); err != nil {
		t.Errorf("lo only: %v", err)
	}
	if err := h.Check(ctx, plan.Probe{Kind: plan.ProbeMTU, Interfaces: []string{"wg0"}}, base); err == nil || err.Error() != "wg0: no such interface" {
		t.Errorf("wg0: got %v", err)
	}
}

func TestKernelErrorsSinceStep(t *testing.T) {
	ctx := context.Background()
	lines, err := ParseKmsg(readTestdata(t, "kmsg-host.txt"))
	if err != nil {
		t.Fatal(err)
	}
	h := &Host{GOOS: "linux", KernelLog: func(context.Context) ([]KernelLine, error) { return lines, nil }}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeKernelErrors}))
	p := plan.Probe{Kind: plan.ProbeKernelErrors}
	if err := h.Check(ctx, p, base); err != nil {
		t.Fatalf("nothing new: %v", err)
	}
	last := lines[len(lines)-1].Seq
	lines = append(lines, KernelLine{Seq: last + 1, Priority: 3, Kernel: true, Message: "nvme0n1: I/O error"},
		KernelLine{Seq: last + 2, Priority: 2, Kernel: true, Message: "BUG: soft lockup"})
	if err := h.Check(ctx, p, base); err == nil || err.Error() != `2 new kernel errors, the first: "nvme0n1: I/O error"` {
		t.Errorf("new errors: got %v", err)
	}
}

func TestClock(t *testing.T) {
	ctx := context.Background()
	r := capturedRunner{"chronyc tracking": readTestdata(t, "chronyc-tracking-unsynced.txt")}
	h := &Host{Run: r.run, GOOS: "linux"}
	p := plan.Probe{Kind: plan.ProbeClock}
	if err := h.Check(ctx, p, nil); err == nil || err.Error() != "clock not synchronised (chronyc tracking)" {
		t.Errorf("chrony without source: got %v", err)
	}
	// Without chronyc: the kernel's view.
	h = &Host{Run: capturedRunner{}.run, GOOS: "linux", Clock: func() (ClockState, error) {
		return adjtimexState(0, 0, 2500, 100_000), nil // offset 2.5 ms, estimated error 100 ms
	}}
	if err := h.Check(ctx, p, nil); err != nil {
		t.Errorf("within 1s: %v", err)
	}
	p.MaxOffset = plan.Duration(50_000_000)
	if err := h.Check(ctx, p, nil); err == nil || err.Error() != "clock off by 102.5ms, at most 50ms allowed (adjtimex)" {
		t.Errorf("beyond 50ms: got %v", err)
	}
	if st := adjtimexState(5, 0x40, 0, 0); st.Synced {
		t.Error("STA_UNSYNC not seen")
	}
}

func TestUnsupportedOS(t *testing.T) {
	ctx := context.Background()
	h := &Host{GOOS: "windows"}
	for _, k := range []plan.ProbeKind{plan.ProbeClock, plan.ProbeMounts, plan.ProbeFirewallBackend, plan.ProbeMTU, plan.ProbeKernelErrors} {
		base := h.Snapshot(ctx, []plan.ProbeKind{k})
		err := h.Check(ctx, plan.Probe{Kind: k}, base)
		if err == nil || err.Error() != string(k)+" probes are not supported on windows (they read Linux interfaces)" {
			t.Errorf("%s on windows: got %v", k, err)
		}
	}
	if why := Unsupported(plan.ProbeDNS, "windows"); why != "" {
		t.Errorf("dns on windows: %s", why)
	}
}

// After a reboot during the step the log starts again at 0: every
// record of the new boot is new.
func TestKernelErrorsAfterReboot(t *testing.T) {
	ctx := context.Background()
	fsys := fstest.MapFS{"proc/sys/kernel/random/boot_id": {Data: []byte("b1\n")}}
	lines := []KernelLine{{Seq: 0, Priority: 5, Kernel: true, Message: "Linux version"}}
	for i := uint64(1); i < 900; i++ {
		lines = append(lines, KernelLine{Seq: i, Priority: 6, Kernel: true, Message: "boring"})
	}
	h := &Host{GOOS: "linux", FS: fsys, KernelLog: func(context.Context) ([]KernelLine, error) { return lines, nil }}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeKernelErrors}))
	fsys["proc/sys/kernel/random/boot_id"] = &fstest.MapFile{Data: []byte("b2\n")}
	lines = []KernelLine{{Seq: 0, Priority: 5, Kernel: true, Message: "Linux version"},
		{Seq: 7, Priority: 3, Kernel: true, Message: "mlx5_core: probe failed"}}
	if err := h.Check(ctx, plan.Probe{Kind: plan.ProbeKernelErrors}, base); err == nil || err.Error() != `new kernel error: "mlx5_core: probe failed"` {
		t.Errorf("got %v", err)
	}
}

// On Windows failed-units are the automatic services not running. No
// Windows host is at hand here: the output is what the PowerShell
// pipeline prints, one service name a line (CRLF).
func TestFailedUnitsWindows(t *testing.T) {
	ctx := context.Background()
	cmd := "powershell.exe -NoProfile -NonInteractive -Command " + psStoppedAutomatic
	r := capturedRunner{cmd: []byte("gupdate\r\nsppsvc\r\n")}
	h := &Host{Run: r.run, GOOS: "windows"}
	base := roundTrip(t, h.Snapshot(ctx, []plan.ProbeKind{plan.ProbeFailedUnits}))
	p := plan.Probe{Kind: plan.ProbeFailedUnits}
	if err := h.Check(ctx, p, base); err != nil {
		t.Fatalf("unchanged: %v", err)
	}
	r[cmd] = []byte("gupdate\r\nW3SVC\r\nsppsvc\r\n")
	if err := h.Check(ctx, p, base); err == nil || err.Error() != "automatic services stopped since the step began: W3SVC" {
		t.Errorf("new stopped service: got %v", err)
	}
	if why := Unsupported(plan.ProbeFailedUnits, "windows"); why != "" {
		t.Errorf("failed-units on windows: %s", why)
	}
	if why := Unsupported(plan.ProbeFailedUnits, "darwin"); why == "" {
		t.Error("failed-units on macOS: supported?")
	}
}
