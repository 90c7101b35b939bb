// Package nodediff compares a failing node with a healthy one and ranks
// what differs, as operators do in an update outage (essay 002: "pick one
// failing instance, one healthy instance, and compare"). It is pure: the
// caller loads the nodes, their labels, agent versions and what the
// rollout's steps changed on them, and nodediff decides what to show and
// in which order. It also picks the healthy peer when the operator names
// none (PickPeer).
//
// A diff is a list of dimensions, each comparing the same part of two
// nodes' data (Dimension.Compare). Dimensions come in tiers: what the
// rollout changed first, then what essay 002 names as known to break
// updates, then the rest. New kinds of data (an evidence bundle's
// resolver answers, routes, mounts) are new dimensions in Dimensions.
package nodediff

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	ev "github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pkgversion"
)

// Tier orders the dimensions of a diff.
type Tier int

const (
	// TierRollout: what the rollout changed on the failing node.
	TierRollout Tier = iota
	// TierKnown: differences known to break updates (essay 002's list).
	TierKnown
	// TierOther: everything else drover knows (labels).
	TierOther
)

func (t Tier) String() string {
	switch t {
	case TierRollout:
		return "rollout"
	case TierKnown:
		return "known"
	}
	return "other"
}

// Node is what drover knows about one node for a diff.
type Node struct {
	ID           string
	Facts        fleet.Facts
	Labels       map[string]string
	AgentVersion string
	Protocol     int
	// State is the node's phase in the rollout compared ("untouched" when
	// the rollout dispatched nothing to it).
	State string
	// Changed is what the rollout's steps did on the node (see
	// ChangesOf); nil when they did nothing or there is no rollout.
	Changed *Changed
	// Evidence is the node's newest evidence bundle (nil: none); its
	// sections are compared when both nodes have one.
	Evidence *ev.Bundle
}

// Difference is one thing that differs between the failing node and the
// healthy one. Failing and Healthy are the values on each ("" when
// absent); Reason says why it is ranked where it is.
type Difference struct {
	Dimension string
	Key       string
	Failing   string
	Healthy   string
	Reason    string
}

// Section is one dimension's differences, bounded: More counts those left
// out.
type Section struct {
	Dimension   string
	Tier        Tier
	Differences []Difference
	More        int
}

// Dimension compares one part of two nodes' data. Compare returns the
// differences ranked, most telling first; Diff bounds them.
type Dimension struct {
	Name    string
	Tier    Tier
	Compare func(failing, healthy *Node) []Difference
}

// Dimensions returns the default dimensions in the order a diff shows
// them: by tier, then as listed. Each call returns a new slice.
func Dimensions() []Dimension {
	return []Dimension{
		{Name: "rollout", Tier: TierRollout, Compare: compareRollout},
		{Name: "os", Tier: TierKnown, Compare: compareOS},
		{Name: "kernel", Tier: TierKnown, Compare: compareKernel},
		{Name: "packages", Tier: TierKnown, Compare: comparePackages},
		{Name: "libraries", Tier: TierKnown, Compare: compareLinkage},
		{Name: "resolver", Tier: TierKnown, Compare: compareResolver},
		{Name: "tls", Tier: TierKnown, Compare: compareTLS},
		{Name: "network", Tier: TierKnown, Compare: compareNetwork},
		{Name: "mounts", Tier: TierKnown, Compare: compareMounts},
		{Name: "firewall", Tier: TierKnown, Compare: compareFirewall},
		{Name: "time", Tier: TierKnown, Compare: compareTime},
		{Name: "services", Tier: TierKnown, Compare: compareServices},
		{Name: "runtime", Tier: TierKnown, Compare: compareRuntime},
		{Name: "agent", Tier: TierKnown, Compare: compareAgent},
		{Name: "hardware", Tier: TierKnown, Compare: compareHardware},
		{Name: "zone", Tier: TierKnown, Compare: compareZone},
		{Name: "modules", Tier: TierKnown, Compare: compareModules},
		{Name: "labels", Tier: TierOther, Compare: compareLabels},
	}
}

// DefaultMaxPerDimension bounds a section when the caller gives 0.
const DefaultMaxPerDimension = 10

