package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// planSpec fills planTemplate.
type planSpec struct {
	Name     string
	Selector string
	Version  string
	Waves    string // YAML of the waves list
	Limits   string // YAML of limits (may be empty)
	OnBreach string
	// MaxFailures is the plan's failure budget ("" means 0).
	MaxFailures string
	Probes      string // YAML of the node probes list
	MinHealthy  string
	Deadline    string
	Reboot      string // the change's reboot policy; "" means never
	// NoPreflight opts the plan out of the fleet pre-flight, for cases
	// about what the step itself does when its node cannot take the
	// change (the pre-flight would stop the rollout before it).
	NoPreflight bool
}

func (p planSpec) yaml() string {
	if p.Waves == "" {
		p.Waves = "  - name: all\n"
	}
	if p.MaxFailures == "" {
		p.MaxFailures = "0"
	}
	if p.OnBreach == "" {
		p.OnBreach = "rollback-wave"
	}
	if p.Probes == "" {
		p.Probes = `      - name: testsvc health
        kind: http
        url: http://127.0.0.1:8080/health
        timeout: 2s
        interval: 1s
`
	}
	if p.MinHealthy == "" {
		p.MinHealthy = "3s"
	}
	if p.Deadline == "" {
		p.Deadline = "15s"
	}
	if p.Reboot == "" {
		p.Reboot = "never"
	}
	limits := ""
	if p.Limits != "" {
		limits = "limits:\n" + p.Limits
	}
	preflight := ""
	if p.NoPreflight {
		preflight = "preflight:\n  onFail: ignore\n"
	}
	return fmt.Sprintf(`apiVersion: drover.dev/v1
name: %s
target:
  selector: %s
change:
  actions:
    - name: testsvc
      package:
        packages:
          - name: %s
            version: %q
  reboot: %s
waves:
%s%s
failureBudget:
  maxFailures: %s
  onBreach: %s
gates:
  bakeTime: 1s
  node:
    probes:
%s    minHealthy: %s
    healthyDeadline: %s
%s`, p.Name, p.Selector, testPackage, p.Version, p.Reboot, p.Waves, limits, p.MaxFailures, p.OnBreach, p.Probes, p.MinHealthy, p.Deadline, preflight)
}

// create creates a rollout and returns its ID.
func (f *fleet) create(t testing.TB, p planSpec) string {
	t.Helper()
	ro, err := f.api.CreateRollout(context.Background(), p.Name+".yaml", p.yaml())
	if err != nil {
		t.Fatalf("create rollout %s: %v\nplan:\n%s", p.Name, err, p.yaml())
	}
	t.Logf("rollout %s (%s): %d nodes, state %s", ro.ID, p.Name, ro.Total, ro.State)
	return ro.ID
}

