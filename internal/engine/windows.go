package engine

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/window"
)

// windows resolves each node's maintenance window for one decision. Now is
// fixed within a decision, so each window is judged once, not per node.
type windows struct {
	label   string
	def     string
	cutoff  time.Duration
	defs    map[string]*window.Weekly
	errs    map[string]error
	now     time.Time
	checked map[string]waitKey
	open    map[string]bool
}

func newWindows(p *plan.Plan) *windows {
	w := &windows{label: p.Windows.Label, def: p.Windows.Default, cutoff: p.Windows.Cutoff.D(),
		defs: map[string]*window.Weekly{}, errs: map[string]error{}, checked: map[string]waitKey{}, open: map[string]bool{}}
	for name, def := range p.Windows.Definitions {
		wk, err := compileWindow(name, def)
		if err != nil {
			w.errs[name] = err
			continue
		}
		w.defs[name] = wk
	}
	return w
}

// compileWindow turns a plan window into a window.Weekly.
func compileWindow(name string, def plan.WeeklyWindow) (*window.Weekly, error) {
	spans := make([]window.Span, 0, len(def.Spans))
	for _, s := range def.Spans {
		days, err := window.ParseDays(s.Days)
		if err != nil {
			return nil, err
		}
		start, err := window.ParseClock(s.Start)
		if err != nil {
			return nil, err
		}
		spans = append(spans, window.Span{Days: days, Start: start, Duration: s.Duration.D()})
	}
	return window.New(name, def.TimeZone, spans)
}

// canStart reports whether node i may start at now under its window; when
// not, the wait key says why and, if known, when it could.
func (w *windows) canStart(x *Index, i int, now time.Time) (waitKey, bool) {
	id := x.winOf[i]
	if id < 0 {
		return waitKey{}, true
	}
	name := x.wins[id]
	if ok, seen := w.open[name]; seen {
		return w.checked[name], ok
	}
	k, ok := w.judge(name, now)
	w.open[name], w.checked[name] = ok, k
	return k, ok
}

func (w *windows) judge(name string, now time.Time) (waitKey, bool) {
	if err := w.errs[name]; err != nil {
		return waitKey{kind: waitWindow, s: fmt.Sprintf("window %q is invalid: %v", name, err)}, false
	}
	wk := w.defs[name]
	if wk == nil {
		return waitKey{kind: waitWindow, s: fmt.Sprintf("window %q (label %s) is not defined in the plan", name, w.label)}, false
	}
	ok, next := wk.CanStart(now, w.cutoff)
	if ok {
		return waitKey{}, true
	}
	if next.IsZero() {
		return waitKey{kind: waitWindow, s: fmt.Sprintf("window %q never opens long enough (cutoff %s)", name, fmtDur(w.cutoff))}, false
	}
	return waitKey{kind: waitWindow, s: fmt.Sprintf("window %q %s", name, wk.Describe(now)), t: next}, false
}

func freezesOf(p *plan.Plan) []window.Freeze {
	out := make([]window.Freeze, 0, len(p.Windows.Freezes))
	for _, f := range p.Windows.Freezes {
		out = append(out, window.Freeze{Name: f.Name, From: f.From, To: f.To, Reason: f.Reason})
	}
	return out
}

func frozen(fs []window.Freeze, t time.Time) (window.Freeze, bool) { return window.Frozen(fs, t) }

func freezeEnd(fs []window.Freeze, t time.Time) time.Time { return window.FreezeEnd(fs, t) }

// jitterOf is node id's fixed start delay in [0, max) for this rollout.
func jitterOf(seed uint64, id string, max time.Duration) time.Duration {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(max))
}
