package agent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/plan"
)

// captureLog stands in for evidence.Capture (whose collectors read the
// host: the evidence package tests them, the fleet test runs them on a
// Debian node): it records each capture with the node's state at that
// moment.
type captureLog struct {
	mu    sync.Mutex
	specs []evidence.Spec
	seen  []string // telemetry-agent's version at each capture
}

func (c *captureLog) capture(n *testNode) func(context.Context, evidence.Spec) *evidence.Bundle {
	return func(_ context.Context, s evidence.Spec) *evidence.Bundle {
		v, _ := n.state.Version("telemetry-agent")
		c.mu.Lock()
		c.specs, c.seen = append(c.specs, s), append(c.seen, v)
		c.mu.Unlock()
		return &evidence.Bundle{Node: s.Node, Rollout: s.Rollout, Step: s.Step, Reason: s.Reason, Sections: []evidence.Section{{Name: "kernel"}}}
	}
}

// TestEvidenceBeforeRollback: a step whose second action fails is
// captured once, before its first action is rolled back, with what it
// changed, the plan's unit and probe endpoint; a bundle the server did
// not take at once is sent again from the poll loop, and an agent
// restarted afterwards neither captures nor sends it again.
func TestEvidenceBeforeRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		n.state.FailApply = func(a plan.Action) error {
			if a.Package != nil && a.Package.Packages[0].Name == "openssl" {
				return lockErr{1234}
			}
			return nil
		}
		srv := newFakeServer(t)
		srv.failEvidence = 1 // the first send fails
		var log captureLog
		cfg := n.config(t, srv)
		cfg.Evidence = log.capture(n)
		stop, _ := start(t, cfg)
		step := applyStep(1, pkg("telemetry-agent", "7.2.0"), plan.Action{ServiceRestart: &plan.ServiceRestartAction{Service: "nginx"}}, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = append(step.Probes, plan.Probe{Kind: plan.ProbeHTTP, URL: "https://api.internal.example/health"})
		srv.dispatch(step)
		final, _ := srv.final(t)
		if final.Phase != "failed" {
			t.Fatalf("final %+v", final)
		}
		log.mu.Lock()
		if len(log.specs) != 1 || log.seen[0] != "7.2.0" {
			t.Fatalf("captures %d, telemetry-agent at capture %v: want one, before the rollback (7.2.0)", len(log.specs), log.seen)
		}
		s := log.specs[0]
		log.mu.Unlock()
		if s.Step != step.ID || s.Rollout != "r1" || s.Reason != evidence.ReasonFailure {
			t.Errorf("spec %+v", s)
		}
		if len(s.Packages) != 3 || s.Packages[0] != (evidence.PackageChange{Name: "telemetry-agent", Before: "7.1.0", After: "7.2.0"}) ||
			s.Packages[2].After != "3.0.15-1~deb12u1 (apply did not finish)" {
			t.Errorf("packages %+v", s.Packages)
		}
		if len(s.Units) != 1 || s.Units[0] != "nginx.service" || len(s.Endpoints) != 1 || s.Endpoints[0] != "api.internal.example:443" || s.Names[0] != "api.internal.example" {
			t.Errorf("units %v names %v endpoints %v", s.Units, s.Names, s.Endpoints)
		}
		// Not taken at first: sent again by the poll loop.
		for {
			srv.mu.Lock()
			got := len(srv.evidence)
			srv.mu.Unlock()
			if got > 0 {
				break
			}
			srv.dispatch() // wake a poll
			synctest.Wait()
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if _, err := os.Stat(filepath.Join(n.dir, EvidenceDir)); err == nil {
			if ents, _ := os.ReadDir(filepath.Join(n.dir, EvidenceDir)); len(ents) != 0 {
				t.Errorf("evidence files left after the server took them: %v", ents)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// Restarted: nothing captured or sent again.
		stop, _ = start(t, cfg)
		srv.dispatch()
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		log.mu.Lock()
		defer log.mu.Unlock()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(log.specs) != 1 || len(srv.evidence) != 1 || srv.evidence[0].Bundle.Step != step.ID {
			t.Fatalf("after restart: %d captures, %d bundles sent; want 1 and 1", len(log.specs), len(srv.evidence))
		}
	})
}

// TestEvidenceOnDemand: a request in a poll is answered once with a
// bundle of reason on-demand, carrying the request's units.
func TestEvidenceOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		srv.evidenceAsks = []api.EvidenceRequest{{ID: "q1", Units: []string{"ssh.service"}}}
		var log captureLog
		cfg := n.config(t, srv)
		cfg.Evidence = log.capture(n)
		stop, _ := start(t, cfg)
		for {
			srv.mu.Lock()
			got := len(srv.evidence)
			srv.mu.Unlock()
			if got > 0 {
				break
			}
			srv.dispatch()
			synctest.Wait()
			time.Sleep(time.Second)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		e := srv.evidence[0]
		if len(srv.evidence) != 1 || e.Request != "q1" || e.Bundle.Reason != evidence.ReasonOnDemand || len(log.specs) != 1 || log.specs[0].Units[0] != "ssh.service" {
			t.Fatalf("evidence %+v, specs %+v", srv.evidence, log.specs)
		}
	})
}

// TestEvidenceSpecHostChecks: a failure's bundle resolves the names the
// dns checks look up and handshakes with the tls checks' endpoints,
// verifying each with the CA bundle its check names.
func TestEvidenceSpecHostChecks(t *testing.T) {
	s := evidenceSpec(api.StepPayload{Probes: []plan.Probe{
		{Kind: plan.ProbeDNS, Lookup: "db.internal"},
		{Kind: plan.ProbeTLS, Address: "api.internal:8443", CAFile: "/etc/internal-ca.pem"},
		{Kind: plan.ProbeTLS, Address: "10.0.0.9:443"},
		{Kind: plan.ProbeHTTP, URL: "https://api.internal:8443/health"},
	}})
	if got := strings.Join(s.Names, " "); got != "db.internal api.internal" {
		t.Errorf("names %q", got)
	}
	if got := strings.Join(s.Endpoints, " "); got != "api.internal:8443 10.0.0.9:443" {
		t.Errorf("endpoints %q", got)
	}
	if len(s.CAFiles) != 1 || s.CAFiles["api.internal:8443"] != "/etc/internal-ca.pem" {
		t.Errorf("CA files %v", s.CAFiles)
	}
}

// TestEvidenceSpecLinkage: a step's linkage probes name what the
// bundle's linkage section resolves, their binaries (a host without
// systemd) and their units.
func TestEvidenceSpecLinkage(t *testing.T) {
	s := evidenceSpec(api.StepPayload{Probes: []plan.Probe{
		{Kind: plan.ProbeLinkage, Binaries: []string{"/usr/bin/drover-testsvc", "/usr/sbin/nginx"}},
		{Kind: plan.ProbeLinkage, Unit: "nginx", Binaries: []string{"/usr/sbin/nginx"}},
	}})
	if !slices.Equal(s.Binaries, []string{"/usr/bin/drover-testsvc", "/usr/sbin/nginx"}) || !slices.Equal(s.Units, []string{"nginx.service"}) {
		t.Errorf("binaries %v units %v", s.Binaries, s.Units)
	}
}
