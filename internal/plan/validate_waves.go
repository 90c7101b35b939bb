package plan

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (v *validator) waves() {
	ws := v.p.Waves
	if v.written("waves") && len(ws) == 0 {
		v.errf("waves", "plan has no waves: add at least one (a single wave with no nodes takes the whole target)")
	}
	index := map[string]int{}
	for i := range ws {
		w := &ws[i]
		wp := joinIndex("waves", i)
		if !v.written(wp + ".name") {
			continue
		}
		switch {
		case w.Name == "":
			v.errf(wp+".name", "wave name must not be empty")
			continue
		case !waveNameRe.MatchString(w.Name):
			v.errf(wp+".name", "invalid wave name %q: use lower-case letters, digits and '-'", w.Name)
		}
		if j, dup := index[w.Name]; dup {
			v.errf(wp+".name", "duplicate wave name %q (also waves[%d], line %d)", w.Name, j, v.d.pos[joinIndex("waves", j)+".name"].Line)
			continue
		}
		index[w.Name] = i
	}
	// Ramp steps take the names NAME-1, NAME-2, ...: none may be taken.
	for i := range ws {
		for s := range ws[i].Ramp {
			step := ws[i].Name + "-" + itoa(s+1)
			if j, ok := index[step]; ok && ws[i].Name != "" {
				v.errf(joinIndex("waves", j)+".name", "wave name %q is taken by step %d of the ramp of wave %q", step, s+1, ws[i].Name)
			}
		}
	}
	for i := range ws {
		v.wave(joinIndex("waves", i), &ws[i], index)
	}
	if v.dagChecks(index) {
		v.holdBack(index)
	}
}

func (v *validator) wave(wp string, w *Wave, index map[string]int) {
	for j, a := range w.After {
		ap := joinIndex(wp+".after", j)
		if !v.written(ap) {
			continue
		}
		if a == w.Name {
			v.errf(ap, "wave %q cannot come after itself", a)
		} else if _, ok := index[a]; !ok {
			v.errf(ap, "%s", unknownWave(a, index))
		}
	}
	if w.Nodes != nil && v.written(wp+".nodes") {
		if !w.Nodes.Percent && w.Nodes.Count < 1 {
			if w.Nodes.Count == 0 {
				v.errf(wp+".nodes", "a wave of 0 nodes changes nothing: set at least 1, or remove nodes to take every remaining node")
			} else {
				v.errf(wp+".nodes", "nodes must be at least 1, got %d", w.Nodes.Count)
			}
		}
		if v.written(wp + ".ramp") {
			v.keyErrf(wp+".ramp", "set either nodes or ramp, not both: ramp steps are the wave's sizes")
		}
	}
	if v.written(wp+".ramp") && !v.d.failed[wp+".ramp"] {
		v.ramp(wp+".ramp", w.Ramp)
	}
	if v.written(wp+".selector") && v.nonEmpty(wp+".selector", w.Selector, "selector") {
		v.selector(wp+".selector", w.Selector)
	}
	if w.Canary != nil {
		v.canary(wp, w)
	}
	for j, s := range w.Spread {
		v.nonEmpty(joinIndex(wp+".spread", j), s, "spread key")
	}
	if w.Budget != nil {
		v.budget(wp+".failureBudget", w.Budget)
	}
	if w.Approvals < 0 {
		v.errf(wp+".approvals", "approvals must be 0 or more, got %d", w.Approvals)
	}
}

