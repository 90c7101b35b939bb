package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/gate/gatetest"
	"github.com/drover-dev/drover/internal/plan"
)

// preflightPlan upgrades nginx on every node; %s is the onFail policy.
const preflightPlan = `apiVersion: drover.dev/v1
name: nginx-upgrade
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - package:
        packages: [{name: nginx, version: 1.22.2}]
  reboot: never
waves:
  - name: canary
    nodes: 1
  - name: rest
limits:
  maxInFlight: 2
preflight:
  onFail: %s
  timeout: 30s
`

// zonedFleet starts four real agents on simulated nodes, web-1 and web-2
// in zone a, web-3 and web-4 in zone b, whose repositories (the sim
// driver's pre-flight) lack nginx 1.22.2 in zone b. It returns the
// nodes' states by ID.
func zonedFleet(t *testing.T) (*liveFleet, map[string]*driver.SimState) {
	var mu sync.Mutex
	states := map[string]*driver.SimState{}
	f := startLiveFleet(t, nil, 4, func(c *agent.Config) {
		var n int
		fmt.Sscanf(c.NodeID, "web-%d", &n)
		zone := map[bool]string{true: "a", false: "b"}[n <= 2]
		c.Labels = map[string]string{"env": "prod", "zone": zone}
		st := driver.NewSimState(c.NodeID, "debian", "6.1.0-26-amd64", map[string]string{"nginx": "1.22.1"})
		if zone == "b" {
			st.FailPreflight = func(plan.Action) error {
				return fmt.Errorf("apt: nginx=1.22.2: version not available (available: 1.22.1): %w", driver.ErrUnavailable)
			}
		}
		reg := &driver.Registry{}
		reg.Register(plan.ActionPackage, driver.NewSim(st))
		c.Drivers = reg
		c.Accepts = []plan.ActionKind{plan.ActionPackage}
		mu.Lock()
		states[c.NodeID] = st
		mu.Unlock()
	})
	return f, states
}

// TestNodePreflightBlocks is the scenario on a real server with
// real agents: the target version is missing from zone b's repository;
// with onFail: block the pre-flight stops the rollout before any node
// changes, and the pre-flight view says what each node answered.
func TestNodePreflightBlocks(t *testing.T) {
	f, states := zonedFleet(t)
	// A viewer may rehearse, not make every node run its pre-flight.
	if _, err := f.vera.DryRunPreflight(f.ctx, "nginx.yaml", fmt.Sprintf(preflightPlan, "block")); !strings.Contains(fmt.Sprint(err), "may not ask nodes for a pre-flight: it needs role operator") {
		t.Fatalf("viewer's dry run with pre-flight: %v", err)
	}
	// The rehearsal asks the real nodes first and replays their answers.
	dry, err := f.alice.DryRunPreflight(f.ctx, "nginx.yaml", fmt.Sprintf(preflightPlan, "block"))
	if err != nil {
		t.Fatal(err)
	}
	if dry.Preflight == nil || dry.Preflight.Asked != 4 || dry.Preflight.Failed != 2 || dry.Preflight.Passed != 2 {
		t.Fatalf("dry run pre-flight %+v", dry.Preflight)
	}
	if !strings.Contains(dry.Text, "web-3 failed: package nginx 1.22.2: sim preflight: apt: nginx=1.22.2: version not available") ||
		!strings.Contains(dry.Text, "pre-flight failed on 2 of 4 nodes") {
		t.Errorf("dry run text:\n%s", dry.Text)
	}
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", fmt.Sprintf(preflightPlan, "block"))
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 60*time.Second, "rollout failed in pre-flight", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, true)
		return err == nil && ro.State == engine.RolloutFailed, fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	if !strings.Contains(ro.Reason, "pre-flight failed on 2 of 4 nodes") || !strings.Contains(ro.Reason, "version not available") ||
		!strings.Contains(ro.Reason, "onFail: block, nothing was changed") {
		t.Errorf("reason %q", ro.Reason)
	}
	for id, st := range states {
		if st.Applies() != 0 {
			t.Errorf("node %s changed %d times; want never", id, st.Applies())
		}
	}
	for _, n := range ro.Nodes {
		if n.Phase != engine.PhasePending {
			t.Errorf("node %s is %s; want pending (never started)", n.ID, n.Phase)
		}
	}
	v, err := f.vera.Preflight(f.ctx, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Asked != 4 || v.Passed != 2 || v.Failed != 2 || v.Waiting != 0 {
		t.Fatalf("view %+v", v)
	}
	for _, n := range v.Nodes {
		zoneB := n.Node == "web-3" || n.Node == "web-4"
		if n.Report == nil || len(n.Report.Actions) != 1 {
			t.Fatalf("node %s: no report: %+v", n.Node, n)
		}
		a := n.Report.Actions[0]
		switch {
		case zoneB && (n.State != "failed" || !strings.Contains(n.Reason, "nginx=1.22.2: version not available") || a.OK):
			t.Errorf("zone b node %s: %+v", n.Node, n)
		case !zoneB && (n.State != "passed" || !a.OK || a.Driver != "sim" || len(a.Planned) != 1 ||
			a.Planned[0] != (api.PlannedChange{Op: "upgrade", Name: "nginx", From: "1.22.1", To: "1.22.2"})):
			t.Errorf("zone a node %s: %+v %+v", n.Node, n, a)
		}
	}
}

