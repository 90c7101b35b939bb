package pkgversion

import "testing"

type pair struct {
	a, b string
	want int
}

func check(t *testing.T, name string, cmp func(a, b string) int, cases []pair) {
	t.Helper()
	for _, c := range cases {
		if got := cmp(c.a, c.b); got != c.want {
			t.Errorf("%s(%q, %q) = %d, want %d", name, c.a, c.b, got, c.want)
		}
		if got := cmp(c.b, c.a); got != -c.want {
			t.Errorf("%s(%q, %q) = %d, want %d (antisymmetry)", name, c.b, c.a, got, -c.want)
		}
	}
}

// TestDebian: dpkg's rules, with real Debian and Ubuntu versions
// (bookworm's openssl and glibc security updates, USN-6477-1's procps).
func TestDebian(t *testing.T) {
	check(t, "Debian", Debian, []pair{
		{"3.0.16", "3.0.14", 1},
		{"3.0.2-0ubuntu1.12", "3.0.2-0ubuntu1.10", 1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1:1.0", "2.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.0a", "1.0+", -1},
		{"1.01", "1.1", 0},
		{"", "", 0},
		{"", "1", -1},
		{"6.5.0-21-generic", "6.5.0-9-generic", 1},
		{"3.0.11-1~deb12u2", "3.0.11-1~deb12u1", 1},
		{"3.0.11-1~deb12u2", "3.0.11-1", -1},
		{"2.36-9+deb12u4", "2.36-9+deb12u3", 1},
		{"2.36-9+deb12u4", "2.36-9", 1},
		{"2:3.3.17-6ubuntu2.1", "2:3.3.17-6ubuntu2", 1},
		{"2:3.3.10-4ubuntu2.5+esm1", "2:3.3.10-4ubuntu2.5", 1},
		{"1:3.3.9-1ubuntu8", "2:3.3.10-4ubuntu1", -1},
		{"1.2.3+dfsg-1", "1.2.3-1", 1},
		{"1.0~~", "1.0~", -1},
		{"1.0~", "1.0", -1},
	})
}

// TestRPM: cases from rpm's own test suite (tests/rpmvercmp.at) and
// real RHEL 9 versions (openssl and kernel errata).
func TestRPM(t *testing.T) {
	check(t, "RPMVerCmp", RPMVerCmp, []pair{
		{"1.0", "1.0", 0},
		{"1.0", "2.0", -1},
		{"2.0.1", "2.0", 1},
		{"2.0.1a", "2.0.1", 1},
		{"5.5p1", "5.5p2", -1},
		{"5.5p10", "5.5p2", 1},
		{"10xyz", "10.1xyz", -1},
		{"xyz10", "xyz10.1", -1},
		{"xyz.4", "8", -1},
		{"1.0aa", "1.0a", 1},
		{"2a", "2.0", -1},
		{"1.0010", "1.9", 1},
		{"1.05", "1.5", 0},
		{"a+", "a_", 0},
		{"+a", "_a", 0},
		{"1.0~rc1", "1.0", -1},
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~rc1~git123", "1.0~rc1", -1},
		{"1.0^", "1.0", 1},
		{"1.0^git1", "1.0", 1},
		{"1.0^git1", "1.01", -1},
		{"1.0^20160101", "1.0.1", -1},
		{"1.0^20160101^git1", "1.0^20160101", 1},
		{"1.0^git1~pre", "1.0^git1", -1},
		{"1.0~rc1^git1", "1.0~rc1", 1},
		{"1.0~rc1^git1", "1.0", -1},
	})
	check(t, "RPMEVR", RPMEVR, []pair{
		{"1:3.0.7-17.el9_2", "1:3.0.7-16.el9_2", 1},
		{"1:3.0.7-27.el9", "1:3.0.7-24.el9", 1},
		{"1:3.0.7-17.el9_2", "3.0.8-1.el9", 1},
		{"0:3.0.7-17.el9_2", "3.0.7-17.el9_2", 0},
		{"5.14.0-362.8.1.el9_3", "5.14.0-284.30.1.el9_2", 1},
		{"5.14.0-284.30.1.el9_2", "5.14.0-284.11.1.el9_2", 1},
		{"2.34-60.el9", "2.34-83.el9_3.7", -1},
		{"1.2", "1.2-1", -1},
		{"3.0.8-150500.5.14.2", "3.0.8-150500.5.8.1", 1},
	})
}

// TestDotted: Windows builds (Windows Server 2022's September 2023 and
// 2024 cumulative updates, Windows 11 22H2) and macOS versions.
func TestDotted(t *testing.T) {
	check(t, "Dotted", Dotted, []pair{
		{"10.0.20348.2700", "10.0.20348.1970", 1},
		{"10.0.20348.2700", "10.0.22621.2283", -1},
		{"10.0.20348.1970", "10.0.20348.1970", 0},
		{"14.6.1", "14.6", 1},
		{"14.6", "14.6.0", 0},
		{"13.7.1", "14.0", -1},
		{"14.10", "14.9", 1},
	})
}

func TestValid(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		v    string
		ok   bool
	}{
		{Windows, "10.0.20348.2700", true},
		{Windows, "10.0.20348.2700.1", false},
		{Windows, "KB5030216", false},
		{MacOS, "14.6.1", true},
		{MacOS, "14.6.1 (23G93)", false},
		{Dpkg, "2:3.3.17-6ubuntu2.1", true},
		{Dpkg, "1.0 2", false},
		{RPM, "", false},
		{RPM, "1:3.0.7-17.el9_2", true},
	} {
		if err := Valid(c.kind, c.v); (err == nil) != c.ok {
			t.Errorf("Valid(%s, %q) = %v, want ok=%v", c.kind, c.v, err, c.ok)
		}
	}
}
