package web

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

type rolloutsData struct {
	Rollouts []rolloutRow
}

type rolloutRow struct {
	api.Rollout
	Done int // succeeded nodes
}

func (d *dashboard) rollouts(r *http.Request, c *client) (string, *view, error) {
	var list api.RolloutList
	if err := c.call(r.Context(), http.MethodGet, "/v1/rollouts", nil, &list); err != nil {
		return "", nil, err
	}
	var data rolloutsData
	for _, ro := range list.Rollouts {
		data.Rollouts = append(data.Rollouts, rolloutRow{Rollout: ro, Done: ro.Counts[string(engine.PhaseSucceeded)]})
	}
	return "rollouts", &view{Title: "Rollouts", Nav: "rollouts", Data: data}, nil
}

// phaseInfo is how a node phase is drawn: its CSS class and a short text
// label, so that colour never carries the meaning alone.
type phaseInfo struct {
	Phase engine.Phase
	Short string
	Slot  bool // holds a concurrency slot
}

func phases() []phaseInfo {
	return []phaseInfo{
		{engine.PhasePending, "wait", false}, {engine.PhaseQueued, "queue", true}, {engine.PhaseRunning, "run", true},
		{engine.PhaseVerifying, "verify", true}, {engine.PhaseSucceeded, "ok", false}, {engine.PhaseFailed, "FAIL", true},
		{engine.PhaseQuarantined, "quar", false}, {engine.PhaseRollingBack, "undo…", true}, {engine.PhaseRolledBack, "undone", false},
		{engine.PhaseRollbackUnhealthy, "SICK", false}, {engine.PhaseUnknown, "silent", true}, {engine.PhaseSkipped, "skip", false},
	}
}

func shortPhase(p engine.Phase) string {
	for _, i := range phases() {
		if i.Phase == p {
			return i.Short
		}
	}
	return string(p)
}

type rolloutData struct {
	R         api.Rollout
	Done      int
	Legend    []phaseInfo
	Waves     []waveRow
	Caps      []api.Limit
	Gates     []gateRow
	Attention []attention // failed, quarantined, rolled back or silent nodes
	Actions   []action
	ActionKey string // changes when the offered actions change
	Approval  string // why approving is not offered, when it is not
	Timeline  []event
	AllEvents bool // node transitions included
	Omitted   int  // older timeline entries not shown
	LastSeq   int64
	// Preflight is the rollout's node pre-flight; nil when its plan asks
	// for none or no node was asked yet.
	Preflight *api.PreflightView
}

// attention is a node that failed (or was rolled back after a failure),
// with why it failed: its reason now may be its rollback's.
type attention struct {
	api.RolloutNode
	Failure string
}

type waveRow struct {
	api.Wave
	Cells []api.RolloutNode
}

type action struct {
	Name, Label, Confirm string
	Danger               bool
}

type gateRow struct {
	api.Gate
	Chart *gateChart
}

type event struct {
	api.AuditEntry
	Summary string
}

// Long reports whether the summary is too long for a table cell; Short
// is its start, on one line.
func (e event) Long() bool { return len(e.Summary) > 160 }

func (e event) Short() string {
	s := strings.Join(strings.Fields(e.Summary), " ")
	if r := []rune(s); len(r) > 120 {
		return string(r[:120]) + "…"
	}
	return s
}

const timelineMax = 200

