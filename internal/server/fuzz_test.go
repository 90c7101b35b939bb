package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/api"
)

// FuzzRequestBodies sends arbitrary bodies to every endpoint that reads
// one, as a user and as an agent: the server must never panic nor answer
// 500 (a bad body is the client's error), and must never accept a body
// that is not a JSON object.
func FuzzRequestBodies(f *testing.F) {
	s := newTestServer(f)
	seedNodes(f, s, 2)
	h := s.Handler()
	targets := []struct {
		method, path, token string
		hdr                 []string
	}{
		{"POST", "/v1/rollouts", alice, nil},
		{"POST", "/v1/plans/validate", alice, nil},
		{"PUT", "/v1/nodes/deb-a/labels", alice, []string{"If-Match", `"1"`}},
		{"POST", "/v1/rollouts/none/pause", alice, nil},
		{"POST", api.PathRegister, "agent-token-0123456789", []string{"Drover-Node", "deb-a", api.HeaderProtocol, "1"}},
		{"POST", api.PathReport, "agent-token-0123456789", []string{"Drover-Node", "deb-a", api.HeaderProtocol, "1"}},
	}
	for _, seed := range []string{
		`{"plan": "apiVersion: drover.dev/v1\nname: x\n"}`,
		`{"labels": {"zone": "b"}}`,
		`{"nodeId": "deb-a", "facts": {"os": {"family": "debian"}}}`,
		`{"stepId": "x", "nodeId": "deb-a", "phase": "running"}`,
		`{"reason": "r", "wave": "w"}`, `[]`, `null`, `{"plan": 7}`, "\x00", `{"a":` + strings.Repeat("[", 100),
	} {
		for i := range targets {
			f.Add(uint8(i), seed)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		tg := targets[int(which)%len(targets)]
		req := httptest.NewRequest(tg.method, tg.path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tg.token)
		for i := 0; i+1 < len(tg.hdr); i += 2 {
			req.Header.Set(tg.hdr[i], tg.hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s with %q: 500: %s", tg.method, tg.path, body, rec.Body.String())
		}
		if trimmed := strings.TrimSpace(body); rec.Code/100 == 2 && !strings.HasPrefix(trimmed, "{") {
			t.Fatalf("%s %s accepted a body that is not a JSON object: %q", tg.method, tg.path, body)
		}
	})
}
