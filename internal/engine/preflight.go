package engine

import (
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// preflight runs the node pre-flight of a running rollout whose plan asks
// for one, before anything starts. It reports whether scheduling may go
// on: false while nodes are being asked or have not answered yet, and
// when failures block the start (the rollout fails, nothing changed).
// With onFail: exclude, the failing nodes are skipped with their reasons
// in this decision, and scheduling goes on without them.
//
// Only pending nodes take part: a node that started (or was skipped)
// since is past pre-flight, so a judgement made once is never made again
// (the excluded nodes are skipped, a block ends the rollout).
func (d *decider) preflight() bool {
	pf, in := d.p.Preflight, d.in
	timeout := pf.Timeout.D()
	st := in.Preflight
	if st == nil || st.AskedAt.IsZero() {
		for i := range in.Nodes {
			if in.Nodes[i].State.Phase == PhasePending {
				d.out.AskPreflight = append(d.out.AskPreflight, in.Nodes[i].ID)
			}
		}
		if len(d.out.AskPreflight) == 0 {
			return true
		}
		deadline := in.Now.Add(timeout)
		d.event(fmt.Sprintf("pre-flight: asking %d nodes what the change would do (answers due by %s)", len(d.out.AskPreflight), fmtTime(deadline)))
		for i := range in.Nodes {
			if in.Nodes[i].State.Phase == PhasePending {
				d.wait(i, waitKey{kind: waitPreflight, a: 0, b: len(d.out.AskPreflight), t: deadline})
			}
		}
		d.next(deadline)
		return false
	}
	deadline := st.AskedAt.Add(timeout)
	late := !in.Now.Before(deadline)
	var pending, waiting []int
	failed := map[int]string{}
	for i := range in.Nodes {
		if in.Nodes[i].State.Phase != PhasePending {
			continue
		}
		pending = append(pending, i)
		r, ok := st.Results[in.Nodes[i].ID]
		switch {
		case ok && !r.At.After(deadline) && !r.At.After(in.Now): // received in time
			if !r.OK {
				failed[i] = orElse(r.Reason, "pre-flight failed")
			}
		case late:
			failed[i] = fmt.Sprintf("no pre-flight answer within %s", fmtDur(timeout))
		default:
			waiting = append(waiting, i)
		}
	}
	if len(waiting) > 0 {
		for _, i := range waiting {
			d.wait(i, waitKey{kind: waitPreflight, a: len(pending) - len(waiting), b: len(pending), t: deadline})
		}
		d.next(deadline)
		return false
	}
	if len(failed) == 0 {
		return true
	}
	var sample []string
	for _, i := range pending {
		if why, ok := failed[i]; ok && len(sample) < 3 {
			sample = append(sample, in.Nodes[i].ID+": "+why)
		}
	}
	summary := fmt.Sprintf("pre-flight failed on %d of %d nodes (%s)", len(failed), len(pending), strings.Join(sample, "; "))
	if len(failed) > len(sample) {
		summary = strings.TrimSuffix(summary, ")") + fmt.Sprintf("; and %d more)", len(failed)-len(sample))
	}
	if pf.OnFail == plan.PreflightBlock {
		d.setState(RolloutFailed, summary+"; onFail: block, nothing was changed", "")
		return false
	}
	d.excluded = make([]bool, len(in.Nodes))
	for _, i := range pending {
		if why, ok := failed[i]; ok {
			d.excluded[i] = true
			d.transition(i, PhaseSkipped, "excluded by pre-flight: "+why)
		}
	}
	d.event(summary + "; onFail: exclude, those nodes are skipped")
	return true
}
