package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// outcome is what a rollout must have ended as.
type outcome int

const (
	// completed: succeeded, every node changed exactly once.
	completed outcome = iota
	// canaryRolledBack: halted by the canary's budget (rollback-wave);
	// every canary node touched is rolled back, no other node touched.
	canaryRolledBack
)

// report is what one verified run measured.
type report struct {
	dispatched, applies, rollbacks int
	maxInFlight                    int
	maxZone                        map[string]int
}

// verifyRun checks a finished rollout against the fleet's ledger and the
// audit log: the chain verifies; every step ID was dispatched once; no
// step was applied twice and every node's apply counter equals the apply
// steps dispatched to it; no cap was ever exceeded (from the audit log,
// transaction by transaction, and from the ledger's driver intervals); and
// the rollout ended as want says.
func verifyRun(ctx context.Context, c *api.Client, f *simFleet, id string, lim limits, want outcome) (report, error) {
	var ck checks
	var rep report
	v, err := c.VerifyAudit(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify audit: %w", err)
	}
	if !v.OK {
		ck.errorf("audit chain broken at seq %d: %s", v.FirstBad, v.Problem)
	}
	ro, err := c.GetRollout(ctx, id, true)
	if err != nil {
		return rep, fmt.Errorf("get rollout %s: %w", id, err)
	}
	entries, err := allAudit(ctx, c)
	if err != nil {
		return rep, err
	}
	zoneOf := map[string]string{}
	for _, sn := range f.nodes {
		zoneOf[sn.id] = sn.zone
	}
	ds, maxAll, maxZone, err := replay(entries, id, zoneOf)
	if err != nil {
		return rep, err
	}
	rep.dispatched, rep.maxInFlight, rep.maxZone = len(ds), maxAll, maxZone

	// Dispatches: each step ID once, to the node its ID names.
	byStep := map[string]dispatch{}
	applySteps := map[string]map[string]bool{} // node -> apply step IDs
	for _, d := range ds {
		if prev, dup := byStep[d.Step]; dup {
			ck.errorf("step %s dispatched twice (terms %d and %d)", d.Step, prev.Term, d.Term)
		}
		byStep[d.Step] = d
		if !strings.Contains(d.Step, "/"+d.Node+"/") {
			ck.errorf("step %s dispatched to node %s", d.Step, d.Node)
		}
		if d.Kind == "apply" {
			if applySteps[d.Node] == nil {
				applySteps[d.Node] = map[string]bool{}
			}
			applySteps[d.Node][d.Step] = true
		}
	}

	// The ledger: no step applied twice, every driver call belongs to a
	// dispatched step of its node.
	led := f.l.all()
	applied := map[string]int{}  // step -> applies
	rolled := map[string]int{}   // step -> rollbacks
	perNode := map[string]int{}  // node -> applies
	touched := map[string]bool{} // node -> any driver call
	for _, e := range led {
		touched[e.Node] = true
		d, ok := byStep[e.Step]
		switch {
		case e.Step == "":
			ck.errorf("node %s: %s with no step in its agent's journal", e.Node, e.Op)
		case !ok:
			ck.errorf("node %s: %s for step %s, which was never dispatched", e.Node, e.Op, e.Step)
		case d.Node != e.Node:
			ck.errorf("node %s: %s for step %s of node %s", e.Node, e.Op, e.Step, d.Node)
		}
		switch e.Op {
		case "apply":
			applied[e.Step]++
			perNode[e.Node]++
			rep.applies++
			if ok && d.Kind != "apply" {
				ck.errorf("node %s: apply during %s step %s", e.Node, d.Kind, e.Step)
			}
		case "rollback":
			rolled[e.Step]++
			rep.rollbacks++
		}
	}
	for _, st := range slices.Sorted(maps.Keys(applied)) {
		if applied[st] > 1 {
			ck.errorf("step %s applied %d times", st, applied[st])
		}
	}
	for _, st := range slices.Sorted(maps.Keys(rolled)) {
		if rolled[st] > 1 {
			ck.errorf("step %s rolled back %d times", st, rolled[st])
		}
	}
	for _, sn := range f.nodes {
		if got, led, disp := sn.state.Applies(), perNode[sn.id], len(applySteps[sn.id]); got != led || got != disp {
			ck.errorf("node %s: sim apply counter %d, ledger applies %d, apply steps dispatched %d (want all equal)", sn.id, got, led, disp)
		}
	}

	// Caps, from the audit log and from the ledger.
	if maxAll > lim.maxInFlight {
		ck.errorf("audit log: %d nodes in flight at once, maxInFlight is %d", maxAll, lim.maxInFlight)
	}
	for z, n := range maxZone {
		if n > lim.zoneCap {
			ck.errorf("audit log: %d nodes of zone %s in flight at once, cap is %d", n, z, lim.zoneCap)
		}
	}
	if n := maxOverlap(led, func(ledgerEntry) string { return "" })[""]; n > lim.maxInFlight {
		ck.errorf("ledger: %d driver calls at once, maxInFlight is %d", n, lim.maxInFlight)
	}
	for z, n := range maxOverlap(led, func(e ledgerEntry) string { return zoneOf[e.Node] }) {
		if n > lim.zoneCap {
			ck.errorf("ledger: %d driver calls at once in zone %s, cap is %d", n, z, lim.zoneCap)
		}
	}

	// The outcome.
	canary := map[string]bool{}
	for _, w := range ro.Waves {
		canary[w.Name] = w.Canary
	}
	switch want {
	case completed:
		if ro.State != engine.RolloutSucceeded {
			ck.errorf("rollout %s: state %s (%s), want succeeded", id, ro.State, ro.Reason)
		}
		for _, n := range ro.Nodes {
			if n.Phase != engine.PhaseSucceeded {
				ck.errorf("node %s: %s (%s), want succeeded: skipped or stuck", n.ID, n.Phase, n.Reason)
			}
		}
		for _, sn := range f.nodes {
			if v, _ := sn.state.Version("openssl"); v != "3.0.15" {
				ck.errorf("node %s: openssl %s, want 3.0.15", sn.id, v)
			}
			if perNode[sn.id] != 1 {
				ck.errorf("node %s: applied %d times, want once", sn.id, perNode[sn.id])
			}
		}
	case canaryRolledBack:
		if ro.State != engine.RolloutHalted {
			ck.errorf("rollout %s: state %s (%s), want halted", id, ro.State, ro.Reason)
		}
		for _, n := range ro.Nodes {
			switch {
			case !canary[n.Wave] && (n.Attempt > 0 || touched[n.ID]):
				ck.errorf("node %s of wave %s touched (attempt %d, phase %s) though the canary failed", n.ID, n.Wave, n.Attempt, n.Phase)
			case canary[n.Wave] && n.Attempt > 0 && n.Phase != engine.PhaseRolledBack:
				ck.errorf("canary node %s: %s (%s), want rolled-back", n.ID, n.Phase, n.Reason)
			}
		}
		for _, sn := range f.nodes {
			if v, _ := sn.state.Version("openssl"); v != "3.0.14" {
				ck.errorf("node %s: openssl %s after the rollback, want 3.0.14", sn.id, v)
			}
			if ok, why := sn.state.Health(); !ok {
				ck.errorf("node %s unhealthy after the rollback: %s", sn.id, why)
			}
		}
	}
	return rep, ck.err()
}
