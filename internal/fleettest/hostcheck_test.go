package fleettest

import (
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
// names 192.0.2.1, a documentation address nothing answers). Each node's
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
	}
	f := setup(t, nodes)
	ro1, dns1 := f.byName["ro1"], f.byName["dns1"]
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