// canary checks a canary's sizing: cover strata sizes the wave itself
// (no nodes or ramp; max at least 1), cover count needs nodes or a ramp
// and takes neither max nor allowUncovered.
func (v *validator) canary(wp string, w *Wave) {
	c, cp := w.Canary, wp+".canary"
	sized := w.Nodes != nil || len(w.Ramp) > 0 || v.d.failed[wp+".nodes"] || v.d.failed[wp+".ramp"]
	switch c.Cover {
	case "": // count when sized, strata otherwise
		if sized && c.Max != nil {
			v.keyErrf(cp+".max", "max sizes a canary that covers its strata, and this wave sets its size (nodes or ramp): remove max, or remove nodes and write cover: strata")
		}
		if sized && c.AllowUncovered {
			v.keyErrf(cp+".allowUncovered", "allowUncovered applies to a canary that covers its strata; a canary of a set size (nodes or ramp) only warns about the strata it leaves uncovered")
		}
	case CoverStrata:
		if w.Nodes != nil && !v.d.failed[wp+".nodes"] {
			v.keyErrf(wp+".nodes", "a canary with cover: strata sizes itself (one node per stratum, up to canary.max): remove nodes, or write cover: count")
		}
		if len(w.Ramp) > 0 {
			v.keyErrf(wp+".ramp", "a canary with cover: strata sizes itself and cannot ramp: remove ramp, or write cover: count")
		}
	case CoverCount:
		if !sized {
			v.keyErrf(cp+".cover", `a canary with cover: count needs nodes: a count (6) or a percent ("2%%") of the target`)
		}
		if c.Max != nil {
			v.keyErrf(cp+".max", "max sizes a canary that covers its strata; with cover: count the wave's nodes set its size")
		}
		if c.AllowUncovered {
			v.keyErrf(cp+".allowUncovered", "allowUncovered applies to cover: strata; a canary with cover: count only warns about the strata it leaves uncovered")
		}
	default:
		v.errf(cp+".cover", "unknown cover %q: want strata or count", c.Cover)
	}
	if c.Max != nil && !c.Max.Percent && c.Max.Count < 1 && !v.d.failed[cp+".max"] {
		v.errf(cp+".max", "max must be at least 1, got %d", c.Max.Count)
	}
}

func unknownWave(name string, index map[string]int) string {
	names := sortedKeys(index)
	msg := fmt.Sprintf("unknown wave %q", name)
	if s := suggest(name, names); s != "" {
		return msg + fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(names) > 0 {
		msg += " (waves: " + strings.Join(names, ", ") + ")"
	}
	return msg
}

// ramp checks that the steps grow: each step is cumulative, so a count
// must exceed the previous count and a percent the previous percent
// (counts and percents are not comparable before the target is known).
// "100%" takes every remaining node, so it can only be last.
func (v *validator) ramp(path string, steps []Quantity) {
	if len(steps) == 0 {
		v.errf(path, "ramp has no steps: list cumulative sizes, e.g. [1, 5, \"20%%\", \"100%%\"]")
		return
	}
	var lastCount, lastPct *Quantity
	for i := range steps {
		q := &steps[i]
		sp := joinIndex(path, i)
		switch {
		case i > 0 && steps[i-1].Percent && steps[i-1].Value == 100:
			v.errf(sp, "%q already takes every remaining node: no step may follow it", "100%")
			return
		case !q.Percent && q.Count < 1:
			v.errf(sp, "a ramp step must be at least 1 node, got %d", q.Count)
			return
		case !q.Percent && lastCount != nil && q.Count <= lastCount.Count:
			v.errf(sp, "ramp steps are cumulative and must grow: %s after %s", q, lastCount)
			return
		case q.Percent && lastPct != nil && q.Value <= lastPct.Value:
			v.errf(sp, "ramp steps are cumulative and must grow: %q after %q", q.String(), lastPct.String())
			return
		}
		if q.Percent {
			lastPct = q
		} else {
			lastCount = q
		}
	}
}

// preds returns, for each wave, the waves it comes after: its after list
// when written (unknown names left out), otherwise the previous wave.
// implicit[i] is true when wave i follows its predecessor by default.
func (v *validator) preds(index map[string]int) (preds [][]int, implicit []bool) {
	ws := v.p.Waves
	preds = make([][]int, len(ws))
	implicit = make([]bool, len(ws))
	for i := range ws {
		if ws[i].After == nil {
			if i > 0 {
				preds[i] = []int{i - 1}
				implicit[i] = true
			}
			continue
		}
		for _, a := range ws[i].After {
			if j, ok := index[a]; ok && j != i && !slices.Contains(preds[i], j) {
				preds[i] = append(preds[i], j)
			}
		}
	}
	return preds, implicit
}

// dagChecks reports the first cycle among the waves and returns whether
// the waves form a DAG.
func (v *validator) dagChecks(index map[string]int) bool {
	ws := v.p.Waves
	preds, implicit := v.preds(index)
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(ws))
	var stack []int
	var cycle []int
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, j := range preds[i] {
			if color[j] == grey {
				k := slices.Index(stack, j)
				cycle = append([]int(nil), stack[k:]...)
				return true
			}
			if color[j] == white && visit(j) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return false
	}
	for i := range ws {
		if color[i] == white && visit(i) {
			break
		}
	}
	if cycle == nil {
		return true
	}
	// cycle lists waves each coming after the next; print in run order.
	slices.Reverse(cycle)
	// Start at the wave written first, so the message is stable.
	first := slices.Index(cycle, slices.Min(cycle))
	cycle = append(cycle[first:], cycle[:first]...)
	names := make([]string, 0, len(cycle)+1)
	var notes []string
	for k, i := range cycle {
		names = append(names, ws[i].Name)
		next := cycle[(k+1)%len(cycle)]
		if implicit[next] {
			notes = append(notes, fmt.Sprintf("%s has no after: and follows %s in the list", ws[next].Name, ws[i].Name))
		}
	}
	names = append(names, ws[cycle[0]].Name)
	at := joinIndex("waves", cycle[0])
	for _, i := range cycle {
		if ws[i].After != nil {
			at = joinIndex("waves", i) + ".after"
			break
		}
	}
	msg := "cycle " + strings.Join(names, " -> ")
	if len(notes) > 0 {
		msg += " (" + strings.Join(notes, "; ") + ")"
	}
	pos, _ := v.p.closest(at)
	if k, ok := v.d.keys[at]; ok {
		pos = Pos{k.Line, k.Column}
	}
	v.d.errAt(pos.Line, pos.Col, "waves", "%s", msg)
	return false
}

