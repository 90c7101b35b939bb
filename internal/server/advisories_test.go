package server

import (
	"context"
	"encoding/json"
	dto "github.com/prometheus/client_model/go"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

func advisoryFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../advisory/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAdvisoryAPI: import by an operator (not a viewer), one document
// or named documents all or nothing, re-import changes nothing, audit,
// list filters and lookup by alias.
func TestAdvisoryAPI(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	dsa := advisoryFixture(t, "osv-dsa-5532-1.json")
	if st, _, _ := call(t, h, "POST", "/v1/advisories", vera, dsa); st != 403 {
		t.Fatalf("viewer importing: %d", st)
	}
	st, ae, body := call(t, h, "POST", "/v1/advisories", alice, dsa)
	if st != 200 {
		t.Fatalf("import: %d %v", st, ae)
	}
	if r := decodeJSON[api.AdvisoryImportResult](t, body); r.Added != 1 || r.Advisories != 1 || len(r.SHA256) != 64 {
		t.Fatalf("import result %+v", r)
	}
	req := api.AdvisoryImportRequest{Documents: []api.AdvisoryDocument{
		{Name: "usn.json", Content: advisoryFixture(t, "osv-usn-6477-1.json")},
		{Name: "rhsa.json", Content: advisoryFixture(t, "csaf-rhsa-2024_2447.json")},
		{Name: "ms.json", Content: advisoryFixture(t, "csaf-msrc-cve-2023-38148.json")},
		{Name: "dsa.json", Content: dsa},
	}}
	bad := req
	bad.Documents = append(append([]api.AdvisoryDocument{}, req.Documents...), api.AdvisoryDocument{Name: "broken.json", Content: json.RawMessage(`{"id":"X-1","modified":"never"}`)})
	st, ae, _ = call(t, h, "POST", "/v1/advisories", alice, bad)
	if st != 400 || !strings.Contains(ae.Error, "broken.json: modified") {
		t.Fatalf("bad document: %d %v", st, ae)
	}
	if _, _, body := call(t, h, "GET", "/v1/advisories", vera, nil); len(decodeJSON[api.AdvisoryList](t, body).Advisories) != 1 {
		t.Fatalf("a refused import stored something: %s", body)
	}
	st, ae, body = call(t, h, "POST", "/v1/advisories", alice, req)
	if r := decodeJSON[api.AdvisoryImportResult](t, body); st != 200 || r.Added != 3 || r.Unchanged != 1 {
		t.Fatalf("bundle: %d %v %+v", st, ae, r)
	}
	_, _, body = call(t, h, "POST", "/v1/advisories", alice, req)
	if r := decodeJSON[api.AdvisoryImportResult](t, body); r.Unchanged != 4 || r.Added+r.Updated != 0 {
		t.Fatalf("re-import %+v", r)
	}
	_, _, body = call(t, h, "GET", "/v1/audit", vera, nil)
	if n := strings.Count(string(body), `"advisory.import"`); n != 2 {
		t.Fatalf("%d advisory.import audit entries, want 2 (a re-import changing nothing is not audited)", n)
	}

	ids := func(q string) string {
		st, ae, body := call(t, h, "GET", "/v1/advisories"+q, vera, nil)
		if st != 200 {
			t.Fatalf("list %s: %d %v", q, st, ae)
		}
		var out []string
		for _, a := range decodeJSON[api.AdvisoryList](t, body).Advisories {
			out = append(out, a.ID)
		}
		return strings.Join(out, " ")
	}
	for q, want := range map[string]string{
		"":                          "DSA-5532-1 RHSA-2024:2447 USN-6477-1 msrc_CVE-2023-38148",
		"?severity=high":            "DSA-5532-1 msrc_CVE-2023-38148",
		"?ecosystem=ubuntu":         "USN-6477-1",
		"?ecosystem=debian:12":      "DSA-5532-1",
		"?id=CVE-2024-0727":         "RHSA-2024:2447",
		"?limit=1&after=DSA-5532-1": "RHSA-2024:2447",
	} {
		if got := ids(q); got != want {
			t.Errorf("list %q = %q, want %q", q, got, want)
		}
	}
	if st, _, _ := call(t, h, "GET", "/v1/advisories?severity=urgent", vera, nil); st != 400 {
		t.Fatalf("bad severity: %d", st)
	}
	st, _, body = call(t, h, "GET", "/v1/advisories/KB5030216", vera, nil)
	if a := decodeJSON[api.Advisory](t, body); st != 200 || a.ID != "msrc_CVE-2023-38148" || !a.RebootRequired || a.Affected[0].Fixed != "10.0.20348.1970" {
		t.Fatalf("by KB: %d %+v", st, a)
	}
	if st, _, _ := call(t, h, "GET", "/v1/advisories/RHSA-2024:2447", vera, nil); st != 200 {
		t.Fatalf("by ID with a colon: %d", st)
	}
	if st, _, _ := call(t, h, "GET", "/v1/advisories/CVE-1999-0001", vera, nil); st != 404 {
		t.Fatalf("unknown: %d", st)
	}
}

// TestExposureAPI: per advisory and across the catalog, with a
// selector, from the nodes' stored facts.
func TestExposureAPI(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	now := time.Now()
	for _, n := range []store.NodeRecord{
		{ID: "deb-old", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Packages: map[string]string{"openssl": "3.0.11-1~deb12u1"}}, Labels: map[string]string{"zone": "a"}},
		{ID: "deb-new", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Packages: map[string]string{"openssl": "3.0.15-1~deb12u1"}}, Labels: map[string]string{"zone": "b"}},
		{ID: "rhel-old", Facts: fleet.Facts{OS: fleet.OS{Family: "rhel", Version: "9.4"}, Packages: map[string]string{"openssl": "1:3.0.7-24.el9"}}, Labels: map[string]string{"zone": "a"}},
		{ID: "win-kb", Facts: fleet.Facts{OS: fleet.OS{Family: "windows", Version: "10.0.20348"}, Packages: map[string]string{"KB5030216": "installed"}, RebootRequired: true}, Labels: map[string]string{"zone": "a"}},
		{ID: "mystery", Labels: map[string]string{"zone": "a"}},
	} {
		n.RegisteredAt, n.LastSeen, n.LeaseUntil = now, now, now.Add(time.Hour)
		if _, err := s.st.UpsertNode(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
	req := api.AdvisoryImportRequest{Documents: []api.AdvisoryDocument{
		{Name: "dsa.json", Content: advisoryFixture(t, "osv-dsa-5532-1.json")},
		{Name: "rhsa.json", Content: advisoryFixture(t, "csaf-rhsa-2024_2447.json")},
		{Name: "ms.json", Content: advisoryFixture(t, "csaf-msrc-cve-2023-38148.json")},
	}}
	if st, ae, _ := call(t, h, "POST", "/v1/advisories", alice, req); st != 200 {
		t.Fatalf("import: %d %v", st, ae)
	}
	status := func(rep api.ExposureReport) string {
		var out []string
		for _, n := range rep.Nodes {
			out = append(out, n.Node+"="+n.Status)
		}
		return strings.Join(out, " ")
	}
	st, ae, body := call(t, h, "GET", "/v1/exposure?advisory=CVE-2023-5363", vera, nil)
	rep := decodeJSON[api.ExposureReport](t, body)
	if st != 200 || rep.Advisory != "DSA-5532-1" ||
		status(rep) != "deb-new=not-affected deb-old=affected mystery=unknown rhel-old=not-affected win-kb=not-affected" {
		t.Fatalf("one advisory: %d %v %s", st, ae, status(rep))
	}
	if rep.Nodes[1].Packages[0].Fixed != "3.0.11-1~deb12u2" || rep.Counts["affected"] != 1 {
		t.Fatalf("deb-old: %+v counts %v", rep.Nodes[1], rep.Counts)
	}
	_, _, body = call(t, h, "GET", "/v1/exposure?selector="+url.QueryEscape(`node.labels.zone == "a"`), vera, nil)
	rep = decodeJSON[api.ExposureReport](t, body)
	if status(rep) != "deb-old=affected mystery=unknown rhel-old=affected win-kb=fixed-not-running" {
		t.Fatalf("catalog, zone a: %s", status(rep))
	}
	if a := rep.Nodes[2].Advisories; len(a) != 1 || a[0].Advisory != "RHSA-2024:2447" || a[0].Severity != "low" {
		t.Fatalf("rhel-old advisories %+v", a)
	}
	if st, _, _ := call(t, h, "GET", "/v1/exposure?advisory=NOPE-1", vera, nil); st != 404 {
		t.Fatalf("unknown advisory: %d", st)
	}
	if st, _, _ := call(t, h, "GET", "/v1/exposure?selector=node.nope", vera, nil); st != 400 {
		t.Fatalf("bad selector: %d", st)
	}
}

// TestExposureSummaryAPI: each computation of exposure records it; a
// node found fixed later closes its exposure (time to remediate), reboot
// debt starts when first seen and the summary tells both.
func TestExposureSummaryAPI(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	clock := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	upsert := func(id string, f fleet.Facts) {
		t.Helper()
		if _, err := s.st.UpsertNode(context.Background(), store.NodeRecord{ID: id, Facts: f, RegisteredAt: clock, LastSeen: clock, LeaseUntil: clock.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	upsert("deb-old", fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-25-amd64",
		Packages: map[string]string{"openssl": "3.0.11-1~deb12u1", "linux-image-6.1.0-25-amd64": "6.1.106-3", "linux-image-6.1.0-27-amd64": "6.1.115-1"}})
	upsert("rhel-old", fleet.Facts{OS: fleet.OS{Family: "rhel", Version: "9.4"}, Packages: map[string]string{"openssl": "1:3.0.7-24.el9"}})
	upsert("win", fleet.Facts{OS: fleet.OS{Family: "windows", Version: "10.0.20348"}, Packages: map[string]string{"KB5030216": "installed"}, RebootRequired: true})
	req := api.AdvisoryImportRequest{Documents: []api.AdvisoryDocument{
		{Name: "dsa.json", Content: advisoryFixture(t, "osv-dsa-5532-1.json")},
		{Name: "rhsa.json", Content: advisoryFixture(t, "csaf-rhsa-2024_2447.json")},
		{Name: "ms.json", Content: advisoryFixture(t, "csaf-msrc-cve-2023-38148.json")},
	}}
	if st, ae, _ := call(t, h, "POST", "/v1/advisories", alice, req); st != 200 {
		t.Fatalf("import: %d %v", st, ae)
	}
	if st, _, _ := call(t, h, "GET", "/v1/exposure", vera, nil); st != 200 {
		t.Fatalf("exposure: %d", st)
	}
	// Two days later rhel-old is fixed.
	clock = clock.Add(48 * time.Hour)
	upsert("rhel-old", fleet.Facts{OS: fleet.OS{Family: "rhel", Version: "9.4"}, Packages: map[string]string{"openssl": "1:3.0.7-27.el9"}})
	if st, _, _ := call(t, h, "GET", "/v1/exposure", vera, nil); st != 200 {
		t.Fatalf("exposure: %d", st)
	}
	st, ae, body := call(t, h, "GET", "/v1/exposure/summary", vera, nil)
	if st != 200 {
		t.Fatalf("summary: %d %v", st, ae)
	}
	sum := decodeJSON[api.ExposureSummary](t, body)
	if sum.Remediated != 1 || sum.MeanTimeToRemediateSeconds != 48*3600 {
		t.Fatalf("remediated %d in %vs, want 1 in 48h", sum.Remediated, sum.MeanTimeToRemediateSeconds)
	}
	if sum.ExposedNodes != 2 || len(sum.Advisories) != 2 || sum.Advisories[0].Advisory != "DSA-5532-1" || sum.Advisories[0].Counts["affected"] != 1 ||
		sum.Advisories[1].Counts["fixed-not-running"] != 1 {
		t.Fatalf("exposed: %d %+v", sum.ExposedNodes, sum.Advisories)
	}
	if len(sum.Nodes) != 2 || sum.Nodes[0].Days != 2 {
		t.Fatalf("days exposed: %+v", sum.Nodes)
	}
	if len(sum.RebootDebt) != 2 || sum.RebootDebtDays != 4 {
		t.Fatalf("reboot debt: %+v (%v days)", sum.RebootDebt, sum.RebootDebtDays)
	}
	for _, d := range sum.RebootDebt {
		if d.Node == "deb-old" && (d.Installed != "6.1.0-27-amd64" || d.Running != "6.1.0-25-amd64") {
			t.Fatalf("deb-old's debt: %+v", d)
		}
	}
	if sum.OldestOpenCritical != nil || sum.LivePatchCoverage != 0 {
		t.Fatalf("no critical, no live patch: %+v %v", sum.OldestOpenCritical, sum.LivePatchCoverage)
	}
	// The metrics read the same history.
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"drover_exposed_nodes", []string{"advisory=DSA-5532-1", "severity=high", "status=affected"}, 1},
		{"drover_mean_time_to_remediate_seconds", nil, 48 * 3600},
		{"drover_reboot_debt_nodes", nil, 2},
		{"drover_reboot_debt_seconds", nil, 4 * 86400},
		{"drover_livepatch_coverage_ratio", nil, 0},
		{"drover_oldest_open_critical_seconds", nil, 0},
	} {
		if v := gaugeValue(t, byName, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// gaugeValue is the gauge of family name whose labels include want
// ("k=v" pairs).
func gaugeValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
next:
	for _, m := range mfs[name].GetMetric() {
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == k && l.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no %s%v", name, want)
	return 0
}

// TestSummarizeExposure: live patch coverage counts the exposed nodes
// whose every open exposure is live-patched; the oldest open critical
// is the longest-open exposure to a critical advisory.
func TestSummarizeExposure(t *testing.T) {
	now := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	sum := summarizeExposure(store.ExposureState{Open: []store.OpenExposure{
		{Advisory: "USN-1", Severity: "critical", Node: "a", Status: "live-patched", Since: now.Add(-3 * day)},
		{Advisory: "USN-1", Severity: "critical", Node: "b", Status: "live-patched", Since: now.Add(-5 * day)},
		{Advisory: "USN-2", Severity: "high", Node: "b", Status: "affected", Since: now.Add(-9 * day)},
		{Advisory: "RHSA-1", Severity: "critical", Node: "c", Status: "affected", Since: now.Add(-4 * day)},
	}}, now)
	if sum.ExposedNodes != 3 || sum.LivePatchedNodes != 1 || sum.LivePatchCoverage != 1.0/3 {
		t.Errorf("coverage: %d of %d (%v)", sum.LivePatchedNodes, sum.ExposedNodes, sum.LivePatchCoverage)
	}
	if o := sum.OldestOpenCritical; o == nil || o.Advisory != "USN-1" || o.Node != "b" || o.AgeSeconds != (5*day).Seconds() {
		t.Errorf("oldest open critical: %+v", o)
	}
	if sum.Nodes[0].Node != "b" || sum.Nodes[0].Days != 9 || sum.Nodes[0].Advisories != 2 {
		t.Errorf("longest exposed: %+v", sum.Nodes[0])
	}
	if sum.Advisories[0].Advisory != "USN-1" || sum.Advisories[0].Counts["live-patched"] != 2 || sum.Advisories[2].Advisory != "USN-2" {
		t.Errorf("advisories: %+v", sum.Advisories)
	}
}