func (d *dashboard) rollout(r *http.Request, c *client) (string, *view, error) {
	id := r.PathValue("id")
	var ro api.Rollout
	if err := c.call(r.Context(), http.MethodGet, "/v1/rollouts/"+url.PathEscape(id)+"?nodes=true&plan=true", nil, &ro); err != nil {
		return "", nil, err
	}
	var audit api.AuditList
	if err := c.call(r.Context(), http.MethodGet, "/v1/audit?limit=5000&rollout="+url.QueryEscape(id), nil, &audit); err != nil {
		return "", nil, err
	}
	data := rolloutData{R: ro, Done: ro.Counts[string(engine.PhaseSucceeded)], Legend: phases(), Caps: ro.Limits,
		AllEvents: r.URL.Query().Get("timeline") == "all"}
	var pf api.PreflightView
	var ae *apiError
	switch err := c.call(r.Context(), http.MethodGet, "/v1/rollouts/"+url.PathEscape(id)+"/preflight", nil, &pf); {
	case err == nil:
		data.Preflight = &pf
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
	default:
		return "", nil, err
	}
	// Why each node last failed, from the audit log: a node's reason is
	// replaced when it is rolled back.
	failure := map[string]string{}
	for _, e := range audit.Entries {
		if e.Action != "node.phase" {
			continue
		}
		var d struct{ To, Reason string }
		if json.Unmarshal(e.Detail, &d) == nil && (d.To == string(engine.PhaseFailed) || d.To == string(engine.PhaseUnknown) || d.To == string(engine.PhaseRollbackUnhealthy)) {
			failure[strings.TrimPrefix(e.Object, "node/")] = d.Reason
		}
	}
	byWave := map[string][]api.RolloutNode{}
	for _, n := range ro.Nodes {
		byWave[n.Wave] = append(byWave[n.Wave], n)
		switch n.Phase {
		case engine.PhaseFailed, engine.PhaseQuarantined, engine.PhaseRolledBack, engine.PhaseRollbackUnhealthy, engine.PhaseRollingBack, engine.PhaseUnknown:
			if n.Phase != engine.PhaseRolledBack || n.Reason != "" {
				a := attention{RolloutNode: n, Failure: failure[n.ID]}
				if a.Failure == n.Reason {
					a.Failure = ""
				}
				data.Attention = append(data.Attention, a)
			}
		}
	}
	// The nodes that failed come first; the others were rolled back with
	// them.
	slices.SortStableFunc(data.Attention, func(a, b attention) int {
		return cmp.Compare(rank(a.Failure == ""), rank(b.Failure == ""))
	})
	for _, w := range ro.Waves {
		data.Waves = append(data.Waves, waveRow{Wave: w, Cells: byWave[w.Name]})
	}
	if skipped := byWave[""]; len(skipped) > 0 {
		data.Waves = append(data.Waves, waveRow{Wave: api.Wave{Name: "(no wave)", State: "skipped", Nodes: len(skipped)}, Cells: skipped})
	}
	for _, g := range ro.Gates {
		data.Gates = append(data.Gates, gateRow{Gate: g, Chart: parseGateChart(g.Reason, g.Verdict)})
	}
	data.Actions, data.Approval = actionsFor(ro, c)
	var names []string
	for _, a := range data.Actions {
		names = append(names, a.Name)
	}
	data.ActionKey = string(ro.State) + ":" + strings.Join(names, ",")
	for _, e := range audit.Entries {
		data.LastSeq = e.Seq
		if !data.AllEvents && (e.Action == "node.phase" || strings.HasPrefix(e.Action, "step.")) {
			continue
		}
		data.Timeline = append(data.Timeline, event{AuditEntry: e, Summary: summarize(e)})
	}
	slices.Reverse(data.Timeline)
	if len(data.Timeline) > timelineMax {
		data.Omitted = len(data.Timeline) - timelineMax
		data.Timeline = data.Timeline[:timelineMax]
	}
	return "rollout", &view{Title: "Rollout " + ro.Name, Nav: "rollouts", Data: data}, nil
}

func rank(last bool) int {
	if last {
		return 1
	}
	return 0
}

// actionsFor lists what the user may do to the rollout in its state, and
// when approving is not offered, why.
func actionsFor(ro api.Rollout, c *client) ([]action, string) {
	var out []action
	add := func(name, label, confirm string, danger bool) {
		if c.can(name) {
			out = append(out, action{Name: name, Label: label, Confirm: confirm, Danger: danger})
		}
	}
	why := ""
	if ro.State == engine.RolloutPendingApproval {
		switch {
		case !c.can("approve"):
			why = fmt.Sprintf("Waiting for %d approval(s). Your role (%s) cannot approve; an approver other than %s must.", ro.ApprovalsNeeded, c.me.Role, ro.Author)
		case c.me.Name == ro.Author:
			why = fmt.Sprintf("You (%s) wrote this rollout: an approver other than its author must approve it.", ro.Author)
		case slices.ContainsFunc(ro.Approvals, func(a api.Approval) bool { return a.By == c.me.Name && a.Wave == "" }):
			why = "You approved this rollout; it waits for further approvals."
		default:
			add("approve", "Approve", "", false)
		}
	}
	switch ro.State {
	case engine.RolloutRunning:
		add("pause", "Pause", "", false)
	case engine.RolloutPaused:
		add("resume", "Resume", "", false)
	}
	if !ro.State.Terminal() && ro.State != engine.RolloutRollingBack && ro.State != engine.RolloutPendingApproval {
		add("rollback", "Roll back", "Roll back every changed node of this rollout?", true)
	}
	switch ro.State {
	case engine.RolloutRunning, engine.RolloutPaused, engine.RolloutRollingBack:
		add("stop", "Stop", "Stop this rollout? Steps not begun are cancelled, steps under way finish; Resume lifts the stop.", true)
	}
	if !ro.State.Terminal() {
		add("abort", "Abort", "Abort this rollout? Steps not begun are cancelled, steps under way finish; nothing else starts.", true)
	}
	return out, why
}

