package plan

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/fleet"
)

// validator checks a decoded plan against the rules of the format. It
// looks at the values as written (before Defaults) and reports at the
// positions the decoder recorded. A value the decoder already rejected
// (failed) or never saw (a missing required field, already reported) is
// not checked again, so that one mistake gives one message.
type validator struct {
	d        *decoder
	p        *Plan
	compiler *fleet.Compiler
	cerr     error           // why the selector compiler could not be built
	compat   *fleet.Compiler // compatibility rules': node and change
	compatE  error           // why that compiler could not be built
}

var (
	nameRe     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	waveNameRe = regexp.MustCompile(`^[a-z0-9-]+$`)
	startRe    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// errf reports a problem with the value at path.
func (v *validator) errf(path, format string, args ...any) {
	pos, _ := v.p.closest(path)
	v.d.errAt(pos.Line, pos.Col, path, format, args...)
}

// keyErrf reports a problem at the key of path (where the key is more
// telling than the value, as for "two kinds in one action").
func (v *validator) keyErrf(path, format string, args ...any) {
	if k, ok := v.d.keys[path]; ok {
		v.d.errAt(k.Line, k.Column, path, format, args...)
		return
	}
	v.errf(path, format, args...)
}

// written reports whether the user wrote a well-formed value at path.
func (v *validator) written(path string) bool {
	_, ok := v.d.pos[path]
	return ok && !v.d.failed[path]
}

// enum checks that a written value is one of allowed.
func (v *validator) enum(path, got string, allowed ...string) {
	if !v.written(path) || slices.Contains(allowed, got) {
		return
	}
	msg := fmt.Sprintf("expected %s, got %q", quoteList(allowed), got)
	if s := suggest(got, allowed); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	v.errf(path, "%s", msg)
}

// nonEmpty checks that a written string is not blank.
func (v *validator) nonEmpty(path, got, what string) bool {
	if !v.written(path) {
		return false
	}
	if strings.TrimSpace(got) == "" {
		v.errf(path, "%s must not be empty", what)
		return false
	}
	return true
}

func (v *validator) plan() {
	p := v.p
	if v.written("apiVersion") && p.APIVersion != APIVersion {
		v.errf("apiVersion", "unsupported apiVersion %q: this version of drover reads %q", p.APIVersion, APIVersion)
	}
	if v.written("name") {
		switch {
		case p.Name == "":
			v.errf("name", "name must not be empty")
		case len(p.Name) > 63:
			v.errf("name", "name is %d characters long; at most 63 are allowed", len(p.Name))
		case !nameRe.MatchString(p.Name):
			v.errf("name", "invalid name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit", p.Name)
		}
	}
	if v.nonEmpty("target.selector", p.Target.Selector, "target selector") {
		v.selector("target.selector", p.Target.Selector)
	}
	v.enum("target.onRefusal", string(p.Target.OnRefusal), string(RefuseCreation), string(RefusalFailNode))
	v.enum("overlap", string(p.Overlap), string(OverlapWait), string(OverlapRefuse))
	v.change()
	v.waves()
	v.limits()
	v.windows()
	v.budget("failureBudget", &p.Budget)
	v.gates()
	v.preflight()
	v.identifiers()
	if p.Approvals.Start < 0 {
		v.errf("approvals.start", "approvals must be 0 or more, got %d", p.Approvals.Start)
	}
}

// preflight checks the node pre-flight settings and the compatibility
// rules (each a CEL expression over node).
func (v *validator) preflight() {
	if pf := v.p.Preflight; pf != nil {
		v.enum("preflight.onFail", string(pf.OnFail), string(PreflightBlock), string(PreflightExclude), string(PreflightIgnore))
		v.enum("preflight.unavailable", string(pf.Unavailable), string(PreflightProceed), string(PreflightFail))
		if v.written("preflight.timeout") && pf.Timeout <= 0 {
			v.errf("preflight.timeout", "timeout must be longer than 0")
		}
		if pf.OnFail == PreflightIgnore {
			for _, f := range []string{"timeout", "unavailable"} {
				if v.written("preflight." + f) {
					v.errf("preflight."+f, "onFail: ignore runs no node pre-flight; remove %s", f)
				}
			}
			if len(v.p.Compatibility) > 0 {
				v.errf("preflight.onFail", "the compatibility matrix is checked at the node pre-flight, which onFail: ignore turns off; remove onFail: ignore or the compatibility section")
			}
		}
	}
	names := map[string]int{}
	for i, r := range v.p.Compatibility {
		rp := joinIndex("compatibility", i)
		if v.nonEmpty(rp+".name", r.Name, "compatibility rule name") {
			if j, dup := names[r.Name]; dup {
				v.errf(rp+".name", "duplicate compatibility rule name %q (also compatibility[%d])", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}
		if v.nonEmpty(rp+".require", r.Require, "compatibility condition") {
			if v.compat == nil && v.compatE == nil {
				v.compat, v.compatE = fleet.NewChangeCompiler()
			}
			v.compile(v.compat, v.compatE, rp+".require", r.Require)
		}
	}
}

// selector compiles a CEL expression and reports its first issue at the
// position in the file where the expression has it.
func (v *validator) selector(path, expr string) {
	if v.compiler == nil && v.cerr == nil {
		v.compiler, v.cerr = fleet.NewCompiler()
	}
	v.compile(v.compiler, v.cerr, path, expr)
}

// compile is selector with the compiler given (cerr: why it could not
// be built).
func (v *validator) compile(c *fleet.Compiler, cerr error, path, expr string) {
	if cerr != nil {
		v.errf(path, "cannot check selector: %v", cerr)
		return
	}
	_, err := c.Compile(expr)
	if err == nil {
		return
	}
	var se *fleet.SelectorError
	if !errors.As(err, &se) {
		v.errf(path, "invalid selector: %v", err)
		return
	}
	n := v.d.nodes[path]
	if n == nil {
		v.errf(path, "invalid selector: %s", se.Msg)
		return
	}
	line, col := v.d.exprPos(n, expr, se.Line, se.Col)
	v.d.errAt(line, col, path, "invalid selector: %s", celMessage(se.Msg))
}

// celMessage shortens CEL's parser messages, which list every token the
// grammar would accept, to what a person needs.
func celMessage(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if strings.Contains(s, "mismatched input '<EOF>'") {
		return "syntax error: the expression ends too early"
	}
	if i := strings.Index(s, " expecting {"); i >= 0 && len(s)-i > 40 {
		s = s[:i]
	}
	return strings.Replace(s, "Syntax error:", "syntax error:", 1)
}

// exprPos maps a 1-based line and column inside the string value of n to
// the file: a plain or quoted scalar starts at its column (after the
// quote) and continues, folded, on the following lines; a block scalar
// (| or >) starts on the line after its indicator, at its indentation.
func (d *decoder) exprPos(n *yaml.Node, expr string, line, col int) (int, int) {
	off := 0
	for i, l := range strings.Split(expr, "\n") {
		if i == line-1 {
			break
		}
		off += utf8.RuneCountInString(l) + 1
	}
	off += max(col-1, 0)
	type segment struct{ line, col, length int }
	var segs []segment
	src := func(l int) string {
		if l >= 1 && l <= len(d.lines) {
			return strings.TrimRight(d.lines[l-1], "\r")
		}
		return ""
	}
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		indent := -1
		for l := n.Line + 1; l <= len(d.lines) && len(segs) < 10_000; l++ {
			text := src(l)
			lead := len(text) - len(strings.TrimLeft(text, " "))
			if strings.TrimSpace(text) == "" {
				segs = append(segs, segment{l, lead + 1, 0})
				continue
			}
			if indent < 0 {
				indent = lead
			}
			if lead < indent {
				break
			}
			segs = append(segs, segment{l, indent + 1, utf8.RuneCountInString(text[indent:])})
		}
	default:
		start := n.Column
		if n.Style == yaml.SingleQuotedStyle || n.Style == yaml.DoubleQuotedStyle {
			start++
		}
		first := []rune(src(n.Line))
		segs = append(segs, segment{n.Line, start, max(len(first)-(start-1), 0)})
		for l := n.Line + 1; l <= len(d.lines) && len(segs) < 10_000; l++ {
			text := src(l)
			lead := len(text) - len(strings.TrimLeft(text, " "))
			segs = append(segs, segment{l, lead + 1, utf8.RuneCountInString(strings.TrimSpace(text))})
		}
	}
	end := Pos{n.Line, n.Column}
	for _, s := range segs {
		if off <= s.length {
			return s.line, s.col + off
		}
		off -= s.length + 1
		if s.length > 0 {
			end = Pos{s.line, s.col + s.length}
		}
	}
	// Past the end (CEL reports "<EOF>" there): point after the last
	// character of the expression.
	return end.Line, end.Col
}

var (
	osFamilies = []string{"debian", "ubuntu", "rhel", "suse", "windows", "macos"}
	kindNames  = []string{"package", "kernel", "livepatch", "serviceRestart", "containerRuntime", "kubernetesNode", "script"}
)

func (v *validator) change() {
	c := &v.p.Change
	if v.written("change.actions") && len(c.Actions) == 0 {
		v.errf("change.actions", "change has no actions: add at least one (package, kernel, livepatch, serviceRestart, containerRuntime, kubernetesNode or script)")
	}
	v.enum("change.reboot", string(c.Reboot), string(RebootNever), string(RebootIfRequired), string(RebootAlways))
	if v.written("change.timeout") && c.Timeout <= 0 {
		v.errf("change.timeout", "timeout must be longer than 0")
	}
	for i := range c.Actions {
		v.action(joinIndex("change.actions", i), &c.Actions[i])
	}
}

func (v *validator) action(path string, a *Action) {
	var kinds []string
	for _, k := range kindNames {
		if _, ok := v.d.pos[path+"."+k]; ok {
			kinds = append(kinds, k)
		}
	}
	// Report in the order the user wrote them.
	slices.SortFunc(kinds, func(x, y string) int {
		kx, ky := v.d.keys[path+"."+x], v.d.keys[path+"."+y]
		if kx.Line != ky.Line {
			return kx.Line - ky.Line
		}
		return kx.Column - ky.Column
	})
	switch {
	case len(kinds) == 0:
		if !v.d.strays[path] && !v.d.failed[path] {
			v.errf(path, "action has no kind: set one of %s", strings.Join(kindNames, ", "))
		}
		return
	case len(kinds) > 1:
		v.keyErrf(path+"."+kinds[1], "action has two kinds, %s and %s: an action does one thing; split it into two actions", kinds[0], kinds[1])
	}
	for i, fam := range a.NoRollbackOn {
		if !slices.Contains(osFamilies, fam) {
			msg := fmt.Sprintf("unknown os family %q: expected %s", fam, quoteList(osFamilies))
			if s := suggest(fam, osFamilies); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			v.errf(joinIndex(path+".noRollbackOn", i), "%s", msg)
		}
	}
	kp := path + "." + kinds[0]
	if v.d.failed[kp] {
		return
	}
	if cp := path + ".preRestartCheck"; a.PreRestartCheck != nil {
		if kinds[0] != "package" && kinds[0] != "serviceRestart" {
			v.keyErrf(cp, "preRestartCheck goes with package and serviceRestart actions (a %s action restarts no service drover can hold back)", kinds[0])
		} else {
			pr := a.PreRestartCheck.Probe()
			v.commandProbe(cp, &pr, "a pre-restart check")
		}
	}
	set := map[string]bool{
		"package": a.Package != nil, "kernel": a.Kernel != nil, "livepatch": a.LivePatch != nil,
		"serviceRestart": a.ServiceRestart != nil, "containerRuntime": a.ContainerRuntime != nil,
		"kubernetesNode": a.KubernetesNode != nil, "script": a.Script != nil,
	}
	if !set[kinds[0]] {
		v.errf(kp, "%s action is empty: expected a mapping of its settings", kinds[0])
		return
	}
	switch kinds[0] {
	case "package":
		v.packageAction(kp, a.Package)
	case "kernel":
		v.nonEmpty(kp+".version", a.Kernel.Version, "kernel version")
		v.enum(kp+".rollback", a.Kernel.Rollback, "previous-kernel", "none")
		v.enum(kp+".fallback", string(a.Kernel.Fallback), string(KernelFallbackOneShot), string(KernelFallbackDefault))
		v.enum(kp+".onRollback", string(a.Kernel.OnRollback), string(KernelRemove), string(KernelHold))
	case "livepatch":
		v.nonEmpty(kp+".id", a.LivePatch.ID, "live patch id")
		v.enum(kp+".provider", a.LivePatch.Provider, "kpatch", "canonical-livepatch")
		v.enum(kp+".rollback", a.LivePatch.Rollback, "unload", "none")
	case "serviceRestart":
		v.nonEmpty(kp+".service", a.ServiceRestart.Service, "service")
	case "containerRuntime":
		v.enum(kp+".runtime", a.ContainerRuntime.Runtime, "containerd", "docker", "cri-o")
		v.version(kp+".version", a.ContainerRuntime.Version)
	case "kubernetesNode":
		// drain is required by the decoder; durations are checked there.
		if kv := a.KubernetesNode.KubeletVersion; kv != "" && !kubeVersionRe.MatchString(kv) {
			v.errf(kp+".kubeletVersion", "kubeletVersion %q: want MAJOR.MINOR.PATCH, e.g. 1.31.4", kv)
		}
	case "script":
		v.nonEmpty(kp+".artifact", a.Script.Artifact, "artifact")
	}
}

var kubeVersionRe = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+$`)

func (v *validator) packageAction(path string, pa *PackageAction) {
	v.enum(path+".operation", string(pa.Operation), string(PackageUpgrade), string(PackageInstall))
	v.enum(path+".rollback", string(pa.Rollback), string(RollbackPreviousVersion), string(RollbackNone))
	if len(pa.Packages) == 0 && len(pa.Families) == 0 && !v.d.failed[path+".packages"] && !v.d.failed[path+".families"] {
		v.errf(path, "package action names no packages: set packages, or families with packages per os family")
	}
	for i := range pa.Packages {
		v.pin(joinIndex(path+".packages", i), &pa.Packages[i])
	}
	for _, fam := range sortedKeys(pa.Families) {
		fp := joinKey(path+".families", fam)
		if !slices.Contains(osFamilies, fam) {
			msg := fmt.Sprintf("unknown os family %q: expected %s", fam, quoteList(osFamilies))
			if s := suggest(fam, osFamilies); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			v.keyErrf(fp, "%s", msg)
			continue
		}
		if v.written(fp) && len(pa.Families[fam]) == 0 {
			v.errf(fp, "no packages listed for %s", fam)
		}
		for i := range pa.Families[fam] {
			v.pin(joinIndex(fp, i), &pa.Families[fam][i])
		}
	}
}

func (v *validator) pin(path string, pin *PackagePin) {
	v.nonEmpty(path+".name", pin.Name, "package name")
	v.version(path+".version", pin.Version)
}

// version checks that a written version is one exact version: no
// "latest", no ranges, no wildcards.
func (v *validator) version(path, got string) {
	if !v.nonEmpty(path, got, "version") {
		return
	}
	g := strings.TrimSpace(got)
	switch {
	case strings.EqualFold(g, "latest") || strings.EqualFold(g, "any"):
		v.errf(path, "version must be exact, got %q: pin the version you tested (no floating latest)", got)
	case strings.ContainsAny(g[:1], "<>=~^!") || strings.ContainsAny(g, "* ,|"):
		v.errf(path, "version must be one exact version, got %q (no ranges or wildcards)", got)
	}
}

func (v *validator) budget(path string, b *Budget) {
	if b.Max != nil && !b.Max.Percent && b.Max.Count < 0 {
		v.errf(path+".maxFailures", "maxFailures must be 0 or more, got %d", b.Max.Count)
	}
	v.enum(path+".onBreach", string(b.Action), string(BreachPause), string(BreachRollbackWave), string(BreachRollbackAll))
}

func (v *validator) limits() {
	l := &v.p.Limits
	if q := l.MaxInFlight; q != nil && !q.Percent && q.Count < 1 {
		v.errf("limits.maxInFlight", "maxInFlight must be at least 1, got %d (use a pause to stop a rollout)", q.Count)
	}
	for _, k := range sortedKeys(l.Caps) {
		kp := joinKey("limits.caps", k)
		if strings.TrimSpace(k) == "" {
			v.keyErrf(kp, "a cap needs a key (a label such as zone, or a fact such as os.family)")
			continue
		}
		if q := l.Caps[k]; !q.Percent && q.Count < 1 && v.written(kp) {
			v.errf(kp, "cap must be at least 1, got %d", q.Count)
		}
	}
	if r := l.Rate; r != nil {
		if v.written("limits.rate.starts") && r.Starts < 1 {
			v.errf("limits.rate.starts", "starts must be at least 1, got %d", r.Starts)
		}
		if v.written("limits.rate.per") && r.Per <= 0 {
			v.errf("limits.rate.per", "per must be longer than 0")
		}
	}
	if h := l.HoldBack; h != nil {
		v.nonEmpty("limits.holdBack.key", h.Key, "holdBack key")
		v.nonEmpty("limits.holdBack.domain", h.Domain, "holdBack domain")
		if v.written("limits.holdBack.until") && len(h.Until) == 0 {
			v.errf("limits.holdBack.until", "until must name at least one wave")
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func itoa(i int) string { return strconv.Itoa(i) }
