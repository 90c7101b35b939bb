package driver

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

const (
	u9  = "1.22.1-9+deb12u9"
	u11 = "1.22.1-9+deb12u11"
	// aptInstall is the install command line without its pins.
	aptInstall = "apt-get install -y --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
)

func pkgAction(op plan.PackageOperation, hold bool, pins ...plan.PackagePin) plan.Action {
	return plan.Action{Name: "pkgs", Package: &plan.PackageAction{Operation: op, Packages: pins, Hold: hold}}
}

func pin(name, version string) plan.PackagePin { return plan.PackagePin{Name: name, Version: version} }

func TestAptUpgrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/upgrade.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))

	ch, err := d.Preflight(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if ch.None || len(ch.Items) != 1 || ch.Items[0] != (ChangeItem{Name: "nginx-common", From: u9, To: u11}) {
		t.Fatalf("preflight: %+v", ch)
	}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Driver != "apt" || !strings.Contains(string(snap.Data), `"version":"`+u9+`"`) {
		t.Fatalf("snapshot: %+v %s", snap, snap.Data)
	}
	out, err := d.Apply(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if out.RebootRequired || len(out.Changed) != 1 || out.Summary != "changed nginx-common "+u9+" -> "+u11 {
		t.Fatalf("apply: %+v", out)
	}
	if got := r.ran("apt-get install"); !slices.Equal(got, []string{aptInstall + " nginx-common=" + u11}) {
		t.Fatalf("ran %q", got)
	}
	if env := r.envOf("apt-get install"); !slices.Contains(env, "DEBIAN_FRONTEND=noninteractive") {
		t.Fatalf("apt-get env %q", env)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

// TestAptFixPublishedAfterLastRefresh: apt never refreshes its lists by
// itself, and the agent's driver runs without Update. A fix published
// since the node's last apt-get update is missing from its lists:
// Preflight refreshes them once and finds it, and Apply, whose install
// apt refuses (not found), refreshes once and installs it.
func TestAptFixPublishedAfterLastRefresh(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/published.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || len(ch.Items) != 1 || ch.Items[0].To != u11 {
		t.Fatalf("preflight: %+v %v", ch, err)
	}
	if got := r.ran("apt-get update"); len(got) != 1 {
		t.Fatalf("preflight ran apt-get update %d times, want once", len(got))
	}
	out, err := d.Apply(ctx, a)
	if err != nil || out.Summary != "changed nginx-common "+u9+" -> "+u11 {
		t.Fatalf("apply: %+v %v", out, err)
	}
	if got, upd := r.ran("apt-get install"), r.ran("apt-get update"); len(got) != 2 || len(upd) != 2 {
		t.Fatalf("apply ran install %d times and update %d times in all, want 2 and 2", len(got), len(upd))
	}
	// With Update the lists are refreshed first, and not again.
	r = loadReplay(t, "apt/unavailable.txt")
	d = NewApt(r, AptOptions{FS: fakeFS{}, Update: true})
	if _, err := d.Preflight(ctx, pkgAction(plan.PackageUpgrade, false, pin("nginx-common", "1.22.1-9+deb12u99"))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("preflight of a version never published: %v", err)
	}
	if got := r.ran("apt-get update"); len(got) != 1 {
		t.Fatalf("with Update, apt-get update ran %d times, want once", len(got))
	}
}

func TestAptInstallAbsent(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/install.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := pkgAction(plan.PackageInstall, false, pin("nginx-common", u9))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || ch.Items[0].From != "absent" {
		t.Fatalf("preflight: %+v %v", ch, err)
	}
	snap, err := d.Snapshot(ctx, a)
	if err != nil || !strings.Contains(string(snap.Data), `"absent":true`) {
		t.Fatalf("snapshot %s %v", snap.Data, err)
	}
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestAptNothingToDo(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		file, summary string
		a             plan.Action
	}{
		{"apt/already.txt", "all packages already at their pinned versions", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))},
		{"apt/absent.txt", "all packages already at their pinned versions; not installed, left alone (operation upgrade): nginx-common", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r := loadReplay(t, tc.file)
			d := NewApt(r, AptOptions{FS: fakeFS{}})
			ch, err := d.Preflight(ctx, tc.a)
			if err != nil || !ch.None || ch.Summary != tc.summary {
				t.Fatalf("preflight %+v %v", ch, err)
			}
			out, err := d.Apply(ctx, tc.a)
			if err != nil || len(out.Changed) != 0 || out.Summary != tc.summary {
				t.Fatalf("apply %+v %v", out, err)
			}
			if err := d.Verify(ctx, tc.a); err != nil {
				t.Fatal(err)
			}
			if got := r.ran("apt-get"); len(got) != 0 {
				t.Fatalf("ran %q", got)
			}
		})
	}
}

func TestAptErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, file string
		a          plan.Action
		preflight  bool // Preflight, else Apply
		sentinel   error
		msg        string
	}{
		{"version unavailable", "apt/unavailable.txt", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", "1.22.1-9+deb12u99")), true, ErrUnavailable,
			"apt: nginx-common=1.22.1-9+deb12u99: version not available (available: 1.22.1-9+deb12u11, 1.22.1-9+deb12u9): target not available"},
		{"package unknown", "apt/unavailable.txt", pkgAction(plan.PackageInstall, false, pin("nosuchpkg-xyz", "1.0")), true, ErrUnavailable,
			"apt: nosuchpkg-xyz=1.0: package not found in the configured sources: target not available"},
		{"apply unavailable version", "apt/unavailable.txt", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", "1.22.1-9+deb12u99")), false, ErrUnavailable,
			"Version '1.22.1-9+deb12u99' for 'nginx-common' was not found"},
		{"apply unknown package", "apt/unavailable.txt", pkgAction(plan.PackageInstall, false, pin("nosuchpkg-xyz", "1.0")), false, ErrUnavailable,
			"Unable to locate package nosuchpkg-xyz"},
		{"lock held", "apt/lock.txt", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11)), false, ErrLocked,
			"lock /var/lib/dpkg/lock-frontend held by process 3886 (python3)"},
		{"disk full preflight", "apt/nospace.txt", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11)), true, ErrNoSpace,
			"apt: download needs 115544 bytes, 65536 free: not enough disk space"},
		{"disk full apply", "apt/nospace.txt", pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11)), false, ErrNoSpace,
			"You don't have enough free space"},
		{"option injection", "apt/already.txt", pkgAction(plan.PackageUpgrade, false, pin("-oAPT::x", "1")), false, nil, `invalid package name: "-oAPT::x": a Debian package name must not start with '-'`},
		{"no pins", "apt/already.txt", pkgAction(plan.PackageUpgrade, false), false, nil, `pins no packages for os family "debian"`},
		{"not a package action", "apt/already.txt", plan.Action{Name: "x", Script: &plan.ScriptAction{Artifact: "a"}}, false, ErrUnsupported, "not a package or kernel action"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewApt(loadReplay(t, tc.file), AptOptions{FS: fakeFS{}})
			var err error
			if tc.preflight {
				_, err = d.Preflight(ctx, tc.a)
			} else {
				_, err = d.Apply(ctx, tc.a)
			}
			if err == nil || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v\nwant %v containing %q", err, tc.sentinel, tc.msg)
			}
			var ee *ExitError
			if tc.sentinel == ErrLocked {
				var le *LockError
				if !errors.As(err, &le) || le.PID != 3886 || le.Holder != "python3" || !errors.As(err, &ee) || ee.Code != 100 {
					t.Fatalf("lock error %#v", le)
				}
			}
		})
	}
}

func TestAptUpdateLocked(t *testing.T) {
	d := NewApt(loadReplay(t, "apt/lock.txt"), AptOptions{Update: true, FS: fakeFS{}})
	_, err := d.Preflight(context.Background(), pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11)))
	var le *LockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Lock != "/var/lib/apt/lists/lock" || le.PID != 4072 {
		t.Fatalf("got %v", err)
	}
}

