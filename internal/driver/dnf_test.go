package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// The transcripts in testdata/dnf are the real dnf 4.14, rpm 4.18 and
// dnf-plugins-core 4.3 of Debian bookworm, recorded by
// scripts/record-rpm.sh against a local repository of the packages in
// testdata/dnf/rpm; each file's comment says what state it starts from
// and which driver calls it answers, in order.

const (
	rpmTestsvc = "drover-testsvc"
	// dnfX starts the dnf commands that change the system.
	dnfX = "dnf --setopt=exit_on_lock=True"
)

func TestDNFUpgrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/upgrade.txt")
	d := NewDNF(r, DNFOptions{Update: true})
	a := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || len(ch.Items) != 1 || ch.Items[0] != (ChangeItem{Name: rpmTestsvc, From: "1.0-1", To: "1.1-1"}) {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || out.RebootRequired || out.Summary != "changed drover-testsvc 1.0-1 -> 1.1-1" {
		t.Fatalf("apply %+v %v", out, err)
	}
	want := []string{
		"dnf makecache",
		"dnf list --showduplicates drover-testsvc",
		"dnf versionlock list",
		"dnf makecache",
		dnfX + " install -y drover-testsvc-1.1-1",
	}
	if got := r.ran("dnf"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestDNFAlreadyAtPin(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/already.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || !ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || len(out.Changed) != 0 || out.RebootRequired {
		t.Fatalf("apply %+v %v", out, err)
	}
	if got := r.ran(dnfX); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestDNFInstallThenRollbackRemoves(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/install.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageInstall, false, pin(rpmTestsvc, "1.1-1"))
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-testsvc absent" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || ch.Items[0].From != "absent" {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || len(out.Changed) != 1 {
		t.Fatalf("apply %+v %v", out, err)
	}
	out, err := d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "restored drover-testsvc 1.1-1 -> absent" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{dnfX + " install -y drover-testsvc-1.1-1", dnfX + " remove -y drover-testsvc"}
	if got := r.ran(dnfX); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

// rpmKeepPrefixed keeps the command lines starting with one of prefixes.
func rpmKeepPrefixed(lines []string, prefixes ...string) []string {
	var out []string
	for _, l := range lines {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func TestDNFHoldUnlocksAndLocksAgain(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/hold.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin(rpmTestsvc, "1.1-1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !strings.HasSuffix(out.Summary, "; held drover-testsvc") {
		t.Fatalf("apply %+v %v", out, err)
	}
	want := []string{
		"dnf versionlock list", // Preflight: the host can hold
		"dnf versionlock list",
		dnfX + " versionlock delete drover-testsvc",
		dnfX + " install -y drover-testsvc-1.1-1",
		dnfX + " versionlock add drover-testsvc-1.1-1",
	}
	if got := rpmKeepPrefixed(r.ran("dnf"), "dnf versionlock", dnfX); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestDNFRollbackDowngrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/downgrade.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin(rpmTestsvc, "1.1-1"))
	s := Snapshot{Driver: "dnf", Data: []byte(`{"packages":[{"name":"drover-testsvc","version":"1.0-1"}]}`)}
	out, err := d.Rollback(ctx, a, s)
	if err != nil || !out.RebootRequired || out.Summary != "restored drover-testsvc 1.1-1 -> 1.0-1; reboot required: updated since boot: drover-testsvc" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{"dnf versionlock list", dnfX + " versionlock delete drover-testsvc", dnfX + " downgrade -y drover-testsvc-1.0-1", "dnf versionlock list"}
	if got := r.ran("dnf"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	out, err = d.Rollback(ctx, a, s)
	if err != nil || len(out.Changed) != 0 || !strings.HasPrefix(out.Summary, "already as recorded in the snapshot") {
		t.Fatalf("second rollback %+v %v", out, err)
	}
}

func TestDNFEpoch(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/epoch.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin("drover-epochsvc", "1:2.1-1.el9"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || ch.Items[0].From != "1:2.0-1.el9" {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || out.Summary != "changed drover-epochsvc 1:2.0-1.el9 -> 1:2.1-1.el9; held drover-epochsvc" {
		t.Fatalf("apply %+v %v", out, err)
	}
	s := Snapshot{Driver: "dnf", Data: []byte(`{"packages":[{"name":"drover-epochsvc","version":"1:2.0-1.el9"}]}`)}
	if out, err := d.Rollback(ctx, a, s); err != nil || out.Summary != "restored drover-epochsvc 1:2.1-1.el9 -> 1:2.0-1.el9" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{
		dnfX + " install -y drover-epochsvc-1:2.1-1.el9",
		dnfX + " versionlock add drover-epochsvc-1:2.1-1.el9",
		dnfX + " versionlock delete drover-epochsvc",
		dnfX + " downgrade -y drover-epochsvc-1:2.0-1.el9",
	}
	if got := r.ran(dnfX); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, pkgAction(plan.PackageUpgrade, false, pin("drover-epochsvc", "1:2.0-1.el9"))); err != nil {
		t.Fatal(err)
	}
}

func TestDNFErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		file string
		a    plan.Action
		// pre: the error comes from Preflight; else from Apply, after a
		// Preflight when the transcript has one.
		pre      bool
		sentinel error
		msg      string
	}{
		{"unavailable preflight", "errors", pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "9.9-1")), true, ErrUnavailable, "available: 1.0-1, 1.1-1, 1.2-1"},
		{"unknown package preflight", "errors", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1")), true, ErrUnavailable, "nosuchpkg=2.0-1: package not found"},
		{"unavailable apply", "errors", pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "9.9-1")), false, ErrUnavailable, "Unable to find a match: drover-testsvc-9.9-1"},
		{"unknown package apply", "errors", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1")), false, ErrUnavailable, "Unable to find a match: nosuchpkg-2.0-1"},
		// The install fails at once (exit 200), not when the runner's
		// timeout kills it waiting for the lock.
		{"locked", "lock", pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1")), false, ErrLocked, "dnf: " + dnfX + " install -y drover-testsvc-1.1-1: lock held by process "},
		{"no space", "nospace", pkgAction(plan.PackageInstall, false, pin("drover-bigsvc", "1.0-1")), false, ErrNoSpace, "needs 4MB more space on the /usr filesystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDNF(loadReplay(t, "dnf/"+tc.file+".txt"), DNFOptions{})
			var err error
			if tc.pre {
				_, err = d.Preflight(ctx, tc.a)
			} else {
				_, err = d.Apply(ctx, tc.a)
			}
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v\nwant %v with %q", err, tc.sentinel, tc.msg)
			}
			var le *LockError
			if errors.As(err, &le) && (le.PID <= 0 || le.Lock != "" || !strings.Contains(err.Error(), " (dnf): exit status 200")) {
				t.Fatalf("lock error %+v: want the holder's pid and name, no lock file (dnf names none), exit 200", le)
			}
		})
	}
}

