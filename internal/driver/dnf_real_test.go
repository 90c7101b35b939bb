//go:build linux

package driver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// The end-to-end tests run the dnf and zypper drivers with the real tools
// (Debian ships dnf, zypper, rpm and createrepo_c) against a scratch root
// (DNFOptions.Root, ZypperOptions.Root) and a file:// repository built
// from testdata/dnf/rpm. They fail, never skip, when a tool is missing:
// scripts/deps.sh installs them.

// rpmRealTools fails the test when a tool is missing or it does not run
// as root.
func rpmRealTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the dnf and zypper end-to-end tests need %s: run scripts/deps.sh (apt-get install dnf zypper rpm createrepo-c): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the dnf and zypper end-to-end tests install packages into a scratch root, which dnf and zypper only do as root: run them as root (CI does)")
	}
}

// rpmRun runs a setup command, failing the test with its output.
func rpmRun(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", commandLine(name, args...), err, out)
	}
}

// rpmTestRepo builds drover-release 9-1, drover-testsvc 1.0-1, 1.1-1 and
// 1.2-1 and drover-kernel 6.1-1 and 6.2-1 into a repository made by
// createrepo_c; it returns the repository's directory and drover-release's
// rpm.
func rpmTestRepo(t *testing.T) (repo, release string) {
	t.Helper()
	specs, err := filepath.Abs(filepath.Join("testdata", "dnf", "rpm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repo = filepath.Join(dir, "repo")
	for _, b := range []struct{ spec, ver string }{
		{"drover-release.spec", "-"}, {"drover-testsvc.spec", "1.0"}, {"drover-testsvc.spec", "1.1"}, {"drover-testsvc.spec", "1.2"},
		{"drover-kernel.spec", "6.1"}, {"drover-kernel.spec", "6.2"},
	} {
		// One after the other: parallel rpmbuilds fail on each other's
		// directories ("failed to create directory ...: File exists").
		rpmRun(t, "rpmbuild", "-bb", "--quiet", "--define", "_topdir "+filepath.Join(dir, "build"),
			"--define", "_rpmdir "+repo, "--define", "ver "+b.ver, filepath.Join(specs, b.spec))
	}
	rpmRun(t, "createrepo_c", "--quiet", repo)
	return repo, filepath.Join(repo, "noarch", "drover-release-9-1.noarch.rpm")
}

// rpmLineRunner records the command lines it runs.
type rpmLineRunner struct {
	Runner
	mu    sync.Mutex
	lines []string
}

func (r *rpmLineRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	r.mu.Lock()
	r.lines = append(r.lines, commandLine(name, args...))
	r.mu.Unlock()
	return r.Runner.Run(ctx, env, name, args...)
}

// rpmInstalledFile returns the VERSION file drover-testsvc installs in
// root, "" when there is none.
func rpmInstalledFile(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "usr", "share", "drover-testsvc", "VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// rpmDriverEndToEnd moves drover-testsvc through install 1.0-1, upgrade
// to 1.1-1 (with hold when the driver can hold), rollback to 1.0-1, an
// unavailable version and a rollback of the install (removal).
func rpmDriverEndToEnd(t *testing.T, d *PackageDriver, root string, hold bool) {
	t.Helper()
	ctx := context.Background()
	install := pkgAction(plan.PackageInstall, false, pin(rpmTestsvc, "1.0-1"))
	snap0, err := d.Snapshot(ctx, install)
	if err != nil || snap0.Summary != "drover-testsvc absent" {
		t.Fatalf("snapshot before install: %+v %v", snap0, err)
	}
	if out, err := d.Apply(ctx, install); err != nil || out.Summary != "changed drover-testsvc absent -> 1.0-1" || out.RebootRequired {
		t.Fatalf("install: %+v %v", out, err)
	}
	if v := rpmInstalledFile(t, root); v != "1.0" {
		t.Fatalf("after install the root has drover-testsvc %q", v)
	}

	up := pkgAction(plan.PackageUpgrade, hold, pin(rpmTestsvc, "1.1-1"))
	snap1, err := d.Snapshot(ctx, up)
	if err != nil || snap1.Summary != "drover-testsvc 1.0-1" {
		t.Fatalf("snapshot before upgrade: %+v %v", snap1, err)
	}
	ch, err := d.Preflight(ctx, up)
	if err != nil || ch.None || len(ch.Items) != 1 || ch.Items[0] != (ChangeItem{Name: rpmTestsvc, From: "1.0-1", To: "1.1-1"}) {
		t.Fatalf("preflight upgrade: %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, up)
	if err != nil || !strings.HasPrefix(out.Summary, "changed drover-testsvc 1.0-1 -> 1.1-1") || out.RebootRequired {
		t.Fatalf("upgrade: %+v %v", out, err)
	}
	if err := d.Verify(ctx, up); err != nil {
		t.Fatal(err)
	}
	if v := rpmInstalledFile(t, root); v != "1.1" {
		t.Fatalf("after the upgrade the root has drover-testsvc %q", v)
	}
	if ch, err := d.Preflight(ctx, up); err != nil || !ch.None {
		t.Fatalf("preflight after upgrade: %+v %v", ch, err)
	}

	out, err = d.Rollback(ctx, up, snap1)
	if err != nil || out.Summary != "restored drover-testsvc 1.1-1 -> 1.0-1" {
		t.Fatalf("rollback: %+v %v", out, err)
	}
	if err := d.Verify(ctx, install); err != nil {
		t.Fatal(err)
	}
	if v := rpmInstalledFile(t, root); v != "1.0" {
		t.Fatalf("after the rollback the root has drover-testsvc %q", v)
	}

	bad := pkgAction(plan.PackageUpgrade, false, pin(rpmTestsvc, "9.9-1"))
	if _, err := d.Preflight(ctx, bad); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "available: 1.0-1, 1.1-1, 1.2-1") {
		t.Fatalf("preflight of an unavailable version: %v", err)
	}
	if _, err := d.Apply(ctx, bad); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("apply of an unavailable version: %v", err)
	}

	if out, err := d.Rollback(ctx, install, snap0); err != nil || out.Summary != "restored drover-testsvc 1.0-1 -> absent" {
		t.Fatalf("rollback of the install: %+v %v", out, err)
	}
	if v := rpmInstalledFile(t, root); v != "" {
		t.Fatalf("after the rollback of the install the root has drover-testsvc %q", v)
	}
}

// rpmModules lists the /lib/modules directories of root: one per
// drover-kernel version installed.
func rpmModules(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
	}
	return dirs
}

// rpmKernelEndToEnd installs drover-kernel 6.1-1 (a package action), then
// runs a kernel action to 6.2-1, which the package manager installs
// beside 6.1-1 as it does kernels, and rolls it back: 6.2-1 is removed,
// 6.1-1 stays.
func rpmKernelEndToEnd(t *testing.T, d *PackageDriver, root string) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Apply(ctx, pkgAction(plan.PackageInstall, false, pin("drover-kernel", "6.1-1"))); err != nil {
		t.Fatal(err)
	}
	a := kernelAction("drover-kernel", "6.2-1")
	snap, err := d.Snapshot(ctx, a)
	if err != nil || snap.Summary != "drover-kernel 6.1-1" {
		t.Fatalf("snapshot before the kernel: %+v %v", snap, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || out.Summary != "changed drover-kernel 6.1-1 -> 6.2-1 (drover-kernel 6.2-1 installed beside 6.1-1); reboot required" {
		t.Fatalf("kernel: %+v %v", out, err)
	}
	if got := rpmModules(t, root); !slices.Equal(got, []string{"6.1-1.drover", "6.2-1.drover"}) {
		t.Fatalf("after the kernel the root has modules %q", got)
	}
	out, err = d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "restored drover-kernel 6.1-1,6.2-1 -> 6.1-1; reboot required" {
		t.Fatalf("rollback of the kernel: %+v %v", out, err)
	}
	if got := rpmModules(t, root); !slices.Equal(got, []string{"6.1-1.drover"}) {
		t.Fatalf("after the rollback of the kernel the root has modules %q", got)
	}
	if out, err := d.Rollback(ctx, a, snap); err != nil || out.Summary != "already as recorded in the snapshot" {
		t.Fatalf("second rollback of the kernel: %+v %v", out, err)
	}
}

func TestDNFRealTools(t *testing.T) {
	rpmRealTools(t, "dnf", "rpm", "rpmbuild", "createrepo_c")
	start := time.Now()
	repo, release := rpmTestRepo(t)
	root := filepath.Join(t.TempDir(), "root")
	// The root's dnf.conf and repositories (dnf --installroot reads them
	// from the root): RHEL 9's defaults, no plugins (the host's would
	// apply), the test repository and nothing else.
	for name, data := range map[string]string{
		"etc/dnf/dnf.conf":                 "[main]\ngpgcheck=1\ninstallonly_limit=3\nclean_requirements_on_remove=True\nbest=True\nskip_if_unavailable=False\nplugins=False\n",
		"etc/yum.repos.d/drover-test.repo": "[drover-test]\nname=drover test repository\nbaseurl=file://" + repo + "\ngpgcheck=0\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// $releasever comes from the package providing system-release.
	rpmRun(t, "rpm", "--root", root, "-i", release)
	t.Logf("repository and root: %s", time.Since(start).Round(time.Millisecond))

	r := &rpmLineRunner{Runner: NewExecRunner(2 * time.Minute)}
	d := NewDNF(r, DNFOptions{Root: root})
	rpmDriverEndToEnd(t, d, root, false)

	// The root's dnf has no plugins, so no versionlock: hold: true is
	// refused before anything changes.
	held := pkgAction(plan.PackageInstall, true, pin(rpmTestsvc, "1.1-1"))
	if _, err := d.Preflight(context.Background(), held); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "python3-dnf-plugin-versionlock") {
		t.Fatalf("preflight of a hold without versionlock: %v", err)
	}
	if _, err := d.Apply(context.Background(), held); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("apply of a hold without versionlock: %v", err)
	}
	if v := rpmInstalledFile(t, root); v != "" {
		t.Fatalf("the refused hold installed drover-testsvc %q", v)
	}

	rpmKernelEndToEnd(t, d, root)
	dnfSimulate(t, d, root)
	for _, l := range r.lines {
		if !strings.HasPrefix(l, "dnf --installroot="+root+" ") && !strings.HasPrefix(l, "rpm --root "+root+" -q ") {
			t.Errorf("ran %s: not in the root", l)
		}
		for _, verb := range []string{" install ", " downgrade ", " remove "} {
			if strings.Contains(l, verb) && !strings.Contains(l, " --setopt=exit_on_lock=True"+verb) {
				t.Errorf("ran %s: without exit_on_lock", l)
			}
		}
	}
	for _, want := range []string{"downgrade -y drover-testsvc-1.0-1", "remove -y drover-kernel-6.2-1"} {
		if !slices.Contains(r.lines, "dnf --installroot="+root+" --setopt=exit_on_lock=True "+want) {
			t.Errorf("no dnf %s in %q", want, r.lines)
		}
	}
	t.Logf("%d commands in %s", len(r.lines), time.Since(start).Round(time.Millisecond))
}

// dnfSimulate: dnf's rehearsal (install --assumeno) says what it would
// do and changes nothing; a version no repository has is unavailable.
func dnfSimulate(t *testing.T, d *PackageDriver, root string) {
	t.Helper()
	ctx := context.Background()
	ch, err := d.Simulate(ctx, pkgAction(plan.PackageInstall, false, pin(rpmTestsvc, "1.1-1")))
	if err != nil || !slices.Equal(ch.Planned, []PlannedOp{{Op: "install", Name: rpmTestsvc, To: "1.1-1"}}) {
		t.Fatalf("simulate install: %+v %v", ch, err)
	}
	if v := rpmInstalledFile(t, root); v != "" {
		t.Fatalf("the simulation installed drover-testsvc %q", v)
	}
	if _, err := d.Simulate(ctx, pkgAction(plan.PackageInstall, false, pin(rpmTestsvc, "9.9-1"))); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("simulate an unavailable version: %v", err)
	}
}
