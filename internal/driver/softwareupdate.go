package driver

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// SoftwareUpdate applies macOS updates with softwareupdate. A pin names an
// update by its Label ("macOS Sonoma 14.6.1-23G93") or Title ("macOS
// Sonoma 14.6.1") with its Version. macOS updates are verified with
// sw_vers -productVersion, others by no longer being listed. macOS cannot
// uninstall an update: Rollback always returns an error wrapping
// ErrUnsupported (restore from backup or reinstall instead).
type SoftwareUpdate struct{ r Runner }

var _ Driver = (*SoftwareUpdate)(nil)

// NewSoftwareUpdate returns the macOS driver.
func NewSoftwareUpdate(r Runner) *SoftwareUpdate { return &SoftwareUpdate{r: r} }

// Name is "softwareupdate".
func (s *SoftwareUpdate) Name() string { return "softwareupdate" }

// swUpdate is one entry of softwareupdate --list.
type swUpdate struct {
	Label, Title, Version string
	SizeKiB               int64
	Recommended, Restart  bool
}

// parseSoftwareUpdateList reads "* Label: L" lines each followed by a
// "Title: T, Version: V, Size: NKiB, Recommended: YES, Action: restart,"
// line.
func parseSoftwareUpdateList(out string) ([]swUpdate, error) {
	var ups []swUpdate
	var cur *swUpdate
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		if l, ok := strings.CutPrefix(t, "* Label:"); ok {
			ups = append(ups, swUpdate{Label: strings.TrimSpace(l)})
			cur = &ups[len(ups)-1]
			continue
		}
		if cur == nil || !strings.HasPrefix(t, "Title:") {
			continue
		}
		for field := range strings.SplitSeq(t, ", ") {
			k, v, _ := strings.Cut(field, ":")
			v = strings.TrimSuffix(strings.TrimSpace(v), ",")
			switch strings.TrimSpace(k) {
			case "Title":
				cur.Title = v
			case "Version":
				cur.Version = v
			case "Size":
				var n int64
				if _, err := fmt.Sscanf(v, "%dKiB", &n); err == nil {
					cur.SizeKiB = n
				}
			case "Recommended":
				cur.Recommended = v == "YES"
			case "Action":
				cur.Restart = v == "restart"
			}
		}
		cur = nil
	}
	for _, u := range ups {
		if u.Label == "" || u.Title == "" {
			return nil, fmt.Errorf("malformed softwareupdate --list entry %q", u.Label)
		}
	}
	return ups, nil
}

func (s *SoftwareUpdate) pins(a plan.Action) ([]plan.PackagePin, error) {
	if a.Package == nil {
		return nil, fmt.Errorf("softwareupdate: action %q is not a package action: %w", a.Name, ErrUnsupported)
	}
	pins := a.Package.Packages
	if f, ok := a.Package.Families["macos"]; ok {
		pins = f
	}
	if len(pins) == 0 {
		return nil, fmt.Errorf("softwareupdate: action %q pins no updates", a.Name)
	}
	for _, p := range pins {
		if err := plan.MacOSUpdate.Check(p.Name); err != nil {
			return nil, fmt.Errorf("softwareupdate: invalid update: %w", err)
		}
		if p.Version != "" {
			if err := plan.MacOSVersion.Check(p.Version); err != nil {
				return nil, fmt.Errorf("softwareupdate: %s: invalid version: %w", p.Name, err)
			}
		}
	}
	return pins, nil
}

func (s *SoftwareUpdate) list(ctx context.Context) ([]swUpdate, error) {
	stdout, stderr, err := s.r.Run(ctx, nil, "softwareupdate", "--list")
	if err != nil {
		return nil, fmt.Errorf("softwareupdate: softwareupdate --list: %w", err)
	}
	if strings.Contains(string(stderr), "No new software available") {
		return nil, nil
	}
	ups, err := parseSoftwareUpdateList(string(stdout))
	if err != nil {
		return nil, fmt.Errorf("softwareupdate: %w", err)
	}
	return ups, nil
}

func findUpdate(ups []swUpdate, p plan.PackagePin) (swUpdate, bool) {
	for _, u := range ups {
		if (u.Label == p.Name || u.Title == p.Name) && (p.Version == "" || u.Version == p.Version) {
			return u, true
		}
	}
	return swUpdate{}, false
}

func isMacOS(name string) bool { return strings.HasPrefix(name, "macOS") }

func (s *SoftwareUpdate) productVersion(ctx context.Context) (string, error) {
	stdout, _, err := s.r.Run(ctx, nil, "sw_vers", "-productVersion")
	if err != nil {
		return "", fmt.Errorf("softwareupdate: sw_vers -productVersion: %w", err)
	}
	return strings.TrimSpace(string(stdout)), nil
}

