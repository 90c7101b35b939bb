package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/disruption"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/window"
)

// flClient is a FleetLock client written from the protocol as Zincati
// documents it (github.com/coreos/zincati,
// docs/development/fleetlock/protocol.md) and airlock serves it
// (github.com/coreos/airlock, internal/server/http_params.go): POST
// BASE/v1/pre-reboot and BASE/v1/steady-state with the header
// "fleet-lock-protocol: true" and the body
// {"client_params": {"id": ..., "group": ...}}; 200 is success, an error
// is {"kind": ..., "value": ...}. No real Zincati or Flatcar update
// agent can run here (they need an rpm-ostree or Flatcar host), so this
// client stands in for them.
type flClient struct {
	base string
}

type flResult struct {
	status      int
	kind, value string
}

func (r flResult) String() string { return fmt.Sprintf("%d %s: %s", r.status, r.kind, r.value) }

// raw sends body to endpoint, with the protocol header when header.
func (c flClient) raw(t *testing.T, endpoint, body string, header bool) flResult {
	t.Helper()
	req, err := http.NewRequest("POST", c.base+"/v1/"+endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if header {
		req.Header.Set("fleet-lock-protocol", "true")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := flResult{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Kind, Value string }
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: error body is not FleetLock's {kind, value}: %s", endpoint, b)
		}
		out.kind, out.value = e.Kind, e.Value
	}
	return out
}

func (c flClient) call(t *testing.T, endpoint, id, group string) flResult {
	t.Helper()
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(map[string]any{"client_params": map[string]string{"id": id, "group": group}})
	return c.raw(t, endpoint, b.String(), true)
}

func (c flClient) preReboot(t *testing.T, id, group string) flResult {
	t.Helper()
	return c.call(t, "pre-reboot", id, group)
}

func (c flClient) steadyState(t *testing.T, id, group string) flResult {
	t.Helper()
	return c.call(t, "steady-state", id, group)
}

func wantFL(t *testing.T, got flResult, status int, kind, value string) {
	t.Helper()
	if got.status != status || got.kind != kind || !strings.Contains(got.value, value) {
		t.Fatalf("got %v, want %d %s containing %q", got, status, kind, value)
	}
}

func countAudit(t *testing.T, st store.Store, action, object string) int {
	t.Helper()
	es, err := st.ListAudit(context.Background(), 0, 100000, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == action && e.Object == object {
			n++
		}
	}
	return n
}

