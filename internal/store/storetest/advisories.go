package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/store"
)

func runAdvisories(t *testing.T, h func(f func(t *testing.T, s Backend)) func(t *testing.T)) {
	t.Run("AdvisoryImport", h(testAdvisoryImport))
	t.Run("AdvisoryImportAtomic", h(testAdvisoryImportAtomic))
	t.Run("AdvisoryList", h(testAdvisoryList))
	t.Run("ExposureHistory", h(testExposureHistory))
}

func catalogOf(t *testing.T, s store.Store) store.Advisories {
	t.Helper()
	c, ok := store.AsAdvisories(s)
	if !ok {
		t.Fatalf("store %T keeps no advisory catalog", s)
	}
	return c
}

// sampleAdvisories are three real advisories as the parsers read them.
func sampleAdvisories() []advisory.Advisory {
	day := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	return []advisory.Advisory{
		{ID: "DSA-5532-1", Aliases: []string{"CVE-2023-5363"}, Summary: "openssl - security update", Severity: advisory.SeverityHigh,
			CVSSScore: 7.5, CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", Published: day("2023-10-24"), Modified: day("2023-10-25"), Source: "osv",
			Affected: []advisory.Fix{{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.11-1~deb12u2"}}},
		{ID: "RHSA-2024:2447", Aliases: []string{"CVE-2023-5678", "CVE-2024-0727"}, Severity: advisory.SeverityLow, Published: day("2024-04-30"), Modified: day("2024-04-30"), Source: "csaf",
			Affected: []advisory.Fix{{Ecosystem: "rhel:9", Package: "openssl", Fixed: "1:3.0.7-27.el9"}}},
		{ID: "msrc_CVE-2023-38148", Aliases: []string{"CVE-2023-38148", "KB5030216"}, Severity: advisory.SeverityHigh, CVSSScore: 8.8, Published: day("2023-09-12"), Modified: day("2023-09-12"),
			Source: "csaf", RebootRequired: true, Affected: []advisory.Fix{{Ecosystem: "windows:10.0.20348", Fixed: "10.0.20348.1970", KB: "KB5030216"}}},
	}
}

func advisoryAudits(t *testing.T, s Backend) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	for _, e := range get(s.ListAudit(context.Background(), 0, 100000, ""))(t) {
		if e.Action == "advisory.import" {
			out = append(out, e)
		}
	}
	return out
}

// testAdvisoryImport: added, then the same again changes nothing (and
// writes no audit entry), a newer modified replaces, an older one is
// kept out; lookup by ID and by alias.
func testAdvisoryImport(t *testing.T, s Backend) {
	ctx := context.Background()
	c := catalogOf(t, s)
	meta := store.AdvisoryImport{Actor: "alice", Sources: []string{"a.json"}, Hash: "abc"}
	res := get(c.ImportAdvisories(ctx, sampleAdvisories(), meta))(t)
	if res != (store.AdvisoryImportResult{Added: 3}) {
		t.Fatalf("first import %+v", res)
	}
	res = get(c.ImportAdvisories(ctx, sampleAdvisories(), meta))(t)
	if res != (store.AdvisoryImportResult{Unchanged: 3}) {
		t.Fatalf("re-import %+v", res)
	}
	audits := advisoryAudits(t, s)
	if len(audits) != 1 || audits[0].Actor != "alice" {
		t.Fatalf("audit entries %+v", audits)
	}
	var d map[string]any
	if err := json.Unmarshal(audits[0].Detail, &d); err != nil || d["added"] != float64(3) || d["sha256"] != "abc" {
		t.Fatalf("audit detail %s", audits[0].Detail)
	}

	newer := sampleAdvisories()[:1]
	newer[0].Modified = newer[0].Modified.Add(24 * time.Hour)
	newer[0].Aliases = []string{"CVE-2023-5363", "CVE-2023-5678"}
	newer[0].Affected[0].Fixed = "3.0.11-1~deb12u3"
	older := sampleAdvisories()[1:2]
	older[0].Modified = older[0].Modified.Add(-24 * time.Hour)
	older[0].Severity = advisory.SeverityCritical
	res = get(c.ImportAdvisories(ctx, append(newer, older...), meta))(t)
	if res != (store.AdvisoryImportResult{Updated: 1, Older: 1}) {
		t.Fatalf("update import %+v", res)
	}
	a := get(c.GetAdvisory(ctx, "DSA-5532-1"))(t)
	if a.Affected[0].Fixed != "3.0.11-1~deb12u3" || !a.Modified.Equal(newer[0].Modified) {
		t.Fatalf("updated advisory %+v", a)
	}
	if a := get(c.GetAdvisory(ctx, "RHSA-2024:2447"))(t); a.Severity != advisory.SeverityLow {
		t.Fatalf("an older modified replaced the stored advisory: %+v", a)
	}
	// By alias, case-insensitively; the replaced aliases are reindexed.
	if a := get(c.GetAdvisory(ctx, "kb5030216"))(t); a.ID != "msrc_CVE-2023-38148" {
		t.Fatalf("by KB: %s", a.ID)
	}
	if a := get(c.GetAdvisory(ctx, "CVE-2023-5678"))(t); a.ID != "DSA-5532-1" { // published before RHSA-2024:2447
		t.Fatalf("by CVE: %s", a.ID)
	}
	if _, err := c.GetAdvisory(ctx, "CVE-1999-0001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	// One ID twice in one import: the second is judged against the first.
	first, second := sampleAdvisories()[0], sampleAdvisories()[0]
	first.ID, second.ID = "DSA-9999-1", "DSA-9999-1"
	second.Modified = first.Modified.Add(time.Hour)
	second.Summary = "revised"
	res = get(c.ImportAdvisories(ctx, []advisory.Advisory{first, second, first}, meta))(t)
	if res != (store.AdvisoryImportResult{Added: 1, Updated: 1, Older: 1}) {
		t.Fatalf("duplicates in one import: %+v", res)
	}
	if a := get(c.GetAdvisory(ctx, "DSA-9999-1"))(t); a.Summary != "revised" {
		t.Fatalf("duplicate: %+v", a)
	}
}

// testAdvisoryImportAtomic: one invalid advisory refuses the import;
// nothing of it is stored.
func testAdvisoryImportAtomic(t *testing.T, s Backend) {
	ctx := context.Background()
	c := catalogOf(t, s)
	advs := sampleAdvisories()
	advs[2].Affected[0].Fixed = "not a build"
	if _, err := c.ImportAdvisories(ctx, advs, store.AdvisoryImport{Actor: "alice"}); err == nil {
		t.Fatal("an invalid advisory was imported")
	}
	if got := get(c.ListAdvisories(ctx, store.AdvisoryQuery{}))(t); len(got) != 0 {
		t.Fatalf("half an import stored: %d advisories", len(got))
	}
	if len(advisoryAudits(t, s)) != 0 {
		t.Fatal("a refused import was audited")
	}
}

func testAdvisoryList(t *testing.T, s Backend) {
	ctx := context.Background()
	c := catalogOf(t, s)
	get(c.ImportAdvisories(ctx, sampleAdvisories(), store.AdvisoryImport{Actor: "alice"}))(t)
	ids := func(q store.AdvisoryQuery) string {
		var out string
		for _, a := range get(c.ListAdvisories(ctx, q))(t) {
			out += a.ID + " "
		}
		return out
	}
	for _, c := range []struct {
		q    store.AdvisoryQuery
		want string
	}{
		{store.AdvisoryQuery{}, "DSA-5532-1 RHSA-2024:2447 msrc_CVE-2023-38148 "},
		{store.AdvisoryQuery{MinSeverity: "high"}, "DSA-5532-1 msrc_CVE-2023-38148 "},
		{store.AdvisoryQuery{Ecosystem: "rhel:9"}, "RHSA-2024:2447 "},
		{store.AdvisoryQuery{Ecosystem: "windows"}, "msrc_CVE-2023-38148 "},
		{store.AdvisoryQuery{ID: "cve-2024-0727"}, "RHSA-2024:2447 "},
		{store.AdvisoryQuery{ID: "DSA-5532-1", MinSeverity: "critical"}, ""},
		{store.AdvisoryQuery{After: "DSA-5532-1", Limit: 1}, "RHSA-2024:2447 "},
	} {
		if got := ids(c.q); got != c.want {
			t.Errorf("ListAdvisories(%+v) = %q, want %q", c.q, got, c.want)
		}
	}
}

// testExposureHistory: periods open when exposure is first recorded,
// keep their first sighting, close when a later computation no longer
// finds the node exposed; a computation against one advisory leaves the
// others alone; reboot debt keeps its start until paid.
func testExposureHistory(t *testing.T, s Backend) {
	ctx := context.Background()
	_ = get(catalogOf(t, s).ImportAdvisories(ctx, sampleAdvisories(), store.AdvisoryImport{Actor: "alice"}))(t)
	h, found := store.AsExposureHistory(s)
	if !found {
		t.Fatalf("store %T keeps no exposure history", s)
	}
	ok(t, h.RecordExposure(ctx, at(0), "", []store.ExposureObservation{
		{Node: "debian-01", Exposed: map[string]string{"DSA-5532-1": "affected"}, RebootDebt: true, Running: "6.1.0-25-amd64", Installed: "6.1.0-27-amd64"},
		{Node: "rhel-01", Exposed: map[string]string{"RHSA-2024:2447": "affected"}},
		{Node: "win-01", Exposed: map[string]string{"msrc_CVE-2023-38148": "fixed-not-running"}},
	}))
	// An hour later: debian-01 still exposed (now a reboot away), rhel-01
	// fixed; win-01 judged against DSA-5532-1 only: its Windows period stays.
	ok(t, h.RecordExposure(ctx, at(time.Hour), "", []store.ExposureObservation{
		{Node: "debian-01", Exposed: map[string]string{"DSA-5532-1": "fixed-not-running"}, RebootDebt: true},
		{Node: "rhel-01"},
	}))
	ok(t, h.RecordExposure(ctx, at(2*time.Hour), "DSA-5532-1", []store.ExposureObservation{{Node: "win-01"}}))
	st := get(h.ExposureState(ctx))(t)
	if len(st.Open) != 2 || st.Open[0].Advisory != "DSA-5532-1" || st.Open[0].Status != "fixed-not-running" || !st.Open[0].Since.Equal(at(0)) ||
		st.Open[0].Severity != "high" || st.Open[1].Node != "win-01" {
		t.Fatalf("open exposures: %+v", st.Open)
	}
	if st.Remediated != 1 || st.MeanToFix != time.Hour {
		t.Fatalf("remediated %d, mean %v; want 1 in 1h", st.Remediated, st.MeanToFix)
	}
	if len(st.RebootDebt) != 1 || st.RebootDebt[0].Node != "debian-01" || !st.RebootDebt[0].Since.Equal(at(0)) {
		t.Fatalf("reboot debt: %+v", st.RebootDebt)
	}
	// Exposed again later: a new period; the debt is paid.
	ok(t, h.RecordExposure(ctx, at(3*time.Hour), "", []store.ExposureObservation{{Node: "rhel-01", Exposed: map[string]string{"RHSA-2024:2447": "affected"}},
		{Node: "debian-01"}}))
	st = get(h.ExposureState(ctx))(t)
	if len(st.Open) != 2 || st.Remediated != 2 || len(st.RebootDebt) != 0 {
		t.Fatalf("after: open %+v, remediated %d, debt %+v", st.Open, st.Remediated, st.RebootDebt)
	}
	var rhel store.OpenExposure
	for _, o := range st.Open {
		if o.Node == "rhel-01" {
			rhel = o
		}
	}
	if !rhel.Since.Equal(at(3 * time.Hour)) {
		t.Fatalf("reopened period: %+v", rhel)
	}
}
