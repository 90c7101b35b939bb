//go:build linux

package driver

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestZypperRealTools is TestDNFRealTools for zypper, with hold: true on
// the upgrade (zypper addlock and removelock work in a root).
func TestZypperRealTools(t *testing.T) {
	rpmRealTools(t, "zypper", "rpm", "rpmbuild", "createrepo_c")
	start := time.Now()
	repo, release := rpmTestRepo(t)
	root := filepath.Join(t.TempDir(), "root")
	// The system release keeps the rpm database from going empty, which
	// zypper's rpmdb2solv fails on (exit 8) after the last removal.
	rpmRun(t, "rpm", "--root", root, "-i", release)
	rpmRun(t, "zypper", "--non-interactive", "--root", root, "addrepo", "--no-gpgcheck", "file://"+repo, "drover-test")
	rpmRun(t, "zypper", "--non-interactive", "--root", root, "refresh")
	t.Logf("repository and root: %s", time.Since(start).Round(time.Millisecond))

	r := &rpmLineRunner{Runner: NewExecRunner(2 * time.Minute)}
	rpmDriverEndToEnd(t, NewZypper(r, ZypperOptions{Root: root}), root, true)
	for _, l := range r.lines {
		if !strings.HasPrefix(l, "zypper --non-interactive --root "+root+" ") && !strings.HasPrefix(l, "rpm --root "+root+" -q ") {
			t.Errorf("ran %s: not in the root", l)
		}
	}
	for _, want := range []string{"addlock drover-testsvc", "removelock drover-testsvc", "install --oldpackage drover-testsvc=1.0-1", "remove drover-testsvc"} {
		if !slices.Contains(r.lines, "zypper --non-interactive --root "+root+" "+want) {
			t.Errorf("no zypper %s in %q", want, r.lines)
		}
	}
	t.Logf("%d commands in %s", len(r.lines), time.Since(start).Round(time.Millisecond))
}
