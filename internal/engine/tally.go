package engine

import (
	"fmt"
	"strings"
	"time"
)

// Tally counts a rollout's (or a wave's) nodes by what their phases
// amount to. It is the one count every view shows (CLI, dashboard, demo),
// so that they agree with each other and with the engine's reasons:
// Failures counts as failure budgets do (failed and quarantined).
type Tally struct {
	Total     int
	Succeeded int // applied and healthy
	// Unchanged is how many of Succeeded changed nothing (already up to
	// date): the agents' evidence says it, not the phases, so the shell
	// fills it in.
	Unchanged   int
	Failed      int // failed, holding a slot until resolved (a failed rollback too)
	Quarantined int // failed, set aside within budget
	RolledBack  int // the change was undone
	// RollbackUnhealthy: rolled back but still failing its probes, kept
	// out of service until a human resolves it (not counted in
	// RolledBack).
	RollbackUnhealthy int
	// RolledBackFailed is how many of RolledBack had failed before (the
	// failures a budget's breach reason counted); the shell fills it in
	// from the steps' results, as Unchanged.
	RolledBackFailed int
	Unknown          int // agent silent past its lease
	Skipped          int // in the target, never to be changed
	Pending          int // not started yet
	InFlight         int // queued, running, verifying (soaking) or rolling back
	Verifying        int // of InFlight: applied, node gates soaking
}

// TallyPhases counts phase counts as the API reports them (phase name to
// number of nodes). Phases it does not know count in Total only.
func TallyPhases(counts map[string]int) Tally {
	var t Tally
	for ph, n := range counts {
		t.Total += n
		switch Phase(ph) {
		case PhaseSucceeded:
			t.Succeeded += n
		case PhaseFailed:
			t.Failed += n
		case PhaseQuarantined:
			t.Quarantined += n
		case PhaseRolledBack:
			t.RolledBack += n
		case PhaseRollbackUnhealthy:
			t.RollbackUnhealthy += n
		case PhaseUnknown:
			t.Unknown += n
		case PhaseSkipped:
			t.Skipped += n
		case PhasePending:
			t.Pending += n
		case PhaseVerifying:
			t.Verifying += n
			t.InFlight += n
		case PhaseQueued, PhaseRunning, PhaseRollingBack:
			t.InFlight += n
		}
	}
	return t
}

// Failures is the number failure budgets count: failed and quarantined.
func (t Tally) Failures() int { return t.Failed + t.Quarantined }

// FailedEver is Failures, the rolled-back nodes that had failed and those
// still unhealthy after their rollback: the failures a breach reason ("1
// failed > budget 0") counted, whatever happened to them since.
func (t Tally) FailedEver() int { return t.Failures() + t.RolledBackFailed + t.RollbackUnhealthy }

// Summary is the tally in words, "5/6 succeeded, 1 failed", naming every
// non-zero count other than succeeded, in a fixed order; "6/6 succeeded
// (4 changed, 2 already up to date)" when some changed nothing.
func (t Tally) Summary() string {
	s := fmt.Sprintf("%d/%d succeeded", t.Succeeded, t.Total)
	if t.Unchanged > 0 {
		s += fmt.Sprintf(" (%d changed, %d already up to date)", t.Succeeded-t.Unchanged, t.Unchanged)
	}
	if rest := t.Rest(); rest != "" {
		s += ", " + rest
	}
	return s
}

// Rest names the non-zero counts other than succeeded and total: "1
// failed, 2 rolled back, 3 in flight"; "" when there are none.
func (t Tally) Rest() string {
	rolledBack := "rolled back"
	if t.RolledBackFailed > 0 {
		rolledBack = fmt.Sprintf("rolled back (%d after failing)", t.RolledBackFailed)
	}
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{
		{t.Failed, "failed"}, {t.Quarantined, "quarantined"}, {t.RolledBack, rolledBack},
		{t.RollbackUnhealthy, "unhealthy after rollback"}, {t.Unknown, "unknown"},
		{t.InFlight, "in flight"}, {t.Pending, "pending"}, {t.Skipped, "skipped"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// FormatDuration formats d for people: rounded to the millisecond below
// a second, to a tenth of a second below ten seconds, to the second below
// an hour and to the minute above, without zero units ("2s", "1.5s",
// "24s", "1h30m", "45m"): never "2.011172614s".
func FormatDuration(d time.Duration) string {
	switch a := max(d, -d); {
	case a < time.Second:
		d = d.Round(time.Millisecond)
	case a < 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case a < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	return fmtDur(d)
}

// WaveClock is what a wave waits on the clock for: its bake, and its
// nodes' soaks (verifying nodes whose gates pass, until they have passed
// for gates.node.minHealthy).
type WaveClock struct {
	Wave string
	// BakeUntil is when a baking wave's bake time ends (zero when the
	// wave is not baking); its gates must pass as well.
	BakeUntil time.Time
	// Soaking counts the wave's verifying nodes; SoakUntil is when the
	// last of those already passing has soaked long enough (zero when
	// none passes yet: they wait for their node gates).
	Soaking   int
	SoakUntil time.Time
}

// Clocks lists the waves of in.Plan that wait on the clock, in plan order,
// as Decide judges them: bakes from WaveStatus.BakeFrom plus the wave's
// (or the plan's) bake time, soaks from HealthySince plus minHealthy.
func Clocks(in Input) []WaveClock {
	p := in.Plan
	minHealthy := p.Gates.Node.MinHealthy.D()
	soak := map[string]*WaveClock{}
	for i := range in.Nodes {
		st := &in.Nodes[i].State
		if st.Phase != PhaseVerifying || st.Rollback {
			continue
		}
		c := soak[st.Wave]
		if c == nil {
			c = &WaveClock{Wave: st.Wave}
			soak[st.Wave] = c
		}
		c.Soaking++
		if st.Gate == Pass && !st.HealthySince.IsZero() {
			if until := st.HealthySince.Add(minHealthy); until.After(c.SoakUntil) {
				c.SoakUntil = until
			}
		}
	}
	var out []WaveClock
	for _, w := range p.Waves {
		c := WaveClock{Wave: w.Name}
		if s := soak[w.Name]; s != nil {
			c = *s
		}
		if ws := in.Waves[w.Name]; ws.State == WaveBaking && !ws.BakeFrom.IsZero() {
			bake := p.Gates.BakeTime.D()
			if w.BakeTime != nil {
				bake = w.BakeTime.D()
			}
			c.BakeUntil = ws.BakeFrom.Add(bake)
		}
		if c.Soaking > 0 || !c.BakeUntil.IsZero() {
			out = append(out, c)
		}
	}
	return out
}
