package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fleet is what the rest of the fleet imposes on one rollout: the nodes
// of its target that another rollout or holder holds, the fleet
// disruption budgets covering its nodes with their use by others, and the
// fleet freezes in force now. The shell loads it in the same pass as the
// rollout; a nil Fleet imposes nothing.
type Fleet struct {
	// Held maps a target node's ID to whoever else holds it (an
	// in-flight step of another rollout, a lock holder). The rollout's
	// own holds are not listed.
	Held map[string]Holder
	// Budgets are the fleet disruption budgets covering at least one
	// node of the target.
	Budgets []FleetBudget
	// Freezes are the fleet freezes in force at Input.Now.
	Freezes []FleetFreeze
}

// Holder is who holds a node: Kind "rollout" with the rollout's ID and
// plan name, or another kind of slot holder ("lock") with its ID.
type Holder struct {
	Kind string
	ID   string
	Name string
}

func (h Holder) String() string {
	s := orElse(h.Kind, "holder") + " " + h.ID
	if h.Name != "" && h.Name != h.ID {
		s += " (" + h.Name + ")"
	}
	return s
}

// FleetBudget is one fleet disruption budget as it bears on this
// rollout: its domains, each with its limit and the slots others hold in
// it, and which domain each target node falls in.
type FleetBudget struct {
	Name string
	// Per is the label (or fact path) splitting the budget into domains;
	// "" when the budget is one domain.
	Per     string
	Domains []BudgetDomain
	// Of gives, per node of Input.Nodes (same order), the index of its
	// domain in Domains, or -1 when the budget does not cover it. A
	// shorter slice leaves the remaining nodes uncovered.
	Of []int32
}

// BudgetDomain is one domain of a fleet budget. Limit is the budget's
// max unavailable resolved for the domain; Held counts the slots held in
// it by other rollouts and holders, and Holders names the first few of
// them as "node (holder)".
type BudgetDomain struct {
	Value   string
	Limit   int
	Held    int
	Holders []string
}

// FleetFreeze is a fleet freeze in force at Input.Now. Until is when the
// current period ends (following periods that overlap or touch it), in
// the freeze's time zone; Covers, per node of Input.Nodes, says which
// nodes it applies to (nil: every node).
type FleetFreeze struct {
	Name   string
	Reason string
	Until  time.Time
	Covers []bool
}

func (f *FleetFreeze) covers(i int) bool {
	return f.Covers == nil || (i < len(f.Covers) && f.Covers[i])
}

// fleetState tallies this rollout's own slots in each fleet budget
// domain, next to those Fleet says others hold.
type fleetState struct {
	f       *Fleet
	used    [][]int     // per budget, per domain: own slots in use
	holders [][]holders // per budget, per domain: own holders sample
}

func newFleetState(f *Fleet) *fleetState {
	if f == nil {
		return nil
	}
	fs := &fleetState{f: f, used: make([][]int, len(f.Budgets)), holders: make([][]holders, len(f.Budgets))}
	for b := range f.Budgets {
		fs.used[b] = make([]int, len(f.Budgets[b].Domains))
		fs.holders[b] = make([]holders, len(f.Budgets[b].Domains))
	}
	return fs
}

func (fs *fleetState) domainOf(b, i int) int32 {
	of := fs.f.Budgets[b].Of
	if i >= len(of) {
		return -1
	}
	return of[i]
}

func (fs *fleetState) take(i int) {
	if fs == nil {
		return
	}
	for b := range fs.f.Budgets {
		if dom := fs.domainOf(b, i); dom >= 0 {
			fs.used[b][dom]++
			fs.holders[b][dom].add(i)
		}
	}
}

func (fs *fleetState) release(i int) {
	if fs == nil {
		return
	}
	for b := range fs.f.Budgets {
		if dom := fs.domainOf(b, i); dom >= 0 {
			fs.used[b][dom]--
			fs.holders[b][dom].remove(i)
		}
	}
}

// held reports who else holds node i.
func (fs *fleetState) held(nodeID string) (Holder, bool) {
	if fs == nil {
		return Holder{}, false
	}
	h, ok := fs.f.Held[nodeID]
	return h, ok
}

// blocked reports the first fleet budget whose domain of node i is full.
func (fs *fleetState) blocked(i int) (waitKey, bool) {
	if fs == nil {
		return waitKey{}, false
	}
	for b := range fs.f.Budgets {
		dom := fs.domainOf(b, i)
		if dom < 0 {
			continue
		}
		fb := &fs.f.Budgets[b]
		bd := &fb.Domains[dom]
		if inUse := bd.Held + fs.used[b][dom]; inUse >= bd.Limit {
			return waitKey{kind: waitFleetBudget, key: fb.Name, dom: domainLabel(fb.Per, bd.Value), a: inUse, b: bd.Limit,
				capIdx: int32(b), domIdx: dom}, true
		}
	}
	return waitKey{}, false
}

// frozen reports the first fleet freeze covering node i, unless break
// glass overrides freezes.
func (fs *fleetState) frozen(i int) (*FleetFreeze, bool) {
	if fs == nil {
		return nil, false
	}
	for j := range fs.f.Freezes {
		if f := &fs.f.Freezes[j]; f.covers(i) {
			return f, true
		}
	}
	return nil, false
}

// limits appends each fleet budget domain's use (others' and own).
func (fs *fleetState) limits(out []Limit) []Limit {
	if fs == nil {
		return out
	}
	for b, fb := range fs.f.Budgets {
		for dom, bd := range fb.Domains {
			out = append(out, Limit{Key: "budget:" + fb.Name, Domain: domainLabel(fb.Per, bd.Value), InUse: bd.Held + fs.used[b][dom], Limit: bd.Limit})
		}
	}
	return out
}

func domainLabel(per, value string) string {
	if per == "" {
		return ""
	}
	return per + "=" + value
}

// budgetReason formats a fleet budget wait, naming holders: others'
// first (the shell's sample), then this rollout's own.
func (d *decider) budgetReason(k waitKey) string {
	fb := &d.fleet.f.Budgets[k.capIdx]
	bd := &fb.Domains[k.domIdx]
	var b strings.Builder
	b.WriteString(k.String())
	names := make([]string, 0, maxHolders)
	for _, h := range bd.Holders {
		if len(names) < maxHolders {
			names = append(names, h)
		}
	}
	for _, i := range d.fleet.holders[k.capIdx][k.domIdx].idx {
		if len(names) < maxHolders {
			names = append(names, fmt.Sprintf("%s (%s)", d.in.Nodes[i].ID, d.in.RolloutID))
		}
	}
	if len(names) == 0 {
		return b.String()
	}
	b.WriteString(", held by ")
	b.WriteString(strings.Join(names, ", "))
	if more := k.a - len(names); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// breakGlassStart records, once per freeze and decision, that node i
// starts inside a fleet freeze because break-glass overrides it: the
// decision's events go to the audit log.
func (d *decider) breakGlassStart(i int) {
	if d.in.BreakGlass == "" {
		return
	}
	f, ok := d.fleet.frozen(i)
	if !ok {
		return
	}
	msg := fmt.Sprintf("break-glass overrides fleet freeze %s (until %s): %s", f.Name, fmtLocal(f.Until), d.in.BreakGlass)
	if !slices.Contains(d.out.Events, msg) {
		d.event(msg)
	}
}

// fmtLocal formats an instant in its own zone, to the minute, naming the
// zone: "2026-12-31T23:59 Europe/Paris".
func fmtLocal(t time.Time) string {
	return t.Format("2006-01-02T15:04") + " " + t.Location().String()
}