// Diff compares failing with healthy along dims (Dimensions() when nil),
// keeping at most maxPer differences per dimension (0: the default) and
// only the dimensions that differ, ordered by tier, then as dims lists
// them.
func Diff(failing, healthy *Node, dims []Dimension, maxPer int) []Section {
	if dims == nil {
		dims = Dimensions()
	}
	if maxPer <= 0 {
		maxPer = DefaultMaxPerDimension
	}
	var out []Section
	for _, d := range dims {
		ds := d.Compare(failing, healthy)
		if len(ds) == 0 {
			continue
		}
		for i := range ds {
			ds[i].Dimension = d.Name
		}
		out = append(out, Section{Dimension: d.Name, Tier: d.Tier, Differences: ds[:min(len(ds), maxPer)], More: max(0, len(ds)-maxPer)})
	}
	slices.SortStableFunc(out, func(a, b Section) int { return cmp.Compare(a.Tier, b.Tier) })
	return out
}

func scalar(key, f, h, reason string) []Difference {
	if f == h {
		return nil
	}
	return []Difference{{Key: key, Failing: f, Healthy: h, Reason: reason}}
}

func compareRollout(f, h *Node) []Difference {
	if f.Changed == nil {
		return nil
	}
	var same, other []Difference
	for _, c := range f.Changed.Items {
		fv := c.From + " → " + c.To
		if f.Changed.RolledBack {
			fv += " (rolled back)"
		}
		d := Difference{Key: c.Name, Failing: fv}
		if hc, ok := h.Changed.item(c.Name); ok && hc.To == c.To {
			d.Healthy = hc.From + " → " + hc.To
			d.Reason = "the rollout made the same change on both: it does not explain the failure alone"
			same = append(same, d)
			continue
		}
		if v, ok := h.Facts.Packages[c.Name]; ok {
			d.Healthy = v + " (not changed)"
		} else {
			d.Healthy = "(not changed)"
		}
		d.Reason = "the rollout changed this on the failing node only: the leading suspect"
		other = append(other, d)
	}
	return append(other, same...)
}

func compareOS(f, h *Node) []Difference {
	fo, ho := f.Facts.OS, h.Facts.OS
	const why = "a different OS release: the change was not tested on both"
	return slices.Concat(
		scalar("family", fo.Family, ho.Family, why),
		scalar("name", fo.Name, ho.Name, why),
		versioned("version", fo.Version, ho.Version, why))
}

func compareKernel(f, h *Node) []Difference {
	ds := versioned("release", f.Facts.Kernel, h.Facts.Kernel, "drivers and timing change with the kernel (essay 002, task 2)")
	ds = append(ds, listDiff("live patch", f.Facts.LivePatches, h.Facts.LivePatches, "a live patch changes the running kernel")...)
	if f.Facts.RebootRequired != h.Facts.RebootRequired {
		ds = append(ds, Difference{Key: "reboot required", Failing: fmt.Sprint(f.Facts.RebootRequired), Healthy: fmt.Sprint(h.Facts.RebootRequired),
			Reason: "one node runs other code than it has installed"})
	}
	return ds
}

// critical are packages whose updates essay 002 names as frequent
// causes of outages (TLS, libc, CA bundles, init, firewall, runtimes);
// their differences come first.
var critical = []string{"openssl", "libssl", "libc6", "glibc", "ca-certificates", "systemd", "iptables", "nftables",
	"containerd", "runc", "docker", "cri-o", "kubelet", "linux-image", "kernel", "openssh", "dbus", "libgnutls", "chrony", "ntp"}

func isCritical(name string) bool {
	return slices.ContainsFunc(critical, func(c string) bool { return strings.HasPrefix(name, c) })
}

