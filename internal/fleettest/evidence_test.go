package fleettest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/evidence"
)

// TestDebianFleetEvidence: on real Debian containers with the real agent,
// a node upgraded to the bad drover-testsvc 1.2 fails its http probe;
// its agent captures an evidence bundle before the rollback (apt's
// downgrade), and the server stores it with real sections: the package
// change, the kernel and boot ID, routes, MTUs, mounts, the resolver, IO
// counters and connections. The healthy node answers an on-demand capture;
// drover diff reads both. It logs the capture time per node and the
// bundles' sizes.
func TestDebianFleetEvidence(t *testing.T) {
	nodes := []*node{
		{name: "e1", suite: "bookworm", zone: "a", role: "fleet"},
		{name: "e2", suite: "bookworm", zone: "a", role: "fleet"},
	}
	f := setup(t, nodes)
	ctx := context.Background()
	id := f.create(t, planSpec{Name: "evidence-1-2", Selector: `node.id == "e1"`, Version: "1.2", Deadline: "10s", OnBreach: "rollback-wave"})
	ro := f.waitTerminal(t, id, 4*time.Minute)
	if ro.State != engine.RolloutHalted {
		t.Fatalf("rollout %s, want halted:\n%s", ro.State, describeRollout(ro))
	}
	if got := f.installed(t, nodes[0]); got != "installed 1.0" {
		t.Errorf("e1 is %q after the rollback, want installed 1.0", got)
	}
	list, err := f.api.ListEvidence(ctx, "e1", id)
	if err != nil || len(list.Bundles) != 1 {
		t.Fatalf("e1's bundles in %s: %+v %v", id, list, err)
	}
	sum := list.Bundles[0]
	got, err := f.api.GetEvidence(ctx, sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := got.Bundle
	t.Logf("e1 failure bundle: captured in %s, %d bytes (sha256 %s)", b.Took, sum.Size, sum.SHA256)
	for _, s := range b.Sections {
		t.Logf("  %-14s %6s %5d bytes truncated=%v error=%q", s.Name, s.Took, len(s.Data), s.Truncated, s.Error)
	}
	if sum.Reason != evidence.ReasonFailure || sum.Step == "" || b.Took <= 0 || b.Took > evidence.DefaultDeadline || sum.Size > evidence.MaxBundleBytes {
		t.Errorf("bundle %+v took %s", sum, b.Took)
	}
	var pk []evidence.PackageChange
	if !b.Decode("packages", &pk) || len(pk) == 0 || pk[0].Name != testPackage || pk[0].Before != "1.0" || pk[0].After != "1.2" {
		t.Errorf("packages: %+v", pk)
	}
	var k evidence.Kernel
	if !b.Decode("kernel", &k) || k.Release == "" || len(k.BootID) != 36 {
		t.Errorf("kernel: %+v", k)
	}
	var routes []evidence.Route
	var ifs []evidence.Interface
	var mounts []evidence.Mount
	var r evidence.Resolver
	var io []evidence.DiskIO
	var conns map[string]int
	if !b.Decode("routes", &routes) || len(routes) == 0 {
		t.Errorf("routes: %+v", b.Section("routes"))
	}
	if !b.Decode("interfaces", &ifs) || len(ifs) < 2 {
		t.Errorf("interfaces: %+v", b.Section("interfaces"))
	}
	if !b.Decode("mounts", &mounts) || len(mounts) < 5 {
		t.Errorf("mounts: %+v", b.Section("mounts"))
	}
	if !b.Decode("resolver", &r) || r.Conf == nil || len(r.Conf.Nameservers) == 0 {
		t.Errorf("resolver: %+v", b.Section("resolver"))
	}
	if !b.Decode("io", &io) {
		t.Errorf("io: %+v", b.Section("io"))
	}
	if !b.Decode("connections", &conns) || conns["ESTABLISHED"] == 0 {
		t.Errorf("connections (the agent's own to the server at least): %+v", conns)
	}
	// The audit log holds the hash.
	entries := f.audit(t, id)
	found := false
	for _, e := range entries {
		found = found || (e.Action == "node.evidence" && strings.Contains(string(e.Detail), sum.SHA256))
	}
	if !found {
		t.Errorf("no node.evidence audit entry with %s", sum.SHA256)
	}

	// On demand from the healthy node, then a diff that reads both.
	req, err := f.api.AskEvidence(ctx, "e2", api.EvidenceAsk{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var st api.EvidenceRequestStatus
	for st.Bundle == "" {
		if time.Now().After(deadline) {
			t.Fatalf("e2 did not answer the on-demand capture: %+v %v", st, err)
		}
		time.Sleep(300 * time.Millisecond)
		st, err = f.api.EvidenceRequest(ctx, req.ID)
	}
	od, err := f.api.GetEvidence(ctx, st.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("e2 on-demand bundle: captured in %s, %d bytes; asked to stored %s", od.Bundle.Took, od.Size, od.StoredAt.Sub(req.AskedAt).Round(time.Millisecond))
	d, err := f.api.NodeDiff(ctx, "e1", "e2", id)
	if err != nil || len(d.Warnings) != 0 {
		t.Fatalf("diff: %+v %v", d, err)
	}
	for _, s := range d.Sections {
		t.Logf("diff %s/%s: %+v", s.Tier, s.Dimension, s.Differences)
	}
}
