package gate

import (
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// Baseline returns a wave's changed nodes (succeeded) and the unchanged
// nodes (pending) to compare them with: those of the same os family and
// hardware class; the gate's baseline selector, when set, narrows them
// further. An empty baseline makes delta and statistical gates compare
// the changed nodes with themselves before the change. The server and
// the simulator both choose baselines with it.
func Baseline(nodes []engine.Node, wave, selector string) (changed, base []*fleet.Node) {
	var sel *fleet.Selector
	if selector != "" {
		sel, _ = fleet.CompileSelector(selector) // validated with the plan
	}
	kinds := map[[2]string]bool{}
	for _, n := range nodes {
		if n.State.Wave == wave && n.State.Phase == engine.PhaseSucceeded {
			changed = append(changed, n.Node)
			kinds[[2]string{n.Facts.OS.Family, n.Facts.Hardware.Class}] = true
		}
	}
	for _, n := range nodes {
		if n.State.Phase != engine.PhasePending || !kinds[[2]string{n.Facts.OS.Family, n.Facts.Hardware.Class}] {
			continue
		}
		if sel != nil {
			if ok, err := sel.Match(n.Node); err != nil || !ok {
				continue
			}
		}
		base = append(base, n.Node)
	}
	return changed, base
}

// NoUnchanged is what a delta or statistical gate's reason says when it
// compared the wave's nodes with themselves before the change, for want
// of unchanged nodes.
const NoUnchanged = "no unchanged nodes left: compared with the same nodes before the change"