// holdBack checks that the held-back domain is ever updated: some wave
// outside Until must come (transitively) after every wave in Until.
func (v *validator) holdBack(index map[string]int) {
	h := v.p.Limits.HoldBack
	if h == nil || len(h.Until) == 0 || !v.written("limits.holdBack.until") {
		return
	}
	var until []int
	for j, name := range h.Until {
		i, ok := index[name]
		if !ok {
			v.errf(joinIndex("limits.holdBack.until", j), "%s", unknownWave(name, index))
			return
		}
		until = append(until, i)
	}
	preds, _ := v.preds(index)
	ancestors := make([]map[int]bool, len(preds))
	var anc func(i int) map[int]bool
	anc = func(i int) map[int]bool {
		if ancestors[i] != nil {
			return ancestors[i]
		}
		m := map[int]bool{}
		ancestors[i] = m
		for _, j := range preds[i] {
			m[j] = true
			for k := range anc(j) {
				m[k] = true
			}
		}
		return m
	}
	for i := range preds {
		if slices.Contains(until, i) {
			continue
		}
		all := true
		for _, u := range until {
			all = all && anc(i)[u]
		}
		if all {
			return
		}
	}
	v.errf("limits.holdBack.until", "held-back domain %s=%s would never be updated: no wave comes after %s; add a wave that does",
		h.Key, h.Domain, quoteListAnd(h.Until))
}

func quoteListAnd(names []string) string {
	if len(names) == 1 {
		return fmt.Sprintf("%q", names[0])
	}
	return "all of " + strings.ReplaceAll(quoteList(names), " or ", " and ")
}

// ParseDay reads a day of the week as windows accept it: "Mon" .. "Sun"
// or the full English name, in any case.
func ParseDay(s string) (time.Weekday, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mon", "monday":
		return time.Monday, true
	case "tue", "tuesday":
		return time.Tuesday, true
	case "wed", "wednesday":
		return time.Wednesday, true
	case "thu", "thursday":
		return time.Thursday, true
	case "fri", "friday":
		return time.Friday, true
	case "sat", "saturday":
		return time.Saturday, true
	case "sun", "sunday":
		return time.Sunday, true
	}
	return 0, false
}

