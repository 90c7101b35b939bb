// Package disruption owns fleet disruption budgets, the server-level
// limits on how many machines may be unavailable at once (like a
// Kubernetes PodDisruptionBudget, for machines): which nodes a budget
// covers, how it splits into domains, each domain's limit, and how many
// slots the holders of nodes use in it. A slot is held by a node's
// in-flight step in a rollout, or by another kind of holder (a FleetLock
// client, later) through the same hold table: every holder counts against
// every budget covering its node. The package is pure; the store enforces
// budgets with it inside the transaction that commits a dispatch, and the
// scheduler tells the engine about them.
package disruption

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Budget is a fleet disruption budget: at most MaxUnavailable of the
// nodes Selector matches may be held at once, in each domain of the Per
// label (or fact path) when Per is set. A percent is of the domain's
// matching nodes, rounded up.
type Budget struct {
	Name           string
	Selector       string // CEL over node; "" covers every node
	MaxUnavailable plan.Quantity
	Per            string
}

// HolderRollout is the kind of a hold taken by a rollout's step.
const HolderRollout = "rollout"

// HolderFleetLock is the kind of a hold taken by a FleetLock client
// (Zincati, Flatcar) rebooting its node: Holder is its FleetLock group.
const HolderFleetLock = "fleetlock"

// Hold is a node held by one holder: a rollout whose step on the node is
// in flight (Kind "rollout", Holder its ID, Name its plan name) or
// another kind of slot holder.
type Hold struct {
	Node   string
	Kind   string
	Holder string
	Name   string
	Since  time.Time
}

// EngineHolder is the hold's holder in the engine's terms.
func (h Hold) EngineHolder() engine.Holder {
	return engine.Holder{Kind: h.Kind, ID: h.Holder, Name: h.Name}
}

// ParseMaxUnavailable reads a max unavailable as written: a count ("3")
// or a percent ("25%"), as plan.Quantity.String writes them.
func ParseMaxUnavailable(s string) (plan.Quantity, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return plan.Quantity{}, fmt.Errorf("%q: want a count ≥ 0 or a percent", s)
		}
		return plan.Quantity{Count: n}, nil
	}
	return plan.ParseQuantity(s)
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidName checks an object name: [a-z0-9-], at most 63 characters.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: want lower-case letters, digits and '-', at most 63 characters", kind, name)
	}
	return nil
}

// Validate checks the budget: its name, that its selector compiles, and
// its max unavailable (a count ≥ 0, or a percent in (0, 100]).
func (b Budget) Validate() error {
	if err := ValidName("budget", b.Name); err != nil {
		return err
	}
	if b.Selector != "" {
		if _, err := fleet.CompileSelector(b.Selector); err != nil {
			return fmt.Errorf("budget %s: selector: %w", b.Name, err)
		}
	}
	q := b.MaxUnavailable
	if !q.Percent && q.Count < 0 || q.Percent && (q.Value <= 0 || q.Value > 100) {
		return fmt.Errorf("budget %s: maxUnavailable %s: want a count ≥ 0 or a percent in (0%%, 100%%]", b.Name, q)
	}
	if strings.TrimSpace(b.Per) != b.Per {
		return fmt.Errorf("budget %s: per %q has spaces", b.Name, b.Per)
	}
	return nil
}

// Index is where every node of the fleet stands in each budget: covered
// or not, and in which domain, with each domain's size. Build it from the
// whole fleet; it does not change while the fleet and budgets do not.
type Index struct {
	Budgets []Budget
	dom     []map[string]string // per budget: node ID -> domain value
	size    []map[string]int    // per budget: domain -> covered nodes
}

// NewIndex evaluates every budget over the fleet. A selector that fails
// on a node does not cover it.
func NewIndex(budgets []Budget, nodes []*fleet.Node) (*Index, error) {
	x := &Index{Budgets: budgets, dom: make([]map[string]string, len(budgets)), size: make([]map[string]int, len(budgets))}
	for b, bu := range budgets {
		var sel *fleet.Selector
		if bu.Selector != "" {
			var err error
			if sel, err = fleet.CompileSelector(bu.Selector); err != nil {
				return nil, fmt.Errorf("budget %s: selector: %w", bu.Name, err)
			}
		}
		x.dom[b], x.size[b] = map[string]string{}, map[string]int{}
		for _, n := range nodes {
			if sel != nil {
				if ok, err := sel.Match(n); err != nil || !ok {
					continue
				}
			}
			v := ""
			if bu.Per != "" {
				v = n.Value(bu.Per)
			}
			x.dom[b][n.ID] = v
			x.size[b][v]++
		}
	}
	return x, nil
}

