package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseFile reads and parses the plan at path; see Parse. A file that
// cannot be read gives an error wrapping the os error, not Errors.
func ParseFile(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, validates and completes the plan in data; filename is
// only used in messages and by Where.
//
// Decoding is strict: unknown fields, duplicate keys, values of the wrong
// type, empty files and files of several YAML documents are errors. Every
// problem found is reported, not only the first: the error is then always
// of type Errors, sorted by position, each located as FILE:LINE:COL.
// Validation looks at the values as written, so its positions match the
// file; only a valid plan gets Defaults applied, and the plan returned is
// the effective plan (ramps expanded, every default explicit). Parse does
// not panic on any input.
func Parse(filename string, data []byte) (*Plan, error) {
	d := &decoder{
		file:   filename,
		lines:  strings.Split(string(data), "\n"),
		pos:    map[string]Pos{},
		nodes:  map[string]*yaml.Node{},
		keys:   map[string]*yaml.Node{},
		failed: map[string]bool{},
		strays: map[string]bool{},
		budget: maxValues,
	}
	root := d.document(data)
	if root == nil {
		return nil, sortErrors(d.errs)
	}
	p := &Plan{file: filename, pos: d.pos}
	d.decode(root, reflect.ValueOf(p).Elem(), "")
	if d.budget < 0 {
		return nil, sortErrors(d.errs)
	}
	(&validator{d: d, p: p}).plan()
	if len(d.errs) > 0 {
		return nil, sortErrors(d.errs)
	}
	Defaults(p)
	return p, nil
}

// maxValues bounds the values one plan may hold once aliases are
// expanded, so that an alias bomb fails fast instead of eating memory.
const maxValues = 200_000

// decoder walks a yaml.Node tree into the plan types by reflection over
// their yaml tags. A field whose tag has no omitempty is required.
type decoder struct {
	file   string
	lines  []string
	errs   Errors
	pos    map[string]Pos        // value positions by path, kept in the Plan
	nodes  map[string]*yaml.Node // value nodes by path, for validation
	keys   map[string]*yaml.Node // key nodes by path
	failed map[string]bool       // paths whose value could not be decoded
	strays map[string]bool       // objects holding an unknown field
	budget int
}

func (d *decoder) errAt(line, col int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: max(line, 1), Col: max(col, 1), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) errNode(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.errAt(n.Line, n.Column, path, format, args...)
}

var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data as exactly one YAML document and returns its top
// node, or nil after recording why it cannot.
func (d *decoder) document(data []byte) (root *yaml.Node) {
	defer func() {
		if r := recover(); r != nil {
			root = nil
			d.errAt(1, 1, "", "cannot parse YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errAt(1, 1, "", "file is empty: expected a plan (apiVersion, name, target, change, waves)")
		} else {
			d.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line, col := extra.Line, extra.Column
		if len(extra.Content) > 0 {
			line, col = extra.Content[0].Line, extra.Content[0].Column
		}
		d.errAt(line, col, "", "file holds more than one YAML document (---): a plan file holds exactly one plan")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		d.errAt(1, 1, "", "file is empty: expected a plan (apiVersion, name, target, change, waves)")
		return nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		d.errAt(top.Line, top.Column, "", "file is empty: expected a plan (apiVersion, name, target, change, waves)")
		return nil
	}
	if top.Kind != yaml.MappingNode && top.Kind != yaml.AliasNode {
		d.errAt(top.Line, top.Column, "", "expected a plan (a mapping of apiVersion, name, target, change, waves), got %s", describe(top))
		return nil
	}
	return top
}

// syntaxError turns a yaml.v3 parse error, which has a line but no
// column, into an Error with the best column we can find.
func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	m := yamlLineErr.FindStringSubmatch(msg)
	if m == nil {
		d.errAt(1, 1, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		return
	}
	line, _ := strconv.Atoi(m[1])
	if strings.Contains(m[2], "tab") || strings.Contains(m[2], "cannot start any token") {
		// yaml.v3 may name the line before the tab: look around it.
		for l := max(line-1, 1); l <= min(line+2, len(d.lines)); l++ {
			text := d.lines[l-1]
			lead := strings.TrimLeft(text, " ")
			if strings.HasPrefix(lead, "\t") {
				d.errAt(l, len(text)-len(lead)+1, "", "invalid YAML: tab character in indentation; indent YAML with spaces, not tabs")
				return
			}
		}
	}
	// Past the last line (an unclosed bracket or quote): point after the
	// last character written.
	last := len(d.lines)
	for last > 1 && strings.TrimSpace(d.lines[last-1]) == "" {
		last--
	}
	if line > last {
		line = last
		d.errAt(line, len(strings.TrimRight(d.lines[line-1], " \r"))+1, "", "invalid YAML: %s", m[2])
		return
	}
	text := ""
	if line >= 1 && line <= len(d.lines) {
		text = d.lines[line-1]
	}
	col := 1
	if i := len(text) - len(strings.TrimLeft(text, " ")); i < len(text) {
		col = i + 1
	}
	d.errAt(line, col, "", "invalid YAML: %s", m[2])
}

var (
	quantityType = reflect.TypeFor[Quantity]()
	durationType = reflect.TypeFor[Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	canaryType   = reflect.TypeFor[*Canary]()
)

// decode stores n into v (settable) and records the position of path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errAt(n.Line, n.Column, "", "plan too large: more than %d values once aliases are expanded", maxValues)
		}
		return
	}
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	if n.Kind == yaml.AliasNode {
		d.errNode(n, path, "alias *%s cannot be resolved", n.Value)
		return
	}
	d.pos[path] = Pos{Line: n.Line, Col: n.Column}
	d.nodes[path] = n
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // written but empty: same as absent
	}
	t := v.Type()
	switch {
	case t == quantityType:
		d.quantity(n, v, path)
		return
	case t == durationType:
		d.duration(n, v, path)
		return
	case t == canaryType && n.Kind == yaml.ScalarNode:
		// canary: true is a canary with every field defaulted.
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errNode(n, path, "expected true, false or a mapping (cover, max, allowUncovered), got %s", describe(n))
			return
		}
		if b {
			v.Set(reflect.ValueOf(&Canary{}))
		}
		return
	case t == timeType:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" || n.Tag == "!!int" || n.Tag == "!!float" {
			d.errNode(n, path, `expected a date ("2025-12-20") or an RFC 3339 time ("2025-12-20T18:00:00Z"), got %s`, describe(n))
			return
		}
		tm, err := parseFreezeTime(n.Value)
		if err != nil {
			d.errNode(n, path, "%v", err)
			return
		}
		v.Set(reflect.ValueOf(tm))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		d.decode(n, e.Elem(), path)
		if !d.failed[path] {
			v.Set(e)
		}
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errNode(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), joinIndex(path, i))
		}
		v.Set(s)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
			d.errNode(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errNode(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errNode(n, path, "expected a whole number, got %s", describe(n))
			return
		}
		v.SetInt(int64(i))
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&f) != nil {
			d.errNode(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errNode(n, path, "internal error: cannot decode into %s", t)
	}
}

