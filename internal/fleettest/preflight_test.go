package fleettest

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// TestDebianFleetPreflight is the pre-flight scenario on real
// Debian containers with the real agent and the real apt: zone b's mirror
// of the repository lacks drover-testsvc 1.1. The node pre-flight (apt-cache
// policy, apt-cache show, df, apt-mark showhold, apt-get -s) finds it on
// zone b's nodes before anything changes: with onFail: block the rollout
// does not start and no node changes; with onFail: exclude zone b is
// skipped with its reason and zone a is upgraded. A dry run with
// --preflight asks the same nodes first. It logs the pre-flight time per
// node and for the fleet.
func TestDebianFleetPreflight(t *testing.T) {
	nodes := []*node{
		{name: "a1", suite: "bookworm", zone: "a", role: "fleet"},
		{name: "a2", suite: "trixie", zone: "a", role: "fleet"},
		{name: "b1", suite: "bookworm", zone: "b", role: "fleet"},
		{name: "b2", suite: "bullseye", zone: "b", role: "fleet"},
	}
	f := setup(t, nodes)
	ctx := context.Background()
	mirror := f.zoneMirror(t, "1.1")
	for _, n := range nodes {
		if n.zone == "b" {
			f.mustSh(t, n, `echo "deb [trusted=yes] `+mirror+` ./" >/etc/apt/sources.list.d/drover-fleettest.list && apt-get update -qq`)
		}
		if got := f.installed(t, n); got != "installed 1.0" {
			t.Fatalf("%s starts with %q, want installed 1.0", n.name, got)
		}
	}
	planText := func(name, onFail string) string {
		return planSpec{Name: name, Selector: fleetSelector, Version: "1.1",
			Waves: "  - name: canary\n    nodes: 1\n  - name: rest\n"}.yaml() + "preflight:\n  onFail: " + onFail + "\n  timeout: 2m\n"
	}

	t.Run("dry-run", func(t *testing.T) {
		res, err := f.api.DryRunPreflight(ctx, "pf-dry.yaml", planText("pf-dry", "block"))
		if err != nil {
			t.Fatal(err)
		}
		checkPreflight(t, res.Preflight)
		if !strings.Contains(res.Text, "pre-flight failed on 2 of 4 nodes") {
			t.Errorf("the rehearsal does not replay the nodes' answers:\n%s", res.Text)
		}
	})
	t.Run("block", func(t *testing.T) {
		id := f.createText(t, "pf-block", planText("pf-block", "block"))
		ro := f.waitTerminal(t, id, 3*time.Minute)
		if ro.State != engine.RolloutFailed || !strings.Contains(ro.Reason, "pre-flight failed on 2 of 4 nodes") ||
			!strings.Contains(ro.Reason, "nothing was changed") {
			t.Fatalf("rollout %s: %s", ro.State, ro.Reason)
		}
		for _, n := range ro.Nodes {
			if n.Phase != engine.PhasePending {
				t.Errorf("node %s %s; want pending, never started", n.ID, n.Phase)
			}
		}
		for _, n := range nodes {
			if got := f.installed(t, n); got != "installed 1.0" {
				t.Errorf("%s is %q after a blocked rollout, want installed 1.0", n.name, got)
			}
		}
		v, err := f.api.Preflight(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		checkPreflight(t, &v)
	})
	t.Run("exclude", func(t *testing.T) {
		id := f.createText(t, "pf-exclude", planText("pf-exclude", "exclude"))
		ro := f.waitTerminal(t, id, 4*time.Minute)
		if ro.State != engine.RolloutSucceeded {
			t.Fatalf("rollout %s: %s\n%s", ro.State, ro.Reason, describeRollout(ro))
		}
		for _, n := range ro.Nodes {
			want, phase := "installed 1.1", engine.PhaseSucceeded
			if strings.HasPrefix(n.ID, "b") {
				want, phase = "installed 1.0", engine.PhaseSkipped
				if !strings.Contains(n.Reason, "excluded by pre-flight: ") || !strings.Contains(n.Reason, "=1.1: version not available") {
					t.Errorf("node %s skipped for %q", n.ID, n.Reason)
				}
			}
			if n.Phase != phase {
				t.Errorf("node %s %s, want %s", n.ID, n.Phase, phase)
			}
			if got := f.installed(t, f.byName[n.ID]); got != want {
				t.Errorf("%s is %q, want %s", n.ID, got, want)
			}
		}
	})
}

// checkPreflight checks a pre-flight of the fleet: zone a would upgrade
// drover-testsvc 1.0 -> 1.1 (apt-get -s says so), zone b lacks 1.1. It
// logs the time each node took and the fleet's, ask to last answer.
func checkPreflight(t *testing.T, v *api.PreflightView) {
	t.Helper()
	if v == nil || v.Asked != 4 || v.Passed != 2 || v.Failed != 2 {
		t.Fatalf("pre-flight %+v", v)
	}
	var last time.Time
	for _, n := range v.Nodes {
		if n.Report == nil || len(n.Report.Actions) != 1 {
			t.Fatalf("node %s: no report: %+v", n.Node, n)
		}
		a := n.Report.Actions[0]
		if strings.HasPrefix(n.Node, "b") {
			if n.State != "failed" || !regexp.MustCompile(testPackage+`=1\.1: version not available \(available: [^)]*1\.0`).MatchString(n.Reason) {
				t.Errorf("zone b node %s: %s %q", n.Node, n.State, n.Reason)
			}
		} else {
			want := api.PlannedChange{Op: "upgrade", Name: testPackage, From: "1.0", To: "1.1"}
			if n.State != "passed" || a.Driver != "apt" || len(a.Planned) != 1 || a.Planned[0] != want || a.BytesNeeded <= 0 || a.BytesFree <= 0 || a.Reboot {
				t.Errorf("zone a node %s: %s %+v", n.Node, n.State, a)
			}
		}
		t.Logf("pre-flight of %s: %s in %s (apt: %s)", n.Node, n.State, n.Report.Took.Round(time.Millisecond), a.Summary)
		if n.AnsweredAt.After(last) {
			last = n.AnsweredAt
		}
	}
	t.Logf("pre-flight of the fleet (4 nodes): %s from the ask to the last answer", last.Sub(v.AskedAt).Round(time.Millisecond))
}

// zoneMirror serves a copy of the test repository without version
// missing (as a zone's mirror that has not synced it yet) and returns
// its URL.
func (f *fleet) zoneMirror(t *testing.T, missing string) string {
	t.Helper()
	src, dir := filepath.Join(f.dir, "repo"), filepath.Join(f.dir, "repo-mirror")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	idx, err := os.ReadFile(filepath.Join(src, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	testsvc := 0 // the repository also holds the kernel test's packages
	for _, stanza := range strings.Split(strings.TrimSpace(string(idx)), "\n\n") {
		if strings.Contains(stanza, "\nVersion: "+missing+"\n") {
			continue
		}
		kept = append(kept, stanza)
		if strings.HasPrefix(stanza, "Package: drover-testsvc\n") {
			testsvc++
		}
		for _, line := range strings.Split(stanza, "\n") {
			if name, ok := strings.CutPrefix(line, "Filename: "); ok {
				name = strings.TrimPrefix(name, "./")
				if err := os.Link(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if testsvc != len(repoVersions)-1 {
		t.Fatalf("mirror keeps %d versions of drover-testsvc, want %d", testsvc, len(repoVersions)-1)
	}
	data := []byte(strings.Join(kept, "\n\n") + "\n")
	if err := os.WriteFile(filepath.Join(dir, "Packages"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(data); err != nil || zw.Close() != nil {
		t.Fatalf("gzip Packages: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return serveDir(t, f.gateway+":0", dir, func(s string) {
		f.mu.Lock()
		f.repoLog = append(f.repoLog, "mirror: "+s)
		f.mu.Unlock()
	})
}

// createText creates a rollout from a plan's text and returns its ID.
func (f *fleet) createText(t *testing.T, name, text string) string {
	t.Helper()
	ro, err := f.api.CreateRollout(context.Background(), name+".yaml", text)
	if err != nil {
		t.Fatalf("create rollout %s: %v\nplan:\n%s", name, err, text)
	}
	t.Logf("rollout %s (%s): %d nodes, state %s", ro.ID, name, ro.Total, ro.State)
	return ro.ID
}
