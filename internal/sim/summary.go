package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Summary renders a result for a terminal: a headline, one aligned row per
// wave, then node counts, peaks, breaches, uncovered strata and
// violations (loudly).
func Summary(r *Result) string {
	var b strings.Builder
	dur := func(sec float64) time.Duration { return time.Duration(sec * float64(time.Second)) }
	state := string(r.State)
	if r.Halted && (r.State == "running" || r.State == "pending-approval") {
		state = "stalled, still " + state
	}
	head := fmt.Sprintf("rollout %s: %s after %s", r.Rollout, state, FormatDuration(dur(r.MakespanSeconds)))
	if r.Halted && r.HaltReason != "" {
		head += "\n  halted: " + r.HaltReason
	}
	for _, f := range r.Localisation {
		head += "\n  localised: " + f.String()
	}
	b.WriteString(head + "\n")
	for _, n := range r.Notes {
		b.WriteString("  note: " + n + "\n")
	}
	b.WriteString("\n")

	t := table{header: []string{"WAVE", "NODES", "STATE", "START", "END", "DURATION", "OK", "FAILED", "ROLLED BACK", "UNTOUCHED"},
		right: []bool{false, true, false, true, true, true, true, true, true, true}}
	at := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return FormatDuration(dur(*p))
	}
	for _, w := range r.Waves {
		d := "-"
		if w.StartedAtSeconds != nil && w.EndedAtSeconds != nil {
			d = FormatDuration(dur(*w.EndedAtSeconds - *w.StartedAtSeconds))
		}
		failed := fmt.Sprint(w.Failed)
		if w.Quarantined > 0 {
			failed = fmt.Sprintf("%d (%d quarantined)", w.Failed, w.Quarantined)
		}
		t.rows = append(t.rows, []string{w.Name, fmt.Sprint(w.Nodes), string(w.State), at(w.StartedAtSeconds), at(w.EndedAtSeconds), d,
			fmt.Sprint(w.Succeeded), failed, fmt.Sprint(w.RolledBack), fmt.Sprint(w.Untouched)})
	}
	t.render(&b, "  ")
	for _, w := range r.Waves {
		if w.State == "failed" && w.Reason != "" {
			fmt.Fprintf(&b, "  wave %s failed: %s\n", w.Name, w.Reason)
		}
	}
	b.WriteString("\n")

	c := r.Nodes
	fmt.Fprintf(&b, "  nodes        %d in target: %d touched, %d succeeded, %d failed, %d quarantined, %d rolled back, %d untouched",
		c.Target, c.Touched, c.Succeeded, c.Failed, c.Quarantined, c.RolledBack, c.Untouched)
	if c.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", c.Skipped)
	}
	if c.Other > 0 {
		fmt.Fprintf(&b, ", %d still in flight", c.Other)
	}
	b.WriteString("\n")
	for _, e := range r.Events {
		if rest, ok := strings.CutPrefix(e.Text, "pre-flight failed on "); ok {
			fmt.Fprintf(&b, "  pre-flight   failed on %s\n", rest)
		}
	}
	if r.HaltedAtSeconds != nil {
		fmt.Fprintf(&b, "  before halt  %d touched by %s", r.NodesTouchedBeforeHalt, FormatDuration(dur(*r.HaltedAtSeconds)))
		if len(r.HurtTouchedBeforeHalt) > 0 {
			fmt.Fprintf(&b, ", of which hurt: %s", listSample(r.HurtTouchedBeforeHalt, 8))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  peak         %d in flight", r.PeakInFlight)
	for _, k := range slices.Sorted(maps.Keys(r.PeakInFlightByDomain)) {
		m := r.PeakInFlightByDomain[k]
		var parts []string
		for _, v := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, fmt.Sprintf("%s %d", v, m[v]))
		}
		fmt.Fprintf(&b, "\n               by %s: %s", k, listSample(parts, 12))
	}
	b.WriteString("\n")
	for _, br := range r.BudgetBreaches {
		who := "rollout"
		if br.Wave != "" {
			who = "wave " + br.Wave
		}
		fmt.Fprintf(&b, "  breach       %s at %s: %d failed > %d allowed\n", who, FormatDuration(dur(br.AtSeconds)), br.Failures, br.Max)
	}
	// Uncovered strata, grouped by wave and reason, with a few examples.
	type group struct {
		wave, reason string
		blocking     bool
		examples     []string
		n            int
	}
	var groups []*group
	for _, s := range r.UncoveredStrata {
		var g *group
		for _, h := range groups {
			if h.wave == s.Wave && h.reason == s.Reason {
				g = h
			}
		}
		if g == nil {
			g = &group{wave: s.Wave, reason: s.Reason, blocking: s.Blocking}
			groups = append(groups, g)
		}
		g.n++
		if len(g.examples) < 2 {
			var kv []string
			for _, k := range slices.Sorted(maps.Keys(s.Values)) {
				kv = append(kv, k+"="+s.Values[k])
			}
			g.examples = append(g.examples, strings.Join(kv, " "))
		}
	}
	for _, g := range groups {
		fmt.Fprintf(&b, "  uncovered    wave %s: %d strat%s, %s\n", g.wave, g.n, plural(g.n, "um", "a"), g.reason)
		for _, e := range g.examples {
			fmt.Fprintf(&b, "                 e.g. %s\n", e)
		}
		if g.n > len(g.examples) {
			fmt.Fprintf(&b, "                 ... and %d more\n", g.n-len(g.examples))
		}
		if g.blocking {
			fmt.Fprintf(&b, "                 refused: a server does not create this rollout (raise canary.max, narrow spread, or set canary.allowUncovered: true)\n")
		}
	}
	if r.InvariantViolations == 0 {
		b.WriteString("  invariants   0 violations\n")
	} else {
		fmt.Fprintf(&b, "  !!! INVARIANT VIOLATIONS: %d — this is a bug in the engine or the checker\n", r.InvariantViolations)
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "  !!! %s %s: %s\n", FormatDuration(v.At.Sub(r.Start)), v.Rule, v.Msg)
		}
	}
	return b.String()
}

// Timeline renders the event timeline, one line per event.
func Timeline(r *Result) string {
	var b strings.Builder
	for _, e := range r.Events {
		fmt.Fprintf(&b, "  %8s  %s\n", FormatDuration(time.Duration(e.AtSeconds*float64(time.Second))), e.Text)
	}
	if r.EventsDropped > 0 {
		fmt.Fprintf(&b, "  ... %d more events\n", r.EventsDropped)
	}
	return b.String()
}

func listSample(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" and %d more", len(s)-n)
}

// table aligns columns; right marks right-aligned (numeric) columns.
type table struct {
	header []string
	right  []bool
	rows   [][]string
}

func (t *table) render(b *strings.Builder, indent string) {
	w := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			w[i] = max(w[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range append([][]string{t.header}, t.rows...) {
		b.WriteString(indent)
		for i, c := range row {
			pad := strings.Repeat(" ", w[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if t.right[i] {
				b.WriteString(pad + c)
			} else if i < len(row)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		b.WriteString("\n")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