// TestNodePreflightByDefault: a plan with no preflight section still
// has every node pre-flighted before the canary (onFail: block by
// default): zone b's missing version stops the rollout before any node
// changes. An agent too old for the pre-flight does not: its node is
// reported unavailable and would go ahead unchecked.
func TestNodePreflightByDefault(t *testing.T) {
	f, states := zonedFleet(t)
	oldAgent(t, f.base, "legacy-1")
	// A poll that refreshes web-1's facts keeps the protocol its agent
	// registered with: web-1 is asked, not taken for an old agent.
	body, _ := json.Marshal(api.PollRequest{NodeID: "web-1", Facts: &fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}})
	req, _ := http.NewRequest(http.MethodPost, f.base+api.PathPoll, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer agent-token-0123456789")
	req.Header.Set("Drover-Node", "web-1")
	req.Header.Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	if resp, err := (&http.Client{Timeout: time.Second}).Do(req); err == nil { // a long poll may outlast the timeout
		resp.Body.Close()
	}
	planText := strings.Split(fmt.Sprintf(preflightPlan, "block"), "preflight:\n")[0]
	if strings.Contains(planText, "preflight") {
		t.Fatalf("plan still has a preflight section:\n%s", planText)
	}
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", planText)
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 60*time.Second, "rollout failed in pre-flight", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, true)
		return err == nil && ro.State == engine.RolloutFailed, fmt.Sprintf("%s %s %v", ro.State, ro.Reason, err)
	})
	if !strings.Contains(ro.Reason, "pre-flight failed on 2 of 5 nodes") || !strings.Contains(ro.Reason, "onFail: block, nothing was changed") {
		t.Errorf("reason %q", ro.Reason)
	}
	for id, st := range states {
		if st.Applies() != 0 {
			t.Errorf("node %s changed %d times; want never", id, st.Applies())
		}
	}
	v, err := f.vera.Preflight(f.ctx, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Asked != 5 || v.Passed != 2 || v.Failed != 2 || v.Unavailable != 1 {
		t.Fatalf("view %+v", v)
	}
	for _, n := range v.Nodes {
		if n.Node == "legacy-1" && (n.State != "unavailable" || !strings.Contains(n.Reason, "agent speaks protocol 1; node pre-flight needs protocol")) {
			t.Errorf("legacy-1: %+v", n)
		}
	}
}