func aptSnapshot(t *testing.T, entries ...pkgSnapshotEntry) Snapshot {
	raw, err := json.Marshal(pkgSnapshotData{Packages: entries})
	if err != nil {
		t.Fatal(err)
	}
	return Snapshot{Driver: "apt", Data: raw}
}

func TestAptRollback(t *testing.T) {
	ctx := context.Background()
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))
	t.Run("downgrade", func(t *testing.T) {
		r := loadReplay(t, "apt/downgrade.txt")
		d := NewApt(r, AptOptions{FS: fakeFS{}})
		s := aptSnapshot(t, pkgSnapshotEntry{Name: "nginx-common", Version: u9})
		out, err := d.Rollback(ctx, a, s)
		if err != nil || out.Summary != "restored nginx-common "+u11+" -> "+u9 {
			t.Fatalf("rollback %+v %v", out, err)
		}
		// Idempotent: the second rollback finds u9 and changes nothing.
		out, err = d.Rollback(ctx, a, s)
		if err != nil || len(out.Changed) != 0 {
			t.Fatalf("second rollback %+v %v", out, err)
		}
		if got := r.ran("apt-get install"); !slices.Equal(got, []string{aptInstall + " nginx-common=" + u9}) {
			t.Fatalf("ran %q", got)
		}
	})
	t.Run("remove what was absent", func(t *testing.T) {
		r := loadReplay(t, "apt/remove.txt")
		d := NewApt(r, AptOptions{FS: fakeFS{}})
		s := aptSnapshot(t, pkgSnapshotEntry{Name: "nginx-common", Absent: true})
		for range 2 {
			if _, err := d.Rollback(ctx, a, s); err != nil {
				t.Fatal(err)
			}
		}
		if got := r.ran("apt-get remove"); !slices.Equal(got, []string{"apt-get remove -y nginx-common"}) {
			t.Fatalf("ran %q", got)
		}
	})
	t.Run("rollback none", func(t *testing.T) {
		d := NewApt(loadReplay(t, "apt/already.txt"), AptOptions{FS: fakeFS{}})
		na := a
		na.Package = &plan.PackageAction{Packages: a.Package.Packages, Rollback: plan.RollbackNone}
		if _, err := d.Rollback(ctx, na, aptSnapshot(t)); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("foreign or corrupt snapshot", func(t *testing.T) {
		d := NewApt(loadReplay(t, "apt/already.txt"), AptOptions{FS: fakeFS{}})
		if _, err := d.Rollback(ctx, a, Snapshot{Driver: "dnf"}); err == nil || !strings.Contains(err.Error(), `snapshot was taken by driver "dnf"`) {
			t.Fatalf("got %v", err)
		}
		if _, err := d.Rollback(ctx, a, Snapshot{Driver: "apt", Data: []byte("{")}); err == nil || !strings.Contains(err.Error(), "decode snapshot") {
			t.Fatalf("got %v", err)
		}
		bad := aptSnapshot(t, pkgSnapshotEntry{Name: "--purge", Version: "1"})
		if _, err := d.Rollback(ctx, a, bad); err == nil || !strings.Contains(err.Error(), "invalid package") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestAptHold(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/hold.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := pkgAction(plan.PackageUpgrade, true, pin("nginx-common", u11))
	out, err := d.Apply(ctx, a)
	if err != nil || !strings.HasSuffix(out.Summary, "; held nginx-common") {
		t.Fatalf("apply %+v %v", out, err)
	}
	want := []string{"apt-mark showhold nginx-common", "apt-mark unhold nginx-common", "apt-mark hold nginx-common"}
	if got := r.ran("apt-mark"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestAptRebootRequired(t *testing.T) {
	ctx := context.Background()
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))
	t.Run("needrestart", func(t *testing.T) {
		d := NewApt(loadReplay(t, "apt/reboot.txt"), AptOptions{FS: fakeFS{}})
		out, err := d.Apply(ctx, a)
		if err != nil || !out.RebootRequired || !strings.Contains(out.Summary, "reboot required: running kernel 6.1.0-18-amd64, expected 6.1.0-25-amd64") {
			t.Fatalf("%+v %v", out, err)
		}
	})
	t.Run("reboot-required file", func(t *testing.T) {
		fsys := fakeFS{"/var/run/reboot-required": "*** System restart required ***\n", "/var/run/reboot-required.pkgs": "linux-image-6.1.0-25-amd64\nlibc6\nlibc6\n"}
		d := NewApt(loadReplay(t, "apt/reboot.txt"), AptOptions{FS: fsys})
		out, err := d.Apply(ctx, a)
		if err != nil || !out.RebootRequired || !strings.HasSuffix(out.Summary, "reboot required: requested by linux-image-6.1.0-25-amd64, libc6") {
			t.Fatalf("%+v %v", out, err)
		}
	})
}

func TestAptFamilies(t *testing.T) {
	a := plan.Action{Package: &plan.PackageAction{
		Packages: []plan.PackagePin{pin("nginx", "1")},
		Families: map[string][]plan.PackagePin{"ubuntu": {pin("nginx-common", u11)}, "rhel": {pin("nginx", "2")}},
	}}
	d := NewApt(loadReplay(t, "apt/already.txt"), AptOptions{Family: "ubuntu", FS: fakeFS{}})
	if err := d.Verify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func TestParseAptLock(t *testing.T) {
	for _, tc := range []struct {
		msg, lock string
		pid       int
		holder    string
	}{
		{"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)\nN: Be aware that removing the lock file is not a solution and may break your system.\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?", "/var/lib/dpkg/lock-frontend", 1234, "apt-get"},
		{"E: Could not get lock /var/lib/dpkg/lock-frontend - open (11: Resource temporarily unavailable)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?", "/var/lib/dpkg/lock-frontend", 0, ""},
		{"E: Could not get lock /var/lib/dpkg/lock - open (11: Resource temporarily unavailable)\nE: Unable to lock the administration directory (/var/lib/dpkg/), is another process using it?", "/var/lib/dpkg/lock", 0, ""},
		{"Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 5678 (unattended-upgr)... 10s", "/var/lib/dpkg/lock-frontend", 5678, "unattended-upgr"},
		{"E: Could not get lock /var/cache/apt/archives/lock. It is held by process 99", "/var/cache/apt/archives/lock", 99, ""},
		{"dpkg: error: dpkg frontend lock was locked by another process with pid 4321\nNote: removing the lock file is always wrong", "/var/lib/dpkg/lock-frontend", 4321, ""},
		{"dpkg: error: dpkg status database is locked by another process", "/var/lib/dpkg/lock", 0, ""},
	} {
		le, ok := parseAptLock(tc.msg)
		if !ok || le.Lock != tc.lock || le.PID != tc.pid || le.Holder != tc.holder {
			t.Errorf("parseAptLock(%q) = %+v, %v", firstLine(tc.msg), le, ok)
		}
	}
	if _, ok := parseAptLock("E: Unable to locate package foo"); ok {
		t.Error("not a lock error")
	}
}

func TestParseAptPolicy(t *testing.T) {
	out := "libc6:\n  Installed: 2.36-9+deb12u7\n  Candidate: 2.36-9+deb12u8\n  Version table:\n     2.36-9+deb12u8 500\n        500 http://deb.debian.org/debian bookworm-updates/main amd64 Packages\n *** 2.36-9+deb12u7 100\n        100 /var/lib/dpkg/status\nlibc6:i386:\n  Installed: (none)\n"
	p, err := parseAptPolicy(out)
	if err != nil || p.Package != "libc6" || p.Installed != "2.36-9+deb12u7" || !slices.Equal(p.Versions, []string{"2.36-9+deb12u8", "2.36-9+deb12u7"}) {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"garbage", "x:\n  Version table:\n     1.0\n", "x:\n  Version table:\n     1.0 high\n"} {
		if _, err := parseAptPolicy(bad); err == nil {
			t.Errorf("parseAptPolicy(%q): no error", bad)
		}
	}
}

func TestParseDpkgQuery(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want string
		err  bool
	}{
		{"installed 1.0-1\n", "1.0-1", false},
		{"config-files 1.0-1\n", "absent", false},
		{"not-installed \n", "absent", false},
		{"half-configured 1.0-1\n", "1.0-1 (half-configured; an earlier dpkg run was interrupted)", false},
		{"installed 2.36-9\ninstalled 2.36-9\n", "2.36-9,2.36-9", false},
		{"", "", true},
		{"installed\n", "", true},
		{"bogus 1\n", "", true},
	} {
		st, err := parseDpkgQuery(tc.out)
		if (err != nil) != tc.err || (err == nil && st.String() != tc.want) {
			t.Errorf("parseDpkgQuery(%q) = %s, %v", tc.out, st, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	if _, err := parseDf("Filesystem 1K-blocks\n"); err == nil {
		t.Error("df")
	}
	if _, err := parseAptShowSize("Package: x\nSize: lots\n"); err == nil {
		t.Error("size")
	}
	if _, err := parseAptShowSize("Package: x\n\nSize: 1\n"); err == nil {
		t.Error("size of second record")
	}
	if _, err := parseNeedrestart("hello"); err == nil {
		t.Error("needrestart")
	}
	if _, err := parseNeedrestart("NEEDRESTART-VER: 3.6\nNEEDRESTART-KSTA: 9\n"); err == nil {
		t.Error("needrestart ksta")
	}
}

func FuzzParseAptPolicy(f *testing.F) {
	f.Add("nginx-common:\n  Installed: (none)\n  Candidate: 1.0\n  Version table:\n     1.0 500\n        500 http://x y Packages\n")
	f.Add("x:\n *** 1 100\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = parseAptPolicy(s) })
}

func FuzzParseDpkgQuery(f *testing.F) {
	f.Add("installed 1.0\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = parseDpkgQuery(s) })
}

func FuzzParseAptLock(f *testing.F) {
	f.Add("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)")
	f.Fuzz(func(t *testing.T, s string) { _, _ = parseAptLock(s) })
}

func FuzzParseNeedrestart(f *testing.F) {
	f.Add("NEEDRESTART-VER: 3.6\nNEEDRESTART-KSTA: 3\n")
	f.Fuzz(func(t *testing.T, s string) { _, _ = parseNeedrestart(s) })
}

func FuzzParseAptShow(f *testing.F) {
	f.Add("Package: x\nSize: 12\n")
	f.Add("      Avail\n123\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseAptShowSize(s)
		_, _ = parseDf(s)
	})
}

// TestAptRollbackAfterInterruptedDpkg: a reboot cut dpkg short while it
// upgraded the package; the rollback finishes the interrupted run (dpkg
// --configure -a, as apt asks), reinstalls the snapshot's version over the
// half-installed one, and only then does the state match the snapshot.
func TestAptRollbackAfterInterruptedDpkg(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/interrupted.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := pkgAction(plan.PackageUpgrade, false, pin("drover-testsvc", "1.1.1"))
	s := aptSnapshot(t, pkgSnapshotEntry{Name: "drover-testsvc", Version: "1.1"})
	out, err := d.Rollback(ctx, a, s)
	if err != nil || out.Summary != "restored drover-testsvc 1.1 (half-installed; an earlier dpkg run was interrupted) -> 1.1" {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{aptInstall + " --reinstall drover-testsvc=1.1", "dpkg --configure -a --force-confdef --force-confold", aptInstall + " --reinstall drover-testsvc=1.1"}
	if got := append(r.ran("apt-get install"), r.ran("dpkg --configure")...); !slices.Equal(got, []string{want[0], want[2], want[1]}) {
		t.Fatalf("ran %q", got)
	}
	if got := r.ran(""); len(got) < 5 || got[2] != want[0] || got[3] != want[1] || got[4] != want[2] {
		t.Fatalf("ran, in order, %q; want %q", got, want)
	}
	// The state now matches the snapshot; a half-installed package would
	// not (Snapshot records why a package is broken).
	now, err := d.Snapshot(ctx, a)
	if err != nil || string(now.Data) != string(s.Data) {
		t.Fatalf("snapshot after rollback %s %v, want %s", now.Data, err, s.Data)
	}
	broken, err := NewApt(replayFromText(t, "-- $ apt-mark showhold drover-testsvc --\n"+
		"-- $ dpkg-query -W '-f=${db:Status-Status} ${Version}\\n' drover-testsvc --\nhalf-installed 1.1\n"), AptOptions{FS: fakeFS{}}).Snapshot(ctx, a)
	if err != nil || string(broken.Data) == string(s.Data) || !strings.Contains(string(broken.Data), `"broken":"half-installed`) {
		t.Fatalf("snapshot of a half-installed package: %s %v", broken.Data, err)
	}
}

// TestAptKernelRollbackRunningKernel: a kernel action installed
// linux-image-6.1.0-26-amd64 (absent before) and the node booted it: the
// rollback refuses to remove it. The dpkg-query and uname outputs are
// written in dpkg's format, not recorded (no Debian kernel here).
func TestAptKernelRollbackRunningKernel(t *testing.T) {
	r := replayFromText(t, `-- $ apt-mark showhold linux-image-6.1.0-26-amd64 --
-- $ dpkg-query -W '-f=${db:Status-Status} ${Version}\n' linux-image-6.1.0-26-amd64 --
installed 6.1.112-1
-- $ uname -r --
6.1.0-26-amd64
-- $ dpkg-query -S /boot/vmlinuz-6.1.0-26-amd64 --
linux-image-6.1.0-26-amd64: /boot/vmlinuz-6.1.0-26-amd64
`)
	d := NewApt(r, AptOptions{FS: fakeFS{}})
	a := plan.Action{Name: "kernel", Kernel: &plan.KernelAction{Package: "linux-image-6.1.0-26-amd64", Version: "6.1.112-1"}}
	_, err := d.Rollback(context.Background(), a, aptSnapshot(t, pkgSnapshotEntry{Name: "linux-image-6.1.0-26-amd64", Absent: true}))
	if !errors.Is(err, ErrRunningKernel) || !strings.Contains(err.Error(), "removes linux-image-6.1.0-26-amd64 6.1.112-1, which is the running kernel (uname -r 6.1.0-26-amd64)") ||
		!strings.Contains(err.Error(), "boot a kernel installed before the step") {
		t.Fatalf("got %v", err)
	}
	if got := r.ran("apt-get"); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

func TestParseDpkgSearch(t *testing.T) {
	out := "diversion by dash from: /bin/sh\nlinux-image-6.1.0-25-amd64: /boot/vmlinuz-6.1.0-25-amd64\nlibc6:amd64, libc6:i386: /usr/share/doc/libc6\n"
	want := []plan.PackagePin{{Name: "linux-image-6.1.0-25-amd64"}, {Name: "libc6"}}
	if got := parseDpkgSearch(out); !slices.Equal(got, want) {
		t.Fatalf("%+v", got)
	}
}

// maintScripts stands in for dpkg running a package's maintainer
// scripts during apt-get install. The systemd unit's restart goes
// through the host's real deb-systemd-invoke (init-system-helpers), with
// DPKG_ROOT pointing it at root, where the driver writes policy-rc.d;
// the init script's, which invoke-rc.d would run from the host's
// /etc/init.d, is asked of policy-rc.d as invoke-rc.d asks it ("--quiet
// ID (ACTION)"), by sh. A restart runs only where policy-rc.d allows
// it. The rest of the install replays recorded output.
type maintScripts struct {
	*replayRunner
	root, policy string
	restarted    []string // restarts run, at install and by the driver
}

func (m *maintScripts) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	switch {
	case name == "deb-systemd-invoke", name == "invoke-rc.d":
		m.restarted = append(m.restarted, commandLine(name, args...))
		return nil, nil, nil
	case name == "apt-get" && len(args) > 0 && args[0] == "install":
		// A unit no host has: were policy-rc.d to allow it, systemctl
		// would fail, and the test with it.
		cmd := exec.CommandContext(ctx, "deb-systemd-invoke", "restart", "drover-testsvc.service")
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+m.root)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "returned 101, not running 'restart drover-testsvc.service'") {
			m.restarted = append(m.restarted, "maintainer script: deb-systemd-invoke restart drover-testsvc.service")
			m.t.Logf("deb-systemd-invoke: %v %s", err, out)
		}
		code := 0
		if _, err := os.Stat(m.policy); err == nil {
			err := exec.CommandContext(ctx, "sh", m.policy, "--quiet", "drover-testsvc", "(restart)").Run()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				return nil, nil, err
			}
		}
		if code != 101 {
			m.restarted = append(m.restarted, "maintainer script: invoke-rc.d drover-testsvc restart")
		}
	}
	return m.replayRunner.Run(ctx, env, name, args...)
}

// TestAptApplyDeferred: ApplyDeferred installs with a policy-rc.d that
// holds back the restarts nginx's maintainer scripts ask for and lists
// them; the policy-rc.d in place before (an image's "exit 101") is put
// back; RunDeferred runs them as the tool that asked would have. A
// policy-rc.d of ours left by a crash is removed by the next install.
func TestAptApplyDeferred(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.MkdirAll(filepath.Dir(policy), 0o755); err != nil {
		t.Fatal(err)
	}
	const image = "#!/bin/sh\nexit 101\n"
	if err := os.WriteFile(policy, []byte(image), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &maintScripts{replayRunner: loadReplay(t, "apt/upgrade.txt"), root: root, policy: policy}
	d := NewApt(m, AptOptions{FS: fakeFS{}, PolicyRCD: policy, DeferredLog: filepath.Join(root, "deferred")})
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx-common", u11))
	if _, err := d.Preflight(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Snapshot(ctx, a); err != nil {
		t.Fatal(err)
	}
	out, err := d.ApplyDeferred(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Deferred, []string{"drover-testsvc.service restart", "drover-testsvc restart"}) || len(m.restarted) != 0 {
		t.Fatalf("deferred %q, restarted during the install %q", out.Deferred, m.restarted)
	}
	if !strings.HasSuffix(out.Summary, "; service restarts held back: drover-testsvc.service restart, drover-testsvc restart") {
		t.Errorf("summary %q", out.Summary)
	}
	if b, err := os.ReadFile(policy); err != nil || string(b) != image {
		t.Fatalf("policy-rc.d after the install: %q %v, want the image's put back", b, err)
	}
	if err := d.RunDeferred(ctx, a, out.Deferred); err != nil {
		t.Fatal(err)
	}
	if want := []string{"deb-systemd-invoke restart drover-testsvc.service", "invoke-rc.d drover-testsvc restart"}; !slices.Equal(m.restarted, want) {
		t.Fatalf("restarts %q, want %q", m.restarted, want)
	}
	if err := d.RunDeferred(ctx, a, []string{"nginx; reboot restart"}); err == nil {
		t.Fatal("a malformed restart was run")
	}
	// A crash left ours in place, the image's set aside: the next
	// install (a rollback) puts the image's back first, so the restarts
	// are asked of it.
	if err := os.Rename(policy, policy+".drover-saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, []byte("#!/bin/sh\n"+policyMark+"\nexit 101\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.b.install(ctx, []pkgChange{{Pin: pin("nginx-common", u11)}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(policy); string(b) != image {
		t.Fatalf("policy-rc.d after a crash and an install: %q, want the image's", b)
	}
}

func TestParseDeferred(t *testing.T) {
	log := "nginx.service restart\n--quiet nginx (restart) 2\nnginx.service stop\nnginx.service start\nfoo$(id) restart\nssh reload\nweird\n"
	if got, want := parseDeferred(log), []string{"nginx.service start", "nginx restart", "ssh reload"}; !slices.Equal(got, want) {
		t.Fatalf("parseDeferred = %q, want %q", got, want)
	}
}

// TestDNFCannotDefer: dnf runs rpm scriptlets that restart services
// with no way to hold them back: ApplyDeferred refuses before anything
// changes.
func TestDNFCannotDefer(t *testing.T) {
	d := NewDNF(replayFromText(t, ""), DNFOptions{})
	if _, err := d.ApplyDeferred(context.Background(), pkgAction(plan.PackageUpgrade, false, pin("nginx", "1.20.1-14.el9"))); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ApplyDeferred on dnf: %v", err)
	}
}
