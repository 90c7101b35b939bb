package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// fakeServer is a hand-written fake of the server's agent channel (the
// three endpoints of api: register, poll, report) over real in-memory
// state: the registrations and polls it received, the steps waiting to be
// handed out, and every report, in arrival order. Steps given to dispatch
// are handed out by the next poll, once; dispatching a step again hands it
// out again (a server that lost the agent's result). When hold is set and
// nothing is pending, a poll is held that long, like the real long poll.
type fakeServer struct {
	t *testing.T

	mu        sync.Mutex
	minProto  int // refuse agents below this protocol version (426)
	token     string
	hold      time.Duration
	failPolls int // answer this many polls 503 first
	registers []api.RegisterRequest
	polls     []api.PollRequest
	pending   []api.StepPayload
	raw       []json.RawMessage // handed out after pending, as they are
	cancels   []string          // cancels handed out by the next poll
	reports   []api.StepReport
	reportCh  chan api.StepReport
	wake      chan struct{}
	// evidence: bundles posted (protocol 5); evidenceAsks: on-demand
	// requests handed out by every poll until answered; failEvidence:
	// answer this many evidence posts 503 first.
	evidence     []api.EvidenceReport
	evidenceAsks []api.EvidenceRequest
	failEvidence int
}

func newFakeServer(t *testing.T) *fakeServer {
	return &fakeServer{t: t, reportCh: make(chan api.StepReport, 1000), wake: make(chan struct{}, 1)}
}

func (s *fakeServer) dispatch(steps ...api.StepPayload) {
	s.mu.Lock()
	s.pending = append(s.pending, steps...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// cancel has the next poll cancel the steps (protocol 2).
func (s *fakeServer) cancel(ids ...string) {
	s.mu.Lock()
	s.cancels = append(s.cancels, ids...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatchRaw hands out step payloads as raw JSON (malformed ones).
func (s *fakeServer) dispatchRaw(steps ...string) {
	s.mu.Lock()
	for _, st := range steps {
		s.raw = append(s.raw, json.RawMessage(st))
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	if r.Method != http.MethodPost {
		writeErr(w, http.StatusMethodNotAllowed, "method_not_allowed", "POST only")
		return
	}
	v, err := strconv.Atoi(r.Header.Get(api.HeaderProtocol))
	s.mu.Lock()
	minProto, token := s.minProto, s.token
	s.mu.Unlock()
	if err != nil || v < minProto {
		writeErr(w, http.StatusUpgradeRequired, "protocol_unsupported", fmt.Sprintf("agent protocol %q not served; this server serves versions %d..%d", r.Header.Get(api.HeaderProtocol), minProto, minProto+1))
		return
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		writeErr(w, http.StatusUnauthorized, "unauthenticated", "bad or missing token")
		return
	}
	switch r.URL.Path {
	case api.PathRegister:
		var req api.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		s.mu.Lock()
		s.registers = append(s.registers, req)
		s.mu.Unlock()
		json.NewEncoder(w).Encode(api.RegisterResponse{NodeID: req.NodeID, LeaseSeconds: 60, PollWaitSeconds: int(s.hold / time.Second)})
	case api.PathPoll:
		var req api.PollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		s.mu.Lock()
		s.polls = append(s.polls, req)
		if s.failPolls > 0 {
			s.failPolls--
			s.mu.Unlock()
			writeErr(w, http.StatusServiceUnavailable, "unavailable", "leader election in progress")
			return
		}
		hold := s.hold
		if len(s.pending) == 0 && len(s.raw) == 0 && len(s.cancels) == 0 && hold > 0 {
			s.mu.Unlock()
			t := time.NewTimer(hold)
			select {
			case <-s.wake:
			case <-t.C:
			case <-r.Context().Done():
			}
			t.Stop()
			s.mu.Lock()
		}
		steps := []json.RawMessage{}
		for _, p := range s.pending {
			b, _ := json.Marshal(p)
			steps = append(steps, b)
		}
		resp := struct {
			Steps        []json.RawMessage     `json:"steps"`
			LeaseSeconds int                   `json:"leaseSeconds"`
			Cancel       []string              `json:"cancel,omitempty"`
			Evidence     []api.EvidenceRequest `json:"evidence,omitempty"`
		}{append(steps, s.raw...), 60, s.cancels, s.evidenceAsks}
		s.pending, s.raw, s.cancels = nil, nil, nil
		s.mu.Unlock()
		json.NewEncoder(w).Encode(resp)
	case api.PathReport:
		var rep api.StepReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		s.mu.Lock()
		s.reports = append(s.reports, rep)
		s.mu.Unlock()
		s.reportCh <- rep
		w.WriteHeader(http.StatusNoContent)
	case api.PathEvidence:
		var rep api.EvidenceReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			writeErr(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		s.mu.Lock()
		if s.failEvidence > 0 {
			s.failEvidence--
			s.mu.Unlock()
			writeErr(w, http.StatusServiceUnavailable, "unavailable", "leader election in progress")
			return
		}
		s.evidence = append(s.evidence, rep)
		s.evidenceAsks = slices.DeleteFunc(s.evidenceAsks, func(q api.EvidenceRequest) bool { return q.ID == rep.Request })
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeErr(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// next returns the next report, failing the test if none comes within an
// hour of (bubble) time.
func (s *fakeServer) next(t *testing.T) api.StepReport {
	t.Helper()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	select {
	case r := <-s.reportCh:
		return r
	case <-timer.C:
		t.Fatalf("no report within an hour")
		return api.StepReport{}
	}
}

// final returns reports until one that ends the step.
func (s *fakeServer) final(t *testing.T) (api.StepReport, []api.StepReport) {
	t.Helper()
	var seen []api.StepReport
	for {
		r := s.next(t)
		seen = append(seen, r)
		if isFinal(r) {
			return r, seen
		}
	}
}

// isFinal tells a step's last report: failed, rolled-back, or verifying
// with a verdict at the end of the soak. The fake cannot tell the pass
// report at the start of the soak from the one at its end, so tests with
// a soak read those explicitly.
func isFinal(r api.StepReport) bool {
	return r.Phase == "failed" || r.Phase == "rolled-back" || r.Phase == "interrupted" || r.Phase == "cancelled" || (r.Phase == "verifying" && r.Gate == "fail") ||
		(r.Phase == "verifying" && r.Gate == "pass" && r.Evidence != nil)
}

// handlerTransport serves requests with a handler in-process, so tests
// run inside a synctest bubble without sockets.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}
