package advisory

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
)

// Status is a node's exposure to an advisory.
type Status string

// Statuses, from worst to best.
const (
	// Affected: a package older than the fix (or with no fix yet) is
	// installed, or the OS is older than the fixed build.
	Affected Status = "affected"
	// FixedNotRunning: the fix is installed but not running yet: a
	// reboot (or a service restart) away. A newer kernel installed than
	// the one running, or the node's reboot-required fact with an
	// advisory whose fix needs a reboot.
	FixedNotRunning Status = "fixed-not-running"
	// LivePatched: only the kernel is vulnerable and a live patch the
	// advisory names is loaded.
	LivePatched Status = "live-patched"
	// NotAffected: fixed versions installed and running, none of the
	// packages installed, or a release the advisory does not cover.
	NotAffected Status = "not-affected"
	// Unknown: the facts do not say (no OS family, no package list, a
	// Windows node without its update build revision and without the
	// KB).
	Unknown Status = "unknown"
)

// StatusRank orders statuses, worst first (0 affected ... 4 unknown).
func StatusRank(s Status) int {
	return slices.Index([]Status{Affected, FixedNotRunning, LivePatched, NotAffected, Unknown}, s)
}

// Finding is one node's exposure to one advisory, with the reason in
// words and the packages that decided it.
type Finding struct {
	Node     string         `json:"node"`
	Advisory string         `json:"advisory"`
	Status   Status         `json:"status"`
	Reason   string         `json:"reason"`
	Packages []PackageState `json:"packages,omitempty"`
}

// PackageState is an installed package against its fix.
type PackageState struct {
	Package   string `json:"package"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed,omitempty"` // "" when no fix is published
}

// NodeEcosystems lists the ecosystems a node's facts put it in
// (debian:12, ubuntu:22.04, rhel:9 and its rebuild almalinux:9 or
// rocky:9, suse:15.5, windows:10.0.20348, macos:14); nil when the facts
// name no family drover knows or no version. RHEL rebuilds match Red
// Hat's advisories too: they ship the same package versions.
func NodeEcosystems(f fleet.Facts) []string {
	fam, ver := f.OS.Family, strings.TrimSpace(f.OS.Version)
	if ver == "" {
		return nil
	}
	parts := strings.Split(ver, ".")
	switch fam {
	case "debian", "macos":
		return []string{fam + ":" + parts[0]}
	case "ubuntu":
		return []string{"ubuntu:" + strings.Join(parts[:min(2, len(parts))], ".")}
	case "rhel":
		out := []string{"rhel:" + parts[0]}
		name := strings.ToLower(f.OS.Name)
		switch {
		case strings.Contains(name, "alma"):
			out = append(out, "almalinux:"+parts[0])
		case strings.Contains(name, "rocky"):
			out = append(out, "rocky:"+parts[0])
		}
		return out
	case "suse":
		return []string{"suse:" + ver, "suse:" + parts[0]}
	case "windows":
		return []string{"windows:" + strings.Join(parts[:min(3, len(parts))], ".")}
	}
	return nil
}

// Exposure judges one node's exposure to a from the node's facts.
func Exposure(a *Advisory, n *fleet.Node) Finding {
	return exposure(a, n, NodeEcosystems(n.Facts))
}

// exposure is Exposure with the node's ecosystems computed once.
func exposure(a *Advisory, n *fleet.Node, ecos []string) Finding {
	f := Finding{Node: n.ID, Advisory: a.ID}
	if ecos == nil {
		f.Status, f.Reason = Unknown, fmt.Sprintf("no OS family and version drover knows in the facts (%q %q)", n.Facts.OS.Family, n.Facts.OS.Version)
		return f
	}
	var fixes []Fix
	for _, x := range a.Affected {
		if slices.Contains(ecos, x.Ecosystem) {
			fixes = append(fixes, x)
		}
	}
	if len(fixes) == 0 {
		f.Status, f.Reason = NotAffected, "the advisory covers no release of this node ("+strings.Join(ecos, ", ")+")"
		return f
	}
	kind, _ := KindOf(n.Facts.OS.Family)
	switch kind {
	case pkgversion.Windows:
		return windowsExposure(f, fixes, n.Facts)
	case pkgversion.MacOS:
		return macExposure(f, fixes, n.Facts)
	}
	return packageExposure(f, a, fixes, kind, n.Facts)
}

// windowsBuild is the build a Windows node runs with its update build
// revision: the kernel fact (10.0.20348.2700), or os.version when an
// inventory put it there; "" when neither carries the revision.
func windowsBuild(facts fleet.Facts) string {
	for _, v := range []string{facts.Kernel, facts.OS.Version} {
		if strings.Count(v, ".") == 3 {
			return v
		}
	}
	return ""
}

