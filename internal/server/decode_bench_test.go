package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/api"
)

// BenchmarkDecodePoll is the decoding of one idle agent's poll body, the
// request a server of many agents decodes most often.
func BenchmarkDecodePoll(b *testing.B) {
	const body = `{"nodeId":"sim-00042","bootId":"boot-42"}`
	w := httptest.NewRecorder()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, api.PathPoll, strings.NewReader(body))
		var req api.PollRequest
		if err := decodeLimit(w, r, &req, api.MaxBodyBytes); err != nil || req.NodeID != "sim-00042" {
			b.Fatal(err, req)
		}
	}
}
