package facts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
)

// The macOS and Windows outputs in testdata are written from the tools'
// documented formats (sw_vers, pkgutil, softwareupdate; Get-CimInstance
// and Get-HotFix through ConvertTo-Json, for Windows PowerShell 5.1 and
// PowerShell 7), not recorded: no macOS or Windows host is reachable
// where drover is tested.
//
// replay is a Runner answering with recorded outputs: dir/NAME.txt is the
// stdout of command NAME, dir/NAME.exit its exit code if not 0; a command
// with no recording is not installed.
type replay struct{ dir string }

func (r replay) Run(_ context.Context, _ []string, name string, _ ...string) ([]byte, []byte, error) {
	out, err := os.ReadFile(filepath.Join(r.dir, name+".txt"))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
	if b, err := os.ReadFile(filepath.Join(r.dir, name+".exit")); err == nil {
		code, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return out, nil, &driver.ExitError{Code: code}
	}
	return out, nil, nil
}

func TestLinuxDebian(t *testing.T) {
	l := &Linux{Root: "testdata/debian12/root", Runner: replay{"testdata/debian12/cmd"}, Arch: "amd64"}
	f, err := l.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := fleet.Facts{
		OS:       fleet.OS{Family: "debian", Name: "debian", Version: "12"},
		Kernel:   "6.1.0-26-amd64",
		Arch:     "amd64",
		Hardware: fleet.Hardware{Class: "PowerEdge R650"},
		BootID:   "3f1c2a9e-5b7d-4c1e-9a0f-2d6e8b4c7a11",
		Packages: map[string]string{
			"adduser": "3.134", "base-files": "12.4+deb12u7", "ca-certificates": "20230311", "libssl3": "3.0.14-1~deb12u2",
			"openssl": "3.0.14-1~deb12u2", "linux-image-6.1.0-26-amd64": "6.1.112-1", "nginx": "1.22.1-9", "telemetry-agent": "7.1.0",
		},
		Services:       map[string]string{"nginx.service": "failed", "systemd-timesyncd.service": "failed"},
		Modules:        []string{"ext4", "livepatch_cve_2026_1", "mbcache", "nf_tables", "tls", "virtio_net"},
		LivePatches:    []string{"livepatch_cve_2026_1"},
		Holds:          []string{"nginx"}, // "hi": apt-mark hold
		Runtime:        fleet.Runtime{Containerd: "1.7.24"},
		Kubelet:        "v1.31.4",
		RebootRequired: true,
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

func TestLinuxRockyContainer(t *testing.T) {
	// No systemd, no DMI, no /proc/modules: a container.
	l := &Linux{Root: "testdata/rocky9/root", Runner: replay{"testdata/rocky9/cmd"}, Arch: "arm64"}
	f, err := l.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.OS != (fleet.OS{Family: "rhel", Name: "rocky", Version: "9.4"}) || f.Services != nil || f.Hardware.Class != "" {
		t.Errorf("os %+v services %v hw %q", f.OS, f.Services, f.Hardware.Class)
	}
	if f.Packages["openssl"] != "1:3.0.7-27.el9" || f.Packages["bash"] != "5.1.8-9.el9" || f.Packages["kernel"] != "5.14.0-427.42.1.el9_4" {
		t.Errorf("packages %v", f.Packages)
	}
	// versionlock.list: two locks, an exclude ("!", not a hold) and a
	// lock of a package not installed.
	if want := []string{"openssl", "openssl-libs"}; !reflect.DeepEqual(f.Holds, want) {
		t.Errorf("holds %v, want %v", f.Holds, want)
	}
	if _, ok := f.Packages["gpg-pubkey"]; ok {
		t.Error("gpg-pubkey listed as a package")
	}
	if f.Runtime.CRIO != "1.30.4" || !f.RebootRequired {
		t.Errorf("crio %q reboot-required %v", f.Runtime.CRIO, f.RebootRequired)
	}
	if _, err := (&Linux{Root: t.TempDir()}).Collect(context.Background()); err == nil || !strings.Contains(err.Error(), "os-release") {
		t.Errorf("empty root: %v", err)
	}
}

func TestOSReleaseFamilies(t *testing.T) {
	for in, want := range map[string]string{
		"ID=ubuntu\nVERSION_ID=\"24.04\"":             "ubuntu",
		"ID=almalinux":                                "rhel",
		"ID=fedora":                                   "rhel",
		"ID=\"centos\"":                               "rhel",
		"ID=\"sles\"\nVERSION_ID=\"15.6\"":            "suse",
		"ID=\"opensuse-leap\"":                        "suse",
		"ID=\"linuxmint\"\nID_LIKE=\"ubuntu debian\"": "ubuntu",
		"ID=\"somethingelse\"":                        "",
	} {
		if got := ParseOSRelease([]byte(in)).Family; got != want {
			t.Errorf("%q: family %q, want %q", in, got, want)
		}
	}
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWindows(t *testing.T) {
	w, err := ParseWindowsOS(read(t, "testdata/windows/os.json"))
	if err != nil {
		t.Fatal(err)
	}
	if w.OS != (fleet.OS{Family: "windows", Name: "Windows Server 2022 Datacenter", Version: "10.0.20348"}) || w.Arch != "amd64" ||
		w.Model != "ProLiant DL360 Gen10" || w.BootID != "boot-1736932512" {
		t.Errorf("%+v", w)
	}
	fixes, err := ParseHotFixes(read(t, "testdata/windows/hotfix.json"))
	if err != nil || len(fixes) != 3 {
		t.Fatalf("%v %v", fixes, err)
	}
	f := WindowsFacts(w, fixes)
	want := map[string]string{"KB5041948": "2024-08-14", "KB5044281": "2024-10-15", "KB5043936": "installed"}
	if !reflect.DeepEqual(f.Packages, want) || f.Hardware.Class != "ProLiant DL360 Gen10" || f.Kernel != "10.0.20348.2762" {
		t.Errorf("facts %+v", f)
	}
	// PowerShell 7 writes ISO dates and a lone object for one update.
	w7, err := ParseWindowsOS(read(t, "testdata/windows/os-pwsh7.json"))
	// Without a UBR (a registry without it), the kernel is the build.
	if err != nil || w7.Arch != "arm64" || !w7.LastBoot.Equal(time.Date(2025, 1, 15, 9, 15, 12, 5e8, time.UTC)) || w7.Kernel != "10.0.22631" {
		t.Errorf("pwsh7: %+v %v", w7, err)
	}
	one, err := ParseHotFixes(read(t, "testdata/windows/hotfix-one-pwsh7.json"))
	if err != nil || len(one) != 1 || one[0].InstalledOn.Format("2006-01-02") != "2024-10-15" {
		t.Errorf("one hot fix: %+v %v", one, err)
	}
}

func TestMacOS(t *testing.T) {
	o, build := ParseSwVers(read(t, "testdata/macos/sw_vers.txt"))
	if o != (fleet.OS{Family: "macos", Name: "macOS", Version: "14.4.1"}) || build != "23E224" {
		t.Errorf("sw_vers: %+v %s", o, build)
	}
	pkgs := ParsePkgutilPkgs(read(t, "testdata/macos/pkgutil.txt"))
	if len(pkgs) != 5 || pkgs["com.example.pkg.telemetry-agent"] != "installed" {
		t.Errorf("pkgutil: %v", pkgs)
	}
	ups := ParseSoftwareUpdateList(read(t, "testdata/macos/softwareupdate.txt"))
	want := []MacUpdate{
		{Label: "macOS Sonoma 14.7.2-23H311", Title: "macOS Sonoma 14.7.2", Version: "14.7.2", Recommended: true, Restart: true},
		{Label: "Safari18.2VenturaAuto-18.2", Title: "Safari", Version: "18.2", Recommended: true},
	}
	if !reflect.DeepEqual(ups, want) {
		t.Errorf("softwareupdate:\n got %+v\nwant %+v", ups, want)
	}
	if id := ParseBootTime(read(t, "testdata/macos/boottime.txt")); id != "boot-1736932512" {
		t.Errorf("boot id %q", id)
	}
}

// TestLockFiles: dnf 5's versionlock.toml and zypper's locks, written
// from the formats dnf5-versionlock(8) and zypper's locks(5) document.
func TestLockFiles(t *testing.T) {
	toml := `version = "1.0"
[[packages]]
name = "openssl"
comment = "held by drover"
[[packages.conditions]]
key = "evr"
comparator = "="
value = "1:3.0.7-27.el9"
[[packages]]
name = "kernel-core"
`
	if got := ParseVersionlockTOML([]byte(toml)); !reflect.DeepEqual(got, []string{"openssl", "kernel-core"}) {
		t.Errorf("versionlock.toml: %v", got)
	}
	locks := `type: package
match_type: exact
case_sensitive: on
solvable_name: openssl

type: patch
solvable_name: SUSE-SLE-Module-Basesystem-15-SP5-2024-1

solvable_name: curl
`
	if got := ParseZyppLocks([]byte(locks)); !reflect.DeepEqual(got, []string{"openssl", "curl"}) {
		t.Errorf("zypp locks: %v", got)
	}
	if got := ParseVersionlockList([]byte("# none\n\n")); got != nil {
		t.Errorf("empty versionlock.list: %v", got)
	}
}

// TestPackageStamp: the stamp changes when dpkg rewrites its status
// file (a package changed, even to the same size) and is "" without a
// package database.
func TestPackageStamp(t *testing.T) {
	root := t.TempDir()
	l := &Linux{Root: root}
	if got := l.PackageStamp(); got != "" {
		t.Fatalf("stamp without a package database: %q", got)
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if err := os.MkdirAll(filepath.Dir(status), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(text string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(status, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(status, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	write("Package: drover-testsvc\nVersion: 1.1\n", t0)
	first := l.PackageStamp()
	if first == "" || first != l.PackageStamp() {
		t.Fatalf("stamp %q, then %q: want one non-empty stamp while nothing changes", first, l.PackageStamp())
	}
	write("Package: drover-testsvc\nVersion: 1.4\n", t0.Add(time.Second)) // same size, later
	if got := l.PackageStamp(); got == first {
		t.Fatalf("stamp unchanged after the status file was rewritten: %q", got)
	}
}
