package baseline

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/plan"
)

// Parse reads a baseline file (YAML):
//
//	name: prod-security
//	selector: 'node.labels.env == "prod"'
//	rules:
//	  advisories: {minSeverity: high, within: 14d}
//	  pins:
//	    - {package: openssl, version: 3.0.15-1~deb12u1, ecosystem: "debian:12"}
//	  featureUpdates: approval
//	  livePatchPreferred: true
//
// Errors name the file, line and column: "prod.yaml:7:18: rules.pins[0].version: ...".
func Parse(file string, data []byte) (Baseline, error) {
	if len(data) > MaxFile {
		return Baseline{}, fmt.Errorf("%s: %d bytes (at most %d)", file, len(data), MaxFile)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Baseline{}, fmt.Errorf("%s: %w", file, err)
	}
	p := parser{file: file}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return Baseline{}, fmt.Errorf("%s:1:1: file is empty: expected a baseline (name, selector, rules)", file)
	}
	var b Baseline
	top := doc.Content[0]
	err := p.mapping(top, "", func(key string, k, v *yaml.Node) error {
		switch key {
		case "name":
			return p.str(v, "name", &b.Name)
		case "selector":
			return p.str(v, "selector", &b.Selector)
		case "rules":
			return p.rules(v, &b.Rules)
		case "rollout":
			if v.Kind != yaml.MappingNode {
				return p.errAt(v, "rollout", "expected a mapping (the plan's waves, limits, windows, gates, approvals)")
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				if kk := v.Content[i]; !slices.Contains(templateKeys, kk.Value) {
					return p.errAt(kk, "rollout."+kk.Value, "%s", templateKeyMsg(kk.Value))
				}
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				return p.errAt(v, "rollout", "%v", err)
			}
			if err := checkTemplate(string(out)); err != nil {
				var pe plan.Errors
				if errors.As(err, &pe) && len(pe) > 0 {
					return p.errAt(locate(v, pe[0].Path), "rollout."+pe[0].Path, "%s", pe[0].Msg)
				}
				return p.errAt(v, "rollout", "%v", err)
			}
			b.Rollout = string(out)
			return nil
		case "autoApprove":
			return p.autoApprove(v, &b)
		}
		return p.errAt(k, key, "unknown field (want name, selector, rules, rollout, autoApprove)")
	})
	if err != nil {
		return Baseline{}, err
	}
	if b.Name == "" {
		return Baseline{}, p.errAt(top, "name", "missing")
	}
	if err := b.Validate(); err != nil {
		return Baseline{}, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}

type parser struct{ file string }

func (p parser) autoApprove(n *yaml.Node, b *Baseline) error {
	b.AutoApprove = &AutoApprove{}
	return p.mapping(n, "autoApprove", func(key string, k, v *yaml.Node) error {
		if key != "security" {
			if key == "feature" || key == "featureUpdates" {
				return p.errAt(k, "autoApprove."+key, "feature updates are never approved by policy: people approve them")
			}
			return p.errAt(k, "autoApprove."+key, "unknown field (want security)")
		}
		a := &AfterPolicy{}
		b.AutoApprove.Security = a
		set := false
		err := p.mapping(v, "autoApprove.security", func(key string, k, v *yaml.Node) error {
			if key != "after" {
				return p.errAt(k, "autoApprove.security."+key, "unknown field (want after)")
			}
			var s string
			if err := p.str(v, "autoApprove.security.after", &s); err != nil {
				return err
			}
			d, err := plan.ParseDuration(s)
			if err != nil {
				return p.errAt(v, "autoApprove.security.after", "%v", err)
			}
			if d < 0 {
				return p.errAt(v, "autoApprove.security.after", "negative")
			}
			a.After, set = time.Duration(d), true
			return nil
		})
		if err != nil {
			return err
		}
		if !set {
			return p.errAt(v, "autoApprove.security.after", "missing")
		}
		return nil
	})
}

func (p parser) errAt(n *yaml.Node, path, format string, args ...any) error {
	return fmt.Errorf("%s:%d:%d: %s: %s", p.file, n.Line, n.Column, path, fmt.Sprintf(format, args...))
}

