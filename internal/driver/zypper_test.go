package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// The transcripts in testdata/zypper are the real zypper 1.14.42 and rpm
// 4.18 of Debian bookworm, recorded by scripts/record-rpm.sh against a
// local repository of the packages in testdata/dnf/rpm.

func TestZypperUpgradeAndLock(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/upgrade.txt")
	d := NewZypper(r, ZypperOptions{Update: true})
	a := pkgAction(plan.PackageUpgrade, true, pin(rpmTestsvc, "1.1-1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || ch.Items[0] != (ChangeItem{Name: rpmTestsvc, From: "1.0-1", To: "1.1-1"}) {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || out.Summary != "changed drover-testsvc 1.0-1 -> 1.1-1; held drover-testsvc; reboot required: zypper needs-rebooting" {
		t.Fatalf("apply %+v %v", out, err)
	}
	want := []string{
		"zypper --non-interactive locks", // Preflight: hold asked
		"zypper --non-interactive refresh",
		"zypper --non-interactive search --details --match-exact drover-testsvc",
		"zypper --non-interactive locks",
		"zypper --non-interactive refresh",
		"zypper --non-interactive install --oldpackage drover-testsvc=1.1-1",
		"zypper --non-interactive addlock drover-testsvc",
		"zypper --non-interactive needs-rebooting",
	}
	if got := r.ran("zypper"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestZypperAlreadyAtPin(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/already.txt")
	d := NewZypper(r, ZypperOptions{})
	a := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1"))
	if ch, err := d.Preflight(ctx, a); err != nil || !ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || len(out.Changed) != 0 || out.RebootRequired {
		t.Fatalf("apply %+v %v", out, err)
	}
	if got := r.ran("zypper --non-interactive install"); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestZypperInstallThenRollbackRemoves(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/install.txt")
	d := NewZypper(r, ZypperOptions{})
	a := pkgAction(plan.PackageInstall, false, pin(rpmTestsvc, "1.1-1"))
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-testsvc absent" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	if ch, err := d.Preflight(ctx, a); err != nil || ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || len(out.Changed) != 1 || out.RebootRequired {
		t.Fatalf("apply %+v %v", out, err)
	}
	out, err := d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "restored drover-testsvc 1.1-1 -> absent" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{"zypper --non-interactive install --oldpackage drover-testsvc=1.1-1", "zypper --non-interactive remove drover-testsvc"}
	if got := rpmKeepPrefixed(r.ran("zypper"), "zypper --non-interactive install", "zypper --non-interactive remove"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

func TestZypperRollbackDowngrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/downgrade.txt")
	d := NewZypper(r, ZypperOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin(rpmTestsvc, "1.1-1"))
	s := Snapshot{Driver: "zypper", Data: []byte(`{"packages":[{"name":"drover-testsvc","version":"1.0-1"}]}`)}
	out, err := d.Rollback(ctx, a, s)
	if err != nil || out.RebootRequired || out.Summary != "restored drover-testsvc 1.1-1 -> 1.0-1" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{
		"zypper --non-interactive locks",
		"zypper --non-interactive removelock drover-testsvc",
		"zypper --non-interactive install --oldpackage drover-testsvc=1.0-1",
		"zypper --non-interactive needs-rebooting",
		"zypper --non-interactive locks", // the check
	}
	if got := r.ran("zypper"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if out, err := d.Rollback(ctx, a, s); err != nil || len(out.Changed) != 0 {
		t.Fatalf("second rollback %+v %v", out, err)
	}
}

func TestZypperEpoch(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/epoch.txt")
	d := NewZypper(r, ZypperOptions{})
	a := pkgAction(plan.PackageUpgrade, false, pin("drover-epochsvc", "1:2.1-1.el9"))
	if ch, err := d.Preflight(ctx, a); err != nil || ch.None || ch.Items[0].From != "1:2.0-1.el9" {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || len(out.Changed) != 1 {
		t.Fatalf("apply %+v %v", out, err)
	}
	s := Snapshot{Driver: "zypper", Data: []byte(`{"packages":[{"name":"drover-epochsvc","version":"1:2.0-1.el9"}]}`)}
	if out, err := d.Rollback(ctx, a, s); err != nil || out.Summary != "restored drover-epochsvc 1:2.1-1.el9 -> 1:2.0-1.el9" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	if err := d.Verify(ctx, pkgAction(plan.PackageUpgrade, false, pin("drover-epochsvc", "1:2.0-1.el9"))); err != nil {
		t.Fatal(err)
	}
}

func TestZypperErrors(t *testing.T) {
	ctx := context.Background()
	upgrade := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1"))
	for _, tc := range []struct {
		name     string
		file     string
		a        plan.Action
		call     string // preflight, apply, snapshot
		sentinel error
		msg      string
	}{
		{"unavailable preflight", "errors", pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "9.9-1")), "preflight", ErrUnavailable, "available: 1.0-1, 1.1-1, 1.2-1"},
		{"unknown package preflight", "errors", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1")), "preflight", ErrUnavailable, "package not found"},
		{"unavailable apply", "errors", pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "9.9-1")), "apply", ErrUnavailable, "No provider of 'drover-testsvc=9.9-1' found."},
		{"unknown package apply", "errors", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1")), "apply", ErrUnavailable, "No provider of 'nosuchpkg=2.0-1' found."},
		{"locked preflight", "lock", upgrade, "preflight", ErrLocked, "zypper --non-interactive search --details --match-exact drover-testsvc: lock /run/zypp.pid held by process "},
		{"locked apply", "lock", upgrade, "apply", ErrLocked, "zypper --non-interactive locks: lock /run/zypp.pid held by process "},
		{"locked snapshot", "lock", upgrade, "snapshot", ErrLocked, " (zypper): exit status 7"},
		{"no space", "nospace", pkgAction(plan.PackageInstall, false, pin("drover-bigsvc", "1.0-1")), "apply", ErrNoSpace, "needs 4MB more space on the /usr filesystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewZypper(loadReplay(t, "zypper/"+tc.file+".txt"), ZypperOptions{})
			var err error
			switch tc.call {
			case "preflight":
				_, err = d.Preflight(ctx, tc.a)
			case "apply":
				_, err = d.Apply(ctx, tc.a)
			case "snapshot":
				_, err = d.Snapshot(ctx, tc.a)
			}
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v\nwant %v with %q", err, tc.sentinel, tc.msg)
			}
			var le *LockError
			if errors.As(err, &le) && (le.PID <= 0 || le.Holder != "zypper") {
				t.Fatalf("lock error %+v: want the holder's pid and name", le)
			}
		})
	}
}

func TestZypperSearchLongName(t *testing.T) {
	const long = "drover-testsvc-with-a-package-name-too-long-for-the-columns-of-dnf-list"
	b := &zypperBackend{r: loadReplay(t, "zypper/longname.txt")}
	vs, err := b.available(context.Background(), long)
	if err != nil || !slices.Equal(vs, []string{"1.20.1-14.el9_2.1"}) {
		t.Fatalf("%q %v", vs, err)
	}
}

func FuzzParseZypper(f *testing.F) {
	f.Add("S | Name | Type | Version | Arch | Repository\n--+--\nv | nginx | package | 1-1 | x86_64 | r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseZypperSearch(s, "nginx")
		_ = parseZypperLocks(s)
	})
}

// TestZypperKernelRollback: zypper installs a kernel (a multiversion
// package) beside the installed one; the rollback removes it, and only it.
func TestZypperKernelRollback(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/kernel.txt")
	d := NewZypper(r, ZypperOptions{})
	a := kernelAction("drover-kernel", "6.2-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-kernel 6.1-1" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	if ch, err := d.Preflight(ctx, a); err != nil || ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || out.Summary != "changed drover-kernel 6.1-1 -> 6.2-1 (drover-kernel 6.2-1 installed beside 6.1-1); reboot required" {
		t.Fatalf("apply %+v %v", out, err)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
	out, err = d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "restored drover-kernel 6.1-1,6.2-1 -> 6.1-1; reboot required" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	if out, err := d.Rollback(ctx, a, snap); err != nil || len(out.Changed) != 0 {
		t.Fatalf("second rollback %+v %v", out, err)
	}
	want := []string{"zypper --non-interactive install --oldpackage drover-kernel=6.2-1", "zypper --non-interactive remove drover-kernel=6.2-1"}
	if got := rpmKeepPrefixed(r.ran("zypper"), "zypper --non-interactive install", "zypper --non-interactive remove"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

// TestZypperKernelRollbackRunningKernel: the node booted into the step's
// kernel, which zypper would remove (zypper/kernel-running.txt shows it
// does): Rollback refuses, changing nothing.
func TestZypperKernelRollbackRunningKernel(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/kernel-running.txt")
	d := NewZypper(r, ZypperOptions{})
	a := kernelAction("drover-kernel", "6.2-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Rollback(ctx, a, snap); !errors.Is(err, ErrRunningKernel) || !strings.Contains(err.Error(), "boot drover-kernel 6.1-1, then roll back again") {
		t.Fatalf("got %v", err)
	}
	if got := rpmKeepPrefixed(r.ran("zypper"), "zypper --non-interactive remove", "zypper --non-interactive install"); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}
