//go:build linux

package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// TestZypperRealTools is TestDNFRealTools for zypper, with hold: true on
// the upgrade (zypper addlock and removelock work in a root).
//
// zypper --root reads the root's zypp.conf, not the host's: the test
// writes SUSE's multiversion setting there, without which zypper would
// replace a kernel instead of installing the new one beside it.
func TestZypperRealTools(t *testing.T) {
	rpmRealTools(t, "zypper", "rpm", "rpmbuild", "createrepo_c")
	start := time.Now()
	repo, release := rpmTestRepo(t)
	root := filepath.Join(t.TempDir(), "root")
	// The system release keeps the rpm database from going empty, which
	// zypper's rpmdb2solv fails on (exit 8) after the last removal.
	rpmRun(t, "rpm", "--root", root, "-i", release)
	conf := filepath.Join(root, "etc", "zypp", "zypp.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("[main]\nmultiversion = provides:multiversion(kernel)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rpmRun(t, "zypper", "--non-interactive", "--root", root, "addrepo", "--no-gpgcheck", "file://"+repo, "drover-test")
	rpmRun(t, "zypper", "--non-interactive", "--root", root, "refresh")
	t.Logf("repository and root: %s", time.Since(start).Round(time.Millisecond))

	r := &rpmLineRunner{Runner: NewExecRunner(2 * time.Minute)}
	d := NewZypper(r, ZypperOptions{Root: root})
	rpmDriverEndToEnd(t, d, root, true)
	rpmKernelEndToEnd(t, d, root)
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
	for _, l := range r.lines {
		if !strings.HasPrefix(l, "zypper --non-interactive --root "+root+" ") && !strings.HasPrefix(l, "rpm --root "+root+" -q ") {
			t.Errorf("ran %s: not in the root", l)
		}
	}
	for _, want := range []string{"addlock drover-testsvc", "removelock drover-testsvc", "install --oldpackage drover-testsvc=1.0-1", "remove drover-testsvc", "remove drover-kernel=6.2-1"} {
		if !slices.Contains(r.lines, "zypper --non-interactive --root "+root+" "+want) {
			t.Errorf("no zypper %s in %q", want, r.lines)
		}
	}
	t.Logf("%d commands in %s", len(r.lines), time.Since(start).Round(time.Millisecond))
}
