package disruption

import (
	"fmt"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/window"
)

// Freeze is a fleet freeze: a calendar of periods (one-off or recurring,
// in an IANA time zone) during which no rollout starts anything on the
// nodes Selector matches ("" matches every node). Break-glass on a
// rollout overrides it for that rollout alone.
type Freeze struct {
	Name     string
	Calendar window.CalendarSpec
	Selector string
	Reason   string
}

// Validate checks the freeze's name, calendar and selector.
func (f Freeze) Validate() error {
	if err := ValidName("freeze", f.Name); err != nil {
		return err
	}
	if _, err := f.Calendar.Compile(); err != nil {
		return fmt.Errorf("freeze %s: %w", f.Name, err)
	}
	if f.Selector != "" {
		if _, err := fleet.CompileSelector(f.Selector); err != nil {
			return fmt.Errorf("freeze %s: selector: %w", f.Name, err)
		}
	}
	return nil
}

// Freezes is a compiled set of fleet freezes. It caches which nodes of
// each rollout a freeze's selector matches (a rollout's nodes keep their
// labels while it runs), so it is safe for concurrent use.
type Freezes struct {
	fs   []Freeze
	cals []*window.Calendar
	sels []*fleet.Selector

	mu     sync.Mutex
	covers map[string][]bool // rollout + "\x00" + freeze -> per node
}

// CompileFreezes compiles fs; a freeze that does not compile is an error
// (the store validated it: this is corruption).
func CompileFreezes(fs []Freeze) (*Freezes, error) {
	c := &Freezes{fs: fs, covers: map[string][]bool{}}
	for _, f := range fs {
		cal, err := f.Calendar.Compile()
		if err != nil {
			return nil, fmt.Errorf("freeze %s: %w", f.Name, err)
		}
		var sel *fleet.Selector
		if f.Selector != "" {
			if sel, err = fleet.CompileSelector(f.Selector); err != nil {
				return nil, fmt.Errorf("freeze %s: selector: %w", f.Name, err)
			}
		}
		c.cals, c.sels = append(c.cals, cal), append(c.sels, sel)
	}
	return c, nil
}

// State is a freeze's state at an instant: in force until Until, or
// next in force from Next to NextEnd (zeros when never again).
type State struct {
	Freeze        Freeze
	Active        bool
	Until         time.Time
	Next, NextEnd time.Time
}

// At reports every freeze's state at now, in the order given.
func (c *Freezes) At(now time.Time) []State {
	out := make([]State, len(c.fs))
	for i, f := range c.fs {
		st := State{Freeze: f}
		st.Active, st.Until = c.cals[i].At(now)
		from := now
		if st.Active {
			from = st.Until
		}
		st.Next, st.NextEnd = c.cals[i].Next(from)
		out[i] = st
	}
	return out
}

// ForRollout lists the freezes in force at now that cover at least one
// of the rollout's nodes, with which nodes they cover.
func (c *Freezes) ForRollout(rollout string, nodes []engine.Node, now time.Time) []engine.FleetFreeze {
	var out []engine.FleetFreeze
	for i, f := range c.fs {
		active, until := c.cals[i].At(now)
		if !active {
			continue
		}
		ff := engine.FleetFreeze{Name: f.Name, Reason: f.Reason, Until: until}
		if c.sels[i] != nil {
			ff.Covers = c.cover(rollout, i, nodes)
			if ff.Covers == nil {
				continue
			}
		}
		out = append(out, ff)
	}
	return out
}

// ForNode returns the first freeze in force at now that covers node n
// (by its selector, or every node without one), and false when none.
func (c *Freezes) ForNode(n *fleet.Node, now time.Time) (engine.FleetFreeze, bool) {
	for i, f := range c.fs {
		active, until := c.cals[i].At(now)
		if !active {
			continue
		}
		if c.sels[i] != nil {
			if ok, err := c.sels[i].Match(n); err != nil || !ok {
				continue
			}
		}
		return engine.FleetFreeze{Name: f.Name, Reason: f.Reason, Until: until}, true
	}
	return engine.FleetFreeze{}, false
}

// cover evaluates freeze i's selector over the rollout's nodes, once per
// rollout; nil when it matches none.
func (c *Freezes) cover(rollout string, i int, nodes []engine.Node) []bool {
	key := rollout + "\x00" + c.fs[i].Name
	c.mu.Lock()
	cv, ok := c.covers[key]
	c.mu.Unlock()
	if ok && (cv == nil || len(cv) == len(nodes)) {
		return cv
	}
	cv = make([]bool, len(nodes))
	any := false
	for j, n := range nodes {
		if ok, err := c.sels[i].Match(n.Node); err == nil && ok {
			cv[j], any = true, true
		}
	}
	if !any {
		cv = nil
	}
	c.mu.Lock()
	c.covers[key] = cv
	c.mu.Unlock()
	return cv
}
