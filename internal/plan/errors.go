package plan

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a plan, located in its source file. Line and Col
// are 1-based; Path names the offending value ("waves[1].selector",
// "limits.caps.zone"), or the object holding an unknown or missing field.
// Path is empty for problems with the file as a whole.
type Error struct {
	File string
	Line int
	Col  int
	Path string
	Msg  string
}

// Error formats the problem as "FILE:LINE:COL: PATH: MSG", the form editors
// and CI annotations understand.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one plan, sorted by position. Parse
// returns a non-empty Errors (never a nil slice) as its error.
type Errors []*Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortErrors orders problems by position and drops exact duplicates, so
// that a problem reached through two routes (an alias, say) shows once.
func sortErrors(es Errors) Errors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Error() < b.Error()
	})
	out := es[:0]
	for i, e := range es {
		if i > 0 && e.Error() == es[i-1].Error() {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Pos is a 1-based line and column in a plan's source file.
type Pos struct {
	Line int
	Col  int
}

// Position returns where the value at path was written. Paths are the ones
// errors use: "waves[1].selector", "limits.caps.zone",
// `limits.caps["hardware.class"]`. ok is false when the plan did not come
// from Parse or the path was not written by the user (a defaulted field);
// after ramp expansion the steps of a ramp share the ramp's positions.
func (p *Plan) Position(path string) (pos Pos, ok bool) {
	pos, ok = p.pos[path]
	return pos, ok
}

// Where returns "FILE:LINE:COL" for path, for errors found after parsing
// (for example "wave canary selects no node", found only against an
// inventory). When path itself was not written (a defaulted field) it
// returns the position of the closest ancestor that was; when nothing is
// known it returns the file name alone (which is empty for a plan that did
// not come from Parse).
func (p *Plan) Where(path string) string {
	if pos, ok := p.closest(path); ok {
		return fmt.Sprintf("%s:%d:%d", p.file, pos.Line, pos.Col)
	}
	return p.file
}

// Errorf returns an *Error at path (or its closest known ancestor, as
// Where), with the message formatted as fmt.Sprintf does. It does not
// format the path into the message: Error.Error prints it.
func (p *Plan) Errorf(path, format string, args ...any) *Error {
	e := &Error{File: p.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if pos, ok := p.closest(path); ok {
		e.Line, e.Col = pos.Line, pos.Col
	}
	return e
}

// File returns the file name the plan was parsed from ("" if it was not).
func (p *Plan) File() string { return p.file }

func (p *Plan) closest(path string) (Pos, bool) {
	for {
		if pos, ok := p.pos[path]; ok {
			return pos, true
		}
		if path == "" {
			return Pos{}, false
		}
		path = parentPath(path)
	}
}

// parentPath strips the last segment of a path: "a.b[2]" -> "a.b",
// `a.caps["x.y"]` -> "a.caps", "a" -> "".
func parentPath(path string) string {
	switch {
	case strings.HasSuffix(path, `"]`):
		if i := strings.LastIndex(path, `["`); i >= 0 {
			return path[:i]
		}
	case strings.HasSuffix(path, "]"):
		if i := strings.LastIndex(path, "["); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i]
	}
	return ""
}

// joinKey appends a mapping key to a path. Keys that are not plain
// identifiers are quoted, so that "hardware.class" stays one segment.
func joinKey(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return fmt.Sprintf("%s[%q]", path, key)
	case path == "":
		return key
	}
	return path + "." + key
}

func joinIndex(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// suggest returns the candidate the user most likely meant by got, or "".
// It tries, in order: a match ignoring case and separators
// ("max_in_flight"), a name operators bring from other tools
// ("maxConcurrent", even misspelt), and the closest candidate by edit
// distance when it is close enough.
func suggest(got string, candidates []string) string {
	if len(got) > 64 {
		return "" // not a typo; and edit distance is quadratic
	}
	has := func(s string) bool {
		for _, c := range candidates {
			if c == s {
				return true
			}
		}
		return false
	}
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(s))
	}
	for _, c := range candidates {
		if norm(c) == norm(got) {
			return c
		}
	}
	g := norm(got)
	bestAlias, bestAliasD := "", 3
	for from, to := range aliases() {
		if !has(to) {
			continue
		}
		d := levenshtein(g, from)
		if d < bestAliasD || d == bestAliasD && to < bestAlias {
			bestAlias, bestAliasD = to, d
		}
	}
	if bestAlias != "" && (bestAliasD == 0 || len(g) >= 6) {
		return bestAlias
	}
	// Ties go to a candidate with the same first letter ("Sonday" is
	// "Sunday", not "Monday"), then to the first listed.
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(g, norm(c))
		if d < bestD || d == bestD && sameFirst(g, norm(c)) && !sameFirst(g, norm(best)) {
			best, bestD = c, d
		}
	}
	limit := 2
	switch {
	case len(g) <= 3:
		limit = 1
	case len(g) >= 8:
		limit = 3
	}
	if bestD <= limit {
		return best
	}
	return ""
}

// aliases maps names operators bring from other tools (normalized: lower
// case, no separators) to ours. An alias is only offered where its target
// is a valid field.
func aliases() map[string]string {
	m := map[string]string{}
	add := func(to string, froms ...string) {
		for _, f := range froms {
			m[f] = to
		}
	}
	add("maxInFlight", "maxconcurrent", "maxconcurrency", "concurrency", "parallelism",
		"maxparallel", "maxunavailable", "batchsize", "serial")
	add("failureBudget", "budget", "errorbudget", "maxfailures", "failurelimit")
	add("after", "dependson", "needs", "depends", "requires")
	add("nodes", "count", "size", "percent", "percentage", "hosts")
	add("ramp", "steps", "stages")
	add("timeZone", "tz", "timezone", "zone", "location")
	add("apiVersion", "version", "apiversion")
	add("package", "apt", "dnf", "yum", "zypper", "packages", "pkg")
	add("serviceRestart", "restart", "service", "restartservice")
	add("containerRuntime", "runtime", "containerd", "docker", "crio")
	add("kubernetesNode", "k8s", "kubernetes", "kubelet", "node", "drain")
	add("livepatch", "kpatch", "live")
	add("script", "command", "cmd", "shell", "exec", "run")
	add("onBreach", "onfailure", "onerror", "action")
	add("bakeTime", "bake", "soak")
	add("spread", "spreadby", "spreadacross")
	add("maxFailures", "max", "failures", "allowed")
	add("definitions", "windows", "schedules")
	add("freezes", "freeze", "blackouts", "blackout")
	add("bodyMatch", "body", "match", "regex")
	return m
}

func sameFirst(a, b string) bool { return a != "" && b != "" && a[0] == b[0] }

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// quoteList formats names for a message: "a", "b" or "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
