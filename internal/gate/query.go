package gate

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	"github.com/drover-dev/drover/internal/fleet"
)

// QueryData is what a wave gate's query template is rendered with. A
// delta or statistical gate renders its query twice, once with Nodes set
// to the changed nodes (Side "canary") and once with Nodes set to the
// baseline (Side "baseline"); a before-after gate renders it once for the
// changed nodes and evaluates it at two times; a threshold gate renders
// it once for the changed nodes.
type QueryData struct {
	Nodes    []*fleet.Node // the nodes this rendering is about
	Canary   []*fleet.Node // the wave's changed nodes, in every rendering
	Baseline []*fleet.Node // the baseline nodes, in every rendering (nil for threshold and before-after gates)
	Side     string        // "canary" or "baseline"
	Rollout  string
	Wave     string
	Gate     string
	// Window is the evaluation range as a PromQL duration ("1m", "30s"):
	// for instant modes the gate's interval (at least the evaluator's
	// minimum window), for statistical gates the step between samples.
	Window string
}

// maxQueryBytes bounds a rendered query; a template that renders more
// is refused rather than sent.
const maxQueryBytes = 1 << 20

// renderQuery renders a gate's query template. instance maps a node to
// the value of its Prometheus instance label (see WithInstance). It
// never panics: a panicking template function becomes an error.
func renderQuery(text string, data QueryData, instance func(*fleet.Node) string) (q string, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = "", fmt.Errorf("render query: %v", r)
		}
	}()
	if strings.TrimSpace(text) == "" {
		return "", errors.New("render query: the gate has no query")
	}
	t, err := template.New("query").Option("missingkey=error").Funcs(queryFuncs(instance)).Parse(text)
	if err != nil {
		return "", fmt.Errorf("parse query template: %w", err)
	}
	w := &limitedBuffer{max: maxQueryBytes}
	if err := t.Execute(w, data); err != nil {
		return "", fmt.Errorf("render query: %w", err)
	}
	q = strings.TrimSpace(w.String())
	if q == "" {
		return "", errors.New("render query: the query rendered empty")
	}
	return q, nil
}

type limitedBuffer struct {
	bytes.Buffer
	max int
}

var errQueryTooLong = fmt.Errorf("rendered query longer than %d bytes", maxQueryBytes)

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errQueryTooLong
	}
	return b.Buffer.Write(p)
}

// queryFuncs are the template functions of a query:
//
//	{{ .Nodes | regex }}                    ^(?:a|b)$ over the nodes' instances (see WithInstance)
//	{{ .Nodes | instances ":9100" | regex }} node ID + suffix: ^(?:a:9100|b:9100)$
//	{{ .Nodes | label "instance" | regex }}  the value of each node's label
//	{{ .Nodes | ids | regex }}               the node IDs, whatever WithInstance says
//
// regex escapes the values and writes them for a PromQL double-quoted
// string: `instance=~"{{ .Nodes | regex }}"`.
func queryFuncs(instance func(*fleet.Node) string) template.FuncMap {
	return template.FuncMap{
		"regex": func(v any) (string, error) {
			vals, err := valuesOf(v, instance)
			if err != nil {
				return "", err
			}
			return nodeRegex(vals)
		},
		"instances": func(suffix string, v any) ([]string, error) {
			nodes, err := nodesOf(v)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(nodes))
			for i, n := range nodes {
				out[i] = n.ID + suffix
			}
			return out, nil
		},
		"label": func(key string, v any) ([]string, error) {
			nodes, err := nodesOf(v)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(nodes))
			for i, n := range nodes {
				val, ok := n.Labels[key]
				if !ok || val == "" {
					return nil, fmt.Errorf("node %s has no label %q", n.ID, key)
				}
				out[i] = val
			}
			return out, nil
		},
		"ids": func(v any) ([]string, error) {
			nodes, err := nodesOf(v)
			if err != nil {
				return nil, err
			}
			out := make([]string, len(nodes))
			for i, n := range nodes {
				out[i] = n.ID
			}
			return out, nil
		},
	}
}

func nodesOf(v any) ([]*fleet.Node, error) {
	nodes, ok := v.([]*fleet.Node)
	if !ok {
		return nil, fmt.Errorf("expected a list of nodes (.Nodes, .Canary or .Baseline), got %T", v)
	}
	for _, n := range nodes {
		if n == nil {
			return nil, errors.New("nil node in the node list")
		}
	}
	return nodes, nil
}

func valuesOf(v any, instance func(*fleet.Node) string) ([]string, error) {
	switch v := v.(type) {
	case []string:
		return v, nil
	case []*fleet.Node:
		out := make([]string, len(v))
		for i, n := range v {
			if n == nil {
				return nil, errors.New("nil node in the node list")
			}
			out[i] = instance(n)
		}
		return out, nil
	}
	return nil, fmt.Errorf("regex: expected nodes or strings, got %T", v)
}

// nodeRegex is the anchored alternation of the escaped values, sorted
// and without duplicates, escaped again for a PromQL double-quoted
// string. An empty list is an error: no regex would match exactly none.
func nodeRegex(vals []string) (string, error) {
	if len(vals) == 0 {
		return "", errors.New("regex: no nodes to match")
	}
	vals = slices.Clone(vals)
	slices.Sort(vals)
	vals = slices.Compact(vals)
	quoted := make([]string, len(vals))
	for i, v := range vals {
		if v == "" {
			return "", errors.New("regex: empty instance value")
		}
		quoted[i] = regexp.QuoteMeta(v)
	}
	re := "^(?:" + strings.Join(quoted, "|") + ")$"
	return promString(re), nil
}

// promString escapes s for the inside of a PromQL double-quoted string.
func promString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// promDuration writes d as a PromQL duration ("1m30s", "500ms"), at
// least one millisecond.
func promDuration(d time.Duration) string {
	d = max(d.Round(time.Millisecond), time.Millisecond)
	return model.Duration(d).String()
}