func (v *validator) windows() {
	w := &v.p.Windows
	for _, name := range sortedKeys(w.Definitions) {
		v.window(joinKey("windows.definitions", name), name, w.Definitions[name], w.Cutoff)
	}
	v.nonEmpty("windows.label", w.Label, "label")
	if v.written("windows.default") && w.Default != "" {
		if _, ok := w.Definitions[w.Default]; !ok {
			names := sortedKeys(w.Definitions)
			msg := fmt.Sprintf("window %q is not defined", w.Default)
			if s := suggest(w.Default, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if len(names) > 0 {
				msg += " (defined: " + strings.Join(names, ", ") + ")"
			} else {
				msg += ": define it under windows.definitions"
			}
			v.errf("windows.default", "%s", msg)
		}
	}
	for i, f := range w.Freezes {
		fp := joinIndex("windows.freezes", i)
		if v.written(fp+".from") && v.written(fp+".to") && !f.From.Before(f.To) {
			v.errf(fp+".to", "freeze ends before it starts: to (%s) must be after from (%s)", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
		}
	}
}

func (v *validator) window(path, name string, ww WeeklyWindow, cutoff Duration) {
	tzp := path + ".timeZone"
	if v.nonEmpty(tzp, ww.TimeZone, "time zone") {
		if ww.TimeZone == "Local" {
			v.errf(tzp, "time zone \"Local\" depends on the server; name an IANA zone such as \"Europe/Berlin\" or \"UTC\"")
		} else if _, err := time.LoadLocation(ww.TimeZone); err != nil {
			msg := fmt.Sprintf("unknown time zone %q", ww.TimeZone)
			if s := suggest(ww.TimeZone, timeZones()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += ` (use an IANA name such as "Europe/Berlin", "America/New_York" or "UTC")`
			}
			v.errf(tzp, "%s", msg)
		}
	}
	spansOK := true
	for i, s := range ww.Spans {
		sp := joinIndex(path+".spans", i)
		if v.written(sp+".days") && len(s.Days) == 0 {
			v.errf(sp+".days", "days must list at least one day (Mon..Sun)")
		}
		for j, d := range s.Days {
			dp := joinIndex(sp+".days", j)
			if _, ok := ParseDay(d); !ok && v.written(dp) {
				msg := fmt.Sprintf("unknown day %q: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun", d)
				if sg := suggest(d, []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}); sg != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sg)
				}
				v.errf(dp, "%s", msg)
			}
		}
		if v.written(sp+".start") && !startRe.MatchString(s.Start) {
			v.errf(sp+".start", "expected a local time HH:MM (24-hour, e.g. \"02:00\"), got %q", s.Start)
		}
		if v.written(sp + ".duration") {
			switch {
			case s.Duration <= 0:
				v.errf(sp+".duration", "a span must last longer than 0")
				spansOK = false
			case s.Duration > Duration(7*24*time.Hour):
				v.errf(sp+".duration", "a span lasts at most 7d (a week), got %s", s.Duration)
				spansOK = false
			}
		} else {
			spansOK = false
		}
	}
	if !v.written(path+".spans") || !spansOK {
		return
	}
	if len(ww.Spans) == 0 {
		v.errf(path+".spans", "window %q never opens: it has no spans", name)
		return
	}
	longest := Duration(0)
	for _, s := range ww.Spans {
		longest = max(longest, s.Duration)
	}
	if cutoff >= longest {
		v.errf(path, "window %q never opens: windows.cutoff (%s) is at least as long as its longest span (%s)", name, cutoff, longest)
	}
}

func (v *validator) gates() {
	g := &v.p.Gates
	v.enum("gates.onFail", string(g.OnFail), string(BreachPause), string(BreachRollbackWave), string(BreachRollbackAll))
	v.enum("gates.onInterrupted", string(g.OnInterrupted), string(InterruptRetry), string(InterruptFail))
	if v.written("gates.progressDeadline") && g.ProgressDeadline <= 0 {
		v.errf("gates.progressDeadline", "progressDeadline must be longer than 0")
	}
	if v.written("gates.node.healthyDeadline") && g.Node.HealthyDeadline <= 0 {
		v.errf("gates.node.healthyDeadline", "healthyDeadline must be longer than 0")
	}
	for i := range g.Node.Probes {
		v.probe(joinIndex("gates.node.probes", i), &g.Node.Probes[i])
	}
	names := map[string]int{}
	for i := range g.Wave {
		gp := joinIndex("gates.wave", i)
		wg := &g.Wave[i]
		if v.nonEmpty(gp+".name", wg.Name, "gate name") {
			if j, dup := names[wg.Name]; dup {
				v.errf(gp+".name", "duplicate wave gate name %q (also gates.wave[%d])", wg.Name, j)
			} else {
				names[wg.Name] = i
			}
		}
		v.waveGate(gp, wg)
	}
}

var probeKinds = []string{string(ProbeHTTP), string(ProbeTCP), string(ProbeCommand), string(ProbeSystemd), string(ProbeWindowsService),
	string(ProbeClock), string(ProbeDNS), string(ProbeTLS), string(ProbeMounts), string(ProbeFailedUnits), string(ProbeFirewallBackend),
	string(ProbeMTU), string(ProbeKernelErrors), string(ProbeLinkage)}