// TestNodePreflightExcludes: with onFail: exclude the zone b nodes are
// skipped with their reason and the zone a nodes are changed.
func TestNodePreflightExcludes(t *testing.T) {
	f, states := zonedFleet(t)
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", fmt.Sprintf(preflightPlan, "exclude"))
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 60*time.Second, "rollout succeeded", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, true)
		return err == nil && ro.State == engine.RolloutSucceeded, fmt.Sprintf("%s %s %+v %v", ro.State, ro.Reason, ro.Nodes, err)
	})
	for _, n := range ro.Nodes {
		zoneB := n.ID == "web-3" || n.ID == "web-4"
		switch {
		case zoneB && (n.Phase != engine.PhaseSkipped || !strings.Contains(n.Reason, "excluded by pre-flight: ") ||
			!strings.Contains(n.Reason, "version not available")):
			t.Errorf("zone b node %s: %s %q", n.ID, n.Phase, n.Reason)
		case !zoneB && n.Phase != engine.PhaseSucceeded:
			t.Errorf("zone a node %s: %s %q", n.ID, n.Phase, n.Reason)
		}
		if got, want := states[n.ID].Applies(), map[bool]int{true: 0, false: 1}[zoneB]; got != want {
			t.Errorf("node %s applied %d times, want %d", n.ID, got, want)
		}
	}
}

// TestNodePreflightServerAnswers: the server answers itself for a node
// whose agent is too old to run a pre-flight and for a node the plan's
// compatibility matrix rejects on its facts; with onFail: exclude both
// are skipped with that reason, as are zone b's nodes, and web-1 alone
// is changed.
func TestNodePreflightServerAnswers(t *testing.T) {
	f, states := zonedFleet(t)
	oldAgent(t, f.base, "legacy-1")
	// unavailable: fail has the old agent's node count as failed (the
	// default, proceed, lets it go ahead unchecked).
	planText := fmt.Sprintf(preflightPlan, "exclude") + `  unavailable: fail
compatibility:
  - name: not-web-2
    require: node.id != "web-2"
    message: web-2 runs a build nginx 1.22.2 does not support
`
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", planText)
	if err != nil {
		t.Fatal(err)
	}
	gatetest.Eventually(t, 60*time.Second, "rollout succeeded", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, true)
		return err == nil && ro.State == engine.RolloutSucceeded, fmt.Sprintf("%s %s %+v %v", ro.State, ro.Reason, ro.Nodes, err)
	})
	want := map[string]string{
		"legacy-1": fmt.Sprintf("excluded by pre-flight: pre-flight unavailable: agent speaks protocol 1; node pre-flight needs protocol %d (upgrade the agent)", api.PreflightProtocol),
		"web-2":    "excluded by pre-flight: compatibility not-web-2: web-2 runs a build nginx 1.22.2 does not support (requires node.id != \"web-2\")",
	}
	for _, n := range ro.Nodes {
		switch {
		case n.ID == "web-1":
			if n.Phase != engine.PhaseSucceeded || states[n.ID].Applies() != 1 {
				t.Errorf("web-1 %s %q, applied %d times", n.Phase, n.Reason, states[n.ID].Applies())
			}
		case want[n.ID] != "":
			if n.Phase != engine.PhaseSkipped || n.Reason != want[n.ID] {
				t.Errorf("node %s %s %q, want skipped %q", n.ID, n.Phase, n.Reason, want[n.ID])
			}
		default:
			if n.Phase != engine.PhaseSkipped || !strings.Contains(n.Reason, "version not available") {
				t.Errorf("node %s %s %q", n.ID, n.Phase, n.Reason)
			}
		}
	}
	if states["web-2"].Applies() != 0 {
		t.Errorf("web-2 changed")
	}
	// Counted in /metrics: web-1's pass, web-3 and web-4's failures, and
	// the server's own two answers.
	req, err := http.NewRequest("GET", f.base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer vera-token-0123456789a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`drover_node_preflights_total{result="failed"} 4`, `drover_node_preflights_total{result="passed"} 1`, "drover_node_preflight_seconds_count 3"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
