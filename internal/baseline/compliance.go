package baseline

import (
	"fmt"
	"slices"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
)

// Status is a node's standing against a baseline.
type Status string

// Statuses.
const (
	Compliant    Status = "compliant"
	NonCompliant Status = "non-compliant"
	Exempt       Status = "exempt"
	NotSelected  Status = "not-selected"
	// Unknown: the facts say too little (no OS release or no package
	// list) to judge the advisory rule.
	Unknown Status = "unknown"
)

// Violation is one reason a node is non-compliant.
type Violation struct {
	Kind      string    `json:"kind"` // "advisory" (past its deadline) or "pin"
	Advisory  string    `json:"advisory,omitempty"`
	Severity  string    `json:"severity,omitempty"`
	Deadline  time.Time `json:"deadline,omitzero"`  // published + within
	Exposure  string    `json:"exposure,omitempty"` // advisory.Status: affected, fixed-not-running
	LivePatch []string  `json:"livePatch,omitempty"`
	Package   string    `json:"package,omitempty"`
	Installed string    `json:"installed,omitempty"`
	Want      string    `json:"want,omitempty"` // pinned version, or the first fixed version ("" none published)
	Reason    string    `json:"reason"`
}

// NodeCompliance is one node's standing.
type NodeCompliance struct {
	Node       string      `json:"node"`
	Status     Status      `json:"status"`
	Violations []Violation `json:"violations,omitempty"`
	// Pending counts advisories the node is exposed to whose deadline
	// has not passed yet.
	Pending   int        `json:"pending,omitempty"`
	Exemption *Exemption `json:"exemption,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// Judge evaluates nodes against one baseline version.
type Judge struct {
	b      Baseline
	sel    *fleet.Selector
	cat    *advisory.Catalog
	byID   map[string]*advisory.Advisory
	exempt map[string]Exemption
}

// NewJudge compiles b's selector and indexes the advisories of its
// severity (advs are kept by reference) and its exemptions (the one
// expiring last per node).
func NewJudge(b Baseline, advs []advisory.Advisory, exemptions []Exemption) (*Judge, error) {
	j := &Judge{b: b, byID: map[string]*advisory.Advisory{}, exempt: map[string]Exemption{}}
	if b.Selector != "" {
		sel, err := fleet.CompileSelector(b.Selector)
		if err != nil {
			return nil, fmt.Errorf("baseline %s: selector: %w", b.Name, err)
		}
		j.sel = sel
	}
	if r := b.Rules.Advisories; r != nil {
		min := advisory.SeverityRank(r.MinSeverity)
		var keep []advisory.Advisory
		for _, a := range advs {
			if advisory.SeverityRank(a.Severity) >= min {
				keep = append(keep, a)
			}
		}
		j.cat = advisory.NewCatalog(keep)
		for i := range keep {
			j.byID[keep[i].ID] = &keep[i]
		}
	}
	for _, e := range exemptions {
		if old, ok := j.exempt[e.Node]; !ok || e.Expires.After(old.Expires) {
			j.exempt[e.Node] = e
		}
	}
	return j, nil
}

// Node judges n at now.
func (j *Judge) Node(n *fleet.Node, now time.Time) (NodeCompliance, error) {
	out := NodeCompliance{Node: n.ID}
	if j.sel != nil {
		ok, err := j.sel.Match(n)
		if err != nil {
			return out, fmt.Errorf("baseline %s: selector on node %s: %w", j.b.Name, n.ID, err)
		}
		if !ok {
			out.Status = NotSelected
			return out, nil
		}
	}
	if e, ok := j.exempt[n.ID]; ok && e.Expires.After(now) {
		out.Status, out.Exemption = Exempt, &e
		return out, nil
	}
	unknown := ""
	if j.cat != nil {
		within := j.b.Rules.Advisories.Within
		for _, f := range j.cat.Node(n) {
			if f.Advisory == "" {
				unknown = f.Reason
				continue
			}
			if f.Status != advisory.Affected && f.Status != advisory.FixedNotRunning {
				continue // live-patched counts as applied
			}
			a := j.byID[f.Advisory]
			deadline := a.Published.Add(within)
			if a.Published.IsZero() || now.Before(deadline) {
				out.Pending++
				continue
			}
			v := Violation{Kind: "advisory", Advisory: a.ID, Severity: a.Severity, Deadline: deadline, Exposure: string(f.Status),
				Reason: fmt.Sprintf("%s (%s) past its deadline %s: %s", a.ID, a.Severity, deadline.UTC().Format(time.DateOnly), f.Reason)}
			if j.b.Rules.LivePatchPreferred {
				v.LivePatch = a.LivePatches
			}
			for _, p := range f.Packages {
				v2 := v
				v2.Package, v2.Installed, v2.Want = p.Package, p.Installed, p.Fixed
				out.Violations = append(out.Violations, v2)
			}
			if len(f.Packages) == 0 {
				out.Violations = append(out.Violations, v)
			}
		}
	}
	out.Violations = append(out.Violations, PinViolations(j.b.Rules.Pins, n.Facts)...)
	switch {
	case len(out.Violations) > 0:
		out.Status = NonCompliant
	case unknown != "":
		out.Status, out.Reason = Unknown, unknown
	default:
		out.Status = Compliant
	}
	return out, nil
}

// PinViolations lists the pins facts break: a pinned package installed
// at another version. A pin of a package the node does not have, or of
// another ecosystem, does not apply.
func PinViolations(pins []Pin, facts fleet.Facts) []Violation {
	var out []Violation
	ecos := advisory.NodeEcosystems(facts)
	kind, _ := advisory.KindOf(facts.OS.Family)
	for _, p := range pins {
		if p.Ecosystem != "" && !slices.Contains(ecos, p.Ecosystem) {
			continue
		}
		have, ok := facts.Packages[p.Package]
		if !ok || pkgversion.Compare(kind, have, p.Version) == 0 {
			continue
		}
		out = append(out, Violation{Kind: "pin", Package: p.Package, Installed: have, Want: p.Version,
			Reason: fmt.Sprintf("%s is pinned at %s, installed %s", p.Package, p.Version, have)})
	}
	return out
}

// Need is what one non-compliant node needs to comply: the input of a
// remediation rollout.
type Need struct {
	Node string `json:"node"`
	// Packages maps a package to the version to install: the pinned
	// version, or the highest fixed version its advisories name ("" when
	// an advisory has no fix published: nothing to install yet).
	Packages map[string]string `json:"packages,omitempty"`
	// Advisories are the advisories past their deadline.
	Advisories []string `json:"advisories,omitempty"`
	// LivePatches: the baseline prefers live patches and these cover
	// every kernel advisory the node needs (a reboot may be avoided).
	LivePatches []string `json:"livePatches,omitempty"`
	// Reboot: a fix is installed but not running.
	Reboot bool `json:"reboot,omitempty"`
	// Downgrade lists pinned packages installed newer than their pin.
	Downgrade []string `json:"downgrade,omitempty"`
}

// Needs lists, for every non-compliant node of cs, what it needs.
// kindOf gives a node's version ordering (nil: dpkg).
func Needs(cs []NodeCompliance, kindOf func(node string) pkgversion.Kind) []Need {
	var out []Need
	for _, c := range cs {
		if c.Status != NonCompliant {
			continue
		}
		var kind pkgversion.Kind = pkgversion.Dpkg
		if kindOf != nil {
			kind = kindOf(c.Node)
		}
		n := Need{Node: c.Node, Packages: map[string]string{}}
		for _, v := range c.Violations {
			switch v.Kind {
			case "pin":
				n.Packages[v.Package] = v.Want
				if pkgversion.Compare(kind, v.Installed, v.Want) > 0 {
					n.Downgrade = append(n.Downgrade, v.Package)
				}
			case "advisory":
				if !slices.Contains(n.Advisories, v.Advisory) {
					n.Advisories = append(n.Advisories, v.Advisory)
				}
				if v.Exposure == string(advisory.FixedNotRunning) {
					n.Reboot = true
				}
				for _, lp := range v.LivePatch {
					if !slices.Contains(n.LivePatches, lp) {
						n.LivePatches = append(n.LivePatches, lp)
					}
				}
				if v.Package == "" || v.Exposure != string(advisory.Affected) {
					continue
				}
				if cur, ok := n.Packages[v.Package]; !ok || (cur != "" && pkgversion.Compare(kind, v.Want, cur) > 0) {
					n.Packages[v.Package] = v.Want
				}
			}
		}
		out = append(out, n)
	}
	return out
}