// applied reports whether pin is in place: for macOS the product version,
// otherwise the update no longer offered.
func (s *SoftwareUpdate) applied(ctx context.Context, ups []swUpdate, p plan.PackagePin) (bool, error) {
	if isMacOS(p.Name) {
		v, err := s.productVersion(ctx)
		return v == p.Version, err
	}
	_, listed := findUpdate(ups, p)
	return !listed, nil
}

// Preflight requires each pinned update listed (or already applied).
func (s *SoftwareUpdate) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	pins, err := s.pins(a)
	if err != nil {
		return Change{}, err
	}
	ups, err := s.list(ctx)
	if err != nil {
		return Change{}, err
	}
	var items []ChangeItem
	for _, p := range pins {
		ok, err := s.applied(ctx, ups, p)
		if err != nil {
			return Change{}, err
		}
		if ok {
			continue
		}
		if _, found := findUpdate(ups, p); !found {
			var offered []string
			for _, u := range ups {
				offered = append(offered, u.Label)
			}
			return Change{}, fmt.Errorf("softwareupdate: %s %s is not offered (offered: %s): %w", p.Name, p.Version, orNone(strings.Join(offered, "; ")), ErrUnavailable)
		}
		items = append(items, ChangeItem{Name: p.Name, To: p.Version})
	}
	if len(items) == 0 {
		return Change{Summary: "all updates already installed", None: true}, nil
	}
	return Change{Summary: fmt.Sprintf("would install %d updates", len(items)), Items: items}, nil
}

// Snapshot records the product version (evidence only: no rollback).
func (s *SoftwareUpdate) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	if _, err := s.pins(a); err != nil {
		return Snapshot{}, err
	}
	v, err := s.productVersion(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Driver: s.Name(), Summary: "macOS " + v, Data: []byte(fmt.Sprintf(`{"productVersion":%q}`, v))}, nil
}

// Apply installs each pinned update not yet in place with
// softwareupdate --install LABEL.
func (s *SoftwareUpdate) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	pins, err := s.pins(a)
	if err != nil {
		return Outcome{}, err
	}
	ups, err := s.list(ctx)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	for _, p := range pins {
		ok, err := s.applied(ctx, ups, p)
		if err != nil {
			return out, err
		}
		if ok {
			continue
		}
		u, found := findUpdate(ups, p)
		if !found {
			return out, fmt.Errorf("softwareupdate: %s %s is not offered: %w", p.Name, p.Version, ErrUnavailable)
		}
		c, err := softwareUpdateInstallCommand(u.Label)
		if err != nil {
			return out, fmt.Errorf("softwareupdate: softwareupdate --list offers %s as %s: %w", p.Name, plan.QuoteValue(u.Label), err)
		}
		if _, _, err := c.Run(ctx, s.r); err != nil {
			return out, fmt.Errorf("softwareupdate: install %s: %w", u.Label, err)
		}
		out.Changed = append(out.Changed, ChangeItem{Name: u.Label, To: u.Version})
		out.RebootRequired = out.RebootRequired || u.Restart
	}
	out.Summary = fmt.Sprintf("installed %d updates", len(out.Changed))
	if len(out.Changed) == 0 {
		out.Summary = "all updates already installed"
	}
	return out, nil
}

// softwareUpdateInstallCommand is softwareupdate --install LABEL, the
// label a plan.MacOSUpdate (it comes from softwareupdate --list, matched
// to a pin by label or title) and one argv element.
func softwareUpdateInstallCommand(label string) (Command, error) {
	if err := plan.MacOSUpdate.Check(label); err != nil {
		return Command{}, err
	}
	return Command{Name: "softwareupdate", Args: []string{"--install", label}}, nil
}

// Verify checks each pin is in place (macOS: after the restart).
func (s *SoftwareUpdate) Verify(ctx context.Context, a plan.Action) error {
	pins, err := s.pins(a)
	if err != nil {
		return err
	}
	ups, err := s.list(ctx)
	if err != nil {
		return err
	}
	for _, p := range pins {
		ok, err := s.applied(ctx, ups, p)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("softwareupdate: verify: %s %s not installed", p.Name, p.Version)
		}
	}
	return nil
}

// Rollback is unsupported: macOS cannot uninstall updates.
func (s *SoftwareUpdate) Rollback(context.Context, plan.Action, Snapshot) (Outcome, error) {
	return Outcome{}, fmt.Errorf("softwareupdate: macOS updates cannot be uninstalled; restore the node from a backup or reinstall it: %w", ErrUnsupported)
}
