package driver

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

func TestSimPackageLifecycle(t *testing.T) {
	ctx := context.Background()
	st := NewSimState("n1", "rhel", "5.14.0-427", map[string]string{"openssl": "1:3.0.7-25.el9", "curl": "7.76.1-29.el9"})
	d := NewSim(st)
	a := plan.Action{Package: &plan.PackageAction{
		Operation: plan.PackageUpgrade,
		Packages:  []plan.PackagePin{{Name: "libssl3", Version: "3.0.15-1~deb12u1"}},
		Families:  map[string][]plan.PackagePin{"rhel": {{Name: "openssl", Version: "1:3.0.7-27.el9"}, {Name: "absent", Version: "1.0"}}},
	}}
	c, err := d.Preflight(ctx, a)
	if err != nil || c.None || len(c.Items) != 1 || c.Items[0].To != "1:3.0.7-27.el9" {
		t.Fatalf("preflight %+v %v", c, err)
	}
	if want := "openssl 1:3.0.7-25.el9 -> 1:3.0.7-27.el9 (absent not installed, not upgraded)"; c.Summary != want {
		t.Errorf("summary %q, want %q", c.Summary, want)
	}
	if err := d.Verify(ctx, a); err == nil {
		t.Error("verify passed before apply")
	}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || len(out.Changed) != 1 || out.RebootRequired {
		t.Fatalf("apply %+v %v", out, err)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Idempotent: again changes nothing.
	if c, _ := d.Preflight(ctx, a); !c.None {
		t.Errorf("preflight after apply: %+v", c)
	}
	if out, _ := d.Apply(ctx, a); len(out.Changed) != 0 {
		t.Errorf("second apply changed %+v", out.Changed)
	}
	for range 2 { // rollback is idempotent too
		if _, err := d.Rollback(ctx, a, snap); err != nil {
			t.Fatal(err)
		}
		if v, _ := st.Version("openssl"); v != "1:3.0.7-25.el9" {
			t.Fatalf("openssl %s after rollback", v)
		}
		if err := d.VerifyRollback(ctx, a, snap); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := st.Version("absent"); ok {
		t.Error("upgrade installed an absent package")
	}
	if st.Applies() != 2 || st.Rollbacks() != 2 {
		t.Errorf("applies %d rollbacks %d", st.Applies(), st.Rollbacks())
	}
}

func TestSimKernelRebootAndFailure(t *testing.T) {
	ctx := context.Background()
	st := NewSimState("n2", "debian", "6.1.0-26-amd64", nil)
	st.FailApply = func(a plan.Action) error {
		if a.LivePatch != nil {
			return ErrLocked
		}
		return nil
	}
	d := NewSim(st)
	k := plan.Action{Kernel: &plan.KernelAction{Version: "6.1.0-27-amd64"}}
	out, err := d.Apply(ctx, k)
	if err != nil || !out.RebootRequired {
		t.Fatalf("kernel apply %+v %v", out, err)
	}
	boot := st.BootID()
	if err := st.Reboot(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	f := st.Facts(fleet.Facts{})
	if f.Kernel != "6.1.0-27-amd64" || f.BootID == boot || f.RebootRequired || st.Reboots() != 1 {
		t.Errorf("after reboot: %+v", f)
	}
	if _, err := d.Apply(ctx, plan.Action{LivePatch: &plan.LivePatchAction{ID: "p1"}}); !errors.Is(err, ErrLocked) {
		t.Errorf("FailApply not honoured: %v", err)
	}
}

func TestSimPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.json")
	st := NewSimState("n3", "suse", "5.14.21", map[string]string{"zypper": "1.14.68"})
	if err := st.Persist(path); err != nil {
		t.Fatal(err)
	}
	a := plan.Action{Package: &plan.PackageAction{Operation: plan.PackageInstall, Packages: []plan.PackagePin{{Name: "chrony", Version: "4.1"}}}}
	if _, err := NewSim(st).Apply(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	again := NewSimState("ignored", "suse", "", nil)
	if err := again.Persist(path); err != nil {
		t.Fatal(err)
	}
	if v, _ := again.Version("chrony"); v != "4.1" || again.Applies() != 1 {
		t.Errorf("reloaded: chrony %q applies %d", v, again.Applies())
	}
}

func TestRegistry(t *testing.T) {
	generic, suse := NewSim(NewSimState("a", "", "", nil)), NewSim(NewSimState("b", "", "", nil))
	var r Registry
	r.Register(plan.ActionPackage, generic)
	r.Register(plan.ActionPackage, suse, "suse")
	a := plan.Action{Package: &plan.PackageAction{}}
	if d, _ := r.For(a, fleet.Facts{OS: fleet.OS{Family: "suse"}}); d != suse {
		t.Error("family-specific driver not preferred")
	}
	if d, _ := r.For(a, fleet.Facts{OS: fleet.OS{Family: "debian"}}); d != generic {
		t.Error("generic driver not used")
	}
	_, err := r.For(plan.Action{Kernel: &plan.KernelAction{}}, fleet.Facts{OS: fleet.OS{Family: "windows"}})
	if !errors.Is(err, ErrUnsupported) || err.Error() != "no driver for kernel actions on os family windows: unsupported action" {
		t.Errorf("missing driver: %v", err)
	}
	if _, err := KindOf(plan.Action{Name: "x"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("no kind: %v", err)
	}
}

// TestSimUncordon: a simulated Kubernetes node drained by the step is
// back in service after Uncordon, which is not a rollback; a node drained
// before the step stays drained; other actions have no uncordon.
func TestSimUncordon(t *testing.T) {
	ctx := context.Background()
	st := NewSimState("k1", "ubuntu", "6.8.0-45", nil)
	d := NewSim(st)
	a := plan.Action{KubernetesNode: &plan.KubernetesNodeAction{Drain: true}}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !st.Drained() {
		t.Fatal("not drained after apply")
	}
	for range 2 { // idempotent
		out, err := d.Uncordon(ctx, a, snap)
		if err != nil {
			t.Fatal(err)
		}
		if st.Drained() {
			t.Fatalf("still drained after uncordon (%s)", out.Summary)
		}
	}
	if st.Rollbacks() != 0 {
		t.Errorf("uncordon counted as %d rollbacks", st.Rollbacks())
	}
	// Drained before the step: the snapshot says so, and it stays.
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	before, _ := d.Snapshot(ctx, a)
	if _, err := d.Uncordon(ctx, a, before); err != nil || !st.Drained() {
		t.Fatalf("an operator's drain was undone: %v", err)
	}
	pkg := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "curl", Version: "1"}}}}
	if _, err := d.Uncordon(ctx, pkg, snap); err == nil {
		t.Error("uncordon of a package action accepted")
	}
}

