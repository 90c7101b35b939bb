package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

func TestDNFUpgrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/common.txt", "dnf/upgrade.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, false, pin("nginx", "1:1.20.1-14.el9_2.1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None || ch.Items[0].From != "1:1.20.1-13.el9" {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || out.RebootRequired || len(out.Changed) != 1 {
		t.Fatalf("apply %+v %v", out, err)
	}
	if got := r.ran("dnf install"); !slices.Equal(got, []string{"dnf install -y nginx-1:1.20.1-14.el9_2.1"}) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestDNFRollbackDowngrade(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "dnf/downgrade.txt", "dnf/common.txt")
	d := NewDNF(r, DNFOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin("nginx", "1:1.20.1-14.el9_2.1"))
	s := Snapshot{Driver: "dnf", Data: []byte(`{"packages":[{"name":"nginx","version":"1:1.20.1-13.el9"}]}`)}
	out, err := d.Rollback(ctx, a, s)
	if err != nil || !out.RebootRequired || !strings.Contains(out.Summary, "reboot required: updated since boot: kernel, systemd") {
		t.Fatalf("rollback %+v %v", out, err)
	}
	want := []string{"dnf versionlock list", "dnf versionlock delete nginx", "dnf downgrade -y nginx-1:1.20.1-13.el9"}
	if got := r.ran("dnf"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
}

func TestDNFErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		a        plan.Action
		pre      bool
		sentinel error
		msg      string
	}{
		{"unavailable preflight", pkgAction(plan.PackageUpgrade, false, pin("nginx", "1:9.9-1.el9")), true, ErrUnavailable, "available: 1:1.20.1-13.el9, 1:1.20.1-14.el9_2.1"},
		{"unknown package preflight", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1.el9")), true, ErrUnavailable, "nosuchpkg=2.0-1.el9: package not found"},
		{"unavailable apply", pkgAction(plan.PackageUpgrade, false, pin("nginx", "1:9.9-1.el9")), false, ErrUnavailable, "Unable to find a match: nginx-1:9.9-1.el9"},
		{"locked", pkgAction(plan.PackageUpgrade, false, pin("nginx", "1:1.20.1-14.el9_2.1")), false, ErrLocked, "lock /var/run/dnf.pid held by process 2817"},
		{"no space", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "2.0-1.el9")), false, ErrNoSpace, "needs 112MB more space on the / filesystem"},
		{"no versionlock plugin", pkgAction(plan.PackageUpgrade, true, pin("nginx", "1:1.20.1-13.el9")), false, ErrUnsupported, "versionlock plugin is not installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDNF(loadReplay(t, "dnf/common.txt", "dnf/errors.txt"), DNFOptions{})
			var err error
			if tc.pre {
				_, err = d.Preflight(ctx, tc.a)
			} else {
				_, err = d.Apply(ctx, tc.a)
			}
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v\nwant %v with %q", err, tc.sentinel, tc.msg)
			}
		})
	}
}

