// Package remediate turns a baseline's needs into a rollout plan: the
// non-compliant nodes as the target, one package action whose per
// os-family pins bring each family to its target versions (apt, dnf and
// zypper packages, Windows updates by KB, macOS updates), in the
// baseline's rollout template. It is pure: no I/O, no clock.
package remediate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/baseline"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
	"github.com/drover-dev/drover/internal/plan"
)

// Input is what a remediation plan is built from.
type Input struct {
	Name       string // the plan's name
	Baseline   baseline.Baseline
	Needs      []baseline.Need
	Nodes      map[string]*fleet.Node // the inventory, by ID
	Advisories []advisory.Advisory    // the catalog (Windows KBs and macOS versions come from it)
	// WaiveStartApprovals: the approval policy approved the start, so
	// the plan asks for no start approval (wave approvals stay).
	WaiveStartApprovals bool
}

// Skip is a non-compliant node the plan leaves out, and why.
type Skip struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// Result is the plan and what it does.
type Result struct {
	Plan *plan.Plan
	YAML []byte // the plan as written, before defaults
	// Nodes are the target nodes, sorted; Closes the advisories each
	// closes.
	Nodes   []string            `json:"nodes"`
	Closes  map[string][]string `json:"closes"`
	Skipped []Skip              `json:"skipped,omitempty"`
	// Features are the changes of the plan no advisory asks for (pins:
	// "node: package=version"): feature updates, which people approve.
	Features []string `json:"features,omitempty"`
	// FeatureApproval: the baseline has featureUpdates: approval and the
	// plan has feature updates, so the plan asks for at least one start
	// approval (from a person other than its author) whatever its
	// template says, and the approval policy cannot waive it.
	FeatureApproval bool `json:"featureApproval,omitempty"`
	// Unheld says why the pinned packages are not held afterwards ("":
	// they are, or there are none).
	Unheld string `json:"unheld,omitempty"`
	// LivePatches: the plan loads these live patches (livePatchPreferred)
	// instead of installing kernel packages and rebooting; "" a package
	// plan.
	LivePatches []string `json:"livePatches,omitempty"`
	// KernelLeft are the nodes of a package plan whose kernel advisories
	// it leaves to a live patch (livePatchPreferred): their kernel
	// packages are not installed, their next remediation loads it.
	KernelLeft []string `json:"kernelLeft,omitempty"`
}

// Policy says whether the baseline's autoApprove policy approves the
// start of res at now: every advisory it closes is in advs, published
// at least autoApprove.security.after before now, and no change is a
// feature update. why says why or why not.
func Policy(b baseline.Baseline, res Result, advs []advisory.Advisory, now time.Time) (ok bool, why string) {
	if b.AutoApprove == nil || b.AutoApprove.Security == nil {
		return false, "the baseline has no autoApprove policy: people approve"
	}
	if len(res.Features) > 0 {
		return false, fmt.Sprintf("feature updates need people (%s)", strings.Join(res.Features, ", "))
	}
	after := b.AutoApprove.Security.After
	byID := map[string]*advisory.Advisory{}
	for i := range advs {
		byID[advs[i].ID] = &advs[i]
	}
	n := 0
	for _, node := range res.Nodes {
		for _, id := range res.Closes[node] {
			a := byID[id]
			switch {
			case a == nil:
				return false, id + " is not in the catalog: people approve"
			case a.Published.IsZero():
				return false, id + " has no publication date: people approve"
			case now.Sub(a.Published) < after:
				return false, fmt.Sprintf("%s was published %s, less than %s ago: people approve", id, a.Published.UTC().Format(time.DateOnly), plan.Duration(after))
			}
			n++
		}
	}
	if n == 0 {
		return false, "the plan closes no advisory: people approve"
	}
	return true, fmt.Sprintf("every advisory it closes is a security advisory published more than %s ago (baseline %s autoApprove.security)", plan.Duration(after), b.Name)
}

// aptFamilies can downgrade a package to its pin (apt
// --allow-downgrades); dnf and zypper drivers upgrade only.
var aptFamilies = []string{"debian", "ubuntu"}

