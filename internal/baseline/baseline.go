// Package baseline owns drover's desired state for nodes: a baseline is
// a selector plus rules (security advisories of a severity applied
// within a delay, packages pinned at a version, feature updates only
// with approval, live patches preferred to reboots). It parses and
// validates baseline files, judges each node's compliance, and detects
// drift: package versions that changed without a drover step that
// explains them. Everything here is pure: no I/O, no clock.
package baseline

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/fleet"
)

// Limits.
const (
	MaxPins      = 1_000
	MaxFile      = 1 << 20
	maxName      = 63
	maxSelector  = 4 << 10
	maxText      = 1 << 10
	MaxExemption = 366 * 24 * time.Hour // an exemption expires within a year
)

// Feature update policies.
const (
	FeatureApproval = "approval" // feature updates only through an approved rollout
	FeatureAllowed  = "allowed"
)

// Baseline is one versioned desired state.
type Baseline struct {
	Name string `json:"name"`
	// Version is assigned by the server: 1 on creation, +1 on every
	// change.
	Version  int    `json:"version"`
	Selector string `json:"selector,omitempty"` // CEL over node, as rollouts' target selectors; "" selects every node
	Rules    Rules  `json:"rules"`
	// Rollout is the rollout template remediation fills in (YAML: the
	// plan's fields without name, target and change); "" uses
	// DefaultRollout.
	Rollout string `json:"rollout,omitempty"`
	// AutoApprove is the approval policy of remediation rollouts.
	AutoApprove *AutoApprove `json:"autoApprove,omitempty"`
	Actor       string       `json:"actor,omitempty"` // who applied this version
	At          time.Time    `json:"at,omitzero"`     // when
}

// Rules are what a selected node must satisfy.
type Rules struct {
	Advisories *AdvisoryRule `json:"advisories,omitempty"`
	Pins       []Pin         `json:"pins,omitempty"`
	// FeatureUpdates is FeatureApproval or FeatureAllowed ("" allowed).
	FeatureUpdates     string `json:"featureUpdates,omitempty"`
	LivePatchPreferred bool   `json:"livePatchPreferred,omitempty"`
}

// AdvisoryRule: advisories of MinSeverity or higher must be applied
// within Within of their publication.
type AdvisoryRule struct {
	MinSeverity string        `json:"minSeverity"`
	Within      time.Duration `json:"within"`
}

// AutoApprove lets a remediation rollout start without people when
// every advisory it closes is a security advisory published more than
// Security.After ago. Feature updates always need people.
type AutoApprove struct {
	Security *AfterPolicy `json:"security,omitempty"`
}

// AfterPolicy: after this long.
type AfterPolicy struct {
	After time.Duration `json:"after"`
}

// Pin holds Package at Version, on nodes of Ecosystem (debian:12 ...;
// "" every node that has the package).
type Pin struct {
	Package   string `json:"package"`
	Version   string `json:"version"`
	Ecosystem string `json:"ecosystem,omitempty"`
}

// Exemption exempts Node from a baseline until Expires.
type Exemption struct {
	Baseline string    `json:"baseline"`
	Node     string    `json:"node"`
	By       string    `json:"by"`
	Reason   string    `json:"reason"`
	Expires  time.Time `json:"expires"`
	At       time.Time `json:"at,omitzero"`
}

var (
	nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	pkgRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:~-]*$`)
	ecoRe  = regexp.MustCompile(`^[a-z-]+:[A-Za-z0-9._-]+$`)
)

// Validate checks b; errors name the field. It compiles the selector.
func (b *Baseline) Validate() error {
	if len(b.Name) > maxName || !nameRe.MatchString(b.Name) {
		return fmt.Errorf("name %q: want lower-case letters, digits and - (at most %d)", b.Name, maxName)
	}
	if len(b.Selector) > maxSelector {
		return fmt.Errorf("selector: %d bytes (at most %d)", len(b.Selector), maxSelector)
	}
	if b.Selector != "" {
		if _, err := fleet.CompileSelector(b.Selector); err != nil {
			return err
		}
	}
	r := b.Rules
	if a := r.Advisories; a != nil {
		if advisory.SeverityRank(a.MinSeverity) < 0 {
			return fmt.Errorf("rules.advisories.minSeverity %q: want unknown, none, low, medium, high or critical", a.MinSeverity)
		}
		if a.Within < 0 {
			return fmt.Errorf("rules.advisories.within: negative")
		}
	}
	if r.FeatureUpdates != "" && r.FeatureUpdates != FeatureApproval && r.FeatureUpdates != FeatureAllowed {
		return fmt.Errorf("rules.featureUpdates %q: want approval or allowed", r.FeatureUpdates)
	}
	if len(r.Pins) > MaxPins {
		return fmt.Errorf("rules.pins: %d (at most %d)", len(r.Pins), MaxPins)
	}
	seen := map[string]int{}
	for i, p := range r.Pins {
		if len(p.Package) > 256 || !pkgRe.MatchString(p.Package) {
			return fmt.Errorf("rules.pins[%d].package %q: not a package name", i, p.Package)
		}
		if p.Version == "" || len(p.Version) > 256 || strings.ContainsAny(p.Version, " \t\r\n") {
			return fmt.Errorf("rules.pins[%d].version %q: want a version without spaces", i, p.Version)
		}
		if p.Ecosystem != "" && !ecoRe.MatchString(p.Ecosystem) {
			return fmt.Errorf("rules.pins[%d].ecosystem %q: want FAMILY:RELEASE (debian:12)", i, p.Ecosystem)
		}
		k := p.Package + "\x00" + p.Ecosystem
		if j, dup := seen[k]; dup {
			return fmt.Errorf("rules.pins[%d]: pins %s again (rules.pins[%d])", i, p.Package, j)
		}
		seen[k] = i
	}
	return nil
}

// Validate checks e against now.
func (e *Exemption) Validate(now time.Time) error {
	switch {
	case e.Node == "":
		return errors.New("exemption: no node")
	case strings.TrimSpace(e.Reason) == "":
		return errors.New("exemption: a reason is required")
	case len(e.Reason) > maxText:
		return fmt.Errorf("exemption: reason of %d bytes (at most %d)", len(e.Reason), maxText)
	case e.By == "":
		return errors.New("exemption: no author")
	case !e.Expires.After(now):
		return fmt.Errorf("exemption: expires %s, which is not in the future", e.Expires.Format(time.RFC3339))
	case e.Expires.Sub(now) > MaxExemption:
		return fmt.Errorf("exemption: expires %s, more than a year from now", e.Expires.Format(time.RFC3339))
	}
	return nil
}

// SameRules reports whether a and b differ only in version, actor and
// time (applying an unchanged file makes no new version).
func SameRules(a, b Baseline) bool {
	return a.Name == b.Name && a.Selector == b.Selector && a.Rules.FeatureUpdates == b.Rules.FeatureUpdates &&
		a.Rules.LivePatchPreferred == b.Rules.LivePatchPreferred &&
		((a.Rules.Advisories == nil) == (b.Rules.Advisories == nil)) &&
		(a.Rules.Advisories == nil || *a.Rules.Advisories == *b.Rules.Advisories) &&
		slices.Equal(a.Rules.Pins, b.Rules.Pins) && a.Rollout == b.Rollout &&
		((a.AutoApprove == nil) == (b.AutoApprove == nil)) &&
		(a.AutoApprove == nil || ((a.AutoApprove.Security == nil) == (b.AutoApprove.Security == nil) &&
			(a.AutoApprove.Security == nil || *a.AutoApprove.Security == *b.AutoApprove.Security)))
}
