// Package advisory owns drover's catalog of security advisories: the
// model (an advisory, its aliases, severity, and the versions that fix
// it on each ecosystem), the parsers of the formats vendors publish
// (OSV JSON and CSAF 2.0), and exposure: which nodes an advisory
// affects, judged from the nodes' facts.
//
// Parsing is strict and bounded: a document larger than MaxDocument,
// an advisory with more than MaxAffected fixes, a malformed version or
// an unknown ecosystem is refused with an error naming the source and
// the JSON path of the problem; nothing of a refused document is
// returned. Everything here is pure: no I/O, no clock.
package advisory

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/pkgversion"
)

// Limits on what one document may hold.
const (
	MaxDocument   = 32 << 20 // bytes of one file or request body
	MaxAdvisories = 100_000  // advisories in one document (bundle)
	MaxAffected   = 20_000   // fixes in one advisory
	MaxAliases    = 1_000    // aliases of one advisory
	MaxText       = 64 << 10 // bytes of a summary
	maxID         = 128
)

// Severities, from lowest to highest; SeverityUnknown when the document
// says nothing usable.
const (
	SeverityUnknown  = "unknown"
	SeverityNone     = "none"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// SeverityRank orders severities (unknown 0 ... critical 5); -1 for a
// word that is not a severity.
func SeverityRank(s string) int {
	return slices.Index([]string{SeverityUnknown, SeverityNone, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}, s)
}

// Advisory is one vendor advisory (DSA-5532-1, USN-6477-1,
// RHSA-2023:5837, a Microsoft security update) as drover keeps it.
type Advisory struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"` // CVE, other vendors' IDs, KB numbers; sorted, without ID
	Summary string   `json:"summary,omitempty"`
	// Severity is one of the Severity* words: the vendor's rating when
	// it gives one, else from the highest CVSS base score.
	Severity   string    `json:"severity"`
	CVSSScore  float64   `json:"cvssScore,omitempty"`  // highest CVSS v3 base score, 0 when none
	CVSSVector string    `json:"cvssVector,omitempty"` // its vector
	Published  time.Time `json:"published,omitzero"`
	Modified   time.Time `json:"modified,omitzero"` // a newer Modified replaces a stored advisory
	Source     string    `json:"source"`            // "osv" or "csaf"
	Affected   []Fix     `json:"affected"`
	// RebootRequired: installing a fix needs a reboot to take effect
	// (a kernel, or the vendor says so).
	RebootRequired bool `json:"rebootRequired,omitempty"`
	// LivePatches name live patches that cover the advisory without a
	// reboot (Ubuntu LSN-..., kpatch, SUSE live patch IDs).
	LivePatches []string `json:"livePatches,omitempty"`
	URL         string   `json:"url,omitempty"`
}

// Fix says which version fixes Package on Ecosystem.
type Fix struct {
	// Ecosystem is FAMILY:RELEASE with the OS families of node facts:
	// debian:12, ubuntu:22.04, rhel:9 (and the rebuilds almalinux:9,
	// rocky:9), suse:15.5 (SLES and openSUSE Leap), windows:10.0.20348
	// (the build without its update revision), macos:14 (the major).
	Ecosystem string `json:"ecosystem"`
	// Package is the package name (binary or source as the vendor
	// names it); empty for an OS update (Windows, macOS).
	Package string `json:"package,omitempty"`
	// Fixed is the first fixed version, in the ecosystem's ordering;
	// empty when no fix is published yet (affected, unfixed).
	Fixed string `json:"fixed,omitempty"`
	KB    string `json:"kb,omitempty"` // Windows: the update's KB (KB5030216)
	// Product is the vendor's product name, for people.
	Product string `json:"product,omitempty"`
}

// Family is the ecosystem's family (debian, rhel, windows ...).
func (f Fix) Family() string { fam, _, _ := strings.Cut(f.Ecosystem, ":"); return fam }

// Release is the ecosystem's release (12, 22.04, 9, 15.5 ...).
func (f Fix) Release() string { _, rel, _ := strings.Cut(f.Ecosystem, ":"); return rel }

// families maps drover's OS family names to their version ordering.
var families = map[string]pkgversion.Kind{
	"debian": pkgversion.Dpkg, "ubuntu": pkgversion.Dpkg,
	"rhel": pkgversion.RPM, "centos": pkgversion.RPM, "almalinux": pkgversion.RPM, "rocky": pkgversion.RPM,
	"oracle": pkgversion.RPM, "fedora": pkgversion.RPM, "amazon": pkgversion.RPM,
	"sles": pkgversion.RPM, "sled": pkgversion.RPM, "opensuse-leap": pkgversion.RPM, "suse": pkgversion.RPM,
	"windows": pkgversion.Windows, "macos": pkgversion.MacOS,
}

// KindOf returns the version ordering of an OS family; false for a
// family drover knows no ordering of.
func KindOf(family string) (pkgversion.Kind, bool) {
	k, ok := families[family]
	return k, ok
}