func (d *decoder) quantity(n *yaml.Node, v reflect.Value, path string) {
	const want = `expected a count (5) or a percent ("20%")`
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int
			if n.Decode(&i) == nil {
				v.Set(reflect.ValueOf(Quantity{Count: i}))
				return
			}
		case "!!str":
			if _, err := strconv.Atoi(strings.TrimSpace(n.Value)); err == nil {
				d.errNode(n, path, "%s, got %s (write a count without quotes: %s)", want, describe(n), strings.TrimSpace(n.Value))
				return
			}
			q, err := ParseQuantity(n.Value)
			if err == nil {
				v.Set(reflect.ValueOf(q))
				return
			}
			if !errors.Is(err, errQuantity) {
				d.errNode(n, path, "%v", err)
				return
			}
		}
	}
	d.errNode(n, path, "%s, got %s", want, describe(n))
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	const want = `expected a duration like "90s", "10m", "1h30m" or "2d"`
	if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
		d.errNode(n, path, "%s, got %s", want, describe(n))
		return
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		if n.Value == "0" {
			return
		}
		d.errNode(n, path, "%s, got %s (a number needs a unit: %q or %q)", want, n.Value, n.Value+"s", n.Value+"m")
		return
	}
	dur, err := ParseDuration(n.Value)
	if err != nil {
		d.errNode(n, path, "%v", err)
		return
	}
	v.SetInt(int64(dur))
}

