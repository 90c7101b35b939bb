package nodediff

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Peer is the healthy node PickPeer chose and why.
type Peer struct {
	Node *Node
	// Score is its similarity to the failing node, out of MaxScore.
	Score  int
	Reason string
}

// Similarity weights: the same OS family and version, hardware class and
// zone matter most (essay 002's "one version? one hardware profile? one
// AZ?"); architecture and kernel break ties among those.
const (
	weightFamily   = 8
	weightVersion  = 4
	weightHardware = 4
	weightZone     = 3
	weightArch     = 1
	weightKernel   = 1
	// MaxScore is the score of a peer alike in every weighted respect.
	MaxScore = weightFamily + weightVersion + weightHardware + weightZone + weightArch + weightKernel
)

// similarity scores c against f and names what they share.
func similarity(f, c *Node) (int, []string) {
	score, same := 0, []string(nil)
	add := func(w int, ok bool, what string) {
		if ok {
			score += w
			same = append(same, what)
		}
	}
	fo, co := f.Facts.OS, c.Facts.OS
	add(weightFamily, fo.Family != "" && fo.Family == co.Family, "os "+fo.Family)
	add(weightVersion, fo.Version != "" && fo.Family == co.Family && fo.Version == co.Version, "version "+fo.Version)
	add(weightHardware, f.Facts.Hardware.Class != "" && f.Facts.Hardware.Class == c.Facts.Hardware.Class, "hardware class "+f.Facts.Hardware.Class)
	add(weightZone, f.Labels["zone"] != "" && f.Labels["zone"] == c.Labels["zone"], "zone "+f.Labels["zone"])
	add(weightArch, f.Facts.Arch != "" && f.Facts.Arch == c.Facts.Arch, "arch "+f.Facts.Arch)
	add(weightKernel, f.Facts.Kernel != "" && f.Facts.Kernel == c.Facts.Kernel, "kernel "+f.Facts.Kernel)
	return score, same
}

// packageDistance counts the packages whose version differs between a
// and b (or that one of them lacks).
func packageDistance(a, b *Node) int {
	n := 0
	for k, v := range a.Facts.Packages {
		if w, ok := b.Facts.Packages[k]; !ok || w != v {
			n++
		}
	}
	for k := range b.Facts.Packages {
		if _, ok := a.Facts.Packages[k]; !ok {
			n++
		}
	}
	return n
}

// PickPeer chooses the healthy node most like failing among candidates,
// which the caller has already limited to healthy ones (succeeded in the
// rollout, or untouched by it). Highest similarity score wins; ties go to
// a node that succeeded in the rollout (it took the same change and is
// healthy) over an untouched one, then to fewer differing packages, then
// to the smaller ID. false when there is no candidate other than failing
// itself.
func PickPeer(failing *Node, candidates []*Node) (Peer, bool) {
	type scored struct {
		n     *Node
		score int
		same  []string
		dist  int
	}
	var all []scored
	for _, c := range candidates {
		if c == nil || c.ID == failing.ID {
			continue
		}
		s, same := similarity(failing, c)
		all = append(all, scored{c, s, same, packageDistance(failing, c)})
	}
	if len(all) == 0 {
		return Peer{}, false
	}
	best := slices.MinFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if as, bs := a.n.State == "succeeded", b.n.State == "succeeded"; as != bs {
			if as {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(a.dist, b.dist); c != 0 {
			return c
		}
		return cmp.Compare(a.n.ID, b.n.ID)
	})
	state := best.n.State
	if state == "" {
		state = "untouched"
	}
	why := fmt.Sprintf("%s, the most similar of %d healthy nodes (score %d/%d", state, len(all), best.score, MaxScore)
	if len(best.same) > 0 {
		why += ": same " + strings.Join(best.same, ", ")
	}
	switch best.dist {
	case 1:
		why += "; 1 package differs)"
	default:
		why += fmt.Sprintf("; %d packages differ)", best.dist)
	}
	return Peer{Node: best.n, Score: best.score, Reason: why}, true
}