// waitRollout polls the rollout (with its nodes) until cond holds, and
// returns it; it fails the test after within.
func (f *fleet) waitRollout(t testing.TB, id string, within time.Duration, what string, cond func(api.Rollout) bool) api.Rollout {
	t.Helper()
	deadline := time.Now().Add(within)
	var ro api.Rollout
	var err error
	for {
		ro, err = f.api.GetRollout(context.Background(), id, true)
		if err == nil && cond(ro) {
			return ro
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout %s: %s not reached within %s (last error %v); rollout now:\n%s", id, what, within, err, describeRollout(ro))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitTerminal waits for a terminal rollout state.
func (f *fleet) waitTerminal(t testing.TB, id string, within time.Duration) api.Rollout {
	t.Helper()
	return f.waitRollout(t, id, within, "a terminal state", func(ro api.Rollout) bool { return ro.State.Terminal() })
}

func describeRollout(ro api.Rollout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  state %s: %s\n", ro.State, ro.Reason)
	for _, n := range ro.Nodes {
		fmt.Fprintf(&b, "  node %-10s zone %-2s wave %-7s %-12s %s\n", n.ID, n.Zone, n.Wave, n.Phase, n.Reason)
	}
	for _, w := range ro.Waits {
		fmt.Fprintf(&b, "  wait: %d nodes: %s %v\n", w.Count, w.Reason, w.Nodes)
	}
	return b.String()
}

func rolloutNode(ro api.Rollout, id string) api.RolloutNode {
	for _, n := range ro.Nodes {
		if n.ID == id {
			return n
		}
	}
	return api.RolloutNode{}
}

// audit returns every audit entry of a rollout, oldest first.
func (f *fleet) audit(t testing.TB, rollout string) []api.AuditEntry {
	t.Helper()
	var all []api.AuditEntry
	var after int64
	for {
		page, err := f.api.ListAudit(context.Background(), after, 500, rollout)
		if err != nil {
			t.Fatalf("audit of %s: %v", rollout, err)
		}
		all = append(all, page.Entries...)
		if page.Next == 0 || len(page.Entries) == 0 {
			return all
		}
		after = page.Next
	}
}

// auditDetail is the detail of step.dispatch and node.phase entries.
type auditDetail struct {
	Step   string       `json:"step"`
	Kind   string       `json:"kind"`
	From   engine.Phase `json:"from"`
	To     engine.Phase `json:"to"`
	Reason string       `json:"reason"`
}

func detailOf(e api.AuditEntry) auditDetail {
	var d auditDetail
	_ = json.Unmarshal(e.Detail, &d)
	return d
}

// dispatched returns the nodes the rollout dispatched steps to, with the
// kinds of their steps ("n1": ["apply", "rollback"]).
func dispatched(entries []api.AuditEntry) map[string][]string {
	out := map[string][]string{}
	for _, e := range entries {
		if e.Action == "step.dispatch" {
			n := strings.TrimPrefix(e.Object, "node/")
			out[n] = append(out[n], detailOf(e).Kind)
		}
	}
	return out
}

// reasons returns the reasons of a node's node.phase entries into phase to.
func reasons(entries []api.AuditEntry, node string, to engine.Phase) []string {
	var out []string
	for _, e := range entries {
		if e.Action == "node.phase" && e.Object == "node/"+node {
			if d := detailOf(e); d.To == to {
				out = append(out, d.Reason)
			}
		}
	}
	return out
}

// inFlightReplay rebuilds, from the audit log alone, how many nodes were
// in flight (engine.Phase.InFlight: queued, running, verifying, failed,
// rolling-back, unknown) in all and per zone after each state change, and
// returns the maxima and a readable timeline. Entries of one commit (same
// time and actor) are applied together before counting.
type inFlightReplay struct {
	MaxTotal int
	MaxZone  map[string]int
	Timeline []string
}

func replayInFlight(entries []api.AuditEntry, zoneOf map[string]string) inFlightReplay {
	phase := map[string]engine.Phase{}
	r := inFlightReplay{MaxZone: map[string]int{}}
	count := func() (int, map[string]int) {
		total, zones := 0, map[string]int{}
		for n, p := range phase {
			if p.InFlight() {
				total++
				zones[zoneOf[n]]++
			}
		}
		return total, zones
	}
	for i := 0; i < len(entries); {
		j := i
		var changes []string
		for ; j < len(entries) && entries[j].At.Equal(entries[i].At) && entries[j].Actor == entries[i].Actor; j++ {
			e := entries[j]
			n := strings.TrimPrefix(e.Object, "node/")
			d := detailOf(e)
			switch e.Action {
			case "step.dispatch":
				if d.Kind == "rollback" {
					phase[n] = engine.PhaseRollingBack
				} else {
					phase[n] = engine.PhaseQueued
				}
				changes = append(changes, n+" dispatch "+d.Kind)
			case "node.phase":
				phase[n] = d.To
				changes = append(changes, fmt.Sprintf("%s %s->%s", n, d.From, d.To))
			}
		}
		if len(changes) > 0 {
			total, zones := count()
			r.MaxTotal = max(r.MaxTotal, total)
			keys := make([]string, 0, len(zones))
			for z, c := range zones {
				r.MaxZone[z] = max(r.MaxZone[z], c)
				keys = append(keys, fmt.Sprintf("%s=%d", z, c))
			}
			sort.Strings(keys)
			r.Timeline = append(r.Timeline, fmt.Sprintf("%s in flight %d (%s): %s",
				entries[i].At.Format("15:04:05.000"), total, strings.Join(keys, " "), strings.Join(changes, ", ")))
		}
		i = j
	}
	return r
}