// probeFields lists the fields each probe kind uses; a field of another
// kind is a mistake, not an option.
var probeFields = map[ProbeKind][]string{
	ProbeHTTP: {"url", "status", "bodyMatch", "includeOutput"}, ProbeTCP: {"address"},
	ProbeCommand: {"command", "artifact", "args", "includeOutput"},
	ProbeSystemd: {"unit"}, ProbeWindowsService: {"unit"},
	ProbeClock: {"maxOffset"}, ProbeDNS: {"lookup", "expect", "server"},
	ProbeTLS:    {"address", "serverName", "caFile", "minVersion", "minValidity"},
	ProbeMounts: {"paths"}, ProbeMTU: {"interfaces"},
	ProbeLinkage: {"binaries", "unit"},
}

var probeFieldNames = []string{"url", "status", "bodyMatch", "address", "command", "artifact", "args", "includeOutput", "unit",
	"maxOffset", "lookup", "expect", "server", "serverName", "caFile", "minVersion", "minValidity", "paths", "interfaces", "binaries"}

func (v *validator) probe(pp string, pr *Probe) {
	if !v.written(pp + ".kind") {
		return
	}
	if !slices.Contains(probeKinds, string(pr.Kind)) {
		v.enum(pp+".kind", string(pr.Kind), probeKinds...)
		return
	}
	// Fields of other kinds are mistakes, not options.
	for _, f := range probeFieldNames {
		if _, ok := v.d.pos[pp+"."+f]; ok && !slices.Contains(probeFields[pr.Kind], f) {
			v.keyErrf(pp+"."+f, "%s is not used by %s probes", f, pr.Kind)
		}
	}
	need := func(f, val, what string) {
		if _, ok := v.d.pos[pp+"."+f]; !ok {
			article := "a"
			if pr.Kind == ProbeHTTP {
				article = "an"
			}
			v.errf(pp, "%s %s probe needs %s", article, pr.Kind, what)
			return
		}
		v.nonEmpty(pp+"."+f, val, f)
	}
	switch pr.Kind {
	case ProbeHTTP:
		need("url", pr.URL, "url (e.g. http://localhost:8080/healthz)")
		if pr.URL != "" && v.written(pp+".url") {
			u, err := url.Parse(pr.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errf(pp+".url", "expected an http:// or https:// URL with a host, got %q", pr.URL)
			}
		}
		if v.written(pp+".status") && (pr.Status < 100 || pr.Status > 599) {
			v.errf(pp+".status", "expected an HTTP status between 100 and 599, got %d", pr.Status)
		}
		if v.written(pp + ".bodyMatch") {
			if _, err := regexp.Compile(pr.Body); err != nil {
				v.errf(pp+".bodyMatch", "invalid regular expression: %v", err)
			}
		}
	case ProbeTCP, ProbeTLS:
		need("address", pr.Address, "address (host:port, e.g. localhost:5432)")
		if pr.Address != "" && v.written(pp+".address") {
			if _, port, err := net.SplitHostPort(pr.Address); err != nil || port == "" {
				v.errf(pp+".address", "expected host:port, got %q", pr.Address)
			} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				v.errf(pp+".address", "port must be between 1 and 65535, got %q", port)
			}
		}
		if pr.Kind == ProbeTLS {
			v.tlsProbe(pp, pr)
		}
	case ProbeDNS:
		need("lookup", pr.Lookup, "lookup (the name to resolve, e.g. db.internal.example)")
		v.dnsProbe(pp, pr)
	case ProbeClock:
		if v.written(pp+".maxOffset") && pr.MaxOffset <= 0 {
			v.errf(pp+".maxOffset", "maxOffset must be longer than 0")
		}
	case ProbeMounts:
		for i, m := range pr.Paths {
			if !strings.HasPrefix(m, "/") {
				v.errf(joinIndex(pp+".paths", i), "expected an absolute mount point such as /var, got %q", m)
			}
		}
	case ProbeMTU:
		for i, n := range pr.Interfaces {
			if !validInterface(n) {
				v.errf(joinIndex(pp+".interfaces", i), "expected a network interface name (1 to 15 characters, no / or space), got %q", n)
			}
		}
	case ProbeLinkage:
		if len(pr.Binaries) == 0 && pr.Unit == "" && !v.d.failed[pp+".binaries"] && !v.d.failed[pp+".unit"] {
			v.errf(pp, "a linkage probe needs binaries (absolute paths, e.g. [/usr/sbin/nginx]) or unit (the service whose ExecStart to check)")
		}
		for i, b := range pr.Binaries {
			if !strings.HasPrefix(b, "/") {
				v.errf(joinIndex(pp+".binaries", i), "expected an absolute path such as /usr/sbin/nginx, got %q", b)
			}
		}
		if v.written(pp + ".unit") {
			v.nonEmpty(pp+".unit", pr.Unit, "unit")
		}
	case ProbeCommand:
		v.commandProbe(pp, pr, "a command probe")
	case ProbeSystemd, ProbeWindowsService:
		need("unit", pr.Unit, "unit (the service name)")
	}
	if pr.Retries < 0 {
		v.errf(pp+".retries", "retries must be 0 or more, got %d", pr.Retries)
	}
	if v.written(pp+".timeout") && pr.Timeout <= 0 {
		v.errf(pp+".timeout", "timeout must be longer than 0")
	}
	if v.written(pp+".interval") && pr.Interval <= 0 {
		v.errf(pp+".interval", "interval must be longer than 0")
	}
}

