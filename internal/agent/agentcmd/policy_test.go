package agentcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
)

// registeredPolicy runs the agent with args against a fake server and
// returns the policy its registration reports.
func registeredPolicy(t *testing.T, args ...string) *fleet.AgentPolicy {
	t.Helper()
	got := make(chan api.RegisterRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
		switch r.URL.Path {
		case api.PathRegister:
			var req api.RegisterRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			select {
			case got <- req:
			default:
			}
			_ = json.NewEncoder(w).Encode(api.RegisterResponse{NodeID: req.NodeID, LeaseSeconds: 60})
		default:
			_ = json.NewEncoder(w).Encode(api.PollResponse{LeaseSeconds: 60})
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Main(ctx, "drover-agent", append([]string{"--server", srv.URL, "--token", "t", "--state-dir", t.TempDir(),
			"--sim", "--node-id", "n1"}, args...), nil, &bytes.Buffer{}, &stderr)
	}()
	var req api.RegisterRequest
	select {
	case req = <-got:
	case code := <-done:
		t.Fatalf("agent exited %d before registering: %s", code, stderr.String())
	}
	cancel()
	<-done
	return req.Facts.Agent
}

// TestPolicyFlags: --allow-command-probes, --allow-probe-output and
// --accept reach the policy the agent reports; by default it refuses
// command probes and probe output.
func TestPolicyFlags(t *testing.T) {
	def := registeredPolicy(t)
	if def == nil || def.CommandProbes || def.ProbeOutput || def.Artifacts || len(def.Accepts) != 6 {
		t.Fatalf("default policy %+v; want no command probes, no output, no artifacts, six kinds", def)
	}
	on := registeredPolicy(t, "--allow-command-probes", "--allow-probe-output", "--accept", "package,script")
	if on == nil || !on.CommandProbes || !on.ProbeOutput || len(on.Accepts) != 2 || on.Accepts[1] != "script" {
		t.Fatalf("policy %+v; want command probes, output, package and script", on)
	}
}