func windowsExposure(f Finding, fixes []Fix, facts fleet.Facts) Finding {
	build := windowsBuild(facts)
	for _, x := range fixes {
		kbInstalled := x.KB != "" && facts.Packages[x.KB] != ""
		switch {
		case build != "" && x.Fixed != "" && pkgversion.Dotted(build, x.Fixed) >= 0:
			f.Status, f.Reason = NotAffected, fmt.Sprintf("build %s runs (fixed in %s)", build, x.Fixed)
		case kbInstalled && facts.RebootRequired:
			f.Status, f.Reason = FixedNotRunning, fmt.Sprintf("%s is installed and a reboot is pending", x.KB)
		case kbInstalled:
			f.Status, f.Reason = NotAffected, x.KB+" is installed"
		case build != "" && x.Fixed != "":
			f.Status, f.Reason = Affected, fmt.Sprintf("build %s runs, older than %s (%s)", build, x.Fixed, orNone(x.KB))
		default:
			// Get-HotFix lists the latest cumulative update, which may
			// include this one: without the update build revision the
			// facts cannot tell.
			f.Status, f.Reason = Unknown, fmt.Sprintf("%s is not installed and the facts carry no update build revision to compare with %s", orNone(x.KB), orNone(x.Fixed))
		}
		if f.Status != Unknown {
			return f
		}
	}
	return f
}

func macExposure(f Finding, fixes []Fix, facts fleet.Facts) Finding {
	for _, x := range fixes {
		if x.Fixed == "" {
			f.Status, f.Reason = Affected, "no fix published for macOS "+facts.OS.Version
			return f
		}
		if pkgversion.Dotted(facts.OS.Version, x.Fixed) < 0 {
			f.Status, f.Reason = Affected, fmt.Sprintf("macOS %s, fixed in %s", facts.OS.Version, x.Fixed)
			return f
		}
	}
	f.Status, f.Reason = NotAffected, "macOS "+facts.OS.Version+" includes the fix"
	return f
}

// kernelSource: the fix of a kernel as distributions name it, matched
// against every installed kernel package of the node.
func isKernelPackage(name string) bool {
	return name == "linux" || name == "kernel" || strings.HasPrefix(name, "linux-image-") || name == "kernel-core" || name == "kernel-default"
}

func packageExposure(f Finding, a *Advisory, fixes []Fix, kind pkgversion.Kind, facts fleet.Facts) Finding {
	if facts.Packages == nil {
		f.Status, f.Reason = Unknown, "the node reports no packages"
		return f
	}
	var vulnerable, vulnerableKernel, fixedKernelNotRunning []string
	fixed := 0
	for _, x := range fixes {
		installed := map[string]string{}
		if v, ok := facts.Packages[x.Package]; ok {
			installed[x.Package] = v
		}
		if x.Package == "linux" || x.Package == "kernel" { // a source package: its binaries
			for p, v := range facts.Packages {
				if isKernelPackage(p) {
					installed[p] = v
				}
			}
		}
		for _, p := range sortedKeys(installed) {
			v := installed[p]
			f.Packages = append(f.Packages, PackageState{Package: p, Installed: v, Fixed: x.Fixed})
			switch {
			case x.Fixed == "" || pkgversion.Compare(kind, v, x.Fixed) < 0:
				if isKernelPackage(p) || isKernelPackage(x.Package) {
					vulnerableKernel = append(vulnerableKernel, p+" "+v)
				} else {
					vulnerable = append(vulnerable, p+" "+v)
				}
			case kind == pkgversion.RPM && isKernelPackage(p) && facts.Kernel != "" && pkgversion.RPMEVR(stripArch(facts.Kernel), stripEpoch(x.Fixed)) < 0:
				// rpm kernels: uname -r is the package's version-release.arch
				fixedKernelNotRunning = append(fixedKernelNotRunning, fmt.Sprintf("%s %s installed, %s running", p, v, facts.Kernel))
			default:
				fixed++
			}
		}
	}
	if len(vulnerableKernel) > 0 && len(vulnerable) == 0 {
		for _, lp := range a.LivePatches {
			if slices.Contains(facts.LivePatches, lp) {
				f.Status, f.Reason = LivePatched, fmt.Sprintf("live patch %s covers %s", lp, strings.Join(vulnerableKernel, ", "))
				return f
			}
		}
	}
	switch all := append(vulnerable, vulnerableKernel...); {
	case len(all) > 0:
		f.Status, f.Reason = Affected, "installed: "+strings.Join(all, ", ")
	case len(fixedKernelNotRunning) > 0:
		f.Status, f.Reason = FixedNotRunning, strings.Join(fixedKernelNotRunning, ", ")+": a reboot away"
	case fixed > 0 && a.RebootRequired && facts.RebootRequired:
		f.Status, f.Reason = FixedNotRunning, "the fix is installed and the node says a reboot is required"
	case fixed > 0:
		f.Status, f.Reason = NotAffected, "fixed versions installed"
	default:
		f.Status, f.Reason = NotAffected, "none of the packages is installed"
	}
	return f
}

