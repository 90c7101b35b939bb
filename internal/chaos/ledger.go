package chaos

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// Source names who recorded an event of the fault campaign's ledger.
type Source string

const (
	SrcDriver  Source = "driver"  // the simulated driver's own record of its calls
	SrcJournal Source = "journal" // an agent's write-ahead journal
	SrcAudit   Source = "audit"   // the server's audit log
	SrcAPI     Source = "api"     // the campaign's own API calls and observations
)

// Op is what an event of the ledger says happened.
type Op string

const (
	OpDispatch   Op = "dispatch"    // audit: step.dispatch (Kind apply or rollback)
	OpPhase      Op = "phase"       // audit: node.phase (Phase)
	OpState      Op = "state"       // audit: rollout.state (State)
	OpStarted    Op = "started"     // journal: the agent took the step on
	OpResult     Op = "result"      // journal: the step's final report was written
	OpReported   Op = "reported"    // journal: the server accepted the final report
	OpApply      Op = "apply"       // driver: an Apply, At..End, Err if it failed
	OpRollback   Op = "rollback"    // driver: a Rollback, At..End, Err if it failed
	OpAck        Op = "ack"         // api: a write acknowledged (Object)
	OpAuditCheck Op = "audit-check" // api: the audit chain verified (Err when it did not)
	OpObserve    Op = "observe"     // api: a rollout's state seen (Phase unused; State, Progress, InFlight)
)

// Event is one entry of the ledger.
type Event struct {
	Source  Source
	Op      Op
	At, End time.Time // End: driver calls only
	// Txn orders audit events by transaction: events of one transaction
	// share it, and it grows with the log.
	Txn                       int
	Rollout, Node, Step, Kind string
	Phase                     engine.Phase
	State                     engine.RolloutState
	Object, Err               string
	// Progress is an observation's fingerprint of the rollout (state,
	// counts per phase, waves); InFlight its nodes in flight.
	Progress string
	InFlight int
}

// Limits are a rollout's caps: MaxInFlight nodes, ZoneCap per zone
// (0: none).
type Limits struct{ MaxInFlight, ZoneCap int }

// Final is what a rollout was at the campaign's end: its state, its
// target nodes, and which of them hold its change on the machine (the
// driver's own record of the machine's state; nil when unknown).
type Final struct {
	State   engine.RolloutState
	Targets []string
	Holding map[string]bool
}

// Ledger is everything a campaign run recorded, from every source, and
// what it knows of the fleet and the rollouts to check it against.
type Ledger struct {
	Events []Event
	Zone   map[string]string // node -> zone
	Limits map[string]Limits // rollout -> its caps
	// FleetZoneBudget is the fleet budget's nodes per zone across
	// rollouts (0: none).
	FleetZoneBudget int
	Final           map[string]Final // rollout -> its end
	Present         map[string]bool  // objects found at the end: "rollout/ID", "budget/NAME"
	// StallAfter is how long a rollout may sit unchanged with nothing in
	// flight anywhere before it counts as stuck (longer than any bake,
	// gate interval or deadline of the plans).
	StallAfter time.Duration
}

// Violation is one rule broken.
type Violation struct {
	Rule, Detail string
}

func (v Violation) String() string { return v.Rule + ": " + v.Detail }

// Rule is one check of the ledger.
type Rule struct {
	Name  string
	Check func(*Ledger) []Violation
}

// Rules are the checker's rules, each a function of the ledger.
func Rules() []Rule {
	return []Rule{
		{"applied-twice", AppliedTwice},
		{"undispatched-call", UndispatchedCall},
		{"target-unreached", TargetUnreached},
		{"cap-exceeded", CapExceeded},
		{"write-lost", WriteLost},
		{"audit-unverified", AuditUnverified},
		{"stuck", Stuck},
	}
}

// Check runs every rule over the ledger.
func Check(l *Ledger) []Violation {
	var out []Violation
	for _, r := range Rules() {
		out = append(out, r.Check(l)...)
	}
	return out
}

func violation(rule, format string, args ...any) Violation {
	return Violation{Rule: rule, Detail: fmt.Sprintf(format, args...)}
}

// stepRollouts maps every dispatched step to its rollout and node.
func (l *Ledger) stepRollouts() map[string]Event {
	out := map[string]Event{}
	for _, e := range l.Events {
		if e.Op == OpDispatch {
			out[e.Step] = e
		}
	}
	return out
}

