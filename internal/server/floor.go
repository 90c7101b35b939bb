package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// The approval floor (security.md): how many approvals a rollout needs is
// not only its author's choice. Config.ApprovalFloor lists rules; a rule
// applies to a rollout when its selector matches at least one target
// node (no selector: any) and the plan has an action of one of its
// actionKinds (none listed: any). The rollout's start then needs the
// largest of the plan's approvals.start and every applying rule's
// approvals, from distinct approvers other than the author. The
// requirement is computed when the rollout is created and stored with
// it, so every server and restart agrees and no later change of plan or
// configuration lowers it. Break-glass overrides freezes only, never
// approvals.

// FloorRule is one rule of Config.ApprovalFloor.
type FloorRule struct {
	Name        string   `yaml:"name"`        // shown in reasons; default "rule N"
	Selector    string   `yaml:"selector"`    // CEL over node; "" matches every rollout
	ActionKinds []string `yaml:"actionKinds"` // plan action kinds; none: any change
	Approvals   int      `yaml:"approvals"`   // distinct approvers other than the author
}

// floorRule is a FloorRule with its selector compiled.
type floorRule struct {
	FloorRule
	sel *fleet.Selector // nil: every node
}

// actionKinds are the kinds a floor rule may name.
var actionKinds = []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
	plan.ActionContainerRuntime, plan.ActionKubernetesNode, plan.ActionScript}

// maxFloorApprovals bounds a rule: past it nothing could ever start.
const maxFloorApprovals = 20

// compileFloor validates and compiles Config.ApprovalFloor.
func compileFloor(rules []FloorRule) ([]floorRule, error) {
	var out []floorRule
	var errs []error
	names := map[string]bool{}
	for i, r := range rules {
		where := fmt.Sprintf("approvalFloor[%d]", i)
		if r.Name == "" {
			r.Name = fmt.Sprintf("rule %d", i+1)
		} else {
			where += " " + r.Name
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s: duplicate name %q", where, r.Name))
		}
		names[r.Name] = true
		if r.Approvals < 1 || r.Approvals > maxFloorApprovals {
			errs = append(errs, fmt.Errorf("%s: approvals %d: want 1..%d", where, r.Approvals, maxFloorApprovals))
		}
		for _, k := range r.ActionKinds {
			if !slices.Contains(actionKinds, plan.ActionKind(k)) {
				errs = append(errs, fmt.Errorf("%s: actionKinds: %q is not one of %s", where, k, joinKinds()))
			}
		}
		fr := floorRule{FloorRule: r}
		if strings.TrimSpace(r.Selector) != "" {
			sel, err := fleet.CompileSelector(r.Selector)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: selector: %w", where, err))
			}
			fr.sel = sel
		}
		out = append(out, fr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func joinKinds() string {
	s := make([]string, len(actionKinds))
	for i, k := range actionKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// planKinds lists the action kinds of a plan.
func planKinds(p *plan.Plan) map[plan.ActionKind]bool {
	out := map[plan.ActionKind]bool{}
	for _, a := range p.Change.Actions {
		switch {
		case a.Package != nil:
			out[plan.ActionPackage] = true
		case a.Kernel != nil:
			out[plan.ActionKernel] = true
		case a.LivePatch != nil:
			out[plan.ActionLivePatch] = true
		case a.ServiceRestart != nil:
			out[plan.ActionServiceRestart] = true
		case a.ContainerRuntime != nil:
			out[plan.ActionContainerRuntime] = true
		case a.KubernetesNode != nil:
			out[plan.ActionKubernetesNode] = true
		case a.Script != nil:
			out[plan.ActionScript] = true
		}
	}
	return out
}

// approvalRequirement is what a rollout needs before it starts.
type approvalRequirement struct {
	Needed int    // max(plan, floor)
	Floor  string // why the floor raised it ("" when it did not)
}

// requiredApprovals computes a rollout's start requirement from its plan
// and target (the assignment's nodes that are not skipped). A selector
// that fails on a node counts as matching it: the floor errs strict.
func (s *Server) requiredApprovals(p *plan.Plan, a *engine.Assignment, nodes []*fleet.Node) approvalRequirement {
	req := approvalRequirement{Needed: p.Approvals.Start}
	if len(s.sec.floor) == 0 {
		return req
	}
	byID := make(map[string]*fleet.Node, len(nodes))
	for _, n := range nodes {
		byID[n.ID] = n
	}
	var target []*fleet.Node
	for _, x := range a.Nodes {
		if x.State.Phase != engine.PhaseSkipped {
			if n := byID[x.ID]; n != nil {
				target = append(target, n)
			}
		}
	}
	kinds := planKinds(p)
	var why []string
	for _, r := range s.sec.floor {
		if len(r.ActionKinds) > 0 && !slices.ContainsFunc(r.ActionKinds, func(k string) bool { return kinds[plan.ActionKind(k)] }) {
			continue
		}
		matched := len(target)
		if r.sel != nil {
			matched = 0
			for _, n := range target {
				if ok, err := r.sel.Match(n); ok || err != nil {
					matched++
				}
			}
			if matched == 0 {
				continue
			}
		}
		if r.Approvals <= p.Approvals.Start {
			continue
		}
		what := []string{}
		if r.sel != nil {
			what = append(what, fmt.Sprintf("%d target nodes match %s", matched, r.Selector))
		}
		if len(r.ActionKinds) > 0 {
			what = append(what, "actions of kind "+strings.Join(r.ActionKinds, ", "))
		}
		if len(what) == 0 {
			what = append(what, "every rollout")
		}
		why = append(why, fmt.Sprintf("%s: %d (%s)", r.Name, r.Approvals, strings.Join(what, "; ")))
		req.Needed = max(req.Needed, r.Approvals)
	}
	if len(why) > 0 {
		req.Floor = fmt.Sprintf("server approval floor raises the plan's %d to %d: %s", p.Approvals.Start, req.Needed, strings.Join(why, "; "))
	}
	return req
}
