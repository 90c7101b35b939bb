package fleettest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testPackage is the package the fleet test rolls out.
const testPackage = "drover-testsvc"

// pkgVersion is one version of the test package in the local repository.
type pkgVersion struct {
	Version string
	// Preinst is extra shell run by the preinst script (e.g. a slow one).
	Preinst string
	// Postinst is extra shell run at the end of the postinst script.
	Postinst string
}

// repoVersions are the versions the repository holds:
//
//	1.0    the version every container starts with
//	1.1    good
//	1.1.1  good, with a preinst that takes 8 seconds (marker file
//	       /run/drover-testsvc-preinst while it runs): a window to
//	       restart the container while apt runs
//	1.2    bad: starts fine, /health answers 503
//	1.3    good, and asks for a reboot as Debian packages of a kernel
//	       or a core library do: its postinst writes
//	       /var/run/reboot-required and names itself in
//	       /var/run/reboot-required.pkgs, which the next boot clears
//	1.4    keeps its state in /srv/data: good where it can write
//	       there, /health answers 503 where /srv/data is read-only
var repoVersions = []pkgVersion{
	{Version: "1.0"},
	{Version: "1.1"},
	{Version: "1.1.1", Preinst: "touch /run/drover-testsvc-preinst\nsleep 8\nrm -f /run/drover-testsvc-preinst\n"},
	{Version: "1.2"},
	{Version: "1.3", Postinst: "if [ \"$1\" = configure ]; then\n\ttouch /var/run/reboot-required\n\techo " + testPackage + " >>/var/run/reboot-required.pkgs\nfi\n"},
	{Version: "1.4"},
}

// The maintainer scripts start and stop the daemon with start-stop-daemon
// (no systemd in the containers): postinst starts it, prerm stops it.
const (
	postinst = `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	start-stop-daemon --start --quiet --oknodo --background --make-pidfile \
		--pidfile /run/drover-testsvc.pid --exec /usr/bin/drover-testsvc -- serve
fi
`
	prerm = `#!/bin/sh
set -e
start-stop-daemon --stop --quiet --oknodo --retry TERM/5/KILL/2 --remove-pidfile \
	--pidfile /run/drover-testsvc.pid --exec /usr/bin/drover-testsvc
`
)

// debArch is the Debian architecture of the host (the containers run the
// host's architecture).
func debArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH // amd64, arm64, ppc64le, s390x, riscv64
}

// buildRepo writes a flat apt repository into dir: one .deb per version
// (dpkg-deb --build) holding the service binary svc, and its index
// (writeIndex).
func buildRepo(ctx context.Context, dir, svc string) error {
	bin, err := os.ReadFile(svc)
	if err != nil {
		return err
	}
	for _, v := range repoVersions {
		root, err := os.MkdirTemp("", "drover-deb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(root)
		files := map[string]struct {
			data string
			mode os.FileMode
		}{
			"DEBIAN/control": {fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: drover tests <tests@drover.invalid>\n"+
				"Section: misc\nPriority: optional\nDescription: drover fleet test service\n HTTP service on 127.0.0.1:8080 (1.2 answers /health 503).\n",
				testPackage, v.Version, debArch()), 0o644},
			"DEBIAN/postinst":                     {postinst + v.Postinst, 0o755},
			"DEBIAN/prerm":                        {prerm, 0o755},
			"DEBIAN/preinst":                      {"#!/bin/sh\nset -e\n" + v.Preinst, 0o755},
			"usr/bin/drover-testsvc":              {string(bin), 0o755},
			"usr/share/drover-testsvc/version":    {v.Version + "\n", 0o644},
			"usr/share/doc/drover-testsvc/README": {"drover fleet test package\n", 0o644},
		}
		for name, f := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
				return err
			}
			if err := os.Chmod(p, f.mode); err != nil { // umask
				return err
			}
		}
		deb := filepath.Join(dir, debName(v.Version))
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb --build %s: %w\n%s", v.Version, err, out)
		}
	}
	if err := buildKernelDebs(ctx, dir); err != nil {
		return err
	}
	return writeIndex(ctx, dir)
}

// debName is the file name of the test package's .deb of version.
func debName(version string) string {
	return fmt.Sprintf("%s_%s_%s.deb", testPackage, version, debArch())
}

// writeIndex writes the index of the .debs in dir: Packages
// (dpkg-scanpackages --multiversion) and Packages.gz.
func writeIndex(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	idx, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("dpkg-scanpackages: %w\n%s", err, stderr.String())
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb")) // the test package, the kernels, drover-agent's (package_test.go)
	if err != nil {
		return err
	}
	if n := strings.Count(string(idx), "\nPackage: ") + 1; n != len(debs) {
		return fmt.Errorf("dpkg-scanpackages listed %d packages, want %d:\n%s", n, len(debs), idx)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), idx, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "Packages.gz"))
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write(idx); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveDir serves dir over HTTP on addr (host:0) until the test ends and
// returns the base URL.
func serveDir(t *testing.T, addr, dir string, log func(string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen for the apt repository on %s: %v", addr, err)
	}
	fs := http.FileServer(http.Dir(dir))
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log(r.RemoteAddr + " " + r.Method + " " + r.URL.Path)
		fs.ServeHTTP(w, r)
	})}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("apt repository server: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// publish adds an unpublished version of the test package (setupUnpublished)
// to the repository and rewrites its index, as a vendor publishes a fix:
// nodes see it once they refresh their package lists.
func (f *fleet) publish(t *testing.T, version string) {
	t.Helper()
	deb := debName(version)
	repo := filepath.Join(f.dir, "repo")
	if err := os.Rename(filepath.Join(f.dir, "unpublished", deb), filepath.Join(repo, deb)); err != nil {
		t.Fatalf("publish %s: %v", version, err)
	}
	if err := writeIndex(t.Context(), repo); err != nil {
		t.Fatalf("publish %s: %v", version, err)
	}
}