func comparePackages(f, h *Node) []Difference {
	keys := slices.Sorted(maps.Keys(f.Facts.Packages))
	for k := range h.Facts.Packages {
		if _, ok := f.Facts.Packages[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var ds []Difference
	for _, k := range keys {
		if _, ok := f.Changed.item(k); ok {
			continue // the rollout tier shows it, with what the rollout did
		}
		fv, fok := f.Facts.Packages[k]
		hv, hok := h.Facts.Packages[k]
		var why string
		switch {
		case fv == hv && fok == hok:
			continue
		case !hok:
			why = "installed on the failing node only"
		case !fok:
			why = "installed on the healthy node only"
		default:
			why = "failing node's version is " + direction(fv, hv)
		}
		if isCritical(k) {
			why += "; a library or tool whose updates often break services (essay 002)"
		}
		ds = append(ds, Difference{Key: k, Failing: fv, Healthy: hv, Reason: why})
	}
	slices.SortStableFunc(ds, func(a, b Difference) int {
		ca, cb := isCritical(a.Key), isCritical(b.Key)
		if ca != cb {
			if ca {
				return -1
			}
			return 1
		}
		return 0
	})
	return ds
}

// direction says how version a compares with b: "newer", "older" or
// "equal in order but spelt differently".
func direction(a, b string) string {
	switch c := pkgversion.Debian(a, b); {
	case c > 0:
		return "newer"
	case c < 0:
		return "older"
	}
	return "ordered equal but spelt differently"
}

// versioned is scalar for a versioned value, its reason saying whether
// the failing node's is newer or older.
func versioned(key, f, h, why string) []Difference {
	if f == h {
		return nil
	}
	if f != "" && h != "" {
		why += "; failing node's is " + direction(f, h)
	}
	return []Difference{{Key: key, Failing: f, Healthy: h, Reason: why}}
}

func compareServices(f, h *Node) []Difference {
	keys := slices.Sorted(maps.Keys(f.Facts.Services))
	for k := range h.Facts.Services {
		if _, ok := f.Facts.Services[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var ds []Difference
	for _, k := range slices.Compact(keys) {
		fv, hv := f.Facts.Services[k], h.Facts.Services[k]
		if fv == hv {
			continue
		}
		ds = append(ds, Difference{Key: k, Failing: orNone(fv), Healthy: orNone(hv), Reason: "a unit or service in another state (essay 002, task 3)"})
	}
	return ds
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func compareRuntime(f, h *Node) []Difference {
	fr, hr := f.Facts.Runtime, h.Facts.Runtime
	const why = "container runtime and kubelet versions decide whether a node stays Ready (essay 002)"
	return slices.Concat(
		versioned("containerd", fr.Containerd, hr.Containerd, why),
		versioned("docker", fr.Docker, hr.Docker, why),
		versioned("cri-o", fr.CRIO, hr.CRIO, why),
		versioned("kubelet", f.Facts.Kubelet, h.Facts.Kubelet, why))
}

func compareAgent(f, h *Node) []Difference {
	ds := versioned("version", f.AgentVersion, h.AgentVersion, "agents of different versions run steps differently")
	if f.Protocol != h.Protocol {
		ds = append(ds, Difference{Key: "protocol", Failing: fmt.Sprint(f.Protocol), Healthy: fmt.Sprint(h.Protocol),
			Reason: "agents speaking different protocol versions report differently"})
	}
	if ap, hp := policy(f.Facts.Agent), policy(h.Facts.Agent); ap != hp {
		ds = append(ds, Difference{Key: "policy", Failing: ap, Healthy: hp, Reason: "the agents accept different actions or probes"})
	}
	return ds
}

func policy(p *fleet.AgentPolicy) string {
	if p == nil {
		return ""
	}
	s := "accepts " + strings.Join(p.Accepts, ",")
	if p.CommandProbes {
		s += "; command probes"
	}
	if p.ProbeOutput {
		s += "; probe output"
	}
	if p.Artifacts {
		s += "; artifacts"
	}
	return s
}

func compareHardware(f, h *Node) []Difference {
	return slices.Concat(
		scalar("class", f.Facts.Hardware.Class, h.Facts.Hardware.Class, "firmware and drivers differ by hardware class (essay 002, failure 8)"),
		scalar("arch", f.Facts.Arch, h.Facts.Arch, "another architecture runs other binaries"))
}

func compareZone(f, h *Node) []Difference {
	return scalar("zone", f.Labels["zone"], h.Labels["zone"], "failures confined to one zone point at its network or dependencies")
}

func compareModules(f, h *Node) []Difference {
	return listDiff("module", f.Facts.Modules, h.Facts.Modules, "kernel modules (overlay, br_netfilter) decide what networking and storage work")
}

// listDiff compares two lists as sets: an element on one node only.
func listDiff(key string, f, h []string, why string) []Difference {
	var ds []Difference
	for _, e := range f {
		if !slices.Contains(h, e) {
			ds = append(ds, Difference{Key: key, Failing: e, Reason: why})
		}
	}
	for _, e := range h {
		if !slices.Contains(f, e) {
			ds = append(ds, Difference{Key: key, Healthy: e, Reason: why})
		}
	}
	return ds
}

func compareLabels(f, h *Node) []Difference {
	keys := slices.Collect(maps.Keys(f.Labels))
	keys = slices.AppendSeq(keys, maps.Keys(h.Labels))
	slices.Sort(keys)
	var ds []Difference
	for _, k := range slices.Compact(keys) {
		if k == "zone" {
			continue
		}
		ds = append(ds, scalar(k, f.Labels[k], h.Labels[k], "a label the operator set")...)
	}
	return ds
}