func TestRPMVerCmp(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0-1", "1.0-1", 0},
		{"1.0-1", "1.0-2", -1},
		{"1.10-1", "1.9-1", 1},
		{"1:1.0-1", "2.0-1", 1},
		{"1.20.1-14.el9_2.1", "1.20.1-13.el9", 1},
		{"1.0~rc1-1", "1.0-1", -1},
		{"1.0^git1-1", "1.0-1", 1},
		{"1.0^git1-1", "1.0.1-1", -1},
		{"1.0a-1", "1.0-1", 1},
		{"1.0a-1", "1.01-1", -1},
		{"2.0-1.el9", "2.0-1.el9_1", -1},
		{"007-1", "7-1", 0},
	} {
		if got := rpmVerCmp(tc.a, tc.b); got != tc.want {
			t.Errorf("rpmVerCmp(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := rpmVerCmp(tc.b, tc.a); got != -tc.want {
			t.Errorf("rpmVerCmp(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseDNFListWrapped(t *testing.T) {
	out := "Available Packages\nvery-long-package-name-for-wrapping.x86_64\n                          2.0-1.el9                      appstream\n"
	vs, err := parseDNFList(out, "very-long-package-name-for-wrapping")
	if err != nil || !slices.Equal(vs, []string{"2.0-1.el9"}) {
		t.Fatalf("%q %v", vs, err)
	}
	if _, err := parseDNFList("total nonsense here today", "x"); err == nil {
		t.Fatal("no error for malformed output")
	}
	if got := parseVersionlockList("Last metadata expiration check: 0:00:01 ago.\nnginx-1:1.20.1-14.el9_2.1.*\nkernel-core-0:5.14.0-427.el9.*\n# comment\nPackage name: bash\n"); !slices.Equal(got, []string{"nginx", "kernel-core", "bash"}) {
		t.Fatalf("versionlock %q", got)
	}
	if _, err := parseRPMQuery("(none):garbage\n"); err == nil {
		t.Fatal("rpm: no error")
	}
	st, err := parseRPMQuery("(none):5.14.0-427.el9\n(none):5.14.0-503.el9\n")
	if err != nil || !st.at("5.14.0-503.el9") {
		t.Fatalf("%+v %v", st, err)
	}
}

func FuzzParseDNFList(f *testing.F) {
	f.Add("Installed Packages\nnginx.x86_64   1:1.20.1-13.el9   @appstream\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseDNFList(s, "nginx")
		_ = parseVersionlockList(s)
		_, _ = parseRPMQuery(s)
		_ = needsRestartingReason(s)
	})
}

func FuzzRPMVerCmp(f *testing.F) {
	f.Add("1:1.0~rc1^git-1.el9", "1.0-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		if rpmVerCmp(a, b) != -rpmVerCmp(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
	})
}

func TestZypperUpgradeAndLock(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "zypper/upgrade.txt")
	d := NewZypper(r, ZypperOptions{})
	a := pkgAction(plan.PackageUpgrade, true, pin("nginx", "1.21.5-150400.3.6.1"))
	ch, err := d.Preflight(ctx, a)
	if err != nil || ch.None {
		t.Fatalf("preflight %+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || !strings.Contains(out.Summary, "held nginx") {
		t.Fatalf("apply %+v %v", out, err)
	}
	want := []string{
		"zypper --non-interactive search --details --match-exact nginx",
		"zypper --non-interactive locks",
		"zypper --non-interactive install --oldpackage nginx=1.21.5-150400.3.6.1",
		"zypper --non-interactive addlock nginx",
		"zypper --non-interactive needs-rebooting",
	}
	if got := r.ran("zypper"); !slices.Equal(got, want) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestZypperErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		a        plan.Action
		pre      bool
		sentinel error
		msg      string
	}{
		{"locked", pkgAction(plan.PackageUpgrade, false, pin("nginx", "1.21.5-150400.3.6.1")), false, ErrLocked, "held by process 1234 (zypper)"},
		{"not found apply", pkgAction(plan.PackageUpgrade, false, pin("nginx", "9.9-1.1")), false, ErrUnavailable, "No provider of 'nginx=9.9-1.1' found."},
		{"not found preflight", pkgAction(plan.PackageUpgrade, false, pin("nginx", "9.9-1.1")), true, ErrUnavailable, "available: 1.21.5-150400.3.3.1, 1.21.5-150400.3.6.1"},
		{"unknown preflight", pkgAction(plan.PackageInstall, false, pin("nosuchpkg", "1-1")), true, ErrUnavailable, "package not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewZypper(loadReplay(t, "zypper/errors.txt"), ZypperOptions{})
			var err error
			if tc.pre {
				_, err = d.Preflight(ctx, tc.a)
			} else {
				_, err = d.Apply(ctx, tc.a)
			}
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v\nwant %v with %q", err, tc.sentinel, tc.msg)
			}
		})
	}
}

func FuzzParseZypper(f *testing.F) {
	f.Add("S | Name | Type | Version | Arch | Repository\n--+--\nv | nginx | package | 1-1 | x86_64 | r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseZypperSearch(s, "nginx")
		_ = parseZypperLocks(s)
	})
}
