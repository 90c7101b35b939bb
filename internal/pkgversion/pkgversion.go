// Package pkgversion owns the ordering of package and OS versions, one
// rule per ecosystem, as the ecosystem's own tools order them: dpkg
// (Debian, Ubuntu), rpm (RHEL and its rebuilds, SUSE, Fedora), Windows
// builds (major.minor.build.UBR) and macOS releases (14.6.1).
//
// No well-kept Go library for dpkg and rpm ordering is served to this
// project (github.com/knqyf263/go-deb-version and go-rpm-version are
// not), so the comparators are written here from dpkg's verrevcmp and
// rpm's rpmvercmp, table-tested against real versions and fuzzed for
// antisymmetry and transitivity.
package pkgversion

import (
	"fmt"
	"strings"
)

// Kind is a version ordering rule.
type Kind string

// The orderings.
const (
	Dpkg    Kind = "dpkg"
	RPM     Kind = "rpm"
	Windows Kind = "windows" // 10.0.20348.2700: major.minor.build.UBR
	MacOS   Kind = "macos"   // 14.6.1
)

// Compare orders a and b by kind's rule: -1, 0 or +1. Any strings
// compare (an unknown kind orders as dpkg); Valid says whether a
// version is well formed for its kind.
func Compare(kind Kind, a, b string) int {
	switch kind {
	case RPM:
		return RPMEVR(a, b)
	case Windows, MacOS:
		return Dotted(a, b)
	}
	return Debian(a, b)
}

// Valid reports why v is not a well-formed version of kind, or nil.
// dpkg and rpm versions need a non-empty version without spaces or
// control characters; Windows builds and macOS versions need one to
// four dot-separated decimal numbers.
func Valid(kind Kind, v string) error {
	if v == "" {
		return fmt.Errorf("empty version")
	}
	if len(v) > 256 {
		return fmt.Errorf("version of %d bytes (at most 256)", len(v))
	}
	for _, c := range v {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("version %q has a space or control character", v)
		}
	}
	switch kind {
	case Windows, MacOS:
		parts := strings.Split(v, ".")
		if len(parts) > 4 {
			return fmt.Errorf("version %q has more than 4 parts", v)
		}
		for _, p := range parts {
			if p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 10 {
				return fmt.Errorf("version %q: want dot-separated numbers like 10.0.20348.2700", v)
			}
		}
	}
	return nil
}

// Dotted orders dot-separated numeric versions (Windows builds with
// their update build revision, macOS versions) part by part, a missing
// part counting as 0 (14.6 == 14.6.0). A part that is not a number is
// ordered by dpkg's rule against the other, so any strings compare.
func Dotted(a, b string) int {
	for a != "" || b != "" {
		var pa, pb string
		pa, a, _ = strings.Cut(a, ".")
		pb, b, _ = strings.Cut(b, ".")
		if pa == "" {
			pa = "0"
		}
		if pb == "" {
			pb = "0"
		}
		if c := compareRest(pa, pb); c != 0 {
			return c
		}
	}
	return 0
}
