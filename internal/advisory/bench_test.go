package advisory

import (
	"fmt"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
)

// benchFleet is 10,000 generated nodes of every family (fleet.Generate,
// the default mix), and a catalog of 10,000 advisories over the
// packages and releases those nodes run.
func benchFleet(b *testing.B) ([]*fleet.Node, []Advisory) {
	b.Helper()
	mix, err := fleet.ParseMix(fleet.DefaultMix)
	if err != nil {
		b.Fatal(err)
	}
	nodes, err := fleet.Generate(fleet.GenSpec{N: 10_000, Mix: mix, Zones: 3}, 1)
	if err != nil {
		b.Fatal(err)
	}
	targets := []Fix{
		{Ecosystem: "debian:12", Package: "openssl", Fixed: "3.0.15-1~deb12u1"},
		{Ecosystem: "debian:11", Package: "libc6", Fixed: "2.31-13+deb11u12"},
		{Ecosystem: "ubuntu:22.04", Package: "openssh-server", Fixed: "1:8.9p1-3ubuntu0.11"},
		{Ecosystem: "ubuntu:24.04", Package: "libc6", Fixed: "2.39-0ubuntu8.3"},
		{Ecosystem: "rhel:9", Package: "openssl", Fixed: "1:3.0.7-28.el9_4"},
		{Ecosystem: "rhel:8", Package: "glibc", Fixed: "2.28-251.el8_10.2"},
		{Ecosystem: "suse:15.5", Package: "openssl-3", Fixed: "3.0.8-150500.5.45.1"},
		{Ecosystem: "suse:15.6", Package: "glibc", Fixed: "2.38-150600.14.8.2"},
		{Ecosystem: "windows:10.0.20348", Fixed: "10.0.20348.2700", KB: "KB5042881"},
		{Ecosystem: "macos:14", Fixed: "14.7"},
		{Ecosystem: "debian:12", Package: "pkg-not-installed", Fixed: "1.0-1"},
	}
	advs := make([]Advisory, 10_000)
	for i := range advs {
		advs[i] = Advisory{ID: fmt.Sprintf("ADV-%05d", i), Severity: SeverityHigh, Affected: []Fix{targets[i%len(targets)], targets[(i/7)%len(targets)]}}
	}
	ns := make([]*fleet.Node, len(nodes))
	copy(ns, nodes)
	return ns, advs
}

// BenchmarkExposureOneAdvisory10kNodes: one advisory judged on 10,000
// nodes (what GET /v1/exposure?advisory=ID computes after reading the
// nodes).
func BenchmarkExposureOneAdvisory10kNodes(b *testing.B) {
	nodes, advs := benchFleet(b)
	a := &advs[4] // rhel:9 openssl
	b.ResetTimer()
	for range b.N {
		affected := 0
		for _, n := range nodes {
			if Exposure(a, n).Status == Affected {
				affected++
			}
		}
		if affected == 0 {
			b.Fatal("no node affected")
		}
	}
}

// BenchmarkExposureCatalog10kNodes: a catalog of 10,000 advisories
// judged on 10,000 nodes (GET /v1/exposure without an advisory),
// index building included.
func BenchmarkExposureCatalog10kNodes(b *testing.B) {
	nodes, advs := benchFleet(b)
	b.ResetTimer()
	findings := 0
	for range b.N {
		c := NewCatalog(advs)
		findings = 0
		for _, n := range nodes {
			findings += len(c.Node(n))
		}
		if findings == 0 {
			b.Fatal("no findings")
		}
	}
	// The answer's size: findings that are not not-affected.
	b.ReportMetric(float64(findings), "findings")
}
