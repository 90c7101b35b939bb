package advisory

import (
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
)

func node(id, fam, name, ver, kernel string, pkgs map[string]string) *fleet.Node {
	return &fleet.Node{ID: id, Facts: fleet.Facts{OS: fleet.OS{Family: fam, Name: name, Version: ver}, Kernel: kernel, Packages: pkgs}}
}

// TestExposure: each status on each OS family drover manages. The
// parsed fixtures are real advisories; the kernel and macOS advisories
// are made up here (their versions are real releases).
func TestExposure(t *testing.T) {
	dsa := parseFile(t, "osv-dsa-5532-1.json")
	usn := parseFile(t, "osv-usn-6477-1.json")
	rhsa := parseFile(t, "csaf-rhsa-2024_2447.json")
	ms := parseFile(t, "csaf-msrc-cve-2023-38148.json")
	rhKernel := Advisory{ID: "RHSA-TEST-KERNEL", RebootRequired: true, Affected: []Fix{{Ecosystem: "rhel:9", Package: "kernel", Fixed: "5.14.0-427.37.1.el9_4"}}}
	ubKernel := Advisory{ID: "USN-TEST-KERNEL", RebootRequired: true, LivePatches: []string{"LSN-0106-1"},
		Affected: []Fix{{Ecosystem: "ubuntu:22.04", Package: "linux-image-5.15.0-122-generic", Fixed: "5.15.0-122.132"}}}
	debKernel := Advisory{ID: "DSA-TEST-KERNEL", RebootRequired: true, Affected: []Fix{{Ecosystem: "debian:12", Package: "linux", Fixed: "6.1.112-1"}}}
	mac := Advisory{ID: "APPLE-TEST", Affected: []Fix{{Ecosystem: "macos:14", Fixed: "14.7"}}}

	livePatched := node("u-lp", "ubuntu", "Ubuntu", "22.04", "5.15.0-119-generic", map[string]string{"linux-image-5.15.0-122-generic": "5.15.0-122.131"})
	livePatched.Facts.LivePatches = []string{"LSN-0106-1"}
	debReboot := node("d-reboot", "debian", "Debian GNU/Linux", "12", "6.1.0-25-amd64", map[string]string{"linux-image-6.1.0-26-amd64": "6.1.112-1"})
	debReboot.Facts.RebootRequired = true
	winPending := node("w-pending", "windows", "Windows Server 2022 Datacenter", "10.0.20348", "10.0.20348", map[string]string{"KB5030216": "installed"})
	winPending.Facts.RebootRequired = true

	for _, c := range []struct {
		a    *Advisory
		n    *fleet.Node
		want Status
	}{
		{&dsa, node("d-old", "debian", "Debian GNU/Linux", "12", "", map[string]string{"openssl": "3.0.11-1~deb12u1"}), Affected},
		{&dsa, node("d-new", "debian", "Debian GNU/Linux", "12", "", map[string]string{"openssl": "3.0.15-1~deb12u1"}), NotAffected},
		{&dsa, node("d-none", "debian", "Debian GNU/Linux", "12", "", map[string]string{"curl": "7.88.1-10+deb12u7"}), NotAffected},
		{&dsa, node("d-11", "debian", "Debian GNU/Linux", "11", "", map[string]string{"openssl": "1.1.1w-0+deb11u1"}), NotAffected},
		{&dsa, node("d-nopkgs", "debian", "Debian GNU/Linux", "12", "", nil), Unknown},
		{&dsa, node("nofacts", "", "", "", "", nil), Unknown},
		{&usn, node("u-old", "ubuntu", "Ubuntu", "22.04", "", map[string]string{"procps": "2:3.3.17-6ubuntu2", "libprocps8": "2:3.3.17-6ubuntu2"}), Affected},
		{&usn, node("u-new", "ubuntu", "Ubuntu", "22.04", "", map[string]string{"procps": "2:3.3.17-6ubuntu2.1", "libprocps8": "2:3.3.17-6ubuntu2.1"}), NotAffected},
		{&rhsa, node("r-old", "rhel", "Red Hat Enterprise Linux", "9.4", "", map[string]string{"openssl": "1:3.0.7-24.el9"}), Affected},
		{&rhsa, node("r-new", "rhel", "Red Hat Enterprise Linux", "9.4", "", map[string]string{"openssl": "1:3.0.7-27.el9", "openssl-libs": "1:3.0.7-27.el9"}), NotAffected},
		{&rhsa, node("rocky", "rhel", "Rocky Linux", "9.4", "", map[string]string{"openssl": "1:3.0.7-24.el9"}), Affected},
		{&rhsa, node("r-8", "rhel", "Red Hat Enterprise Linux", "8.10", "", map[string]string{"openssl": "1:1.1.1k-12.el8_9"}), NotAffected},
		{&rhKernel, node("r-k-old", "rhel", "Red Hat Enterprise Linux", "9.4", "5.14.0-427.33.1.el9_4.x86_64", map[string]string{"kernel": "5.14.0-427.33.1.el9_4"}), Affected},
		{&rhKernel, node("r-k-pending", "rhel", "Red Hat Enterprise Linux", "9.4", "5.14.0-427.33.1.el9_4.x86_64", map[string]string{"kernel": "5.14.0-427.37.1.el9_4"}), FixedNotRunning},
		{&rhKernel, node("r-k-new", "rhel", "Red Hat Enterprise Linux", "9.4", "5.14.0-427.37.1.el9_4.x86_64", map[string]string{"kernel": "5.14.0-427.37.1.el9_4"}), NotAffected},
		{&ubKernel, livePatched, LivePatched},
		{&ubKernel, node("u-k-old", "ubuntu", "Ubuntu", "22.04", "5.15.0-119-generic", map[string]string{"linux-image-5.15.0-122-generic": "5.15.0-122.131"}), Affected},
		{&debKernel, debReboot, FixedNotRunning},
		{&ms, node("w-old", "windows", "Windows Server 2022 Datacenter", "10.0.20348.1906", "", map[string]string{}), Affected},
		{&ms, node("w-ubr", "windows", "Windows Server 2022 Datacenter", "10.0.20348.2700", "", map[string]string{}), NotAffected},
		// The agent reports the update build revision in the kernel fact.
		{&ms, node("w-kernel-old", "windows", "Windows Server 2022 Datacenter", "10.0.20348", "10.0.20348.1906", map[string]string{"KB5029250": "installed"}), Affected},
		{&ms, node("w-kernel-new", "windows", "Windows Server 2022 Datacenter", "10.0.20348", "10.0.20348.2700", map[string]string{"KB5042881": "installed"}), NotAffected},
		{&ms, node("w-kb", "windows", "Windows Server 2022 Datacenter", "10.0.20348", "", map[string]string{"KB5030216": "installed"}), NotAffected},
		{&ms, winPending, FixedNotRunning},
		{&ms, node("w-nokb", "windows", "Windows Server 2022 Datacenter", "10.0.20348", "", map[string]string{"KB5042881": "installed"}), Unknown},
		{&ms, node("w-2019", "windows", "Windows Server 2019 Datacenter", "10.0.17763", "", map[string]string{}), NotAffected},
		{&mac, node("m-old", "macos", "macOS", "14.6.1", "23.6.0", nil), Affected},
		{&mac, node("m-new", "macos", "macOS", "14.7", "23.6.0", nil), NotAffected},
		{&mac, node("m-15", "macos", "macOS", "15.1", "24.1.0", nil), NotAffected},
	} {
		got := Exposure(c.a, c.n)
		if got.Status != c.want {
			t.Errorf("%s on %s: %s (%s), want %s", c.a.ID, c.n.ID, got.Status, got.Reason, c.want)
		}
	}
}