// summarize turns an audit entry's detail into one readable line, or
// into indented JSON when it has none of the usual fields.
func summarize(e api.AuditEntry) string {
	var d map[string]any
	if len(e.Detail) == 0 || json.Unmarshal(e.Detail, &d) != nil {
		return string(e.Detail)
	}
	var parts []string
	if from, to := str(d["from"]), str(d["to"]); from != "" || to != "" {
		if from != to {
			parts = append(parts, from+" → "+to)
		}
	}
	if ev, ok := d["events"].([]any); ok {
		for _, x := range ev {
			parts = append(parts, str(x))
		}
	}
	for _, k := range []string{"reason", "scope", "wave", "verdict", "step"} {
		if s := str(d[k]); s != "" {
			if k == "reason" {
				parts = append(parts, s)
			} else {
				parts = append(parts, k+" "+s)
			}
		}
	}
	if len(parts) == 0 {
		var b bytes.Buffer
		if json.Indent(&b, e.Detail, "", "  ") != nil {
			return string(e.Detail)
		}
		return b.String()
	}
	return strings.Join(parts, "; ")
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// gateChart is a gate's canary-versus-baseline numbers (or, for a
// before-after gate, the wave's nodes now against before the change),
// read from its reason ("p99 latency 414 ms vs baseline 300 ms (+38%),
// U-test p=0.003 over 120+600 samples", "p99 310 ms vs before 300 ms
// (+3.3%)"), drawn as two bars.
type gateChart struct {
	Metric       string
	Unit         string
	Ref          string // what the wave is compared with: "baseline" or "before"
	Canary, Base float64
	Delta        string // "+38%"
	P            string // "0.003", "" if not given
	Fail         bool
	// Bar lengths in the SVG's user units.
	CanW, BaseW float64
}

// parseGateChart reads the numbers behind a gate result, or returns nil
// when its reason has none.
func parseGateChart(reason string, v engine.Verdict) *gateChart {
	// Compiled per call: a page shows a handful of gates, and the package
	// keeps no globals.
	gateNumbers := regexp.MustCompile(`^(.*?)\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ%]*)(?:\s+\([^)]*\))?\s+vs\.?\s+(baseline|before)\s+([0-9]+(?:\.[0-9]+)?)\s*([a-zµ%]*)`)
	gateP := regexp.MustCompile(`\bp\s*=\s*([0-9.eE-]+)`)
	m := gateNumbers.FindStringSubmatch(reason)
	if m == nil {
		return nil
	}
	can, err1 := strconv.ParseFloat(m[2], 64)
	base, err2 := strconv.ParseFloat(m[5], 64)
	if err1 != nil || err2 != nil || (m[3] != m[6] && m[6] != "") {
		return nil
	}
	g := &gateChart{Metric: strings.TrimRight(m[1], " :"), Unit: m[3], Ref: m[4], Canary: can, Base: base, Fail: v == engine.Fail}
	if g.Metric == "" {
		g.Metric = "value"
	}
	if base != 0 {
		g.Delta = fmt.Sprintf("%+.0f%%", 100*(can/base-1))
	}
	if pm := gateP.FindStringSubmatch(reason); pm != nil {
		g.P = strings.TrimRight(pm[1], ".")
	}
	const width = 200.0
	top := max(can, base)
	if top > 0 {
		g.CanW, g.BaseW = max(1, width*can/top), max(1, width*base/top)
	}
	return g
}

// Label is the chart's text alternative.
func (g *gateChart) Label() string {
	s := fmt.Sprintf("%s: %s %s vs %s %s", g.Metric, g.Subject(), g.Fmt(g.Canary), g.Ref, g.Fmt(g.Base))
	if g.Delta != "" {
		s += " (" + g.Delta + ")"
	}
	return s
}

// Subject names the first bar: the canary against a baseline, the wave's
// nodes now ("after") against themselves before.
func (g *gateChart) Subject() string {
	if g.Ref == "before" {
		return "after"
	}
	return "canary"
}

// Fmt formats a value with the chart's unit.
func (g *gateChart) Fmt(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if g.Unit == "" {
		return s
	}
	if g.Unit == "%" {
		return s + "%"
	}
	return s + " " + g.Unit
}

// age is a short "how long ago".
func age(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