// TestSimHolds: a package action with hold: true holds its installed
// packages (reported in the facts), its rollback releases the holds it
// placed and keeps earlier ones, a hold set by hand shows and goes;
// Windows nodes hold nothing.
func TestSimHolds(t *testing.T) {
	ctx := context.Background()
	st := NewSimState("n1", "debian", "6.1.0-25", map[string]string{"openssl": "3.0.11-1~deb12u2", "curl": "7.88.1-10"})
	st.SetHold("curl", true)
	d := NewSim(st)
	a := plan.Action{Package: &plan.PackageAction{Hold: true, Packages: []plan.PackagePin{
		{Name: "openssl", Version: "3.0.15-1~deb12u1"}, {Name: "curl", Version: "7.88.1-10+deb12u8"}, {Name: "absent", Version: "1"}}}}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !strings.HasSuffix(out.Summary, "; held openssl") {
		t.Fatalf("apply: %+v %v", out, err)
	}
	if h := st.Facts(fleet.Facts{}).Holds; !slices.Equal(h, []string{"curl", "openssl"}) {
		t.Fatalf("holds after apply: %v", h)
	}
	if _, err := d.Rollback(ctx, a, snap); err != nil {
		t.Fatal(err)
	}
	if h := st.Facts(fleet.Facts{}).Holds; !slices.Equal(h, []string{"curl"}) {
		t.Fatalf("holds after rollback: %v", h)
	}
	st.SetHold("curl", false)
	if h := st.Facts(fleet.Facts{}).Holds; len(h) != 0 {
		t.Fatalf("holds after unhold by hand: %v", h)
	}
	win := NewSimState("w1", "windows", "10.0.20348", map[string]string{"KB1": "1"})
	if _, err := NewSim(win).Apply(ctx, plan.Action{Package: &plan.PackageAction{Hold: true, Packages: []plan.PackagePin{{Name: "KB1", Version: "1"}}}}); err != nil {
		t.Fatal(err)
	}
	if h := win.Facts(fleet.Facts{}).Holds; len(h) != 0 {
		t.Fatalf("windows holds: %v", h)
	}
}

// A simulated Windows node installs the cumulative update for the build
// it runs, whatever the operation, and runs the new build after its
// reboot; a rollback takes both back.
func TestSimWindowsCumulativeUpdate(t *testing.T) {
	ctx := context.Background()
	s := NewSimState("w", "windows", "10.0.17763.6189", map[string]string{"KB5041578": "installed"})
	d := NewSim(s)
	a := plan.Action{Name: "cu", Package: &plan.PackageAction{Families: map[string][]plan.PackagePin{
		"windows": {{Name: "KB5043050", Version: "10.0.17763.6293"}, {Name: "KB5042881", Version: "10.0.20348.2700"}}}}}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || len(out.Changed) != 1 || out.Changed[0].Name != "KB5043050" {
		t.Fatalf("apply: %+v %v", out, err)
	}
	if err := s.Reboot(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if f := s.Facts(fleet.Facts{}); f.Kernel != "10.0.17763.6293" || f.RebootRequired || f.Packages["KB5043050"] == "" {
		t.Fatalf("after reboot: kernel %s, reboot required %v, packages %v", f.Kernel, f.RebootRequired, f.Packages)
	}
	if _, err := d.Rollback(ctx, a, snap); err != nil {
		t.Fatal(err)
	}
	if f := s.Facts(fleet.Facts{}); !f.RebootRequired || f.Packages["KB5043050"] != "" {
		t.Fatalf("after rollback: reboot required %v, packages %v", f.RebootRequired, f.Packages)
	}
	// A Server 2025 node has no KB in this plan: preflight says so.
	other := NewSim(NewSimState("w25", "windows", "10.0.26100.2314", nil))
	if _, err := other.Preflight(ctx, a); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Server 2025 preflight: %v", err)
	}
}
