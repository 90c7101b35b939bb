package fleettest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/evidence"
)

// TestDebianFleetHostChecks breaks single containers for real, the ways
// updates break hosts (essay 002), while a rollout soaks on them, and
// shows the host checks halting it: on ro1 the tmpfs /srv/data is
// remounted read-only (mount -o remount,ro, as the kernel does to a file
// system after an error); on dns1 the resolver is pointed nowhere
// (/etc/resolv.conf names 192.0.2.1, a documentation address nothing
// answers); on ca1 the CA bundle a tls check verifies the server's
// endpoint with is replaced by another CA's; on mtu1 (started with
// CAP_NET_ADMIN) eth0's MTU is lowered from 1500 to 1400 with the
// SIOCSIFMTU ioctl (testdata/setmtu: the images have no iproute2); on
// fw1 the iptables alternative is switched from nf_tables to legacy with
// the real update-alternatives --set; on lib1 the library the test
// service links (libsmartcols.so.1, a DT_NEEDED entry of
// /usr/bin/drover-testsvc) is removed, as a package update removes or
// renames a library (the running service keeps answering; its next
// start would fail). The images have no iptables and
// apt here reaches only the test's repository, so fw1's two
// alternatives are stand-in scripts that print what iptables -V prints
// for each backend (the only thing drover reads of them): the switch is
// real, the binaries are not. Each node's rollout upgrades
// drover-testsvc 1.0 -> 1.1, is healthy, then the host check fails in
// the soak, the node fails with the check's reason and is rolled back.
//
// Then, for each break: the failing node's evidence bundle (captured by
// its agent before the rollback) shows it, and drover diff against ok1,
// a healthy peer set up the same way (same suite, the same tmpfs, CA
// bundle and alternatives; an on-demand capture for the same names and
// endpoints), names it within its first five ranked differences, after
// what the rollout changed. The real CLI's output is logged.
func TestDebianFleetHostChecks(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < 8*time.Minute {
		t.Fatalf("the host checks fleet test needs up to 8 minutes (it takes about 3); go test's -timeout leaves %s (run it with -timeout 20m)", time.Until(d).Round(time.Second))
	}
	// Every node mounts a tmpfs at /srv/data, so that only ro1's
	// remount differs from the healthy peer ok1.
	nodes := []*node{
		{name: "ro1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "dns1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "ca1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "mtu1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data", caps: []string{"NET_ADMIN"}},
		{name: "fw1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "lib1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "ok1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
	}
	f := setup(t, nodes)
	ro1, dns1, ca1, mtu1, fw1, lib1, ok1 := f.byName["ro1"], f.byName["dns1"], f.byName["ca1"], f.byName["mtu1"], f.byName["fw1"], f.byName["lib1"], f.byName["ok1"]
	// What dns1's checks resolve: its own container's name, which the
	// network's resolver (Docker's, 127.0.0.11) answers.
	self := dns1.container
	f.mustSh(t, dns1, "getent hosts "+self)

	t.Run("mount-read-only", func(t *testing.T) {
		probes := `      - name: data
        kind: mounts
        paths: [/srv/data]
        interval: 1s
`
		reason, ro := f.breakInSoak(t, ro1, "host-check-mounts", probes, "mount -o remount,ro /srv/data")
		if !strings.Contains(reason, "data: mounts /srv/data: /srv/data read-only (tmpfs)") {
			t.Errorf("reason %q does not name the read-only mount", reason)
		}
		// The rollback compares with the host before the apply: /srv/data
		// is still read-only, so the node is kept out of service.
		if rn := rolloutNode(ro, ro1.name); rn.Phase != engine.PhaseRollbackUnhealthy || !strings.Contains(rn.Reason, "/srv/data read-only") {
			t.Errorf("node %s (%s), want rollback-unhealthy naming /srv/data", rn.Phase, rn.Reason)
		}
		b := f.failureBundle(t, ro1, ro.ID)
		var ms []evidence.Mount
		b.Decode("mounts", &ms)
		if !slices.ContainsFunc(ms, func(m evidence.Mount) bool { return m.Point == "/srv/data" && m.ReadOnly }) {
			t.Errorf("the evidence's mounts do not show /srv/data read-only: %+v", ms)
		}
		f.diffNames(t, ro1, ok1, ro.ID, api.EvidenceAsk{}, "mounts", "/srv/data", "ro tmpfs")
	})
	t.Run("resolver-nowhere", func(t *testing.T) {
		probes := `      - name: self
        kind: dns
        lookup: ` + self + `
        timeout: 2s
        interval: 1s
`
		reason, ro := f.breakInSoak(t, dns1, "host-check-dns", probes, "cp /etc/resolv.conf /tmp/resolv.conf.good && echo 'nameserver 192.0.2.1' >/etc/resolv.conf")
		if !strings.Contains(reason, "self: dns "+self+": "+self+" does not resolve via the node's resolver") {
			t.Errorf("reason %q does not say the name stopped resolving", reason)
		}
		b := f.failureBundle(t, dns1, ro.ID)
		var r evidence.Resolver
		b.Decode("resolver", &r)
		if r.Conf == nil || !slices.Equal(r.Conf.Nameservers, []string{"192.0.2.1"}) || len(r.Answers) != 1 || r.Answers[0].Name != self || r.Answers[0].Error == "" {
			t.Errorf("the evidence's resolver does not show the server nowhere and %s failing: %+v", self, r)
		}
		f.diffNames(t, dns1, ok1, ro.ID, api.EvidenceAsk{Names: []string{self}}, "resolver", "nameservers", "192.0.2.1")
		f.diffNames(t, dns1, ok1, ro.ID, api.EvidenceAsk{Names: []string{self}}, "resolver", "answer "+self, "error: ")
	})
	t.Run("ca-bundle-replaced", func(t *testing.T) {
		// The endpoint is the drover server itself (TLS, its own CA): the
		// node trusts it through a CA bundle file, as a node trusts an
		// internal API.
		const bundle = "/etc/drover-internal-ca.pem"
		for _, n := range []*node{ca1, ok1} {
			f.mustSh(t, n, "printf '%s' "+shQuote(string(f.caPEM))+" >"+bundle)
		}
		addr := strings.TrimPrefix(f.server, "https://")
		host, _, _ := strings.Cut(addr, ":")
		probes := `      - name: control plane
        kind: tls
        address: ` + addr + `
        caFile: ` + bundle + `
        minValidity: 1h
        interval: 1s
`
		reason, ro := f.breakInSoak(t, ca1, "host-check-tls", probes, "printf '%s' "+shQuote(string(otherCA(t)))+" >"+bundle)
		if !strings.Contains(reason, "control plane: tls "+addr+": certificate of "+host+" not signed by a CA in "+bundle) {
			t.Errorf("reason %q does not say the chain no longer verifies", reason)
		}
		b := f.failureBundle(t, ca1, ro.ID)
		var hs []evidence.TLSResult
		b.Decode("tls", &hs)
		if len(hs) != 1 || hs[0].Endpoint != addr || hs[0].Error != "" || hs[0].Verified || hs[0].CAFile != bundle || !strings.Contains(hs[0].VerifyError, "unknown authority") || len(hs[0].Chain) == 0 {
			t.Errorf("the evidence's tls does not show the served chain unverified with %s: %+v", bundle, hs)
		}
		f.diffNames(t, ca1, ok1, ro.ID, api.EvidenceAsk{Endpoints: []string{addr}, CAFiles: map[string]string{addr: bundle}}, "tls", "handshake "+addr, "not verified")
	})
	t.Run("mtu-changed", func(t *testing.T) {
		probes := `      - name: links
        kind: mtu
        interfaces: [eth0]
        interval: 1s
`
		reason, ro := f.breakInSoak(t, mtu1, "host-check-mtu", probes, "/opt/drover/setmtu eth0 1400")
		if !strings.Contains(reason, "eth0: MTU 1400, was 1500 before the step") {
			t.Errorf("reason %q does not name the MTU change", reason)
		}
		b := f.failureBundle(t, mtu1, ro.ID)
		var ifs []evidence.Interface
		b.Decode("interfaces", &ifs)
		if !slices.ContainsFunc(ifs, func(i evidence.Interface) bool { return i.Name == "eth0" && i.MTU == 1400 }) {
			t.Errorf("the evidence's interfaces do not show eth0 at MTU 1400: %+v", ifs)
		}
		f.diffNames(t, mtu1, ok1, ro.ID, api.EvidenceAsk{}, "network", "mtu eth0", "1400")
	})
	t.Run("iptables-alternative-switched", func(t *testing.T) {
		// Stand-ins for the two iptables binaries (see the test's comment),
		// registered with the real update-alternatives; nf_tables is
		// selected, as on Debian since buster.
		const alts = `set -e
printf '#!/bin/sh\necho "iptables v1.8.9 (legacy)"\n' >/usr/sbin/iptables-legacy
printf '#!/bin/sh\necho "iptables v1.8.9 (nf_tables)"\n' >/usr/sbin/iptables-nft
chmod 0755 /usr/sbin/iptables-legacy /usr/sbin/iptables-nft
update-alternatives --quiet --install /usr/sbin/iptables iptables /usr/sbin/iptables-legacy 10
update-alternatives --quiet --install /usr/sbin/iptables iptables /usr/sbin/iptables-nft 20
update-alternatives --quiet --set iptables /usr/sbin/iptables-nft
iptables -V`
		for _, n := range []*node{fw1, ok1} {
			if out := f.mustSh(t, n, alts); !strings.Contains(out, "nf_tables") {
				t.Fatalf("%s: iptables -V says %q", n.name, out)
			}
		}
		probes := `      - name: firewall
        kind: firewall-backend
        interval: 1s
`
		reason, ro := f.breakInSoak(t, fw1, "host-check-firewall", probes, "update-alternatives --set iptables /usr/sbin/iptables-legacy")
		if !strings.Contains(reason, "iptables backend is legacy, was nf_tables before the step") {
			t.Errorf("reason %q does not name the backend switch", reason)
		}
		b := f.failureBundle(t, fw1, ro.ID)
		var fw evidence.Firewall
		if b.Decode("firewall", &fw); fw.Backend != "legacy" {
			t.Errorf("the evidence's firewall backend is %+v, want legacy", fw)
		}
		f.diffNames(t, fw1, ok1, ro.ID, api.EvidenceAsk{}, "firewall", "iptables backend", "legacy")
	})
	t.Run("library-removed", func(t *testing.T) {
		// The containers run no systemd: the probe names the service's
		// binary, and the evidence captures its linkage from the probe.
		const bin = "/usr/bin/drover-testsvc"
		const lib = "/usr/lib/x86_64-linux-gnu/libsmartcols.so.1"
		probes := `      - name: service libraries
        kind: linkage
        binaries: [` + bin + `]
        interval: 1s
`
		reason, ro := f.breakInSoak(t, lib1, "host-check-linkage", probes, "mv "+lib+" "+lib+".removed")
		if !strings.Contains(reason, "service libraries: linkage "+bin+": libsmartcols.so.1 not found") {
			t.Errorf("reason %q does not name the missing library", reason)
		}
		// What the loader says when the service starts now: the check
		// named what it would refuse.
		if out, _ := f.sh(lib1, "timeout 5 "+bin+" serve 2>&1"); !strings.Contains(out, "libsmartcols.so.1: cannot open shared object file") {
			t.Errorf("%s starts on %s without libsmartcols.so.1? %q", bin, lib1.name, out)
		}
		b := f.failureBundle(t, lib1, ro.ID)
		var ls []evidence.Linkage
		b.Decode("linkage", &ls)
		if len(ls) != 1 || ls[0].Binary != bin || !slices.Equal(ls[0].Missing, []string{"libsmartcols.so.1"}) {
			t.Errorf("the evidence's linkage does not show libsmartcols.so.1 missing from %s: %+v", bin, ls)
		}
		f.diffNames(t, lib1, ok1, ro.ID, api.EvidenceAsk{Binaries: []string{bin}}, "libraries", bin, "libsmartcols.so.1 not found")
	})
}

// failureBundle is n's evidence bundle captured in rollout when it
// failed (before the rollback).
func (f *fleet) failureBundle(t *testing.T, n *node, rollout string) *evidence.Bundle {
	t.Helper()
	ctx := context.Background()
	list, err := f.api.ListEvidence(ctx, n.name, rollout)
	if err != nil || len(list.Bundles) == 0 {
		t.Fatalf("%s's bundles in %s: %+v %v", n.name, rollout, list, err)
	}
	sum := list.Bundles[0]
	got, err := f.api.GetEvidence(ctx, sum.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reason != evidence.ReasonFailure {
		t.Errorf("%s's bundle %s: reason %s, want %s", n.name, sum.ID, sum.Reason, evidence.ReasonFailure)
	}
	t.Logf("%s failure bundle %s: captured in %s, %d bytes, %d sections", n.name, sum.ID, got.Bundle.Took, sum.Size, len(got.Bundle.Sections))
	return got.Bundle
}

// askEvidence asks n for an on-demand capture and waits for the bundle.
func (f *fleet) askEvidence(t *testing.T, n *node, ask api.EvidenceAsk) api.EvidenceBundle {
	t.Helper()
	ctx := context.Background()
	req, err := f.api.AskEvidence(ctx, n.name, ask)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var st api.EvidenceRequestStatus
	for st.Bundle == "" {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer the on-demand capture: %+v %v", n.name, st, err)
		}
		time.Sleep(300 * time.Millisecond)
		st, err = f.api.EvidenceRequest(ctx, req.ID)
	}
	got, err := f.api.GetEvidence(ctx, st.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// diffNames captures healthy's evidence on demand (ask: the failing
// node's probes' names and endpoints), then checks that the diff of
// failing against healthy in rollout ranks dimension's key (its failing
// value containing value) within the first five differences, after what
// the rollout changed; and that the real CLI (drover diff) prints it
// within its first five ranks. It logs the CLI's output.
func (f *fleet) diffNames(t *testing.T, failing, healthy *node, rollout string, ask api.EvidenceAsk, dimension, key, value string) {
	t.Helper()
	f.askEvidence(t, healthy, ask)
	d, err := f.api.NodeDiff(context.Background(), failing.name, healthy.name, rollout)
	if err != nil {
		t.Fatal(err)
	}
	var ranked []string
	rank := 0
	for _, s := range d.Sections {
		for _, x := range s.Differences {
			rank++
			ranked = append(ranked, fmt.Sprintf("%d %s/%s %s: %s | %s", rank, s.Tier, s.Dimension, x.Key, x.Failing, x.Healthy))
			if s.Dimension == dimension && x.Key == key && strings.Contains(x.Failing, value) && rank <= 5 {
				rank = -1000 // found
			}
		}
	}
	if rank >= 0 {
		t.Errorf("diff %s %s does not rank %s/%s (%q) within its first 5:\n%s", failing.name, healthy.name, dimension, key, value, strings.Join(ranked, "\n"))
	}
	if len(d.Sections) == 0 || d.Sections[0].Dimension != "rollout" {
		t.Errorf("diff %s %s does not start with what the rollout changed: %+v", failing.name, healthy.name, d.Sections)
	}
	caFile := filepath.Join(f.dir, "ca.pem")
	if err := os.WriteFile(caFile, f.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(f.bin, "drover"), "diff", failing.name, healthy.name, "--rollout", rollout)
	cmd.Env = append(os.Environ(), "DROVER_SERVER="+f.server, "DROVER_TOKEN="+f.api.Token, "DROVER_CA_CERT="+caFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drover diff: %v\n%s", err, out)
	}
	t.Logf("drover diff %s %s --rollout %s:\n%s", failing.name, healthy.name, rollout, out)
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 3 && fields[0] >= "1" && fields[0] <= "5" && len(fields[0]) == 1 && fields[2] == dimension && strings.Contains(line, key) && strings.Contains(line, value) {
			found = true
		}
	}
	if !found {
		t.Errorf("drover diff does not print %s %s within ranks 1-5", dimension, key)
	}
}

// otherCA returns the PEM of a fresh self-signed CA: a bundle that does
// not hold the CA the endpoint's chain ends in.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// breakInSoak rolls drover-testsvc 1.1 out to n alone with probes (and
// the service's own health probe), runs breakIt in n's container once
// the node is healthy and soaking, and returns the reason the node
// failed with and the final rollout, which must have stopped.
func (f *fleet) breakInSoak(t *testing.T, n *node, name, probes, breakIt string) (string, api.Rollout) {
	t.Helper()
	p := planSpec{Name: name, Selector: `node.id == "` + n.name + `"`, Version: "1.1", MinHealthy: "90s", Deadline: "20s",
		Probes: `      - name: testsvc health
        kind: http
        url: http://127.0.0.1:8080/health
        timeout: 2s
        interval: 1s
` + probes}
	id := f.create(t, p)
	f.waitRollout(t, id, 3*time.Minute, n.name+" verifying", func(ro api.Rollout) bool {
		return rolloutNode(ro, n.name).Phase == engine.PhaseVerifying
	})
	// The probes run every second: a few seconds in, the node soaks (its
	// 90 s minHealthy), so what fails now fails the soak.
	time.Sleep(5 * time.Second)
	if got := f.installed(t, n); got != "installed 1.1" {
		t.Fatalf("%s is %q while soaking, want installed 1.1", testPackage, got)
	}
	broke := time.Now()
	f.mustSh(t, n, breakIt)
	ro := f.waitTerminal(t, id, 3*time.Minute)
	failed := strings.Join(reasons(f.audit(t, id), n.name, engine.PhaseFailed), " | ")
	t.Logf("%s: broken with %q; the rollout %s %s later; node failed with: %s", n.name, breakIt, ro.State, time.Since(broke).Round(time.Second), failed)
	if ro.State != engine.RolloutHalted && ro.State != engine.RolloutFailed {
		t.Errorf("rollout %s, want stopped (halted or failed):\n%s", ro.State, describeRollout(ro))
	}
	if got := f.installed(t, n); got != "installed 1.0" {
		t.Errorf("%s is %q, want installed 1.0 (rolled back)", testPackage, got)
	}
	return failed, ro
}
