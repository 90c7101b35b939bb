package pkgversion

import "testing"

// orderProperties fails unless cmp is antisymmetric and transitive on
// the triple (a, b, c): a total preorder, as sorting and "fixed in"
// comparisons need.
func orderProperties(t *testing.T, name string, cmp func(a, b string) int, a, b, c string) {
	for _, p := range [][2]string{{a, b}, {b, c}, {a, c}} {
		if x, y := cmp(p[0], p[1]), cmp(p[1], p[0]); x != -y {
			t.Fatalf("%s(%q, %q) = %d but reversed %d", name, p[0], p[1], x, y)
		}
	}
	ab, bc, ac := cmp(a, b), cmp(b, c), cmp(a, c)
	if ab <= 0 && bc <= 0 && ac > 0 {
		t.Fatalf("%s: %q <= %q <= %q but %q > %q", name, a, b, c, a, c)
	}
	if ab >= 0 && bc >= 0 && ac < 0 {
		t.Fatalf("%s: %q >= %q >= %q but %q < %q", name, a, b, c, a, c)
	}
}

func FuzzDebian(f *testing.F) {
	f.Add("1:2.0~rc1-3", "2.0-3", "2:3.3.17-6ubuntu2.1")
	f.Add("3.0.11-1~deb12u2", "3.0.11-1", "3.0.11-1+b1")
	f.Fuzz(func(t *testing.T, a, b, c string) { orderProperties(t, "Debian", Debian, a, b, c) })
}

func FuzzRPM(f *testing.F) {
	f.Add("1:3.0.7-17.el9_2", "1.0^git1~pre", "1.0~rc1^git1")
	f.Add("2a", "2.0", "xyz.4")
	f.Fuzz(func(t *testing.T, a, b, c string) { orderProperties(t, "RPMEVR", RPMEVR, a, b, c) })
}

func FuzzDotted(f *testing.F) {
	f.Add("10.0.20348.2700", "14.6", "14.6.0")
	f.Fuzz(func(t *testing.T, a, b, c string) { orderProperties(t, "Dotted", Dotted, a, b, c) })
}
