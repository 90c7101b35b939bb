package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

const testPlan = `apiVersion: drover.dev/v1
name: openssl
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: openssl, version: "3.0.15-1~deb12u1"}]
waves:
  - name: canary
    nodes: 1
  - name: rest
limits:
  maxInFlight: 2
`

// call sends a request as the user with token and returns the status and
// the decoded error body (if any).
func call(t *testing.T, h http.Handler, method, path, token string, body any, hdr ...string) (int, api.Error, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var e api.Error
	if rec.Code >= 400 {
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
	}
	return rec.Code, e, rec.Body.Bytes()
}

const (
	alice = "alice-token-0123456789"
	bob   = "bob-token-0123456789ab"
	vera  = "vera-token-0123456789a"
)

func seedNodes(t testing.TB, s *Server, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		_, err := s.st.UpsertNode(context.Background(), store.NodeRecord{ID: "deb-" + string(rune('a'+i)),
			Facts:  fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
			Labels: map[string]string{"zone": "a"}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadRequests checks that bad API requests get a clear code and the
// right status, and change nothing.
func TestBadRequests(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	huge := `{"plan": "` + strings.Repeat("x", api.MaxBodyBytes+10) + `"}`
	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		hdr          []string
		status       int
		code         string
	}{
		{"no token", "GET", "/v1/nodes", "", nil, nil, 401, api.CodeUnauthorized},
		{"bad token", "GET", "/v1/nodes", "nope-nope-nope-nope", nil, nil, 401, api.CodeUnauthorized},
		{"invalid JSON", "POST", "/v1/rollouts", alice, `{"plan": `, nil, 400, api.CodeBadRequest},
		{"unknown field", "POST", "/v1/rollouts", alice, `{"plan": "x", "bogus": 1}`, nil, 400, api.CodeBadRequest},
		{"trailing data", "POST", "/v1/rollouts", alice, `{"plan": "x"} {}`, nil, 400, api.CodeBadRequest},
		{"huge body", "POST", "/v1/rollouts", alice, huge, nil, 413, api.CodeTooLarge},
		{"invalid plan", "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: "apiVersion: drover.dev/v1\nname: x\n"}, nil, 422, api.CodeInvalidPlan},
		{"plan selecting nothing", "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: strings.Replace(testPlan, `"debian"`, `"windows"`, 1)}, nil, 422, api.CodeInvalidPlan},
		{"viewer may not create", "POST", "/v1/rollouts", vera, api.CreateRolloutRequest{Plan: testPlan}, nil, 403, api.CodeForbidden},
		{"unknown rollout", "GET", "/v1/rollouts/nope", vera, nil, nil, 404, api.CodeNotFound},
		{"unknown node", "GET", "/v1/nodes/nope", vera, nil, nil, 404, api.CodeNotFound},
		{"bad audit order", "GET", "/v1/audit?order=sideways", vera, nil, nil, 400, api.CodeBadRequest},
		{"bad audit before", "GET", "/v1/audit?before=-1", vera, nil, nil, 400, api.CodeBadRequest},
		{"invalid CEL filter", "GET", "/v1/nodes?selector=node.os.famly%20%3D%3D%20%22x%22", vera, nil, nil, 400, api.CodeInvalidCEL},
		{"labels without If-Match", "PUT", "/v1/nodes/deb-a/labels", alice, api.LabelsRequest{Labels: map[string]string{"zone": "b"}}, nil, 428, api.CodePrecondReq},
		{"labels with a stale If-Match", "PUT", "/v1/nodes/deb-a/labels", alice, api.LabelsRequest{Labels: map[string]string{"zone": "b"}}, []string{"If-Match", `"99"`}, 409, api.CodeConflict},
		{"bad If-Match", "PUT", "/v1/nodes/deb-a/labels", alice, api.LabelsRequest{}, []string{"If-Match", `"x"`}, 400, api.CodeBadRequest},
		{"agent token on the REST API", "GET", "/v1/nodes", "agent-token-0123456789", nil, []string{"Drover-Node", "deb-a"}, 403, api.CodeForbidden},
		{"user on the agent channel", "POST", api.PathPoll, alice, api.PollRequest{NodeID: "deb-a"}, []string{api.HeaderProtocol, "1"}, 403, api.CodeForbidden},
		{"agent of another protocol", "POST", api.PathPoll, "agent-token-0123456789", api.PollRequest{NodeID: "deb-a"}, []string{"Drover-Node", "deb-a", api.HeaderProtocol, "99"}, 426, api.CodeProtocol},
		{"agent reporting for another node", "POST", api.PathReport, "agent-token-0123456789", api.StepReport{NodeID: "deb-b", StepID: "x", Phase: "running"}, []string{"Drover-Node", "deb-a", api.HeaderProtocol, "1"}, 403, api.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, e, body := call(t, h, c.method, c.path, c.token, c.body, c.hdr...)
			if status != c.status || e.Code != c.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, e.Code, body, c.status, c.code)
			}
			if e.Error == "" {
				t.Fatalf("error body has no message: %s", body)
			}
		})
	}
	// Nothing was created or changed.
	rs, err := s.st.ListRollouts(context.Background())
	if err != nil || len(rs) != 0 {
		t.Fatalf("rollouts after bad requests: %v %v", rs, err)
	}
	n, _ := s.st.GetNode(context.Background(), "deb-a")
	if n.Labels["zone"] != "a" {
		t.Fatalf("labels changed: %v", n.Labels)
	}
}

// TestCommandsAndRoles checks the two-person rule and If-Match on
// commands through the API.
func TestCommandsAndRoles(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	p := testPlan + "approvals:\n  start: 1\n"
	status, e, body := call(t, h, "POST", "/v1/rollouts", alice, api.CreateRolloutRequest{Plan: p})
	if status != 201 {
		t.Fatalf("create: %d %v", status, e)
	}
	var ro api.Rollout
	_ = json.Unmarshal(body, &ro)
	if ro.State != "pending-approval" || ro.Total != 3 {
		t.Fatalf("created: %+v", ro)
	}
	// The author cannot approve, whatever their role; an approver can.
	if status, e, _ := call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/approve", alice, nil); status != 403 {
		t.Fatalf("operator approving: %d %v", status, e)
	}
	if status, e, _ := call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/pause", bob, nil); status != 403 {
		t.Fatalf("approver pausing: %d %v", status, e)
	}
	if status, e, _ := call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/approve", bob, nil, "If-Match", `"12345"`); status != 409 || e.Code != api.CodeConflict {
		t.Fatalf("approve with stale version: %d %v", status, e)
	}
	status, e, body = call(t, h, "POST", "/v1/rollouts/"+ro.ID+"/approve", bob, nil)
	if status != 200 {
		t.Fatalf("approve: %d %v", status, e)
	}
	_ = json.Unmarshal(body, &ro)
	if len(ro.Approvals) != 1 || ro.Approvals[0].By != "bob" {
		t.Fatalf("approvals: %+v", ro.Approvals)
	}
	// The audit log records both and verifies.
	status, _, body = call(t, h, "GET", "/v1/audit/verify", vera, nil)
	var v api.AuditVerification
	_ = json.Unmarshal(body, &v)
	if status != 200 || !v.OK || v.Entries < 2 {
		t.Fatalf("verify: %d %s", status, body)
	}
}