// TestDNFLockWithoutExitOnLock: a dnf command run without exit_on_lock
// (the reads; dnf/lock.txt records the install too) waits for the lock
// until the runner's timeout kills it: still ErrLocked, with the holder's
// pid.
func TestDNFLockWithoutExitOnLock(t *testing.T) {
	b := &dnfBackend{r: loadReplay(t, "dnf/lock.txt"), opts: DNFOptions{Command: "dnf"}}
	_, err := b.run(context.Background(), "install", "-y", "drover-testsvc-1.1-1")
	var le *LockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.PID <= 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestYumExitOnLock: yum's refusal with exit_on_lock, written from yum
// 3.4's yummain.py (not recorded: no yum here).
func TestYumExitOnLock(t *testing.T) {
	r := replayFromText(t, `-- $ yum --setopt=exit_on_lock=True install -y nginx-1.20.1-10.el7 --
Loaded plugins: fastestmirror
-- stderr --
Existing lock /var/run/yum.pid: another copy is running as pid 3523.
Another app is currently holding the yum lock; exiting as configured by exit_on_lock
-- exit --
1
`)
	b := &dnfBackend{r: r, opts: DNFOptions{Command: "yum"}}
	err := b.install(context.Background(), []pkgChange{{Pin: pin("nginx", "1.20.1-10.el7")}})
	var le *LockError
	if !errors.As(err, &le) || le.PID != 3523 || le.Lock != "/var/run/yum.pid" || !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v", err)
	}
}

