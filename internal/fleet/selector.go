package fleet

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// SelectorCostLimit caps the CEL runtime cost of one Match. A selector that
// exceeds it (a hostile or careless comprehension over a large map) fails
// with an error instead of spinning. Ordinary selectors cost well under 100.
const SelectorCostLimit = 100_000

// node is the shape a selector sees as the variable `node`: the node's facts
// flattened next to its id and labels. Field names come from the json tags
// (ParseStructTag("json")), so they are the names of the inventory format;
// TestSelectorFieldNames pins them. The CEL type is named fleet.node.
type node struct {
	ID             string            `json:"id"`
	OS             OS                `json:"os"`
	Kernel         string            `json:"kernel"`
	Arch           string            `json:"arch"`
	Hardware       Hardware          `json:"hardware"`
	BootID         string            `json:"bootId"`
	Packages       map[string]string `json:"packages"`
	Services       map[string]string `json:"services"`
	Modules        []string          `json:"modules"`
	LivePatches    []string          `json:"livePatches"`
	Holds          []string          `json:"holds"`
	Runtime        Runtime           `json:"runtime"`
	Kubelet        string            `json:"kubelet"`
	RebootRequired bool              `json:"rebootRequired"`
	Labels         map[string]string `json:"labels"`
	// Facts are the facts again under the path `drover nodes get -o json`
	// shows them: node.facts.packages is node.packages.
	Facts nodeFacts `json:"facts"`
}

// nodeFacts is Facts as a selector sees it under node.facts: the same
// json names (the agent's policy is not a selector field).
type nodeFacts struct {
	OS             OS                `json:"os"`
	Kernel         string            `json:"kernel"`
	Arch           string            `json:"arch"`
	Hardware       Hardware          `json:"hardware"`
	BootID         string            `json:"bootId"`
	Packages       map[string]string `json:"packages"`
	Services       map[string]string `json:"services"`
	Modules        []string          `json:"modules"`
	LivePatches    []string          `json:"livePatches"`
	Holds          []string          `json:"holds"`
	Runtime        Runtime           `json:"runtime"`
	Kubelet        string            `json:"kubelet"`
	RebootRequired bool              `json:"rebootRequired"`
}

// fill sets v to the selector's view of n. Maps and slices are shared with
// n, not copied; CEL never mutates them.
func (v *node) fill(n *Node) {
	f := &n.Facts
	*v = node{
		ID: n.ID, OS: f.OS, Kernel: f.Kernel, Arch: f.Arch, Hardware: f.Hardware,
		BootID: f.BootID, Packages: f.Packages, Services: f.Services,
		Modules: f.Modules, LivePatches: f.LivePatches, Holds: f.Holds, Runtime: f.Runtime,
		Kubelet: f.Kubelet, RebootRequired: f.RebootRequired, Labels: n.Labels,
		Facts: nodeFacts{OS: f.OS, Kernel: f.Kernel, Arch: f.Arch, Hardware: f.Hardware,
			BootID: f.BootID, Packages: f.Packages, Services: f.Services,
			Modules: f.Modules, LivePatches: f.LivePatches, Holds: f.Holds, Runtime: f.Runtime,
			Kubelet: f.Kubelet, RebootRequired: f.RebootRequired},
	}
}

// Selector is a compiled, type-checked CEL expression choosing nodes.
// A Selector is immutable and safe for concurrent use. The zero value is
// not usable; obtain one from CompileSelector or (*Compiler).Compile.
//
// The expression sees one variable, node, with the fields id, os.family,
// os.name, os.version, kernel, arch, hardware.class, bootId, packages
// (map<string,string>), services (map<string,string>), modules
// (list<string>), livePatches (list<string>), holds (list<string>: held
// packages), runtime.containerd,
// runtime.docker, runtime.crio, kubelet, rebootRequired (bool) and labels
// (map<string,string>). The same facts are also under node.facts, as
// `drover nodes get -o json` shows them (node.facts.packages,
// node.facts.os.family). Naming any other field is a compile error that
// lists the fields.
// The standard CEL library, the strings extension (lowerAscii, split, …)
// and optional values (node.labels[?"zone"], node.labels.?zone.orValue(""))
// are available.
//
// Missing map keys: reading a key a node does not have (node.labels.zone on
// an unlabelled node) makes the whole selector not match that node, unless
// CEL's && / || already decide the result without that operand. So
// `node.labels.tier != "db"` does NOT match a node without a tier label;
// write `!has(node.labels.tier) || node.labels.tier != "db"` or
// `node.labels.?tier.orValue("") != "db"` to include it.
type Selector struct {
	src   string
	prg   cel.Program
	views sync.Pool // of *node; a view is dropped by CEL once Eval returns a bool
}

// SelectorIssue is one problem found while compiling a selector. Line and
// Col are 1-based positions within the expression text.
type SelectorIssue struct {
	Line, Col int
	Msg       string
}

// SelectorError reports why a selector does not compile. Line, Col and Msg
// describe the first issue; Issues lists all of them (including the first)
// in source order as CEL reported them.
type SelectorError struct {
	Line, Col int
	Msg       string
	Issues    []SelectorIssue
}

// Error formats the first issue as "selector: LINE:COL: MSG".
func (e *SelectorError) Error() string {
	return fmt.Sprintf("selector: %d:%d: %s", e.Line, e.Col, e.Msg)
}

// Compiler holds the CEL environment selectors are checked against.
// Building it costs about a millisecond; reuse one Compiler to compile many
// selectors. A Compiler is safe for concurrent use.
type Compiler struct {
	env *cel.Env
}

