package fleettest

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// hostileStep is a step payload handed straight to a real agent, and what
// its failure must say.
type hostileStep struct {
	id      string
	payload string // raw JSON of the step
	want    string
}

// hostileSteps are malformed or hostile payloads. Each must be refused
// with a clear reason, run nothing (no /tmp/pwned), and leave the package
// as it was.
func hostileSteps() []hostileStep {
	ok := `[{"package":{"packages":[{"name":"drover-testsvc","version":"1.1"}]}}]`
	return []hostileStep{
		{"h/hostile/apply/1", `{"id":"h/hostile/apply/1","rollout":"h","kind":"explode","actions":` + ok + `}`,
			`malformed step: unknown step kind "explode" (want apply or rollback)`},
		{"h/hostile/apply/2", `{"id":"h/hostile/apply/2","rollout":"h","kind":"apply","actions":[{"name":"wipe","reformat":{"disk":"/dev/sda"}}]}`,
			"malformed step: action 1: "},
		{"h/hostile/apply/3", `{"id":"h/hostile/apply/3","rollout":"h","kind":"apply","actions":[{"package":{"packages":[{"name":"-oAPT::Update::Pre-Invoke::=touch /tmp/pwned","version":"1.1"}]}}]}`,
			`invalid package name: "-oAPT::Update::Pre-Invoke::=touch /tmp/pwned": a Debian package name must not start with '-'`},
		{"h/hostile/apply/4", `{"id":"h/hostile/apply/4","rollout":"h","kind":"apply","actions":[{"package":{"packages":[{"name":"drover-testsvc","version":"1.1; touch /tmp/pwned"}]}}]}`,
			`invalid version for package "drover-testsvc": "1.1; touch /tmp/pwned": character ';' (U+003B) not allowed`},
		{"h/hostile/apply/5", `{"id":"h/hostile/apply/5","rollout":"h","kind":"apply","actions":[{"script":{"artifact":"/bin/sh","args":["-c","touch /tmp/pwned"]}}]}`,
			"action kind script not allowed by this agent's configuration"},
		{"no-slashes", `{"id":"no-slashes","rollout":"h","kind":"apply","actions":` + ok + `}`,
			`malformed step: ID "no-slashes" is not ROLLOUT/NODE/KIND/ATTEMPT`},
		{"h/hostile/apply/7", `{"id":"h/hostile/apply/7","rollout":"h","kind":"apply","actions":"rm -rf /"}`,
			"malformed step: payload does not decode"},
		{"h/hostile/apply/8", `{"id":"h/hostile/apply/8","rollout":"h","kind":"apply","actions":[]}`,
			"malformed step: no actions"},
		{"h/hostile/apply/9", `{"id":"h/hostile/apply/9","rollout":"h","kind":"apply","actions":` + ok + `,"reboot":"now-please"}`,
			`malformed step: unknown reboot policy "now-please"`},
		{"h/hostile/apply/10", `{"id":"h/hostile/apply/10","rollout":"h","kind":"apply","actions":` + ok + `,"probes":[{"kind":"exec-as-root","command":["touch","/tmp/pwned"]}]}`,
			`malformed step: probe 1 has unknown kind "exec-as-root"`},
	}
}

// fakeControlPlane speaks the agent protocol and hands out raw steps.
type fakeControlPlane struct {
	mu      sync.Mutex
	pending []json.RawMessage
	polls   int
	finals  map[string]api.StepReport
}

func (s *fakeControlPlane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case api.PathRegister:
		_ = json.NewEncoder(w).Encode(api.RegisterResponse{NodeID: r.Header.Get("Drover-Node"), LeaseSeconds: 30, PollWaitSeconds: 1, Heartbeat: time.Second})
	case api.PathPoll:
		s.mu.Lock()
		s.polls++
		steps := s.pending
		s.pending = nil
		s.mu.Unlock()
		if steps == nil {
			time.Sleep(500 * time.Millisecond)
			steps = []json.RawMessage{}
		}
		b, _ := json.Marshal(map[string]any{"steps": steps, "leaseSeconds": 30})
		_, _ = w.Write(b)
	case api.PathReport:
		var rep api.StepReport
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
			http.Error(w, `{"error":"bad report","code":"bad_request"}`, http.StatusBadRequest)
			return
		}
		if rep.Phase == engine.PhaseFailed || rep.Phase == engine.PhaseRolledBack || rep.Gate != "" {
			s.mu.Lock()
			s.finals[rep.StepID] = rep
			s.mu.Unlock()
		}
		_, _ = w.Write([]byte("{}"))
	default:
		http.NotFound(w, r)
	}
}

// hostilePayloads runs a second real agent in n's container against a
// fake control plane that hands it malformed and hostile steps.
func (f *fleet) hostilePayloads(t *testing.T, n *node) {
	cp := &fakeControlPlane{finals: map[string]api.StepReport{}}
	for _, s := range hostileSteps() {
		cp.pending = append(cp.pending, json.RawMessage(s.payload))
	}
	ln, err := net.Listen("tcp", f.gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: cp, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("fake control plane: %v", err)
		}
	}()
	defer srv.Close()
	before := f.installed(t, n)
	if _, err := docker(context.Background(), "exec", "-d", n.container, "sh", "-c",
		"echo $$ >/tmp/hostile-agent.pid; exec /opt/drover/drover agent --server http://"+ln.Addr().String()+
			" --state-dir /var/lib/drover-hostile --node-id hostile --token hostile-test-token >/tmp/hostile-agent.log 2>&1"); err != nil {
		t.Fatal(err)
	}
	defer f.sh(n, "kill $(cat /tmp/hostile-agent.pid)")
	want := hostileSteps()
	deadline := time.Now().Add(90 * time.Second)
	for {
		cp.mu.Lock()
		got := len(cp.finals)
		cp.mu.Unlock()
		if got >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, s := range want {
		rep, ok := cp.finals[s.id]
		switch {
		case !ok:
			t.Errorf("step %s: no final report", s.id)
		case rep.Phase != engine.PhaseFailed || !strings.Contains(rep.Reason, s.want):
			t.Errorf("step %s: %s %q, want failed containing %q", s.id, rep.Phase, rep.Reason, s.want)
		default:
			t.Logf("step %s refused: %s", s.id, rep.Reason)
		}
	}
	if t.Failed() {
		log, _ := f.sh(n, "cat /tmp/hostile-agent.log")
		t.Logf("hostile agent log:\n%s", tail(log, 60))
	}
	if out, _ := f.sh(n, "ls /tmp/pwned 2>&1 || true"); !strings.Contains(out, "No such file") {
		t.Errorf("a hostile payload ran something: %s", out)
	}
	if got := f.installed(t, n); got != before {
		t.Errorf("%s is %q, was %q", testPackage, got, before)
	}
	// The agent is still polling after refusing them all.
	polls := cp.polls
	cp.mu.Unlock()
	time.Sleep(3 * time.Second)
	cp.mu.Lock()
	if cp.polls <= polls {
		t.Errorf("the agent stopped polling after the hostile steps")
	}
}
