package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/gate/gatetest"
)

// evidencePlan restarts nginx; its node probe fails on every node, so
// the node gate fails and the step is rolled back.
const evidencePlan = `apiVersion: drover.dev/v1
name: restart-nginx
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - serviceRestart:
        service: nginx
  reboot: never
waves:
  - name: all
limits:
  maxInFlight: 2
failureBudget:
  maxFailures: 0
  onBreach: pause
gates:
  node:
    healthyDeadline: 1s
    probes:
      - kind: command
        command: ["false"]
        interval: 200ms
      - kind: http
        url: https://api.internal.example:8443/health
        interval: 200ms
`

// TestEvidenceOnFailureAndOnDemand: real agents whose captures run the
// real collectors on this machine (its /proc, its tools; only the
// diskstats wait is skipped) fail their node gate; each node's bundle
// is stored once, before the rollback, with the plan's unit and the
// probe's name and endpoint, listed by node and rollout, hashed into the
// audit log. An operator's on-demand request is answered by the agent;
// a viewer may read bundles but not ask for one.
func TestEvidenceOnFailureAndOnDemand(t *testing.T) {
	var mu sync.Mutex
	captures := map[string]int{} // node/step -> captures
	f := startLiveFleet(t, nil, 2, func(c *agent.Config) {
		c.AllowCommandProbes = true
		host := evidence.LocalHost()
		host.Sleep = func(context.Context, time.Duration) error { return nil }
		host.Handshake = func(context.Context, string) (evidence.TLSResult, error) {
			return evidence.TLSResult{}, errors.New("dial tcp: lookup api.internal.example: no such host")
		}
		c.Evidence = func(ctx context.Context, s evidence.Spec) *evidence.Bundle {
			mu.Lock()
			captures[s.Node+"/"+s.Step]++
			mu.Unlock()
			return evidence.Capture(ctx, host, s)
		}
	})
	ro, err := f.alice.CreateRollout(f.ctx, "nginx.yaml", evidencePlan)
	if err != nil {
		t.Fatal(err)
	}
	var list api.EvidenceList
	gatetest.Eventually(t, 60*time.Second, "web-1's failure bundle stored", func() (bool, string) {
		list, err = f.vera.ListEvidence(f.ctx, "web-1", ro.ID)
		return err == nil && len(list.Bundles) > 0, fmt.Sprintf("%+v %v", list, err)
	})
	sum := list.Bundles[0]
	if sum.Reason != evidence.ReasonFailure || sum.Rollout != ro.ID || sum.Step == "" || len(sum.SHA256) != 64 || sum.Size == 0 || sum.Size > evidence.MaxBundleBytes {
		t.Fatalf("summary %+v", sum)
	}
	got, err := f.vera.GetEvidence(f.ctx, sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := got.Bundle
	var k evidence.Kernel
	if !b.Decode("kernel", &k) || k.Release == "" || k.BootID == "" {
		t.Errorf("kernel section: %+v", b.Section("kernel"))
	}
	var mounts []evidence.Mount
	if !b.Decode("mounts", &mounts) || len(mounts) == 0 {
		t.Errorf("mounts section: %+v", b.Section("mounts"))
	}
	var r evidence.Resolver
	if !b.Decode("resolver", &r) || len(r.Answers) != 1 || r.Answers[0].Name != "api.internal.example" {
		t.Errorf("resolver section: %+v", b.Section("resolver"))
	}
	var tl []evidence.TLSResult
	if !b.Decode("tls", &tl) || len(tl) != 1 || tl[0].Endpoint != "api.internal.example:8443" || tl[0].Error == "" {
		t.Errorf("tls section: %+v", b.Section("tls"))
	}
	if s := b.Section("unit-logs"); s == nil {
		t.Errorf("no unit-logs section for nginx.service")
	}
	// The audit log holds the bundle's hash.
	audit, err := f.vera.ListAudit(f.ctx, 0, 1000, ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range audit.Entries {
		found = found || (e.Action == "node.evidence" && strings.Contains(string(e.Detail), sum.SHA256))
	}
	if !found {
		t.Errorf("no node.evidence audit entry with sha256 %s", sum.SHA256)
	}
	gatetest.Eventually(t, 60*time.Second, "web-2's failure bundle stored", func() (bool, string) {
		l, err := f.vera.ListEvidence(f.ctx, "web-2", ro.ID)
		return err == nil && len(l.Bundles) > 0, fmt.Sprintf("%+v %v", l, err)
	})
	gatetest.Eventually(t, 60*time.Second, "the wave pauses", func() (bool, string) {
		ro, err = f.vera.GetRollout(f.ctx, ro.ID, false)
		return err == nil && ro.State == engine.RolloutPaused, fmt.Sprintf("%s %v", ro.State, err)
	})
	mu.Lock()
	for k, n := range captures {
		if n != 1 {
			t.Errorf("%s captured %d times, want once", k, n)
		}
	}
	mu.Unlock()

	// The diff reads both nodes' bundles: the same machine, no warning.
	d, err := f.vera.NodeDiff(f.ctx, "web-1", "web-2", ro.ID)
	if err != nil || len(d.Warnings) != 0 {
		t.Fatalf("diff with bundles: %+v %v", d, err)
	}
	for _, s := range d.Sections {
		if s.Dimension == "libraries" || s.Dimension == "mounts" || s.Dimension == "network" {
			t.Errorf("same machine, yet %s differs: %+v", s.Dimension, s.Differences)
		}
	}

	// On demand: a viewer may not ask; an operator's request is answered.
	if _, err := f.vera.AskEvidence(f.ctx, "web-2", api.EvidenceAsk{}); !isStatus(err, 403) {
		t.Fatalf("viewer asked for evidence: %v", err)
	}
	for _, bad := range []api.EvidenceAsk{
		{Endpoints: []string{"a:443"}, CAFiles: map[string]string{"b:443": "/etc/ca.pem"}},
		{Endpoints: []string{"a:443"}, CAFiles: map[string]string{"a:443": "ca.pem"}},
	} {
		if _, err := f.alice.AskEvidence(f.ctx, "web-2", bad); !isStatus(err, 400) || !strings.Contains(err.Error(), "caFiles") {
			t.Errorf("ask %+v: %v, want a 400 naming caFiles", bad, err)
		}
	}
	if _, err := f.alice.AskEvidence(f.ctx, "web-2", api.EvidenceAsk{Binaries: []string{"usr/sbin/nginx"}}); !isStatus(err, 400) || !strings.Contains(err.Error(), "binaries") {
		t.Errorf("ask for a relative binary: %v, want a 400 naming binaries", err)
	}
	req, err := f.alice.AskEvidence(f.ctx, "web-2", api.EvidenceAsk{Units: []string{"ssh.service"}})
	if err != nil {
		t.Fatal(err)
	}
	var st api.EvidenceRequestStatus
	gatetest.Eventually(t, 30*time.Second, "on-demand request answered", func() (bool, string) {
		st, err = f.vera.EvidenceRequest(f.ctx, req.ID)
		return err == nil && st.Bundle != "", fmt.Sprintf("%+v %v", st, err)
	})
	od, err := f.vera.GetEvidence(f.ctx, st.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	if od.Reason != evidence.ReasonOnDemand || od.Request != req.ID || od.Bundle.Section("kernel") == nil {
		t.Fatalf("on-demand bundle %+v", od.EvidenceSummary)
	}
	if _, err := f.vera.AskEvidence(f.ctx, "nope", api.EvidenceAsk{}); err == nil {
		t.Fatal("asked evidence of an unknown node")
	}
}

func isStatus(err error, code int) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == code
}