func (p parser) mapping(n *yaml.Node, path string, f func(key string, k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			path = "baseline"
		}
		return p.errAt(n, path, "expected a mapping")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := k.Value
		if path != "" {
			full = path + "." + k.Value
		}
		if seen[k.Value] {
			return p.errAt(k, full, "given twice")
		}
		seen[k.Value] = true
		if err := f(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (p parser) str(v *yaml.Node, path string, out *string) error {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return p.errAt(v, path, "expected a string")
	}
	*out = v.Value
	return nil
}

func (p parser) rules(n *yaml.Node, r *Rules) error {
	return p.mapping(n, "rules", func(key string, k, v *yaml.Node) error {
		path := "rules." + key
		switch key {
		case "advisories":
			a := &AdvisoryRule{}
			r.Advisories = a
			var within string
			err := p.mapping(v, path, func(key string, k, v *yaml.Node) error {
				switch key {
				case "minSeverity":
					if err := p.str(v, path+".minSeverity", &a.MinSeverity); err != nil {
						return err
					}
					if advisory.SeverityRank(a.MinSeverity) < 0 {
						return p.errAt(v, path+".minSeverity", "%q: want unknown, none, low, medium, high or critical", a.MinSeverity)
					}
					return nil
				case "within":
					if err := p.str(v, path+".within", &within); err != nil {
						return err
					}
					d, err := plan.ParseDuration(within)
					if err != nil {
						return p.errAt(v, path+".within", "%v", err)
					}
					a.Within = time.Duration(d)
					return nil
				}
				return p.errAt(k, path+"."+key, "unknown field (want minSeverity, within)")
			})
			if err != nil {
				return err
			}
			if a.MinSeverity == "" {
				return p.errAt(v, path+".minSeverity", "missing")
			}
			if within == "" {
				return p.errAt(v, path+".within", "missing")
			}
			return nil
		case "pins":
			if v.Kind != yaml.SequenceNode {
				return p.errAt(v, path, "expected a list of {package, version, ecosystem}")
			}
			for i, e := range v.Content {
				ip := path + "[" + strconv.Itoa(i) + "]"
				var pin Pin
				err := p.mapping(e, ip, func(key string, k, v *yaml.Node) error {
					switch key {
					case "package":
						return p.str(v, ip+".package", &pin.Package)
					case "version":
						return p.str(v, ip+".version", &pin.Version)
					case "ecosystem":
						return p.str(v, ip+".ecosystem", &pin.Ecosystem)
					}
					return p.errAt(k, ip+"."+key, "unknown field (want package, version, ecosystem)")
				})
				if err != nil {
					return err
				}
				if pin.Package == "" || pin.Version == "" {
					return p.errAt(e, ip, "package and version are required")
				}
				if strings.ContainsAny(pin.Version, " \t") {
					return p.errAt(e, ip+".version", "%q: a version has no spaces", pin.Version)
				}
				r.Pins = append(r.Pins, pin)
			}
			return nil
		case "featureUpdates":
			if err := p.str(v, path, &r.FeatureUpdates); err != nil {
				return err
			}
			if r.FeatureUpdates != FeatureApproval && r.FeatureUpdates != FeatureAllowed {
				return p.errAt(v, path, "%q: want approval or allowed", r.FeatureUpdates)
			}
			return nil
		case "livePatchPreferred":
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				return p.errAt(v, path, "expected true or false")
			}
			r.LivePatchPreferred = v.Value == "true"
			return nil
		}
		return p.errAt(k, path, "unknown field (want advisories, pins, featureUpdates, livePatchPreferred)")
	})
}

// locate finds the node at a plan error's path (waves[0].nodes) in a
// template, or the deepest node on the way: positions in the baseline
// file for the plan parser's errors.
func locate(n *yaml.Node, path string) *yaml.Node {
	for _, seg := range strings.Split(path, ".") {
		name, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			name = seg[:i]
			if k, err := strconv.Atoi(seg[i+1 : len(seg)-1]); err == nil {
				idx = k
			}
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					next = n.Content[i+1]
				}
			}
		}
		if next == nil {
			return n
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return n
			}
			n = n.Content[idx]
		}
	}
	return n
}