var gateModes = []string{string(ModeThreshold), string(ModeDelta), string(ModeBeforeAfter), string(ModeStatistical)}

func (v *validator) waveGate(gp string, g *WaveGate) {
	v.nonEmpty(gp+".query", g.Query, "query")
	if v.written(gp+".mode") && !slices.Contains(gateModes, string(g.Mode)) {
		v.enum(gp+".mode", string(g.Mode), gateModes...)
		return
	}
	switch g.Mode {
	case ModeThreshold:
		if g.Max == nil && g.Min == nil && !v.d.failed[gp+".max"] && !v.d.failed[gp+".min"] {
			v.errf(gp, "a threshold gate needs max (fail above) or min (fail below)")
		}
		if g.Max != nil && g.Min != nil && *g.Min > *g.Max {
			v.errf(gp+".min", "min (%g) is above max (%g): the gate could never pass", *g.Min, *g.Max)
		}
	case ModeDelta, ModeBeforeAfter:
		if _, ok := v.d.pos[gp+".maxIncrease"]; !ok {
			v.errf(gp, "a %s gate needs maxIncrease: \"20%%\" (relative to the baseline) or a number (absolute)", g.Mode)
		} else if v.written(gp+".maxIncrease") && !validIncrease(g.MaxIncrease) {
			v.errf(gp+".maxIncrease", "expected a percent (\"20%%\") or a number (0.05) of 0 or more, got %q", g.MaxIncrease)
		}
	}
	if v.written(gp+".baseline") && v.nonEmpty(gp+".baseline", g.Baseline, "baseline") {
		v.selector(gp+".baseline", g.Baseline)
	}
	if v.written(gp+".count") && g.Count < 1 {
		v.errf(gp+".count", "count must be at least 1, got %d", g.Count)
	}
	if v.written(gp+".failureLimit") && g.FailureLimit < 1 {
		v.errf(gp+".failureLimit", "failureLimit must be at least 1, got %d", g.FailureLimit)
	}
	if v.written(gp+".interval") && g.Interval <= 0 {
		v.errf(gp+".interval", "interval must be longer than 0")
	}
	v.enum(gp+".onNoData", g.Inconclusive, "fail", "inconclusive")
	v.enum(gp+".direction", g.Direction, "higher-is-worse", "lower-is-worse")
	if v.written(gp+".alpha") && (g.Alpha <= 0 || g.Alpha > 0.5) {
		v.errf(gp+".alpha", "alpha must be more than 0 and at most 0.5, got %g", g.Alpha)
	}
	if v.written(gp+".minSamples") && g.MinSamples < 3 {
		v.errf(gp+".minSamples", "minSamples must be at least 3, got %d", g.MinSamples)
	}
	if v.written(gp + ".minEffect") {
		if _, err := ParseQuantity(g.MinEffect); err != nil {
			v.errf(gp+".minEffect", "expected a percent such as \"10%%\", got %q", g.MinEffect)
		}
	}
	for j, m := range g.AlertMatchers {
		v.nonEmpty(joinIndex(gp+".blockingAlerts", j), m, "alert matcher")
	}
}

// validIncrease accepts "20%" (relative) or a number of 0 or more
// (absolute).
func validIncrease(s string) bool {
	s = strings.TrimSpace(s)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(num, 64)
		return err == nil && f >= 0 && f < 1e6
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && f >= 0 && f < 1e300
}
