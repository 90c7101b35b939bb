package cli

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
)

// TestFleetLockHoldersShown: a node rebooting under FleetLock (a
// pre-reboot as Zincati sends it, see
// github.com/coreos/zincati docs/development/fleetlock/protocol.md) shows
// its holder in `drover nodes get` and in `drover budget get`; an admin
// releases it with `drover nodes release`.
func TestFleetLockHoldersShown(t *testing.T) {
	ctx := context.Background()
	srv, url, st, _ := servertest.StartServer(t, ctx, func(cfg *server.Config) {
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "root", Role: server.RoleAdmin, Token: "root-token-0123456789a"}}
		cfg.FleetLock = server.FleetLockConfig{Listen: "127.0.0.1:0"}
	})
	now := time.Now()
	if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: "n1", Facts: fleet.Facts{OS: fleet.OS{Family: "fedora", Version: "42"}},
		RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	as := func(token string, args ...string) (int, string) {
		t.Helper()
		env := map[string]string{"DROVER_SERVER": url, "DROVER_TOKEN": token}
		var out bytes.Buffer
		code := Main(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	drover := func(args ...string) string {
		t.Helper()
		code, out := as("alice-token-0123456789", args...)
		if code != 0 {
			t.Fatalf("drover %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
		return out
	}
	drover("budget", "create", "fleet", "--max-unavailable", "1")
	if out := drover("nodes", "get", "n1"); strings.Contains(out, "held by") {
		t.Fatalf("a free node shows a holder:\n%s", out)
	}
	req, _ := http.NewRequest("POST", "http://"+srv.FleetLockAddr()+"/v1/pre-reboot", strings.NewReader(`{"client_params": {"id": "n1", "group": "default"}}`))
	req.Header.Set("fleet-lock-protocol", "true")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pre-reboot: %d", resp.StatusCode)
	}
	if out := drover("nodes", "get", "n1"); !strings.Contains(out, "held by") || !strings.Contains(out, "fleetlock default (reboot) for ") {
		t.Fatalf("nodes get does not show the FleetLock holder:\n%s", out)
	}
	if out := drover("budget", "get", "fleet"); !strings.Contains(out, "1/1 in use") || !strings.Contains(out, "n1 (fleetlock default)") {
		t.Fatalf("budget get does not show the FleetLock holder:\n%s", out)
	}
	// An admin releases the slot of a node that never came back.
	if code, out := as("alice-token-0123456789", "nodes", "release", "n1", "--reason", "n1 is dead"); code == 0 || !strings.Contains(out, "admin") {
		t.Fatalf("an operator released a slot: %d %s", code, out)
	}
	if code, out := as("root-token-0123456789a", "nodes", "release", "n1"); code == 0 || !strings.Contains(out, "--reason is required") {
		t.Fatalf("release without a reason: %d %s", code, out)
	}
	if code, out := as("root-token-0123456789a", "nodes", "release", "n1", "--reason", "n1 is dead"); code != 0 || !strings.Contains(out, "n1 released from FleetLock group default") {
		t.Fatalf("release: %d %s", code, out)
	}
	if out := drover("nodes", "get", "n1"); strings.Contains(out, "held by") {
		t.Fatalf("a released node shows a holder:\n%s", out)
	}
	if code, out := as("root-token-0123456789a", "nodes", "release", "n1", "--reason", "again"); code == 0 || !strings.Contains(out, "node n1 holds no FleetLock slot") {
		t.Fatalf("releasing a free node: %d %s", code, out)
	}
}
