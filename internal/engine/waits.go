package engine

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type waitKind int

const (
	waitNone waitKind = iota
	waitApproval
	waitPaused
	waitState
	waitAlerts
	waitFreeze
	waitMaxInFlight
	waitRate
	waitHeld
	waitWindow
	waitJitter
	waitCap
	waitWave
	waitWaveApproval
	waitLineStop
	waitHeldBy
	waitFleetBudget
	waitFleetFreeze
	waitPreflight
)

// waitKey identifies one reason to wait; nodes with equal keys are grouped
// and the reason is formatted once per decision, not once per node.
type waitKey struct {
	kind     waitKind
	key, dom string
	s        string
	a, b     int
	d        time.Duration
	t        time.Time
	// capIdx and domIdx name the cap and domain of a waitCap (or the
	// fleet budget and domain of a waitFleetBudget), for its holders.
	capIdx, domIdx int32
}

func (k waitKey) String() string {
	switch k.kind {
	case waitApproval:
		return fmt.Sprintf("waiting for approvals: %d/%d", k.a, k.b)
	case waitPaused:
		return "rollout paused: " + k.s
	case waitLineStop:
		return "line stopped: " + k.s
	case waitState:
		return "rollout is " + k.s
	case waitAlerts:
		return "alerts firing: " + k.s
	case waitFreeze:
		return fmt.Sprintf("freeze %q until %s", k.s, fmtTime(k.t))
	case waitMaxInFlight:
		return fmt.Sprintf("max in flight %d/%d", k.a, k.b)
	case waitRate:
		return fmt.Sprintf("rate cap %d starts per %s reached; next slot at %s", k.a, fmtDur(k.d), fmtTime(k.t))
	case waitHeld:
		return fmt.Sprintf("held back: %s %s untouched until %s succeed", k.key, k.dom, k.s)
	case waitWindow:
		return k.s
	case waitJitter:
		return "jitter: starts at " + fmtTime(k.t)
	case waitCap:
		return fmt.Sprintf("%s %s at cap %d/%d", k.key, orElse(k.dom, `""`), k.a, k.b)
	case waitWave:
		return fmt.Sprintf("wave %s waits for %s", k.key, k.s)
	case waitWaveApproval:
		return fmt.Sprintf("wave %s waits for approvals: %d/%d", k.key, k.a, k.b)
	case waitHeldBy:
		return "node held by " + k.s
	case waitFleetBudget:
		if k.dom == "" {
			return fmt.Sprintf("fleet budget %s at %d/%d", k.key, k.a, k.b)
		}
		return fmt.Sprintf("fleet budget %s %s at %d/%d", k.key, k.dom, k.a, k.b)
	case waitPreflight:
		return fmt.Sprintf("pre-flight: %d/%d nodes answered, until %s", k.a, k.b, fmtTime(k.t))
	case waitFleetFreeze:
		if k.key != "" {
			return fmt.Sprintf("fleet freeze %s until %s (%s)", k.s, fmtLocal(k.t), k.key)
		}
		return fmt.Sprintf("fleet freeze %s until %s", k.s, fmtLocal(k.t))
	}
	return "waiting"
}

// wait records that node i waits for k.
func (d *decider) wait(i int, k waitKey) {
	if d.trace != "" && d.in.Nodes[i].ID == d.trace {
		d.traced = d.waitReason(k)
	}
	w := d.lastWait
	if w == nil || k != d.lastKey {
		w = d.waits[k]
		if w == nil {
			w = &Wait{Reason: d.waitReason(k)}
			d.waits[k] = w
			d.waitList = append(d.waitList, w)
		}
		d.lastKey, d.lastWait = k, w
	}
	w.Count++
	if len(w.Nodes) < MaxWaitSample {
		w.Nodes = append(w.Nodes, d.in.Nodes[i].ID)
	}
}

// waitReason formats k; a wait for a slot names the nodes holding the slots
// (the first few), since a failed or silent node holding one until a
// human resolves it is the usual reason a rollout stalls.
func (d *decider) waitReason(k waitKey) string {
	var hs *holders
	switch k.kind {
	case waitMaxInFlight:
		hs = &d.allHolders
	case waitCap:
		hs = d.capHolders(k.capIdx, k.domIdx)
	case waitFleetBudget:
		return d.budgetReason(k)
	default:
		return k.String()
	}
	if len(hs.idx) == 0 {
		return k.String()
	}
	var b strings.Builder
	b.WriteString(k.String())
	b.WriteString(", held by ")
	for j, i := range hs.idx {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.in.Nodes[i].ID)
		if ph := d.phase[i]; ph != PhaseRunning && ph != PhaseQueued && ph != PhaseVerifying {
			b.WriteString(" (" + string(ph) + ")")
		}
	}
	if more := k.a - len(hs.idx); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// holders samples the nodes holding a pool of slots: up to maxHolders of
// them, in the order they took their slots.
type holders struct{ idx []int32 }

const maxHolders = 3

func (h *holders) add(i int) {
	if len(h.idx) < maxHolders {
		h.idx = append(h.idx, int32(i))
	}
}

func (h *holders) remove(i int) {
	if j := slices.Index(h.idx, int32(i)); j >= 0 {
		h.idx = slices.Delete(h.idx, j, j+1)
	}
}

func (d *decider) capHolders(c, dom int32) *holders {
	if d.holders[c] == nil {
		d.holders[c] = make([]holders, len(d.x.caps[c].names))
	}
	return &d.holders[c][dom]
}

// fmtTime formats an instant for reasons: UTC, to the second, stable.
func fmtTime(t time.Time) string {
	return t.UTC().Format("Mon 2006-01-02 15:04:05Z")
}

// fmtDur formats a duration without zero units: 1h, 1h30m, 45s, 1.5s.
func fmtDur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