// field is one decodable struct field.
type field struct {
	name     string
	index    int
	required bool
	desc     string
}

// fieldsOf lists the yaml fields of a struct type, in declaration order.
func fieldsOf(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if !sf.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fs = append(fs, field{name: name, index: i, required: !strings.Contains(opts, "omitempty"), desc: sf.Tag.Get("desc")})
	}
	return fs
}

// pair is one key and value of a mapping, after merge keys are resolved.
type pair struct{ key, value *yaml.Node }

// pairs returns n's entries, own keys first, then those merged in with
// "<<: *anchor" that no own key overrides. Duplicate own keys are
// reported and only the first is kept.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merged = append(merged, d.mergeSources(val, path, 0)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errNode(k, path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errAt(k.Line, k.Column, joinKey(path, k.Value), "duplicate key %q (first set on line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, val})
	}
	for _, m := range merged {
		if _, ok := seen[m.key.Value]; !ok && m.key.Kind == yaml.ScalarNode {
			seen[m.key.Value] = m.key
			own = append(own, m)
		}
	}
	return own
}

func (d *decoder) mergeSources(v *yaml.Node, path string, depth int) []pair {
	if depth > 20 {
		d.errNode(v, path, "merge keys (<<) nested too deeply")
		return nil
	}
	if d.budget -= len(v.Content); d.budget < 0 {
		d.errNode(v, path, "plan too large: more than %d values once aliases are expanded", maxValues)
		return nil
	}
	for i := 0; v.Kind == yaml.AliasNode && v.Alias != nil && i < 100; i++ {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		// Own keys of the merged mapping first: they win over its merges.
		var ps, nested []pair
		for i := 0; i+1 < len(v.Content); i += 2 {
			if v.Content[i].Tag == "!!merge" {
				nested = append(nested, d.mergeSources(v.Content[i+1], path, depth+1)...)
				continue
			}
			ps = append(ps, pair{v.Content[i], v.Content[i+1]})
		}
		return append(ps, nested...)
	case yaml.SequenceNode:
		var ps []pair
		for _, item := range v.Content {
			ps = append(ps, d.mergeSources(item, path, depth+1)...)
		}
		return ps
	}
	d.errNode(v, path, "<< merges a mapping or a list of mappings, got %s", describe(v))
	return nil
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errNode(n, path, "expected a mapping (key: value), got %s", describe(n))
		return
	}
	fs := fieldsOf(v.Type())
	byName := map[string]field{}
	names := make([]string, len(fs))
	for i, f := range fs {
		byName[f.name] = f
		names[i] = f.name
	}
	got := map[string]bool{}
	for _, p := range d.pairs(n, path) {
		f, ok := byName[p.key.Value]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", p.key.Value)
			if s := suggest(p.key.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errAt(p.key.Line, p.key.Column, path, "%s", msg)
			d.strays[path] = true
			continue
		}
		got[f.name] = true
		fp := joinKey(path, f.name)
		d.keys[fp] = p.key
		d.decode(p.value, v.Field(f.index), fp)
	}
	for _, f := range fs {
		if f.required && !got[f.name] {
			msg := fmt.Sprintf("missing required field %q", f.name)
			if f.desc != "" {
				msg += " (" + f.desc + ")"
			}
			d.errAt(n.Line, n.Column, path, "%s", msg)
		}
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errNode(n, path, "expected a mapping (key: value), got %s", describe(n))
		return
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		kp := joinKey(path, p.key.Value)
		d.keys[kp] = p.key
		if p.key.Tag == "!!null" || p.key.Value == "" {
			d.errAt(p.key.Line, p.key.Column, path, "a key must not be empty")
			continue
		}
		e := reflect.New(t.Elem()).Elem()
		d.decode(p.value, e, kp)
		m.SetMapIndex(reflect.ValueOf(p.key.Value).Convert(t.Key()), e)
	}
	v.Set(m)
}

// describe says what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 60 {
		v = v[:57] + "..."
	}
	switch n.Tag {
	case "!!null":
		return "nothing (null)"
	case "!!str", "!!timestamp", "!!binary":
		if strings.Contains(n.Value, "\n") {
			return "a multi-line string"
		}
		return strconv.Quote(v)
	case "!!bool":
		return "the boolean " + v
	case "!!int", "!!float":
		return v
	}
	return strconv.Quote(v)
}