func fleetLockGauge(t *testing.T, srv *server.Server, name, group string) float64 {
	t.Helper()
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == group {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{group=%q}", name, group)
	return 0
}

// TestFleetLock: a FleetLock client against a real server with four real
// agents (SQLite): the protocol's checks, a group's semaphore,
// idempotency, freezes and stop-the-line, and one fleet budget shared
// by the FleetLock client and a drover rollout, never exceeded.
func TestFleetLock(t *testing.T) {
	ctx := context.Background()
	srv, url, st, _ := servertest.StartServer(t, ctx, func(cfg *server.Config) {
		metricsConfig(cfg)
		cfg.FleetLock = server.FleetLockConfig{Listen: "127.0.0.1:0", AllowedNetworks: []string{"127.0.0.0/8"},
			Groups: map[string]server.FleetLockGroup{
				"default": {MaxHolders: 1},
				"workers": {MaxHolders: 2},
				"zone-b":  {MaxHolders: 1, Selector: `node.labels.zone == "b"`},
			}}
	})
	startAgents(t, ctx, url, "agent-token-0123456789")
	fl := flClient{base: "http://" + srv.FleetLockAddr()}
	c := &api.Client{Base: url, Token: operatorToken}

	// The protocol's checks, with clear errors.
	body := `{"client_params": {"id": "n1", "group": "default"}}`
	wantFL(t, fl.raw(t, "pre-reboot", body, false), 400, "missing_protocol_header", "header fleet-lock-protocol: true is required")
	wantFL(t, fl.raw(t, "pre-reboot", "id=n1", true), 400, "invalid_client_identity", "body is not a FleetLock request")
	wantFL(t, fl.raw(t, "pre-reboot", `{"node_uuid": "n1"}`, true), 400, "invalid_client_identity", `body has no "client_params" object`)
	wantFL(t, fl.raw(t, "pre-reboot", `{"client_params": {"group": "default"}}`, true), 400, "invalid_client_identity", "client_params.id is empty")
	wantFL(t, fl.raw(t, "steady-state", `{"client_params": {"id": "n1"}}`, true), 400, "invalid_client_identity", "client_params.group is empty")
	wantFL(t, fl.raw(t, "pre-reboot", `{"client_params": {"id": 7, "group": "default"}}`, true), 400, "invalid_client_identity", "cannot unmarshal number")
	wantFL(t, fl.raw(t, "pre-reboot", strings.Repeat(" ", 5000)+body, true), 413, "invalid_client_identity", "larger than 4096 bytes")
	wantFL(t, fl.preReboot(t, "n1", "nightly"), 400, "unknown_group", `FleetLock group "nightly" is not configured (fleetlock.groups: default, workers, zone-b)`)
	wantFL(t, fl.preReboot(t, "ghost", "default"), 403, "unknown_node", "node ghost is not enrolled in drover")
	wantFL(t, fl.steadyState(t, "ghost", "default"), 403, "unknown_node", "node ghost is not enrolled in drover")
	wantFL(t, fl.preReboot(t, "n1", "zone-b"), 409, "not_in_group", "node n1 is not in FleetLock group zone-b")
	if n := countAudit(t, st, "fleetlock.refuse", "node/ghost"); n != 0 {
		t.Fatalf("refusals of an unknown node audited %d times", n)
	}

	// The group's semaphore, idempotent both ways; refusals audited once.
	wantFL(t, fl.preReboot(t, "n1", "default"), 200, "", "")
	wantFL(t, fl.preReboot(t, "n1", "default"), 200, "", "")
	for range 3 {
		wantFL(t, fl.preReboot(t, "n2", "default"), 409, "group_full", "FleetLock group default has 1/1 holders")
	}
	if lock, refuse := countAudit(t, st, "fleetlock.lock", "node/n1"), countAudit(t, st, "fleetlock.refuse", "node/n2"); lock != 1 || refuse != 1 {
		t.Fatalf("audited %d locks of n1 (want 1), %d refusals of n2 (want 1)", lock, refuse)
	}
	if v := fleetLockGauge(t, srv, "drover_fleetlock_holders", "default"); v != 1 {
		t.Fatalf("drover_fleetlock_holders{group=default} = %v", v)
	}
	if v := fleetLockGauge(t, srv, "drover_fleetlock_max_holders", "workers"); v != 2 {
		t.Fatalf("drover_fleetlock_max_holders{group=workers} = %v", v)
	}
	wantFL(t, fl.steadyState(t, "n1", "default"), 200, "", "")
	wantFL(t, fl.steadyState(t, "n1", "default"), 200, "", "")
	if n := countAudit(t, st, "fleetlock.unlock", "node/n1"); n != 1 {
		t.Fatalf("audited %d unlocks of n1, want 1", n)
	}
	if v := fleetLockGauge(t, srv, "drover_fleetlock_holders", "default"); v != 0 {
		t.Fatalf("drover_fleetlock_holders{group=default} after steady-state = %v", v)
	}

	// Fleet freezes and stop-the-line refuse reboots as they refuse steps.
	fs, _ := store.AsFleetSafety(st)
	fr := store.FreezeRecord{Freeze: disruption.Freeze{Name: "eoq", Reason: "quarter end",
		Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2000-01-01", End: "2100-01-01"}}}
	if _, err := fs.PutFreezes(ctx, []store.FreezeRecord{fr}, 0, "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	wantFL(t, fl.preReboot(t, "n3", "default"), 409, "fleet_frozen", "fleet freeze eoq is in force until 2100-01-01T00:00:00Z: quarter end")
	if err := fs.DeleteFreeze(ctx, "eoq", "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.StopLine(ctx, "bob", "incident 12", time.Now()); err != nil {
		t.Fatal(err)
	}
	wantFL(t, fl.preReboot(t, "n3", "default"), 409, "line_stopped", "line stopped by bob: incident 12")
	if _, err := st.LiftLine(ctx, "bob", "over", time.Now()); err != nil {
		t.Fatal(err)
	}

	// One budget for the whole fleet, whoever reboots: while n1 reboots
	// under FleetLock, a rollout waits, naming the holder.
	if _, err := c.CreateBudget(ctx, api.BudgetRequest{Name: "fleet", MaxUnavailable: "1"}); err != nil {
		t.Fatal(err)
	}
	wantFL(t, fl.preReboot(t, "n1", "default"), 200, "", "")
	b, err := c.GetBudget(ctx, "fleet")
	if err != nil || len(b.Domains) != 1 || b.Domains[0].InUse != 1 || b.Domains[0].Holders[0].Kind != "fleetlock" {
		t.Fatalf("budget fleet = %+v, %v", b, err)
	}
	ro, err := c.CreateRollout(ctx, "shared.yaml", fmt.Sprintf(metricsPlan, "shared", "3.0.15-1"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the rollout waits for the FleetLock holder", func() (bool, string) {
		ro, err = c.GetRollout(ctx, ro.ID, false)
		var rs []string
		for _, w := range ro.Waits {
			rs = append(rs, w.Reason)
		}
		all := strings.Join(rs, "; ")
		return err == nil && strings.Contains(all, "node held by fleetlock default (reboot)") &&
			strings.Contains(all, "fleet budget fleet at 1/1, held by n1 (default)"), all
	})
	if data, err := st.LoadRollout(ctx, ro.ID); err != nil {
		t.Fatal(err)
	} else {
		for _, n := range data.Nodes {
			if n.StepID != "" {
				t.Fatalf("the rollout dispatched %s while FleetLock held the budget's only slot", n.NodeID)
			}
		}
	}
	wantFL(t, fl.steadyState(t, "n1", "default"), 200, "", "")

	// Then the rollout and a FleetLock client compete for the same
	// budget: the client asks for a reboot slot of each node in turn,
	// holds it briefly and releases it, while the rollout runs. At no
	// sample are two nodes held, the client is refused while the rollout
	// holds the slot, and both make progress (in practice the rollout
	// hands the slot from node to node and the client gets it when the
	// rollout ends).
	var (
		wg                sync.WaitGroup
		stop              atomic.Bool
		granted, refusals atomic.Int64
		errs              = make(chan string, 1)
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			id := fmt.Sprintf("n%d", i%4+1)
			r := fl.preReboot(t, id, "default")
			switch {
			case r.status == 200:
				granted.Add(1)
				time.Sleep(20 * time.Millisecond)
				if r := fl.steadyState(t, id, "default"); r.status != 200 {
					select {
					case errs <- "steady-state: " + r.String():
					default:
					}
				}
			case r.kind == "budget_exceeded" || r.kind == "node_held":
				refusals.Add(1)
			default:
				select {
				case errs <- "pre-reboot: " + r.String():
				default:
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			state, err := fs.LoadFleetState(ctx)
			if err == nil && len(state.Holds) > 1 {
				select {
				case errs <- fmt.Sprintf("budget of 1 exceeded: holds %+v", state.Holds):
				default:
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	eventually(t, 60*time.Second, "the rollout ends and the FleetLock client had a slot", func() (bool, string) {
		ro, err = c.GetRollout(ctx, ro.ID, false)
		return err == nil && ro.State.Terminal() && granted.Load() > 0, fmt.Sprintf("%s %s %v, %d granted", ro.State, ro.Reason, err, granted.Load())
	})
	stop.Store(true)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	if ro.State != "succeeded" || refusals.Load() == 0 {
		t.Fatalf("rollout %s; FleetLock refused %d times (want > 0: the rollout held the budget's slot)", ro.State, refusals.Load())
	}
	t.Logf("FleetLock slots granted %d (with the rollout or after it), refused %d", granted.Load(), refusals.Load())

	// A second group has its own slots, but the fleet budget still binds.
	wantFL(t, fl.preReboot(t, "n1", "default"), 200, "", "")
	wantFL(t, fl.preReboot(t, "n2", "workers"), 409, "budget_exceeded", "node n2 would put fleet budget fleet at 2/1")
	wantFL(t, fl.preReboot(t, "n1", "workers"), 409, "node_held", "node n1 is held by fleetlock default (reboot)")
}