var (
	idRe      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+-]*$`)
	releaseRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	kbRe      = regexp.MustCompile(`^KB[0-9]{6,8}$`)
)

// Validate checks a as the catalog stores it; errors name the field.
func (a *Advisory) Validate() error {
	if len(a.ID) > maxID || !idRe.MatchString(a.ID) {
		return fmt.Errorf("id %q: want letters, digits and ._:+- (at most %d bytes)", clip(a.ID), maxID)
	}
	if len(a.Aliases) > MaxAliases {
		return fmt.Errorf("aliases: %d (at most %d)", len(a.Aliases), MaxAliases)
	}
	for i, al := range a.Aliases {
		if len(al) > maxID || !idRe.MatchString(al) {
			return fmt.Errorf("aliases[%d] %q: want letters, digits and ._:+-", i, clip(al))
		}
	}
	if len(a.Summary) > MaxText {
		return fmt.Errorf("summary of %d bytes (at most %d)", len(a.Summary), MaxText)
	}
	if SeverityRank(a.Severity) < 0 {
		return fmt.Errorf("severity %q: want one of unknown, none, low, medium, high, critical", clip(a.Severity))
	}
	if a.CVSSScore < 0 || a.CVSSScore > 10 {
		return fmt.Errorf("cvssScore %v: want 0 to 10", a.CVSSScore)
	}
	if len(a.Affected) > MaxAffected {
		return fmt.Errorf("affected: %d entries (at most %d)", len(a.Affected), MaxAffected)
	}
	for i, f := range a.Affected {
		if err := f.validate(); err != nil {
			return fmt.Errorf("affected[%d]: %w", i, err)
		}
	}
	for i, l := range a.LivePatches {
		if len(l) > maxID || !idRe.MatchString(l) {
			return fmt.Errorf("livePatches[%d] %q: want letters, digits and ._:+-", i, clip(l))
		}
	}
	if len(a.URL) > 2048 {
		return fmt.Errorf("url of %d bytes (at most 2048)", len(a.URL))
	}
	return nil
}

func (f Fix) validate() error {
	fam, rel, ok := strings.Cut(f.Ecosystem, ":")
	kind, known := families[fam]
	if !ok || !known || !releaseRe.MatchString(rel) || len(rel) > 64 {
		return fmt.Errorf("ecosystem %q: want FAMILY:RELEASE with a family drover knows (debian:12, ubuntu:22.04, rhel:9, suse:15.5, windows:10.0.20348, macos:14)", clip(f.Ecosystem))
	}
	if len(f.Package) > 256 || strings.ContainsAny(f.Package, " \t\r\n") {
		return fmt.Errorf("package %q: at most 256 bytes, no spaces", clip(f.Package))
	}
	if f.Package == "" && kind != pkgversion.Windows && kind != pkgversion.MacOS {
		return fmt.Errorf("ecosystem %s: a package is required", f.Ecosystem)
	}
	if f.Fixed != "" {
		if err := pkgversion.Valid(kind, f.Fixed); err != nil {
			return fmt.Errorf("fixed: %w", err)
		}
	}
	if f.KB != "" && !kbRe.MatchString(f.KB) {
		return fmt.Errorf("kb %q: want KB and 6 to 8 digits", clip(f.KB))
	}
	if len(f.Product) > 512 {
		return fmt.Errorf("product of %d bytes (at most 512)", len(f.Product))
	}
	return nil
}

// normalize sorts and deduplicates what has no order of its own, so
// that two parses of one document are equal and a re-import changes
// nothing.
// finish ends a parse: the vendor's severity (sev), else the one of the
// CVSS score, the normal form, and validation (errors under path).
func (a *Advisory) finish(sev, path string) error {
	switch {
	case sev != "":
		a.Severity = sev
	case a.CVSSVector != "":
		a.Severity = severityOfScore(a.CVSSScore)
	}
	a.normalize()
	if err := a.Validate(); err != nil {
		return under(path, err)
	}
	return nil
}

func (a *Advisory) normalize() {
	al := a.Aliases[:0:0]
	for _, x := range a.Aliases {
		if x != "" && x != a.ID {
			al = append(al, x)
		}
	}
	slices.Sort(al)
	a.Aliases = slices.Compact(al)
	if len(a.Aliases) == 0 {
		a.Aliases = nil
	}
	slices.Sort(a.LivePatches)
	a.LivePatches = slices.Compact(a.LivePatches)
	slices.SortFunc(a.Affected, func(x, y Fix) int {
		return strings.Compare(x.Ecosystem+"\x00"+x.Package+"\x00"+x.Fixed+"\x00"+x.KB, y.Ecosystem+"\x00"+y.Package+"\x00"+y.Fixed+"\x00"+y.KB)
	})
	a.Affected = slices.CompactFunc(a.Affected, func(x, y Fix) bool {
		return x.Ecosystem == y.Ecosystem && x.Package == y.Package && x.Fixed == y.Fixed && x.KB == y.KB
	})
	if a.Affected == nil {
		a.Affected = []Fix{}
	}
	if a.Severity == "" {
		a.Severity = SeverityUnknown
	}
	a.Published, a.Modified = a.Published.UTC(), a.Modified.UTC()
}

// kernelPackage: a fix of one of these needs a reboot (or a live
// patch) to take effect.
func kernelPackage(name string) bool {
	return name == "linux" || name == "kernel" || strings.HasPrefix(name, "linux-image") || strings.HasPrefix(name, "linux-signed") ||
		strings.HasPrefix(name, "kernel-") || name == "kernel-default" || strings.HasPrefix(name, "linux-hwe") ||
		strings.HasPrefix(name, "linux-aws") || strings.HasPrefix(name, "linux-azure") || strings.HasPrefix(name, "linux-gcp") ||
		strings.HasPrefix(name, "linux-lowlatency")
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// severityOfScore is CVSS v3's qualitative rating of a base score.
func severityOfScore(s float64) string {
	switch {
	case s >= 9:
		return SeverityCritical
	case s >= 7:
		return SeverityHigh
	case s >= 4:
		return SeverityMedium
	case s > 0:
		return SeverityLow
	}
	return SeverityNone
}

// vendorSeverity maps vendors' words (Red Hat's Important, Ubuntu's
// negligible, Microsoft's Moderate) to drover's; "" for none.
func vendorSeverity(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return SeverityCritical
	case "important", "high":
		return SeverityHigh
	case "moderate", "medium":
		return SeverityMedium
	case "low", "negligible":
		return SeverityLow
	case "none":
		return SeverityNone
	}
	return ""
}
