package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
)

// TestNodeDiff: a viewer compares two registered nodes; a facts update on
// a poll keeps the agent's version and protocol, so they do not show as a
// difference; the peer is picked by similarity; bad requests say why.
func TestNodeDiff(t *testing.T) {
	h := newTestServerWith(t, func(c *Config) { c.PollWait = 10 * time.Millisecond }).Handler()
	const tok, viewer = "agent-token-0123456789", "vera-token-0123456789a"
	agent := func(node string) []string { return []string{"Drover-Node", node, api.HeaderProtocol, "4"} }
	facts := func(class, openssl string) fleet.Facts {
		return fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-26-amd64", Arch: "amd64", Hardware: fleet.Hardware{Class: class},
			Packages: map[string]string{"openssl": openssl, "curl": "7.88"}}
	}
	for _, n := range []struct{ id, class string }{{"f", "gen1"}, {"h1", "gen2"}, {"h2", "gen1"}} {
		if code, ae, _ := call(t, h, "POST", api.PathRegister, tok, api.RegisterRequest{NodeID: n.id, AgentVersion: "v1.4.0",
			Facts: facts(n.class, "3.0.14"), Labels: map[string]string{"zone": "a"}}, agent(n.id)...); code != 200 {
			t.Fatalf("register %s: %d %+v", n.id, code, ae)
		}
	}
	newer := facts("gen1", "3.0.16")
	if code, ae, _ := call(t, h, "POST", api.PathPoll, tok, api.PollRequest{NodeID: "f", Facts: &newer}, agent("f")...); code != 200 {
		t.Fatalf("poll with facts: %d %+v", code, ae)
	}
	diff := func(query string) api.NodeDiff {
		t.Helper()
		code, ae, body := call(t, h, "GET", "/v1/nodes/f/diff"+query, viewer, nil)
		if code != 200 {
			t.Fatalf("diff%s: %d %+v", query, code, ae)
		}
		var d api.NodeDiff
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := diff("")
	if d.Healthy != "h2" || d.Picked == nil || d.Picked.Score != d.Picked.MaxScore || d.Rollout != "" || d.FailingState != "untouched" {
		t.Fatalf("picked diff = %+v", d)
	}
	if len(d.Sections) != 1 || d.Sections[0].Dimension != "packages" || d.Sections[0].Differences[0].Key != "openssl" ||
		!strings.Contains(d.Sections[0].Differences[0].Reason, "newer") {
		t.Fatalf("sections = %+v (the agent's version and protocol must survive a facts update)", d.Sections)
	}
	if d := diff("?with=h1"); d.Healthy != "h1" || d.Picked != nil || len(d.Sections) != 2 || d.Sections[1].Dimension != "hardware" {
		t.Fatalf("diff with h1 = %+v", d)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/nodes/f/diff?with=f", 400, "another one"},
		{"/v1/nodes/nope/diff", 404, "nope"},
		{"/v1/nodes/f/diff?with=nope", 404, "nope"},
		{"/v1/nodes/f/diff?rollout=nope", 404, "nope"},
	} {
		if code, ae, _ := call(t, h, "GET", c.path, viewer, nil); code != c.code || !strings.Contains(ae.Error, c.want) {
			t.Errorf("GET %s: %d %+v, want %d naming %q", c.path, code, ae, c.code, c.want)
		}
	}
}