// Build makes the remediation plan. With no node left to remediate it
// returns a Result without a plan and the reasons in Skipped.
func Build(in Input) (Result, error) {
	needs := slices.Clone(in.Needs)
	slices.SortFunc(needs, func(a, b baseline.Need) int { return cmp.Compare(a.Node, b.Node) })
	byID := map[string]*advisory.Advisory{}
	for i := range in.Advisories {
		byID[in.Advisories[i].ID] = &in.Advisories[i]
	}
	res := Result{Closes: map[string][]string{}}
	if lp, ok := livePatchPlan(in, needs, byID, &res); ok {
		return finish(in, res, lp, plan.RebootNever)
	}
	fam := map[string]map[string]string{}  // family -> package -> version
	pinned := map[string]map[string]bool{} // family -> packages the baseline pins
	famNoRollback := map[string]bool{}
	accepted := map[string][]*fleet.Node{} // family -> nodes in the plan
	for _, nd := range needs {
		n := in.Nodes[nd.Node]
		if n == nil {
			res.Skipped = append(res.Skipped, Skip{nd.Node, "not in the inventory"})
			continue
		}
		family := n.Facts.OS.Family
		if rest, ok := withoutLivePatchedKernel(in, n, nd, byID); ok {
			nd = rest
			res.KernelLeft = append(res.KernelLeft, nd.Node)
		}
		pins, reason := nodePins(family, n, nd, byID)
		if reason != "" {
			res.Skipped = append(res.Skipped, Skip{nd.Node, reason})
			continue
		}
		if family == "macos" {
			famNoRollback[family] = true
		}
		cur := fam[family]
		if conflict := conflicts(cur, pins); conflict != "" {
			res.Skipped = append(res.Skipped, Skip{nd.Node, fmt.Sprintf("needs %s, while other %s nodes of this rollout need %s: remediate again once it is done",
				conflict, family, cur[strings.SplitN(conflict, "=", 2)[0]])})
			continue
		}
		if why := newerInstalled(family, n, cur, pins, accepted[family]); why != "" {
			res.Skipped = append(res.Skipped, Skip{nd.Node, why + ": the family's pins would downgrade it; remediate again once this rollout is done"})
			continue
		}
		if cur == nil {
			cur = map[string]string{}
			fam[family] = cur
		}
		accepted[family] = append(accepted[family], n)
		maps.Copy(cur, pins)
		for _, pin := range in.Baseline.Rules.Pins {
			if v, ok := nd.Packages[pin.Package]; ok && v == pin.Version {
				res.Features = append(res.Features, nd.Node+": "+pin.Package+"="+pin.Version)
				if pinned[family] == nil {
					pinned[family] = map[string]bool{}
				}
				pinned[family][pin.Package] = true
			}
		}
		res.Nodes = append(res.Nodes, nd.Node)
		res.Closes[nd.Node] = slices.Sorted(slices.Values(nd.Advisories))
	}
	if len(res.Nodes) == 0 {
		return res, nil
	}
	var acts []plan.Action
	for _, pa := range packageActions(fam, pinned, &res) {
		act := plan.Action{Name: "remediate " + in.Baseline.Name, Package: pa}
		if pa.Hold {
			act.Name = "pin " + in.Baseline.Name
		}
		if len(famNoRollback) > 0 {
			act.NoRollbackOn = slices.Sorted(maps.Keys(famNoRollback))
		}
		acts = append(acts, act)
	}
	return finish(in, res, acts, plan.RebootIfRequired)
}

// finish puts the actions in the baseline's rollout template for
// res.Nodes, with its approvals (see Result.FeatureApproval and
// Input.WaiveStartApprovals).
func finish(in Input, res Result, acts []plan.Action, reboot plan.RebootPolicy) (Result, error) {
	quoted := make([]string, len(res.Nodes))
	for i, id := range res.Nodes {
		quoted[i] = strconv.Quote(id)
	}
	sel := "node.id in [" + strings.Join(quoted, ", ") + "]"
	tmpl := in.Baseline.Rollout
	res.FeatureApproval = len(res.Features) > 0 && in.Baseline.Rules.FeatureUpdates == baseline.FeatureApproval
	switch {
	case res.FeatureApproval:
		// Feature updates only with approval: never waived, at least one.
		var err error
		if tmpl, err = withStartApprovals(tmpl, 1); err != nil {
			return res, fmt.Errorf("baseline %s: rollout template: %w", in.Baseline.Name, err)
		}
	case in.WaiveStartApprovals && len(res.Features) == 0:
		var err error
		if tmpl, err = withoutStartApprovals(tmpl); err != nil {
			return res, fmt.Errorf("baseline %s: rollout template: %w", in.Baseline.Name, err)
		}
	}
	p, y, err := baseline.PlanFrom(tmpl, in.Name, sel, plan.Change{Actions: acts, Reboot: reboot})
	if err != nil {
		return res, fmt.Errorf("baseline %s: remediation plan: %w", in.Baseline.Name, err)
	}
	res.Plan, res.YAML = p, y
	return res, nil
}