// TestDNFHoldWithoutVersionlock: on a host without the versionlock plugin,
// an action with hold: true fails Preflight and Apply with ErrUnsupported
// naming the plugin's package, before anything changes.
func TestDNFHoldWithoutVersionlock(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/noplugins.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin(rpmTestsvc, "1.1-1"))
	if _, err := d.Preflight(ctx, a); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "install python3-dnf-plugin-versionlock") {
		t.Fatalf("preflight: %v", err)
	}
	_, err := d.Apply(ctx, a)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "(hold: true), which this host cannot do; nothing was changed") {
		t.Fatalf("apply: %v", err)
	}
	if got := r.ran(dnfX); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestDNFWithoutPlugins(t *testing.T) {
	// No versionlock: nothing is held; no needs-restarting: no reboot.
	ctx := context.Background()
	r := loadReplay(t, "dnf/noplugins.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "1.1-1"))
	if _, err := d.Preflight(ctx, a); err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || out.RebootRequired || len(out.Changed) != 1 {
		t.Fatalf("apply %+v %v", out, err)
	}
}

func TestDNFListLongName(t *testing.T) {
	const long = "drover-testsvc-with-a-package-name-too-long-for-the-columns-of-dnf-list"
	b := &dnfBackend{r: loadReplay(t, "dnf/longname.txt"), opts: DNFOptions{Command: "dnf"}}
	vs, err := b.available(context.Background(), long)
	if err != nil || !slices.Equal(vs, []string{"1.20.1-14.el9_2.1"}) {
		t.Fatalf("%q %v", vs, err)
	}
}

func TestRPMVerCmp(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0-1", "1.0-1", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.10-1", "1.9-1", 1},
		{"1:1.0-1", "2.0-1", 1},
		{"1.20.1-14.el9_2.1", "1.20.1-13.el9", 1},
		{"1.0~rc1-1", "1.0-1", -1},
		{"1.0^git1-1", "1.0-1", 1},
		{"1.0^git1-1", "1.0.1-1", -1},
		{"1.0a-1", "1.0-1", 1},
		{"1.0a-1", "1.01-1", -1},
		{"2.0-1.el9", "2.0-1.el9_1", -1},
		{"007-1", "7-1", 0},
	} {
		if got := rpmVerCmp(tc.a, tc.b); got != tc.want {
			t.Errorf("rpmVerCmp(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := rpmVerCmp(tc.b, tc.a); got != -tc.want {
			t.Errorf("rpmVerCmp(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

// TestParseDNFListWrapped covers what the recordings cannot: yum, and dnf
// on a terminal, wrap a long NAME.ARCH onto a line of its own (written
// from yum's format, not recorded: dnf 4 without a terminal does not wrap,
// testdata/dnf/longname.txt). Also dnf 5's versionlock list wording.
func TestParseDNFListWrapped(t *testing.T) {
	out := "Available Packages\nvery-long-package-name-for-wrapping.x86_64\n                          2.0-1.el9                      appstream\n"
	vs, err := parseDNFList(out, "very-long-package-name-for-wrapping")
	if err != nil || !slices.Equal(vs, []string{"2.0-1.el9"}) {
		t.Fatalf("%q %v", vs, err)
	}
	if _, err := parseDNFList("total nonsense here today", "x"); err == nil {
		t.Fatal("no error for malformed output")
	}
	if got := parseVersionlockList("Last metadata expiration check: 0:00:01 ago.\nnginx-1:1.20.1-14.el9_2.1.*\nkernel-core-0:5.14.0-427.el9.*\n# comment\nPackage name: bash\n"); !slices.Equal(got, []string{"nginx", "kernel-core", "bash"}) {
		t.Fatalf("versionlock %q", got)
	}
	if _, err := parseRPMQuery("(none):garbage\n"); err == nil {
		t.Fatal("rpm: no error")
	}
	// rpm -q lists versions as installed, and an x86_64 and an i686
	// package of one version twice: oldest first, once each.
	if st, err := parseRPMQuery("(none):6.3-1\n(none):6.10-1\n(none):6.2-1\n(none):6.2-1\n"); err != nil || !slices.Equal(st.Versions, []string{"6.2-1", "6.3-1", "6.10-1"}) {
		t.Fatalf("%+v %v", st, err)
	}
	st, err := parseRPMQuery("(none):5.14.0-427.el9\n(none):5.14.0-503.el9\n")
	if err != nil || !st.at("5.14.0-503.el9") {
		t.Fatalf("%+v %v", st, err)
	}
}

func FuzzParseDNFList(f *testing.F) {
	f.Add("Installed Packages\nnginx.x86_64   1:1.20.1-13.el9   @appstream\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseDNFList(s, "nginx")
		_ = parseVersionlockList(s)
		_, _ = parseRPMQuery(s)
		_ = needsRestartingReason(s)
	})
}

func FuzzRPMVerCmp(f *testing.F) {
	f.Add("1:1.0~rc1^git-1.el9", "1.0-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		if rpmVerCmp(a, b) != -rpmVerCmp(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
	})
}

func kernelAction(pkg, version string) plan.Action {
	return plan.Action{Name: "kernel", Kernel: &plan.KernelAction{Package: pkg, Version: version}}
}

// TestDNFKernelRollback: dnf installs a kernel (an installonly package)
// beside the installed one; the rollback removes it, and only it.
func TestDNFKernelRollback(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/kernel.txt")
	d := NewDNF(r, DNFOptions{})
	a := kernelAction("drover-kernel", "6.2-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-kernel 6.1-1" {
		t.Fatalf("snapshot %+v %v", snap, err)
	}
	if ch, err := d.Preflight(ctx, a); err != nil || ch.None || ch.Items[0] != (ChangeItem{Name: "drover-kernel", From: "6.1-1", To: "6.2-1"}) {
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
	if err != nil || !out.RebootRequired || out.Summary != "restored drover-kernel 6.1-1,6.2-1 -> 6.1-1; reboot required" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	out, err = d.Rollback(ctx, a, snap)
	if err != nil || len(out.Changed) != 0 || out.Summary != "already as recorded in the snapshot" {
		t.Fatalf("second rollback %+v %v", out, err)
	}
	want := []string{dnfX + " install -y drover-kernel-6.2-1", dnfX + " remove -y drover-kernel-6.2-1"}
	if got := r.ran(dnfX); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

// TestDNFKernelRollbackPastInstallonlyLimit: the step's kernel was one
// too many for installonly_limit=3 and dnf removed the oldest; the
// rollback removes the step's kernel, then installs the oldest again.
func TestDNFKernelRollbackPastInstallonlyLimit(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/kernel-limit.txt")
	d := NewDNF(r, DNFOptions{})
	a := kernelAction("drover-kernel", "6.4-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-kernel 6.1-1,6.2-1,6.3-1" || !strings.Contains(string(snap.Data), `"version":"6.3-1","versions":["6.1-1","6.2-1","6.3-1"]`) {
		t.Fatalf("snapshot %+v %s %v", snap, snap.Data, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || !strings.Contains(out.Summary, "(drover-kernel 6.4-1 installed beside 6.2-1,6.3-1)") {
		t.Fatalf("apply %+v %v", out, err)
	}
	out, err := d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "restored drover-kernel 6.2-1,6.3-1,6.4-1 -> 6.1-1,6.2-1,6.3-1; reboot required" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{dnfX + " install -y drover-kernel-6.4-1", dnfX + " remove -y drover-kernel-6.4-1", dnfX + " downgrade -y drover-kernel-6.1-1"}
	if got := r.ran(dnfX); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

// TestDNFKernelRollbackRunningKernel: the node booted into the step's
// kernel: Rollback refuses, changing nothing, and says what to boot.
func TestDNFKernelRollbackRunningKernel(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/kernel-running.txt")
	d := NewDNF(r, DNFOptions{})
	a := kernelAction("drover-kernel", "6.2-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Rollback(ctx, a, snap)
	if !errors.Is(err, ErrRunningKernel) || !strings.Contains(err.Error(), "removes drover-kernel 6.2-1, which is the running kernel (uname -r ") ||
		!strings.Contains(err.Error(), "Nothing was changed; boot drover-kernel 6.1-1, then roll back again") {
		t.Fatalf("got %v", err)
	}
	if got := r.ran(dnfX); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

// TestRunningKernelOwns: a removal hits the running kernel by package
// name (apt), or by the version the kernel's packages share (RPM).
func TestRunningKernelOwns(t *testing.T) {
	rpm := runningKernel{Release: "5.14.0-503.el9.x86_64", Owners: []plan.PackagePin{{Name: "kernel-core", Version: "5.14.0-503.el9"}}}
	deb := runningKernel{Release: "6.1.0-25-amd64", Owners: []plan.PackagePin{{Name: "linux-image-6.1.0-25-amd64"}}}
	for _, tc := range []struct {
		k             runningKernel
		name, version string
		want          bool
	}{
		{rpm, "kernel-core", "5.14.0-503.el9", true},
		{rpm, "kernel", "5.14.0-503.el9", true},
		{rpm, "kernel-core", "5.14.0-427.el9", false},
		{deb, "linux-image-6.1.0-25-amd64", "6.1.0-25", true},
		{deb, "linux-image-6.1.0-26-amd64", "6.1.0-26", false},
		{runningKernel{}, "kernel-core", "5.14.0-503.el9", false},
	} {
		if got := tc.k.owns(tc.name, tc.version); got != tc.want {
			t.Errorf("%+v owns %s %s = %t", tc.k, tc.name, tc.version, got)
		}
	}
}