// driverCalls returns the driver's calls in the order they began, each
// with its rollout filled in from the step's dispatch when it has none.
func (l *Ledger) driverCalls() []Event {
	steps := l.stepRollouts()
	var out []Event
	for _, e := range l.Events {
		if e.Source != SrcDriver || (e.Op != OpApply && e.Op != OpRollback) {
			continue
		}
		if e.Rollout == "" {
			e.Rollout = steps[e.Step].Rollout
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// AppliedTwice fails on a change applied twice to a node by one rollout
// without a rollback between: two successful applies of one rollout on
// one node, whatever their step IDs (a step dispatched again after a
// crash is the same change).
func AppliedTwice(l *Ledger) []Violation {
	type key struct{ rollout, node string }
	applied := map[key]Event{}
	var out []Violation
	for _, e := range l.driverCalls() {
		k := key{e.Rollout, e.Node}
		switch {
		case e.Op == OpRollback:
			delete(applied, k)
		case e.Err != "":
		default:
			if prev, ok := applied[k]; ok {
				out = append(out, violation("applied-twice", "node %s, rollout %s: applied by step %s at %s and again by step %s at %s, no rollback between",
					e.Node, e.Rollout, prev.Step, prev.At.Format(time.RFC3339Nano), e.Step, e.At.Format(time.RFC3339Nano)))
			}
			applied[k] = e
		}
	}
	return out
}

// UndispatchedCall fails on a driver call for a step the audit log never
// dispatched to that node, or that its agent's journal never took on.
func UndispatchedCall(l *Ledger) []Violation {
	steps := l.stepRollouts()
	started := map[string]bool{}
	for _, e := range l.Events {
		if e.Op == OpStarted {
			started[e.Node+"\x00"+e.Step] = true
		}
	}
	var out []Violation
	for _, e := range l.driverCalls() {
		d, ok := steps[e.Step]
		switch {
		case !ok:
			out = append(out, violation("undispatched-call", "node %s: %s for step %q, never dispatched", e.Node, e.Op, e.Step))
		case d.Node != e.Node:
			out = append(out, violation("undispatched-call", "node %s: %s for step %s of node %s", e.Node, e.Op, e.Step, d.Node))
		case d.Kind == "rollback" && e.Op == OpApply:
			out = append(out, violation("undispatched-call", "node %s: apply during rollback step %s", e.Node, e.Step))
		case !started[e.Node+"\x00"+e.Step]:
			out = append(out, violation("undispatched-call", "node %s: %s for step %s, which its journal never took on", e.Node, e.Op, e.Step))
		}
	}
	return out
}

// TargetUnreached fails on a rollout that succeeded though one of its
// target nodes does not hold its change: on the machine, where Final
// knows it (an apply whose result was lost to a crash or a full disk and
// found done when the step resumed leaves no successful call in the
// ledger, yet the machine holds the change), else by the driver's calls
// (no successful apply, or one rolled back since).
func TargetUnreached(l *Ledger) []Violation {
	type key struct{ rollout, node string }
	holds := map[key]bool{}
	for _, e := range l.driverCalls() {
		k := key{e.Rollout, e.Node}
		switch {
		case e.Op == OpRollback:
			holds[k] = false
		case e.Err == "":
			holds[k] = true
		}
	}
	var out []Violation
	for _, id := range slices.Sorted(maps.Keys(l.Final)) {
		f := l.Final[id]
		if f.State != engine.RolloutSucceeded {
			continue
		}
		for _, n := range f.Targets {
			held := holds[key{id, n}]
			if f.Holding != nil {
				held = f.Holding[n]
			}
			if !held {
				out = append(out, violation("target-unreached", "rollout %s succeeded, node %s does not hold its change", id, n))
			}
		}
	}
	return out
}

// CapExceeded fails on a cap exceeded at any instant: from the audit
// log, transaction by transaction, a rollout's maxInFlight or zone cap,
// the fleet budget per zone across rollouts, or a node in flight in two
// rollouts (a rollout that ended holds none); from the driver's calls, more calls at once in a zone than
// the fleet budget allows, or on one node from two rollouts.
func CapExceeded(l *Ledger) []Violation {
	var out []Violation
	type key struct{ rollout, node string }
	phase := map[key]engine.Phase{}
	var audit []Event
	for _, e := range l.Events {
		if e.Source == SrcAudit && (e.Op == OpDispatch || e.Op == OpPhase || e.Op == OpState) {
			audit = append(audit, e)
		}
	}
	sort.SliceStable(audit, func(i, j int) bool { return audit[i].Txn < audit[j].Txn })
	seen := map[string]bool{} // one report per kind of excess
	report := func(what string, format string, args ...any) {
		if !seen[what] {
			seen[what] = true
			out = append(out, violation("cap-exceeded", format, args...))
		}
	}
	measure := func(txn int) {
		perRollout := map[string]int{}
		perRolloutZone := map[[2]string]int{}
		perZone := map[string]int{}
		perNode := map[string][]string{}
		for k, ph := range phase {
			if !ph.InFlight() {
				continue
			}
			z := l.Zone[k.node]
			perRollout[k.rollout]++
			perRolloutZone[[2]string{k.rollout, z}]++
			perZone[z]++
			perNode[k.node] = append(perNode[k.node], k.rollout)
		}
		for ro, n := range perRollout {
			if lim, ok := l.Limits[ro]; ok && lim.MaxInFlight > 0 && n > lim.MaxInFlight {
				report("max/"+ro, "audit txn %d: rollout %s has %d nodes in flight, maxInFlight %d", txn, ro, n, lim.MaxInFlight)
			}
		}
		for rz, n := range perRolloutZone {
			if lim, ok := l.Limits[rz[0]]; ok && lim.ZoneCap > 0 && n > lim.ZoneCap {
				report("zone/"+rz[0]+"/"+rz[1], "audit txn %d: rollout %s has %d nodes of zone %s in flight, cap %d", txn, rz[0], n, rz[1], lim.ZoneCap)
			}
		}
		for z, n := range perZone {
			if l.FleetZoneBudget > 0 && n > l.FleetZoneBudget {
				report("fleet/"+z, "audit txn %d: %d nodes of zone %s in flight across rollouts, fleet budget %d", txn, n, z, l.FleetZoneBudget)
			}
		}
		for n, ros := range perNode {
			if len(ros) > 1 {
				slices.Sort(ros)
				report("node/"+n, "audit txn %d: node %s in flight in rollouts %v at once", txn, n, ros)
			}
		}
	}
	for i, e := range audit {
		k := key{e.Rollout, e.Node}
		switch {
		case e.Op == OpState:
			// A rollout that ended holds no node any more (a node
			// whose rollback failed is left to a person, and to the
			// next rollout's rules).
			if e.State.Terminal() {
				for k := range phase {
					if k.rollout == e.Rollout {
						delete(phase, k)
					}
				}
			}
		case e.Op == OpDispatch && e.Kind == "rollback":
			phase[k] = engine.PhaseRollingBack
		case e.Op == OpDispatch:
			phase[k] = engine.PhaseQueued
		default:
			phase[k] = e.Phase
		}
		if i == len(audit)-1 || audit[i+1].Txn != e.Txn {
			measure(e.Txn)
		}
	}

	// The driver's calls: intervals, per zone across rollouts and per node.
	calls := l.driverCalls()
	if l.FleetZoneBudget > 0 {
		for z, n := range overlap(calls, func(e Event) string { return l.Zone[e.Node] }) {
			if n > l.FleetZoneBudget {
				report("driver-zone/"+z, "driver: %d calls at once in zone %s, fleet budget %d", n, z, l.FleetZoneBudget)
			}
		}
	}
	for ro, lim := range l.Limits {
		var mine []Event
		for _, e := range calls {
			if e.Rollout == ro {
				mine = append(mine, e)
			}
		}
		if n := overlap(mine, func(Event) string { return "" })[""]; lim.MaxInFlight > 0 && n > lim.MaxInFlight {
			report("driver-max/"+ro, "driver: %d calls of rollout %s at once, maxInFlight %d", n, ro, lim.MaxInFlight)
		}
	}
	byNode := map[string][]Event{}
	for _, e := range calls {
		byNode[e.Node] = append(byNode[e.Node], e)
	}
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		es := byNode[n]
		for i := 1; i < len(es); i++ {
			if es[i].Rollout != es[i-1].Rollout && es[i].At.Before(es[i-1].End) {
				report("driver-node/"+n, "driver: node %s runs calls of rollouts %s and %s at once", n, es[i-1].Rollout, es[i].Rollout)
			}
		}
	}
	return out
}

// overlap returns, per key, the most events running at one instant.
func overlap(es []Event, key func(Event) string) map[string]int {
	return maxAtOnce(es, func(e Event) (time.Time, time.Time) { return e.At, e.End }, key)
}

// maxAtOnce returns, per key, the most of es whose spans [start, end)
// cover one instant (an end and a start at the same instant do not
// overlap).
func maxAtOnce[T any](es []T, span func(T) (time.Time, time.Time), key func(T) string) map[string]int {
	type edge struct {
		at    time.Time
		delta int
		key   string
	}
	var edges []edge
	for _, e := range es {
		start, end := span(e)
		k := key(e)
		edges = append(edges, edge{start, 1, k}, edge{end, -1, k})
	}
	sort.Slice(edges, func(i, j int) bool {
		if !edges[i].at.Equal(edges[j].at) {
			return edges[i].at.Before(edges[j].at)
		}
		return edges[i].delta < edges[j].delta
	})
	cur, out := map[string]int{}, map[string]int{}
	for _, e := range edges {
		cur[e.key] += e.delta
		out[e.key] = max(out[e.key], cur[e.key])
	}
	return out
}

// WriteLost fails on a write the API acknowledged whose object is not
// there at the end.
func WriteLost(l *Ledger) []Violation {
	var out []Violation
	for _, e := range l.Events {
		if e.Op == OpAck && !l.Present[e.Object] {
			out = append(out, violation("write-lost", "%s acknowledged at %s, not found at the end", e.Object, e.At.Format(time.RFC3339Nano)))
		}
	}
	return out
}

// AuditUnverified fails on an audit chain that did not verify, and on a
// ledger with no verification at all (a run that never checked).
func AuditUnverified(l *Ledger) []Violation {
	var out []Violation
	checked := false
	for _, e := range l.Events {
		if e.Op != OpAuditCheck {
			continue
		}
		checked = true
		if e.Err != "" {
			out = append(out, violation("audit-unverified", "at %s: %s", e.At.Format(time.RFC3339Nano), e.Err))
		}
	}
	if !checked {
		out = append(out, violation("audit-unverified", "the audit log was never verified"))
	}
	return out
}

// Stuck fails on a rollout that sat running, unchanged, for StallAfter
// or longer while no node of any rollout was in flight: nothing in
// flight and nothing to wait for. Paused rollouts and those waiting for
// approval wait for a person, and are not stuck.
func Stuck(l *Ledger) []Violation {
	var obs []Event
	for _, e := range l.Events {
		if e.Op == OpObserve {
			obs = append(obs, e)
		}
	}
	sort.SliceStable(obs, func(i, j int) bool { return obs[i].At.Before(obs[j].At) })
	// Fleet-wide in flight, per instant of observation: the latest
	// observation of every rollout at or before it.
	latest := map[string]Event{}
	since := map[string]time.Time{} // rollout -> when its idle unchanged stretch began
	reported := map[string]bool{}
	var out []Violation
	for _, e := range obs {
		prev, had := latest[e.Rollout]
		latest[e.Rollout] = e
		busy := false
		for _, o := range latest {
			if o.InFlight > 0 {
				busy = true
			}
		}
		for id, o := range latest {
			waiting := o.State.Terminal() || o.State == engine.RolloutPaused || o.State == engine.RolloutPendingApproval
			if busy || waiting || o.InFlight > 0 {
				delete(since, id)
				continue
			}
			if id == e.Rollout && had && prev.Progress != e.Progress {
				since[id] = e.At
				continue
			}
			start, ok := since[id]
			if !ok {
				since[id] = e.At
				continue
			}
			if e.At.Sub(start) >= l.StallAfter && !reported[id] {
				reported[id] = true
				out = append(out, violation("stuck", "rollout %s: %s, unchanged (%s) with nothing in flight from %s to %s",
					id, o.State, strings.TrimSpace(o.Progress), start.Format(time.RFC3339Nano), e.At.Format(time.RFC3339Nano)))
			}
		}
	}
	return out
}