// Domain reports the domain of node in budget b, if b covers it.
func (x *Index) Domain(b int, node string) (string, bool) {
	v, ok := x.dom[b][node]
	return v, ok
}

// Limit is budget b's max unavailable in domain.
func (x *Index) Limit(b int, domain string) int {
	return x.Budgets[b].MaxUnavailable.Of(x.size[b][domain])
}

// Size is the number of nodes budget b covers in domain.
func (x *Index) Size(b int, domain string) int { return x.size[b][domain] }

// Domains lists budget b's domains, sorted.
func (x *Index) Domains(b int) []string {
	out := make([]string, 0, len(x.size[b]))
	for d := range x.size[b] {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Use groups the holds in budget b by domain.
func (x *Index) Use(b int, holds []Hold) map[string][]Hold {
	out := map[string][]Hold{}
	for _, h := range holds {
		if d, ok := x.dom[b][h.Node]; ok {
			out[d] = append(out[d], h)
		}
	}
	return out
}

// ExceededError says which budget domain a new hold would overfill.
type ExceededError struct {
	Budget, Per, Domain string
	InUse, Limit        int
	Node                string
}

func (e *ExceededError) Error() string {
	dom := ""
	if e.Per != "" {
		dom = " " + e.Per + "=" + e.Domain
	}
	return fmt.Sprintf("node %s would put fleet budget %s%s at %d/%d", e.Node, e.Budget, dom, e.InUse, e.Limit)
}

// Check reports the first budget domain that holds (all of them, the new
// ones included) fill past its limit, considering only domains that one
// of the added nodes falls in: a domain already over its limit (a budget
// tightened while nodes were in flight) refuses new holds but is not an
// error by itself.
func (x *Index) Check(holds []Hold, added []string) error {
	for b, bu := range x.Budgets {
		var use map[string][]Hold
		for _, n := range added {
			d, ok := x.dom[b][n]
			if !ok {
				continue
			}
			if use == nil {
				use = x.Use(b, holds)
			}
			if lim := x.Limit(b, d); len(use[d]) > lim {
				return &ExceededError{Budget: bu.Name, Per: bu.Per, Domain: d, InUse: len(use[d]), Limit: lim, Node: n}
			}
		}
	}
	return nil
}

// ForRollout builds the engine's view of the budgets for one rollout:
// every budget covering one of its nodes, each domain's limit, the slots
// other holders hold in it (holds of the rollout itself are the engine's
// to count) and which domain each node falls in.
func (x *Index) ForRollout(rollout string, nodes []engine.Node, holds []Hold) []engine.FleetBudget {
	var out []engine.FleetBudget
	for b, bu := range x.Budgets {
		var fb *engine.FleetBudget
		idx := map[string]int32{}
		domain := func(v string) int32 {
			if j, ok := idx[v]; ok {
				return j
			}
			j := int32(len(fb.Domains))
			idx[v] = j
			fb.Domains = append(fb.Domains, engine.BudgetDomain{Value: v, Limit: x.Limit(b, v)})
			return j
		}
		for i, n := range nodes {
			v, ok := x.dom[b][n.ID]
			if !ok {
				continue
			}
			if fb == nil {
				fb = &engine.FleetBudget{Name: bu.Name, Per: bu.Per, Of: make([]int32, len(nodes))}
				for j := range fb.Of {
					fb.Of[j] = -1
				}
			}
			fb.Of[i] = domain(v)
		}
		if fb == nil {
			continue
		}
		for _, h := range holds {
			if h.Kind == HolderRollout && h.Holder == rollout {
				continue
			}
			v, ok := x.dom[b][h.Node]
			if !ok {
				continue
			}
			j, ok := idx[v]
			if !ok {
				continue // a domain none of the rollout's nodes is in
			}
			bd := &fb.Domains[j]
			bd.Held++
			if len(bd.Holders) < 3 {
				bd.Holders = append(bd.Holders, fmt.Sprintf("%s (%s)", h.Node, h.Holder))
			}
		}
		out = append(out, *fb)
	}
	return out
}