// liveFamilies are the os families with kernel live patches.
var liveFamilies = []string{"debian", "ubuntu", "rhel", "suse"}

// livePatches gives the live patches (sorted) that close every advisory
// of a node's need without its kernel packages and a reboot, or nil:
// the baseline prefers live patches (the need lists them), every
// advisory names one of them, every package the need installs is a
// kernel package, no pin is among them and no fix is only a reboot away
// (a live patch does not change what exposure says of it).
func livePatches(in Input, n *fleet.Node, nd baseline.Need, byID map[string]*advisory.Advisory) []string {
	if !in.Baseline.Rules.LivePatchPreferred || len(nd.LivePatches) == 0 || n == nil || nd.Reboot ||
		len(nd.Advisories) == 0 || len(nd.Downgrade) > 0 || !slices.Contains(liveFamilies, n.Facts.OS.Family) {
		return nil
	}
	for pkg, v := range nd.Packages {
		if !baseline.IsKernelPackage(pkg) {
			return nil
		}
		for _, pin := range in.Baseline.Rules.Pins {
			if pin.Package == pkg && pin.Version == v {
				return nil
			}
		}
	}
	var ids []string
	for _, id := range nd.Advisories {
		a := byID[id]
		if a == nil {
			return nil
		}
		found := ""
		for _, lp := range slices.Sorted(slices.Values(a.LivePatches)) {
			if slices.Contains(nd.LivePatches, lp) {
				found = lp
				break
			}
		}
		if found == "" {
			return nil
		}
		ids = append(ids, found)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// kernelOnly: every fix of a names a kernel package (or the kernel's
// source package, linux).
func kernelOnly(a *advisory.Advisory) bool {
	for _, f := range a.Affected {
		if f.Package != "linux" && !baseline.IsKernelPackage(f.Package) {
			return false
		}
	}
	return len(a.Affected) > 0
}

// withoutLivePatchedKernel: a node that needs other packages as well as
// a kernel whose every kernel advisory a live patch covers (the baseline
// prefers them) gets its other packages now, without the kernel and its
// reboot: the need without its kernel packages and kernel advisories,
// true. The kernel advisories stay open, and the next remediation finds
// the node needing only live patches.
func withoutLivePatchedKernel(in Input, n *fleet.Node, nd baseline.Need, byID map[string]*advisory.Advisory) (baseline.Need, bool) {
	if !in.Baseline.Rules.LivePatchPreferred || len(nd.LivePatches) == 0 || nd.Reboot || !slices.Contains(liveFamilies, n.Facts.OS.Family) {
		return nd, false
	}
	var rest []string
	kernel := 0
	for _, id := range nd.Advisories {
		a := byID[id]
		if a == nil {
			return nd, false
		}
		if !kernelOnly(a) {
			for _, f := range a.Affected {
				if f.Package == "linux" || baseline.IsKernelPackage(f.Package) {
					return nd, false // it needs a kernel too: the kernel it is
				}
			}
			rest = append(rest, id)
			continue
		}
		if !slices.ContainsFunc(a.LivePatches, func(lp string) bool { return slices.Contains(nd.LivePatches, lp) }) {
			return nd, false // a kernel advisory no live patch covers: the kernel it is
		}
		kernel++
	}
	if kernel == 0 || len(rest) == 0 {
		return nd, false // nothing to leave, or only kernels (livePatchPlan's)
	}
	out := nd
	out.Advisories = rest
	out.Packages = map[string]string{}
	for p, v := range nd.Packages {
		pinned := slices.ContainsFunc(in.Baseline.Rules.Pins, func(pin baseline.Pin) bool { return pin.Package == p && pin.Version == v })
		if !baseline.IsKernelPackage(p) || pinned {
			out.Packages[p] = v
		}
	}
	return out, true
}

// livePatchPlan: when some nodes can be remediated by live patches
// alone (livePatches), the plan is theirs: the nodes of one os family
// needing one set of live patches (the group of the first such node by
// ID), one livepatch action per patch (Canonical Livepatch on Ubuntu,
// kpatch elsewhere, its signed module the artifact ID.ko), no reboot. Every other node is skipped, to be
// remediated by the next call, once the live patches are loaded.
func livePatchPlan(in Input, needs []baseline.Need, byID map[string]*advisory.Advisory, res *Result) ([]plan.Action, bool) {
	key := func(family string, ids []string) string { return family + " " + strings.Join(ids, ",") }
	chosen, family := "", ""
	var ids []string
	for _, nd := range needs {
		n := in.Nodes[nd.Node]
		if l := livePatches(in, n, nd, byID); l != nil && chosen == "" {
			chosen, family, ids = key(n.Facts.OS.Family, l), n.Facts.OS.Family, l
		}
	}
	if chosen == "" {
		return nil, false
	}
	for _, nd := range needs {
		n := in.Nodes[nd.Node]
		if n != nil {
			if l := livePatches(in, n, nd, byID); l != nil && key(n.Facts.OS.Family, l) == chosen {
				res.Nodes = append(res.Nodes, nd.Node)
				res.Closes[nd.Node] = slices.Sorted(slices.Values(nd.Advisories))
				continue
			}
		}
		res.Skipped = append(res.Skipped, Skip{nd.Node, fmt.Sprintf("left for the next remediation: this one loads live patch %s on %s nodes instead of a kernel and a reboot (livePatchPreferred); remediate again once it is done",
			strings.Join(ids, ", "), family)})
	}
	var acts []plan.Action
	for _, id := range ids {
		la := &plan.LivePatchAction{ID: id, Provider: "canonical-livepatch"}
		if family != "ubuntu" {
			// kpatch loads a signed module: the artifact named ID.ko.
			la.Provider, la.Artifact = "kpatch", strings.TrimSuffix(id, ".ko")+".ko"
		}
		acts = append(acts, plan.Action{Name: "live patch " + id, LivePatch: la})
	}
	res.LivePatches = ids
	return acts, true
}

// holdFamilies are the os families whose package drivers hold packages
// (apt-mark hold, dnf versionlock, zypper addlock).
var holdFamilies = []string{"debian", "ubuntu", "rhel", "suse"}

// packageActions splits the families' packages into the advisories'
// fixes and the baseline's pins, held afterwards (hold: true), as
// operators do after pinning: one action of each kind. An action
// applies to every node of the plan, so the split needs every family to
// have both kinds of packages, or the plan to have only one kind; else
// (or when a family cannot hold) one action without holds, and
// res.Unheld says why.
func packageActions(fam map[string]map[string]string, pinned map[string]map[string]bool, res *Result) []*plan.PackageAction {
	fixes := &plan.PackageAction{Families: map[string][]plan.PackagePin{}}
	pins := &plan.PackageAction{Families: map[string][]plan.PackagePin{}, Hold: true}
	all := &plan.PackageAction{Families: map[string][]plan.PackagePin{}}
	for _, f := range slices.Sorted(maps.Keys(fam)) {
		pkgs := fam[f]
		for _, name := range slices.Sorted(maps.Keys(pkgs)) {
			pin := plan.PackagePin{Name: name, Version: pkgs[name]}
			all.Families[f] = append(all.Families[f], pin)
			if pinned[f][name] {
				pins.Families[f] = append(pins.Families[f], pin)
			} else {
				fixes.Families[f] = append(fixes.Families[f], pin)
			}
		}
	}
	if len(pins.Families) == 0 {
		return []*plan.PackageAction{all}
	}
	for _, f := range slices.Sorted(maps.Keys(fam)) {
		if !slices.Contains(holdFamilies, f) {
			res.Unheld = "the " + f + " nodes of this plan cannot hold packages: the pins are installed, not held"
			return []*plan.PackageAction{all}
		}
		if len(fixes.Families) > 0 && (len(fixes.Families[f]) == 0 || len(pins.Families[f]) == 0) {
			res.Unheld = "the " + f + " nodes need only pins or only fixes while others need both, and an action applies to every node: the pins are installed, not held"
			return []*plan.PackageAction{all}
		}
	}
	if len(fixes.Families) == 0 {
		return []*plan.PackageAction{pins}
	}
	return []*plan.PackageAction{fixes, pins}
}

// nodePins gives a node's pins (package -> version), or why it cannot be
// remediated by a package action.
func nodePins(family string, n *fleet.Node, nd baseline.Need, byID map[string]*advisory.Advisory) (map[string]string, string) {
	pins := map[string]string{}
	switch family {
	case "windows", "macos":
		ecos := advisory.NodeEcosystems(n.Facts)
		for _, id := range nd.Advisories {
			a := byID[id]
			if a == nil {
				return nil, "advisory " + id + " is not in the catalog"
			}
			found := false
			for _, f := range a.Affected {
				if !slices.Contains(ecos, f.Ecosystem) || f.Fixed == "" {
					continue
				}
				if family == "windows" {
					if f.KB == "" {
						continue
					}
					pins[f.KB] = f.Fixed
				} else {
					pins[cmp.Or(f.Product, "macOS "+f.Fixed)] = f.Fixed
				}
				found = true
				break
			}
			if !found {
				return nil, fmt.Sprintf("%s names no fixed %s update for this node", id, map[string]string{"windows": "KB", "macos": "macOS"}[family])
			}
		}
	case "":
		return nil, "the facts carry no os family"
	default:
		if _, ok := advisory.KindOf(family); !ok {
			return nil, "os family " + family + " has no package driver for remediation"
		}
		for pkg, v := range nd.Packages {
			if v == "" {
				return nil, pkg + ": no fixed version published yet"
			}
			pins[pkg] = v
		}
		if len(nd.Downgrade) > 0 && !slices.Contains(aptFamilies, family) {
			return nil, fmt.Sprintf("pins %s below the installed version: the %s package driver does not downgrade", strings.Join(slices.Sorted(slices.Values(nd.Downgrade)), ", "), family)
		}
	}
	if len(pins) == 0 {
		if nd.Reboot {
			return nil, "the fix is installed and needs only a reboot: reboot the node (no package to install)"
		}
		return nil, "nothing to install"
	}
	return pins, ""
}

// conflicts returns "pkg=version" of the first pin (by name) that cur
// already holds at another version, or "".
func conflicts(cur, pins map[string]string) string {
	for _, k := range slices.Sorted(maps.Keys(pins)) {
		if v, ok := cur[k]; ok && v != pins[k] {
			return k + "=" + pins[k]
		}
	}
	return ""
}

// withoutStartApprovals removes approvals.start from a rollout template.
func withoutStartApprovals(tmpl string) (string, error) {
	if strings.TrimSpace(tmpl) == "" {
		return tmpl, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(tmpl), &doc); err != nil {
		return "", err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return tmpl, nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "approvals" {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			break
		}
	}
	out, err := yaml.Marshal(&doc)
	return string(out), err
}

// withStartApprovals makes a rollout template ask for at least min
// start approvals (approvals.start), adding approvals: when it has none.
func withStartApprovals(tmpl string, min int) (string, error) {
	if strings.TrimSpace(tmpl) == "" {
		tmpl = baseline.DefaultRollout
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(tmpl), &doc); err != nil {
		return "", err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("expected a mapping")
	}
	scalar := func(v, tag string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }
	m := doc.Content[0]
	var ap *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "approvals" {
			ap = m.Content[i+1]
		}
	}
	if ap == nil || ap.Kind != yaml.MappingNode {
		if ap != nil { // approvals: null or a scalar: the plan parser says what is wrong
			return tmpl, nil
		}
		ap = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.Content = append(m.Content, scalar("approvals", "!!str"), ap)
	}
	found := false
	for i := 0; i+1 < len(ap.Content); i += 2 {
		if ap.Content[i].Value != "start" {
			continue
		}
		found = true
		if n, err := strconv.Atoi(ap.Content[i+1].Value); err != nil || n < min {
			ap.Content[i+1] = scalar(strconv.Itoa(min), "!!int")
		}
	}
	if !found {
		ap.Content = append(ap.Content, scalar("start", "!!str"), scalar(strconv.Itoa(min), "!!int"))
	}
	out, err := yaml.Marshal(&doc)
	return string(out), err
}

// newerInstalled says why adding node n (wanting pins) to a family whose
// plan pins are cur and whose nodes are already would make one of them
// go back: n has a package of cur installed at a newer version than
// cur's, or a node already in has one of pins newer. A node without the
// package is not changed by an upgrade. "" when neither.
func newerInstalled(family string, n *fleet.Node, cur, pins map[string]string, already []*fleet.Node) string {
	kind, ok := advisory.KindOf(family)
	if !ok || family == "windows" || family == "macos" {
		return ""
	}
	for _, pkg := range slices.Sorted(maps.Keys(cur)) {
		if have, ok := n.Facts.Packages[pkg]; ok && pins[pkg] == "" && pkgversion.Compare(kind, have, cur[pkg]) > 0 {
			return fmt.Sprintf("has %s %s, newer than %s which other %s nodes of this rollout need", pkg, have, cur[pkg], family)
		}
	}
	for _, o := range already {
		for _, pkg := range slices.Sorted(maps.Keys(pins)) {
			if have, ok := o.Facts.Packages[pkg]; ok && cur[pkg] == "" && pkgversion.Compare(kind, have, pins[pkg]) > 0 {
				return fmt.Sprintf("needs %s %s, older than the %s node %s already in this rollout has", pkg, pins[pkg], family, o.ID)
			}
		}
	}
	return ""
}
