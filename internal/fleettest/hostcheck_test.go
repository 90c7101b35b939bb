package fleettest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// TestDebianFleetHostChecks breaks single containers for real, the ways
// updates break hosts, while a rollout soaks on them, and shows the host
// checks halting it: on ro1 the tmpfs /srv/data is remounted read-only
// (mount -o remount,ro, as the kernel does to a file system after an
// error); on dns1 the resolver is pointed nowhere (/etc/resolv.conf
// names 192.0.2.1, a documentation address nothing answers); on ca1 the
// CA bundle a tls check verifies the server's endpoint with is replaced
// by another CA's. Each node's
// rollout upgrades drover-testsvc 1.0 -> 1.1, is healthy, then the host
// check fails in the soak, the node fails with the check's reason and
// is rolled back.
func TestDebianFleetHostChecks(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < 8*time.Minute {
		t.Fatalf("the host checks fleet test needs up to 8 minutes; go test's -timeout leaves %s (run it with -timeout 20m)", time.Until(d).Round(time.Second))
	}
	nodes := []*node{
		{name: "ro1", suite: "bookworm", zone: "a", role: "fleet", tmpfs: "/srv/data"},
		{name: "dns1", suite: "bookworm", zone: "a", role: "fleet"},
		{name: "ca1", suite: "trixie", zone: "a", role: "fleet"},
	}
	f := setup(t, nodes)
	ro1, dns1, ca1 := f.byName["ro1"], f.byName["dns1"], f.byName["ca1"]
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
	})
	t.Run("resolver-nowhere", func(t *testing.T) {
		probes := `      - name: self
        kind: dns
        lookup: ` + self + `
        timeout: 2s
        interval: 1s
`
		reason, _ := f.breakInSoak(t, dns1, "host-check-dns", probes, "cp /etc/resolv.conf /tmp/resolv.conf.good && echo 'nameserver 192.0.2.1' >/etc/resolv.conf")
		if !strings.Contains(reason, "self: dns "+self+": "+self+" does not resolve via the node's resolver") {
			t.Errorf("reason %q does not say the name stopped resolving", reason)
		}
	})
	t.Run("ca-bundle-replaced", func(t *testing.T) {
		// The endpoint is the drover server itself (TLS, its own CA): the
		// node trusts it through a CA bundle file, as a node trusts an
		// internal API.
		const bundle = "/etc/drover-internal-ca.pem"
		f.mustSh(t, ca1, "printf '%s' "+shQuote(string(f.caPEM))+" >"+bundle)
		addr := strings.TrimPrefix(f.server, "https://")
		host, _, _ := strings.Cut(addr, ":")
		probes := `      - name: control plane
        kind: tls
        address: ` + addr + `
        caFile: ` + bundle + `
        minValidity: 1h
        interval: 1s
`
		reason, _ := f.breakInSoak(t, ca1, "host-check-tls", probes, "printf '%s' "+shQuote(string(otherCA(t)))+" >"+bundle)
		if !strings.Contains(reason, "control plane: tls "+addr+": certificate of "+host+" not signed by a CA in "+bundle) {
			t.Errorf("reason %q does not say the chain no longer verifies", reason)
		}
	})
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