func stripArch(k string) string {
	for _, a := range []string{".x86_64", ".aarch64", ".ppc64le", ".s390x"} {
		if s, ok := strings.CutSuffix(k, a); ok {
			return s
		}
	}
	return k
}

func stripEpoch(v string) string {
	if _, rest, ok := strings.Cut(v, ":"); ok {
		return rest
	}
	return v
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Catalog indexes advisories by ecosystem and package, so that a
// node's exposure to a whole catalog costs a look-up per installed
// package, not a check per advisory. Immutable; safe for concurrent use.
type Catalog struct {
	byPkg map[string]map[string][]*Advisory // ecosystem -> package -> advisories
	byOS  map[string][]*Advisory            // ecosystem -> advisories fixed by an OS update (Windows, macOS)
	index map[*Advisory]int                 // position in the catalog, for a per-node seen set
}

// NewCatalog indexes advs (kept by reference: do not change them).
func NewCatalog(advs []Advisory) *Catalog {
	c := &Catalog{byPkg: map[string]map[string][]*Advisory{}, byOS: map[string][]*Advisory{}, index: make(map[*Advisory]int, len(advs))}
	for i := range advs {
		a := &advs[i]
		c.index[a] = i
		for _, f := range a.Affected {
			if f.Package == "" {
				if l := c.byOS[f.Ecosystem]; len(l) == 0 || l[len(l)-1] != a {
					c.byOS[f.Ecosystem] = append(l, a)
				}
				continue
			}
			m := c.byPkg[f.Ecosystem]
			if m == nil {
				m = map[string][]*Advisory{}
				c.byPkg[f.Ecosystem] = m
			}
			if l := m[f.Package]; len(l) == 0 || l[len(l)-1] != a {
				m[f.Package] = append(l, a)
			}
		}
	}
	return c
}

// Node returns the node's findings for every advisory of the catalog
// that concerns it and is not NotAffected, worst first then by
// advisory ID; a single Unknown finding (Advisory "") when its facts
// say too little to judge any.
func (c *Catalog) Node(n *fleet.Node) []Finding {
	ecos := NodeEcosystems(n.Facts)
	kind, _ := KindOf(n.Facts.OS.Family)
	if ecos == nil || (n.Facts.Packages == nil && kind != pkgversion.Windows && kind != pkgversion.MacOS) {
		return []Finding{{Node: n.ID, Status: Unknown, Reason: "the facts name no OS release or no packages drover can judge"}}
	}
	seen := make([]bool, len(c.index))
	var cands []*Advisory
	add := func(l []*Advisory) {
		for _, a := range l {
			if i := c.index[a]; !seen[i] {
				seen[i] = true
				cands = append(cands, a)
			}
		}
	}
	for _, eco := range ecos {
		add(c.byOS[eco])
		m := c.byPkg[eco]
		if m == nil {
			continue
		}
		kernel := false
		for p := range n.Facts.Packages {
			add(m[p])
			kernel = kernel || isKernelPackage(p)
		}
		if kernel {
			add(m["linux"])
			add(m["kernel"])
		}
	}
	var out []Finding
	for _, a := range cands {
		if plainlyFixed(a, n, ecos, kind) {
			continue
		}
		if f := exposure(a, n, ecos); f.Status != NotAffected {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(x, y Finding) int {
		if d := StatusRank(x.Status) - StatusRank(y.Status); d != 0 {
			return d
		}
		return strings.Compare(x.Advisory, y.Advisory)
	})
	return out
}

// plainlyFixed is Exposure's NotAffected for the common case, without
// allocating: every package of the node's releases that the advisory
// fixes is installed at the fixed version or newer, none is a kernel,
// and no reboot is pending for it. False means "ask Exposure".
func plainlyFixed(a *Advisory, n *fleet.Node, ecos []string, kind pkgversion.Kind) bool {
	if a.RebootRequired && n.Facts.RebootRequired {
		return false
	}
	for _, x := range a.Affected {
		if !slices.Contains(ecos, x.Ecosystem) {
			continue
		}
		if x.Package == "" && x.Fixed != "" { // an OS update
			switch kind {
			case pkgversion.MacOS:
				if pkgversion.Dotted(n.Facts.OS.Version, x.Fixed) < 0 {
					return false
				}
			case pkgversion.Windows:
				kb := x.KB != "" && n.Facts.Packages[x.KB] != "" && !n.Facts.RebootRequired
				build := strings.Count(n.Facts.OS.Version, ".") == 3 && pkgversion.Dotted(n.Facts.OS.Version, x.Fixed) >= 0
				if !kb && !build {
					return false
				}
			default:
				return false
			}
			continue
		}
		if x.Package == "" || x.Fixed == "" || isKernelPackage(x.Package) {
			return false
		}
		if v, ok := n.Facts.Packages[x.Package]; ok && pkgversion.Compare(kind, v, x.Fixed) < 0 {
			return false
		}
	}
	return true
}
