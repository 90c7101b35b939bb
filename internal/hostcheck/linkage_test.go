package hostcheck

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// buildELF builds a real dynamically linked ELF executable at out with
// the Go toolchain's own linker (no C compiler): its DT_NEEDED entries
// are needed (//go:cgo_import_dynamic), its DT_RUNPATH runpath ("" for
// none). The loader's search treats it as it treats any shared object:
// by name, ELF class and machine.
func buildELF(t *testing.T, out string, needed []string, runpath string) {
	dir := t.TempDir()
	var src strings.Builder
	src.WriteString("package main\n\nimport _ \"unsafe\"\n\n")
	for _, n := range needed {
		src.WriteString("//go:cgo_import_dynamic _ _ \"" + n + "\"\n")
	}
	src.WriteString("\nfunc main() {}\n")
	for name, text := range map[string]string{"go.mod": "module linked\n\ngo 1.22\n", "main.go": src.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Error(err)
			return
		}
	}
	ldflags := "-s -w"
	if runpath != "" {
		ldflags += " -r " + runpath
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Error(err)
		return
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go build %s: %v\n%s", out, err, b) // not Fatal: called from goroutines
	}
}

// retag rewrites the first dynamic entry tagged from in path's .dynamic
// section to to (DT_RUNPATH to DT_RPATH: the same search path, searched
// the older way).
func retag(t *testing.T, path string, from, to elf.DynTag) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dyn := f.Section(".dynamic")
	if dyn == nil || f.Class != elf.ELFCLASS64 {
		t.Fatalf("%s: no 64-bit .dynamic section", path)
	}
	for off := dyn.Offset; off+16 <= dyn.Offset+dyn.Size; off += 16 {
		if elf.DynTag(f.ByteOrder.Uint64(b[off:])) == from {
			f.ByteOrder.PutUint64(b[off:], uint64(to))
			if err := os.WriteFile(path, b, 0o755); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s: no %s entry", path, from)
}

// setMachine rewrites path's e_machine: a library of another
// architecture, which the loader skips in its search.
func setMachine(t *testing.T, path string, m elf.Machine) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[18:], uint16(m))
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResolveLinkage lays out a root with real ELF objects and resolves
// them as the loader would: through ld.so.conf's includes, the
// multiarch default directory, DT_RUNPATH with $ORIGIN, DT_RPATH
// inherited by a loaded library, a library of another machine skipped,
// transitive needs; then removes libraries and names what is missing and
// who needs it.
func TestResolveLinkage(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Fatalf("the layout below is x86_64's (multiarch x86_64-linux-gnu); this is %s", runtime.GOARCH)
	}
	root := t.TempDir()
	at := func(p string) string { return filepath.Join(root, p) }
	// The service: needs libsvc.so.1 (in its RUNPATH, $ORIGIN/../lib/svc)
	// and libconf.so.3 (in a directory ld.so.conf includes).
	// libsvc.so.1 needs libbase.so.2 (in /usr/lib/x86_64-linux-gnu).
	// Built concurrently (each is a go build).
	var wg sync.WaitGroup
	for out, needed := range map[string][]string{
		"usr/sbin/svc":                          {"libsvc.so.1", "libconf.so.3"},
		"usr/lib/svc/libsvc.so.1":               {"libbase.so.2"},
		"usr/lib/x86_64-linux-gnu/libbase.so.2": nil,
		"opt/conf/lib/libconf.so.3":             nil,
	} {
		runpath := ""
		if out == "usr/sbin/svc" {
			runpath = "$ORIGIN/../lib/svc"
		}
		wg.Go(func() { buildELF(t, at(out), needed, runpath) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// An arm64 libconf.so.3 earlier in the search (ld.so.conf's first
	// directory): skipped.
	copyFile(t, at("opt/conf/lib/libconf.so.3"), at("opt/arm/lib/libconf.so.3"))
	setMachine(t, at("opt/arm/lib/libconf.so.3"), elf.EM_AARCH64)
	writeFile(t, at("etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n")
	writeFile(t, at("etc/ld.so.conf.d/0-arm.conf"), "/opt/arm/lib # another machine's\n")
	writeFile(t, at("etc/ld.so.conf.d/conf.conf"), "# comment\n/opt/conf/lib\n")
	f, err := elf.Open(at("usr/sbin/svc"))
	if err != nil {
		t.Fatal(err)
	}
	var interp string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp = string(bytes.TrimRight(b, "\x00"))
		}
	}
	f.Close()
	writeFile(t, at(interp), "") // the loader itself need only be there
	fsys := os.DirFS(root)

	l, err := ResolveLinkage(fsys, "/usr/sbin/svc")
	if err != nil || l.Problem() != nil || l.Static || l.Interpreter != interp {
		t.Fatalf("resolve: %+v %v (problem %v)", l, err, l.Problem())
	}
	want := map[string]string{"libsvc.so.1": "/usr/lib/svc/libsvc.so.1", "libconf.so.3": "/opt/conf/lib/libconf.so.3",
		"libbase.so.2": "/usr/lib/x86_64-linux-gnu/libbase.so.2"}
	if !mapsEqual(l.Libraries, want) {
		t.Errorf("libraries %v, want %v", l.Libraries, want)
	}

	// The host check on the same root passes.
	h := &Host{FS: fsys, GOOS: "linux"}
	probe := plan.Probe{Kind: plan.ProbeLinkage, Binaries: []string{"/usr/sbin/svc"}}
	if err := h.Check(context.Background(), probe, nil); err != nil {
		t.Errorf("check: %v", err)
	}

	// An update removes libbase.so.2: libsvc.so.1 cannot load it.
	if err := os.Rename(at("usr/lib/x86_64-linux-gnu/libbase.so.2"), at("usr/lib/x86_64-linux-gnu/libbase.so.2.removed")); err != nil {
		t.Fatal(err)
	}
	l, err = ResolveLinkage(fsys, "/usr/sbin/svc")
	if err != nil || !slices.Equal(l.Missing, []MissingLib{{Name: "libbase.so.2", NeededBy: "/usr/lib/svc/libsvc.so.1"}}) {
		t.Errorf("missing %+v, %v", l.Missing, err)
	}
	err = h.Check(context.Background(), probe, nil)
	if err == nil || err.Error() != "libbase.so.2 not found (needed by /usr/lib/svc/libsvc.so.1)" {
		t.Errorf("check: %v", err)
	}
	// ... and libconf.so.3's directory is gone from ld.so.conf: only the
	// arm64 one is left, which does not count.
	if err := os.Remove(at("etc/ld.so.conf.d/conf.conf")); err != nil {
		t.Fatal(err)
	}
	probe.Binaries = append(probe.Binaries, "/usr/lib/svc/libsvc.so.1")
	err = h.Check(context.Background(), probe, nil)
	if err == nil || err.Error() != "/usr/sbin/svc: libconf.so.3 not found, libbase.so.2 not found (needed by /usr/lib/svc/libsvc.so.1); /usr/lib/svc/libsvc.so.1: libbase.so.2 not found" {
		t.Errorf("check: %v", err)
	}

	// DT_RPATH (not RUNPATH) is searched for the libraries the binary's
	// libraries need too: libbase.so.2 in the binary's RPATH directory
	// resolves libsvc.so.1's need.
	copyFile(t, at("usr/lib/x86_64-linux-gnu/libbase.so.2.removed"), at("usr/lib/svc/libbase.so.2"))
	copyFile(t, at("opt/conf/lib/libconf.so.3"), at("usr/lib/svc/libconf.so.3"))
	// Not while it is DT_RUNPATH: that is the binary's own.
	if l, err = ResolveLinkage(fsys, "/usr/sbin/svc"); err != nil || len(l.Missing) != 1 || l.Missing[0].Name != "libbase.so.2" {
		t.Errorf("with DT_RUNPATH, libsvc.so.1's need is not searched in it: %+v %v", l, err)
	}
	retag(t, at("usr/sbin/svc"), elf.DT_RUNPATH, elf.DT_RPATH)
	if l, err = ResolveLinkage(fsys, "/usr/sbin/svc"); err != nil || l.Problem() != nil || l.Libraries["libbase.so.2"] != "/usr/lib/svc/libbase.so.2" {
		t.Errorf("with DT_RPATH: %+v %v", l, err)
	}

	// A script is resolved through its interpreter; a missing binary and
	// a file that is neither fail the check, and so does the loader gone.
	writeFile(t, at("usr/bin/run-svc"), "#!/usr/sbin/svc -x\nexec svc\n")
	if l, err = ResolveLinkage(fsys, "/usr/bin/run-svc"); err != nil || l.Script != "/usr/bin/run-svc" || l.Binary != "/usr/sbin/svc" || l.Problem() != nil {
		t.Errorf("script: %+v %v", l, err)
	}
	writeFile(t, at("etc/svc.conf"), "x=1\n")
	for bin, want := range map[string]string{
		"/usr/sbin/gone": "stat usr/sbin/gone: no such file or directory",
		"/etc":           "/etc is not a regular file: not an ELF binary",
		"/etc/svc.conf":  "/etc/svc.conf: not an ELF binary",
	} {
		err := h.Check(context.Background(), plan.Probe{Kind: plan.ProbeLinkage, Binaries: []string{bin}}, nil)
		if err == nil || err.Error() != want {
			t.Errorf("check %s: %v, want %s", bin, err, want)
		}
	}
	// A unit's binary is its ExecStart (systemctl show).
	unitHost := &Host{FS: fsys, GOOS: "linux", Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name+" "+strings.Join(args, " ") != "systemctl show -p ExecStart --value -- svc.service" {
			return nil, os.ErrNotExist
		}
		return []byte("{ path=/usr/sbin/svc ; argv[]=/usr/sbin/svc -f ; ignore_errors=no }\n"), nil
	}}
	os.Remove(at("usr/lib/svc/libconf.so.3"))
	err = unitHost.Check(context.Background(), plan.Probe{Kind: plan.ProbeLinkage, Unit: "svc.service"}, nil)
	if err == nil || err.Error() != "/usr/sbin/svc: libconf.so.3 not found" {
		t.Errorf("check of the unit: %v", err)
	}
	if err := os.Remove(at(interp)); err != nil {
		t.Fatal(err)
	}
	if l, _ = ResolveLinkage(fsys, "/usr/sbin/svc"); len(l.Missing) == 0 || l.Missing[0].Name != interp {
		t.Errorf("without the loader: %+v", l.Missing)
	}
	if why := Unsupported(plan.ProbeLinkage, "windows"); why == "" {
		t.Errorf("linkage is supported on windows?")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestResolveLinkageAgainstLdd resolves real binaries of the build host
// (this test's own binary, /bin/sh, and /usr/bin/apt and /bin/ls where
// they are) and compares with what ldd, which runs the real loader,
// resolves: the same libraries, to the same files.
func TestResolveLinkageAgainstLdd(t *testing.T) {
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Fatalf("ldd (glibc's libc-bin) is needed to compare with: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bins := []string{self, "/bin/sh"}
	for _, b := range []string{"/usr/bin/apt", "/bin/ls"} {
		if _, err := os.Stat(b); err == nil {
			bins = append(bins, b)
		}
	}
	for _, bin := range bins {
		l, err := ResolveLinkage(os.DirFS("/"), bin)
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		out, err := exec.Command(ldd, bin).CombinedOutput()
		if l.Static {
			if !strings.Contains(string(out), "not a dynamic executable") && !strings.Contains(string(out), "statically linked") {
				t.Errorf("%s: static here, ldd says %s", bin, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", bin, err, out)
		}
		got := map[string]string{}
		for name, p := range l.Libraries {
			if rp := realpath(t, p); rp != realpath(t, l.Interpreter) {
				got[name] = rp // ldd lists the loader apart (no "=>")
			}
		}
		want := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), " => ")
			if !ok {
				continue // the vDSO and the loader itself
			}
			p, _, _ := strings.Cut(rest, " (")
			want[name] = realpath(t, p)
		}
		if !mapsEqual(got, want) || l.Problem() != nil {
			t.Errorf("%s: resolved %v, ldd %v (problem %v)", bin, got, want, l.Problem())
		}
		t.Logf("%s: %d libraries, as ldd resolves them", bin, len(got))
	}
}

func realpath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p + " (" + err.Error() + ")"
	}
	return r
}