func TestKernelBehind(t *testing.T) {
	for _, c := range []struct {
		name   string
		f      fleet.Facts
		behind bool
	}{
		{"debian newer installed", fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-25-amd64",
			Packages: map[string]string{"linux-image-6.1.0-25-amd64": "6.1.106-3", "linux-image-6.1.0-27-amd64": "6.1.115-1", "linux-image-amd64": "6.1.115-1"}}, true},
		{"debian newest runs", fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-27-amd64",
			Packages: map[string]string{"linux-image-6.1.0-25-amd64": "6.1.106-3", "linux-image-6.1.0-27-amd64": "6.1.115-1"}}, false},
		{"rhel newer installed", fleet.Facts{OS: fleet.OS{Family: "rhel", Version: "9.4"}, Kernel: "5.14.0-427.33.1.el9_4.x86_64",
			Packages: map[string]string{"kernel-core": "5.14.0-427.37.1.el9_4"}}, true},
		{"rhel newest runs", fleet.Facts{OS: fleet.OS{Family: "rhel", Version: "9.4"}, Kernel: "5.14.0-427.37.1.el9_4.x86_64",
			Packages: map[string]string{"kernel-core": "5.14.0-427.37.1.el9_4"}}, false},
		{"no kernel packages", fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-25-amd64"}, false},
		{"windows", fleet.Facts{OS: fleet.OS{Family: "windows", Version: "10.0.20348"}, Kernel: "10.0.20348"}, false},
	} {
		if _, _, got := KernelBehind(c.f); got != c.behind {
			t.Errorf("%s: behind %v, want %v", c.name, got, c.behind)
		}
		if RebootDebt(c.f) != c.behind {
			t.Errorf("%s: reboot debt %v", c.name, !c.behind)
		}
	}
}