// NewCompiler builds the selector environment.
func NewCompiler() (*Compiler, error) { return newCompiler() }

// NewChangeCompiler builds the environment of a compatibility rule: a
// selector's, plus the variable change, the plan's change in its JSON
// shape (change.actions[i].package.name, change.reboot, ...), which
// MatchChange binds. change is dynamically typed: a key the change lacks
// is a missing map key, as for node.labels.
func NewChangeCompiler() (*Compiler, error) {
	return newCompiler(cel.Variable("change", cel.DynType))
}

func newCompiler(vars ...cel.EnvOption) (*Compiler, error) {
	env, err := cel.NewEnv(append([]cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[*node](), ext.ParseStructTag("json")),
		cel.Variable("node", cel.ObjectType("fleet.node")),
		cel.OptionalTypes(),
		ext.Strings(),
	}, vars...)...)
	if err != nil {
		return nil, fmt.Errorf("build selector environment: %w", err)
	}
	return &Compiler{env: env}, nil
}

// CompileSelector compiles expr with a fresh Compiler. Errors in the
// expression are *SelectorError; callers compiling many selectors should
// keep a Compiler instead.
func CompileSelector(expr string) (*Selector, error) {
	c, err := NewCompiler()
	if err != nil {
		return nil, err
	}
	return c.Compile(expr)
}

// Compile parses and type-checks expr, which must be a bool expression over
// node. Errors in the expression are returned as *SelectorError.
func (c *Compiler) Compile(expr string) (*Selector, error) {
	ast, iss := c.env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, issuesError(iss.Errors())
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) {
		msg := "selector must be a bool expression, got " + t.String()
		return nil, &SelectorError{Line: 1, Col: 1, Msg: msg,
			Issues: []SelectorIssue{{Line: 1, Col: 1, Msg: msg}}}
	}
	prg, err := c.env.Program(ast,
		cel.CostLimit(SelectorCostLimit),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("selector %q: plan program: %w", expr, err)
	}
	return &Selector{src: expr, prg: prg, views: sync.Pool{New: func() any { return new(node) }}}, nil
}

// selectorFieldsHint follows an unknown field's error: the paths a
// selector may name.
const selectorFieldsHint = " (node has id, labels, and facts as `drover nodes get -o json` shows them: facts.os.family, " +
	"facts.os.version, facts.kernel, facts.arch, facts.hardware.class, facts.packages, facts.services, facts.modules, " +
	"facts.livePatches, facts.runtime.*, facts.kubelet, facts.rebootRequired, facts.bootId; each fact also without facts.)"

func issuesError(errs []*cel.Error) *SelectorError {
	e := &SelectorError{Line: 1, Col: 1, Msg: "invalid selector"}
	for _, ce := range errs {
		line, col := ce.Location.Line(), ce.Location.Column()+1
		line, col = max(line, 1), max(col, 1)
		msg := ce.Message
		if strings.HasPrefix(msg, "undefined field") {
			msg += selectorFieldsHint
		}
		e.Issues = append(e.Issues, SelectorIssue{Line: line, Col: col, Msg: msg})
	}
	if len(e.Issues) > 0 {
		e.Line, e.Col, e.Msg = e.Issues[0].Line, e.Issues[0].Col, e.Issues[0].Msg
	}
	return e
}

// String returns the selector's source text.
func (s *Selector) String() string { return s.src }

// activation resolves the variables node and (for a compatibility
// rule) change without allocating a map.
type activation struct {
	node   *node
	change any
}

func (a activation) ResolveName(name string) (any, bool) {
	switch {
	case name == "node":
		return a.node, true
	case name == "change" && a.change != nil:
		return a.change, true
	}
	return nil, false
}

func (a activation) Parent() interpreter.Activation { return nil }

// Match reports whether n satisfies the selector. A reference to a missing
// map key that decides the result yields false and a nil error (see
// Selector). Any other evaluation failure, including exceeding
// SelectorCostLimit, is returned as an error and the bool is false.
// Match neither retains nor mutates n, which must not be nil.
func (s *Selector) Match(n *Node) (bool, error) { return s.MatchChange(n, nil) }

// MatchChange is Match for a selector compiled by NewChangeCompiler:
// change, the plan's change decoded from JSON (maps, lists, strings,
// numbers, bools), is bound to the variable change.
func (s *Selector) MatchChange(n *Node, change map[string]any) (bool, error) {
	v := s.views.Get().(*node)
	v.fill(n)
	act := activation{node: v}
	if change != nil {
		act.change = change
	}
	out, _, err := s.prg.Eval(act)
	*v = node{} // do not keep n's maps alive from the pool
	s.views.Put(v)
	if err != nil {
		if isNoSuchKey(err) {
			return false, nil
		}
		return false, fmt.Errorf("selector %q on node %s: %w", s.src, n.ID, err)
	}
	return asBool(out)
}

func asBool(v ref.Val) (bool, error) {
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("selector returned %s, not bool", v.Type().TypeName())
	}
	return bool(b), nil
}

// isNoSuchKey recognises CEL's missing-map-key error. cel-go exports no
// sentinel for it, so this is the one place that matches an error by text.
func isNoSuchKey(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), "no such key") {
			return true
		}
	}
	return false
}

// Filter returns the nodes in nodes that s matches, in their original
// order. The result shares the *Node pointers with nodes. It stops at the
// first evaluation error and returns it.
func (s *Selector) Filter(nodes []*Node) ([]*Node, error) {
	var out []*Node
	for _, n := range nodes {
		ok, err := s.Match(n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}
