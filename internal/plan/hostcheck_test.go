package plan

import (
	"slices"
	"testing"
	"time"
)

// TestHostCheckProbes parses a plan with every host check and checks the
// fields and defaults each gets.
func TestHostCheckProbes(t *testing.T) {
	p, err := ParseFile("testdata/host-checks.yaml")
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	pr := p.Gates.Node.Probes
	var kinds []ProbeKind
	for _, x := range pr {
		kinds = append(kinds, x.Kind)
		if !x.Kind.HostCheck() {
			t.Errorf("%s is not a host check", x.Kind)
		}
	}
	want := []ProbeKind{ProbeClock, ProbeDNS, ProbeTLS, ProbeMounts, ProbeFailedUnits, ProbeFirewallBackend, ProbeMTU, ProbeKernelErrors, ProbeLinkage}
	if !slices.Equal(kinds, want) {
		t.Fatalf("kinds %v", kinds)
	}
	if pr[0].MaxOffset.D() != 500*time.Millisecond || pr[1].Lookup != "db.internal.example" || !slices.Equal(pr[1].Expect, []string{"10.20.0.5"}) {
		t.Errorf("clock %+v, dns %+v", pr[0], pr[1])
	}
	if tl := pr[2]; tl.Address != "api.internal.example:443" || tl.MinVersion != "1.3" || tl.MinValidity.D() != 168*time.Hour || tl.CAFile == "" {
		t.Errorf("tls %+v", tl)
	}
	if l := pr[8]; l.Unit != "nginx" || len(l.Binaries) != 2 || l.Binaries[0] != "/usr/sbin/nginx" {
		t.Errorf("linkage %+v", l)
	}
	var baselined int
	for _, k := range want {
		if k.Baselined() {
			baselined++
		}
	}
	if baselined != 5 {
		t.Errorf("%d baselined kinds, want 5 (mounts, failed-units, firewall-backend, mtu, kernel-errors)", baselined)
	}

	q := mustParse(t, minimal+`  - name: all
gates:
  node:
    probes:
      - kind: clock
      - kind: tls
        address: localhost:443
`)
	if c, tl := q.Gates.Node.Probes[0], q.Gates.Node.Probes[1]; c.MaxOffset != DefaultClockMaxOffset || tl.MinVersion != "1.2" {
		t.Errorf("defaults: clock maxOffset %v, tls minVersion %q", c.MaxOffset, tl.MinVersion)
	}
}
