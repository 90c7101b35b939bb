package nodediff

import (
	"encoding/json"
	"testing"

	ev "github.com/drover-dev/drover/internal/evidence"
)

func bundle(t *testing.T, sections map[string]any) *ev.Bundle {
	t.Helper()
	b := &ev.Bundle{}
	for name, v := range sections {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Sections = append(b.Sections, ev.Section{Name: name, Data: raw})
	}
	return b
}

// TestDiffEvidence: with both nodes' bundles, the missing library ranks
// right after the packages, then the resolver's failing answer, the TLS
// chain that verifies on the healthy node only, the MTU, the read-only
// mount and the iptables backend; sections only one node
// has (its healthy bundle lacks them) say nothing.
func TestDiffEvidence(t *testing.T) {
	f := node("web-1", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.16"})
	h := node("web-2", "debian", "12", "gen1", "a", map[string]string{"openssl": "3.0.14"})
	f.Evidence = bundle(t, map[string]any{
		"linkage":    []ev.Linkage{{Unit: "nginx.service", Binary: "/usr/sbin/nginx", Missing: []string{"libpcre2-8.so.0"}}},
		"resolver":   ev.Resolver{Conf: &ev.ResolvConf{Nameservers: []string{"10.0.0.2"}}, Answers: []ev.Answer{{Name: "db.internal", Error: "no such host"}}},
		"interfaces": []ev.Interface{{Name: "eth0", MTU: 1400}},
		"mounts":     []ev.Mount{{Point: "/", FSType: "ext4", ReadOnly: true}, {Point: "/proc", FSType: "proc"}},
		"firewall":   ev.Firewall{Backend: "nf_tables"},
		"time":       ev.TimeSync{Synchronized: true},
		"tls":        []ev.TLSResult{{Endpoint: "api.internal:443", VerifyError: "x509: certificate signed by unknown authority"}, {Endpoint: "same:443", Verified: true}},
	})
	h.Evidence = bundle(t, map[string]any{
		"linkage":    []ev.Linkage{{Unit: "nginx.service", Binary: "/usr/sbin/nginx"}},
		"resolver":   ev.Resolver{Conf: &ev.ResolvConf{Nameservers: []string{"10.0.0.2"}}, Answers: []ev.Answer{{Name: "db.internal", Addrs: []string{"10.0.0.7"}}}},
		"interfaces": []ev.Interface{{Name: "eth0", MTU: 1500}},
		"mounts":     []ev.Mount{{Point: "/", FSType: "ext4"}, {Point: "/data", FSType: "xfs"}},
		"firewall":   ev.Firewall{Backend: "legacy"},
		"tls":        []ev.TLSResult{{Endpoint: "api.internal:443", Verified: true}, {Endpoint: "same:443", Verified: true}},
	})
	secs := Diff(f, h, nil, 0)
	var order []string
	for _, s := range secs {
		order = append(order, s.Dimension)
	}
	want := []string{"packages", "libraries", "resolver", "tls", "network", "mounts", "firewall"}
	if len(order) != len(want) {
		t.Fatalf("dimensions %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("dimensions %v, want %v", order, want)
		}
	}
	get := func(dim string) []Difference {
		for _, s := range secs {
			if s.Dimension == dim {
				return s.Differences
			}
		}
		return nil
	}
	if d := get("libraries"); len(d) != 1 || d[0].Failing != "/usr/sbin/nginx: libpcre2-8.so.0 not found" {
		t.Errorf("libraries %+v", d)
	}
	if d := get("resolver"); len(d) != 1 || d[0].Key != "answer db.internal" || d[0].Failing != "error: no such host" {
		t.Errorf("resolver %+v", d)
	}
	if d := get("tls"); len(d) != 1 || d[0].Key != "handshake api.internal:443" || d[0].Failing != "not verified: x509: certificate signed by unknown authority" || d[0].Healthy != "verified" {
		t.Errorf("tls %+v", d)
	}
	if d := get("network"); len(d) != 1 || d[0].Key != "mtu eth0" || d[0].Failing != "1400" {
		t.Errorf("network %+v", d)
	}
	if d := get("mounts"); len(d) != 2 || d[0].Key != "/" || d[0].Failing != "ro ext4" || d[1].Key != "/data" || d[1].Failing != "(not mounted)" {
		t.Errorf("mounts %+v", d)
	}
	if d := get("firewall"); len(d) != 1 || d[0].Failing != "nf_tables" {
		t.Errorf("firewall %+v", d)
	}
	// Without a healthy bundle only the failing node's missing library shows.
	h.Evidence = nil
	secs = Diff(f, h, nil, 0)
	if len(secs) != 2 || secs[1].Dimension != "libraries" {
		t.Fatalf("without a healthy bundle: %+v", secs)
	}
}
