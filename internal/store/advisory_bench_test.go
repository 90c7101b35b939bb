package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/advisory"
	"github.com/drover-dev/drover/internal/store"
)

// osvCatalog is a bundle of n OSV records shaped like Debian's and
// Ubuntu's (two or three releases, a CVE alias, a CVSS vector each).
func osvCatalog(n int) []byte {
	type ev map[string]string
	docs := make([]map[string]any, n)
	for i := range docs {
		aff := []map[string]any{}
		for _, eco := range []string{"Debian:11", "Debian:12", "Ubuntu:22.04:LTS"}[:2+i%2] {
			aff = append(aff, map[string]any{
				"package": map[string]string{"ecosystem": eco, "name": fmt.Sprintf("pkg%d", i%700)},
				"ranges":  []map[string]any{{"type": "ECOSYSTEM", "events": []ev{{"introduced": "0"}, {"fixed": fmt.Sprintf("1.%d.%d-1+deb12u%d", i%40, i%9, 1+i%5)}}}},
			})
		}
		docs[i] = map[string]any{
			"schema_version": "1.6.0", "id": fmt.Sprintf("DSA-%d-1", 10000+i), "related": []string{fmt.Sprintf("CVE-2026-%05d", i)},
			"published": "2026-01-02T03:04:05Z", "modified": "2026-02-03T04:05:06Z", "summary": fmt.Sprintf("pkg%d - security update", i%700),
			"severity": []map[string]string{{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}},
			"affected": aff,
		}
	}
	b, err := json.Marshal(docs)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkAdvisoryImport10k parses and imports a catalog of 10,000
// OSV advisories into an empty SQLite store (one transaction), then
// imports it again (every advisory unchanged). Reported as advisories/s.
func BenchmarkAdvisoryImport10k(b *testing.B) {
	const n = 10_000
	doc := osvCatalog(n)
	ctx := context.Background()
	var first, again time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := store.Open(ctx, filepath.Join(b.TempDir(), fmt.Sprintf("adv%d.db", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		c, _ := store.AsAdvisories(s)
		b.StartTimer()
		t0 := time.Now()
		advs, err := advisory.Parse("catalog.json", doc)
		if err != nil {
			b.Fatal(err)
		}
		res, err := c.ImportAdvisories(ctx, advs, store.AdvisoryImport{Actor: "bench"})
		if err != nil || res.Added != n {
			b.Fatalf("import: %+v %v", res, err)
		}
		t1 := time.Now()
		res, err = c.ImportAdvisories(ctx, advs, store.AdvisoryImport{Actor: "bench"})
		if err != nil || res.Unchanged != n {
			b.Fatalf("re-import: %+v %v", res, err)
		}
		first += t1.Sub(t0)
		again += time.Since(t1)
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/first.Seconds(), "advisories/s")
	b.ReportMetric(float64(n*b.N)/again.Seconds(), "reimported/s")
}

// BenchmarkRecordExposure10k records a whole-catalog computation of
// 10,000 nodes, each exposed to 5 advisories and 1 in 10 with reboot
// debt, into a SQLite store: first (every period opened), then again
// unchanged (every period updated), then with every node fixed (every
// period closed). Reported per computation.
func BenchmarkRecordExposure10k(b *testing.B) {
	const nodes, per = 10_000, 5
	ctx := context.Background()
	obs := func(exposed bool) []store.ExposureObservation {
		out := make([]store.ExposureObservation, nodes)
		for i := range out {
			out[i] = store.ExposureObservation{Node: fmt.Sprintf("node-%05d", i), Exposed: map[string]string{}, RebootDebt: i%10 == 0}
			if exposed {
				for j := range per {
					out[i].Exposed[fmt.Sprintf("DSA-%d-1", 10000+(i+j)%700)] = "affected"
				}
			}
		}
		return out
	}
	open, fixed := obs(true), obs(false)
	var first, again, closing, state time.Duration
	for i := 0; i < b.N; i++ {
		s, err := store.Open(ctx, filepath.Join(b.TempDir(), fmt.Sprintf("exp%d.db", i)), nil)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := store.AsExposureHistory(s)
		at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		for _, step := range []struct {
			o   []store.ExposureObservation
			d   *time.Duration
			off time.Duration
		}{{open, &first, 0}, {open, &again, time.Hour}, {fixed, &closing, 2 * time.Hour}} {
			t0 := time.Now()
			if err := h.RecordExposure(ctx, at.Add(step.off), "", step.o); err != nil {
				b.Fatal(err)
			}
			*step.d += time.Since(t0)
			if step.d == &again {
				t0 = time.Now()
				if _, err := h.ExposureState(ctx); err != nil {
					b.Fatal(err)
				}
				state += time.Since(t0)
			}
		}
		s.Close()
	}
	n := float64(b.N)
	b.ReportMetric(first.Seconds()/n, "open-s")
	b.ReportMetric(again.Seconds()/n, "update-s")
	b.ReportMetric(closing.Seconds()/n, "close-s")
	b.ReportMetric(state.Seconds()/n, "state-s")
}
