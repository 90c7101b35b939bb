package release

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeBinaries writes stand-ins for the cross-built binaries: shell
// scripts that print the version, so that a test sees which version is
// installed. The packaging does not look inside the binaries; the fleet
// test installs packages of the real ones.
func fakeBinaries(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range Packages {
		for _, arch := range Arches {
			script := "#!/bin/sh\necho " + p.Binary + " " + version + "\n"
			if err := os.WriteFile(filepath.Join(dir, p.Binary+"-linux-"+arch), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// buildRelease builds every package of version with fake binaries.
func buildRelease(t *testing.T, version string) (dir string, pkgs []string) {
	t.Helper()
	dir = t.TempDir()
	pkgs, err := Build(Options{Version: version, Root: filepath.Join("..", ".."), BinDir: fakeBinaries(t, version), OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return dir, pkgs
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildNames(t *testing.T) {
	dir, pkgs := buildRelease(t, "v1.2.0")
	var names []string
	for _, p := range pkgs {
		if filepath.Dir(p) != dir {
			t.Errorf("%s not in %s", p, dir)
		}
		names = append(names, filepath.Base(p))
	}
	want := "drover-agent_1.2.0_amd64.deb drover-agent_1.2.0_arm64.deb drover-agent-1.2.0-1.x86_64.rpm drover-agent-1.2.0-1.aarch64.rpm " +
		"drover_1.2.0_amd64.deb drover_1.2.0_arm64.deb drover-1.2.0-1.x86_64.rpm drover-1.2.0-1.aarch64.rpm"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("packages:\n %s\nwant\n %s", got, want)
	}
	if _, err := Build(Options{Version: "1.0.0", Root: filepath.Join("..", ".."), BinDir: t.TempDir(), OutDir: t.TempDir()}); err == nil ||
		!strings.Contains(err.Error(), "drover-agent-linux-amd64") {
		t.Errorf("missing binaries: err = %v", err)
	}
}

// TestSealVerify: make release's checks. The signature is checked with
// Verify and with openssl (the command README gives users), SHA256SUMS
// with sha256sum -c; a changed artifact and a manifest signed by another
// key are refused.
func TestSealVerify(t *testing.T) {
	dir, pkgs := buildRelease(t, "1.0.0")
	keyPath := filepath.Join(t.TempDir(), "release.key")
	key, err := GenerateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := LoadKey(keyPath); err != nil || !again.Equal(key) {
		t.Fatalf("LoadKey: %v", err)
	}
	if err := Seal(dir, "1.0.0", pkgs, key); err != nil {
		t.Fatal(err)
	}
	m, err := Verify(dir, key.Public().(ed25519.PublicKey))
	if err != nil || len(m.Artifacts) != len(pkgs) {
		t.Fatalf("Verify: %v (%d artifacts)", err, len(m.Artifacts))
	}
	cmd := exec.Command("sha256sum", "-c", SumsFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	run(t, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, PublicKeyFile), "-rawin",
		"-in", filepath.Join(dir, ManifestFile), "-sigfile", filepath.Join(dir, SignatureFile))
	pub, err := LoadPublicKey(filepath.Join(dir, PublicKeyFile))
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("LoadPublicKey: %v", err)
	}

	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := Verify(dir, other.Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "not the release key's") {
		t.Errorf("another key: err = %v", err)
	}
	f, err := os.OpenFile(pkgs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	if _, err := Verify(dir, pub); err == nil || !strings.Contains(err.Error(), filepath.Base(pkgs[0])) {
		t.Errorf("changed artifact: err = %v", err)
	}
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(keyPath); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("readable key: err = %v", err)
	}
}

// TestSystemdUnits lints the units with the real systemd-analyze verify
// (in a scratch root holding the host's units and the programs the
// units start): any warning fails.
func TestSystemdUnits(t *testing.T) {
	root := t.TempDir()
	units := filepath.Join(root, "usr", "lib", "systemd", "system")
	run(t, "mkdir", "-p", units, filepath.Join(root, "usr", "bin"))
	run(t, "cp", "-r", "/usr/lib/systemd/system/.", units)
	for _, p := range Packages {
		if err := os.WriteFile(filepath.Join(root, "usr", "bin", p.Binary), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, "cp", filepath.Join("..", "..", "deploy", "systemd", p.Unit), units)
	}
	out := run(t, "systemd-analyze", "verify", "--root="+root, "drover-agent.service", "drover.service")
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
	for _, p := range Packages {
		out := run(t, "systemd-analyze", "security", "--offline=yes", "--root="+root, p.Unit)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		t.Logf("%s", lines[len(lines)-1])
	}
}

// TestRPM installs the .rpm packages with the real rpm into an
// installroot: files, modes, config marks and scripts, then an upgrade
// that keeps an edited config file. The scripts are not run here
// (--noscripts: the installroot has no shell or useradd); the Debian
// test runs the same scripts for real.
func TestRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm not found: scripts/deps.sh installs it (need_rpm)")
	}
	v1, _ := buildRelease(t, "1.0.0")
	v2, _ := buildRelease(t, "1.1.0")
	agent1 := filepath.Join(v1, "drover-agent-1.0.0-1.x86_64.rpm")
	list := run(t, "rpm", "-qlp", agent1)
	for _, f := range []string{"/usr/bin/drover-agent", "/usr/lib/systemd/system/drover-agent.service", "/etc/drover/agent.yaml"} {
		if !strings.Contains(list, f+"\n") {
			t.Errorf("rpm -qlp: no %s in\n%s", f, list)
		}
	}
	if got := run(t, "rpm", "-qcp", agent1); strings.TrimSpace(got) != "/etc/drover/agent.yaml" {
		t.Errorf("rpm -qcp (config files) = %q", got)
	}
	scripts := run(t, "rpm", "-qp", "--scripts", agent1)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "re-executes it as soon as no step runs"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("rpm --scripts: no %q", s)
		}
	}
	if got := run(t, "rpm", "-qp", "--qf", "%{ARCH} %{VERSION}", filepath.Join(v1, "drover-1.0.0-1.aarch64.rpm")); got != "aarch64 1.0.0" {
		t.Errorf("arm64 rpm: %q", got)
	}

	root := t.TempDir()
	rpm := func(args ...string) string {
		return run(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm"}, args...)...)
	}
	rpm("--initdb")
	rpm("-i", "--nodeps", "--noscripts", agent1, filepath.Join(v1, "drover-1.0.0-1.x86_64.rpm"))
	mode := func(p string) string { return run(t, "stat", "-c", "%a", filepath.Join(root, p))[:3] }
	if m := mode("etc/drover/agent.yaml"); m != "600" {
		t.Errorf("agent.yaml mode %s", m)
	}
	if m := mode("usr/bin/drover-agent"); m != "755" {
		t.Errorf("drover-agent mode %s", m)
	}
	edited := "server: https://drover.example.net:7070\n"
	if err := os.WriteFile(filepath.Join(root, "etc/drover/agent.yaml"), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	rpm("-U", "--nodeps", "--noscripts", filepath.Join(v2, "drover-agent-1.1.0-1.x86_64.rpm"))
	if got := rpm("-q", "drover-agent"); strings.TrimSpace(got) != "drover-agent-1.1.0-1.x86_64" {
		t.Errorf("after upgrade: %s", got)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/bin/drover-agent")); !strings.Contains(string(b), "1.1.0") {
		t.Errorf("binary not upgraded: %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/drover/agent.yaml")); string(b) != edited {
		t.Errorf("the upgrade replaced the edited config: %q", b)
	}
}
