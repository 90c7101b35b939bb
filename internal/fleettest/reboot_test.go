package fleettest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

// What the reboot scenario runs for real, and what it simulates:
//
// Real: the server, the plan with reboot: if-required, apt installing
// 1.3 whose postinst writes /var/run/reboot-required, the apt driver
// reading it, the agent journalling the boot ID and running its real
// rebooter (`systemctl reboot`), the end of every process of the node
// (the agent gets SIGTERM, as systemd sends it at shutdown; the service
// and everything else die with the container's init), the agent starting
// again from its state dir (its certificate, not its spent enrolment
// token; its journal), reading a boot ID that differs, verifying the
// package with dpkg, probing the service over HTTP and reporting success.
//
// Simulated: the kernel. A container shares the host's kernel, so its
// boot ID would never change; each start of a container bind-mounts a new
// random one over /proc/sys/kernel/random/boot_id instead (entrypoint).
// systemd: `systemctl` is a stand-in that ends the container (systemctl
// in harness_test.go), and Docker's restart policy is the power-on. The
// boot itself is the entrypoint: an empty /run, then the service, then
// the agent; no firmware, no kernel, no systemd units.

// rebootRoll is scenario 5, a rolling reboot: 1.3 over nodes, one at a
// time. Each node applies 1.3, sees that the package asks for a reboot,
// reboots (its container ends and starts again with a new boot ID), and
// its agent resumes the step from its journal, confirms the reboot by
// the changed boot ID, verifies 1.3 and probes the service that came back
// with the boot, and reports success. apt ran once on each node.
func (f *fleet) rebootRoll(t *testing.T, nodes []*node) {
	ctx := context.Background()
	arch := debArch()
	host, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	type before struct {
		boot     string
		restarts int
		identity []byte // the agent's key and client certificate
	}
	was := map[string]before{}
	var sel []string
	for _, n := range nodes {
		boot := f.bootID(t, n)
		if boot == strings.TrimSpace(string(host)) {
			t.Fatalf("%s has the host's boot ID %s: the entrypoint did not give the container its own", n.name, boot)
		}
		if nd, err := f.api.GetNode(ctx, n.name); err != nil || nd.Facts.BootID != boot {
			t.Fatalf("%s: the server knows boot ID %q (%v), the node has %s", n.name, nd.Facts.BootID, err, boot)
		}
		idPEM, err := os.ReadFile(filepath.Join(n.stateDir, "tls", "identity.pem"))
		if err != nil {
			t.Fatal(err)
		}
		was[n.name] = before{boot: boot, restarts: f.restartCount(t, n), identity: idPEM}
		sel = append(sel, `node.id == "`+n.name+`"`)
	}
	id := f.create(t, planSpec{Name: "testsvc-1-3-reboot", Selector: strings.Join(sel, " || "), Version: "1.3",
		Reboot: "if-required", Limits: "  maxInFlight: 1\n", OnBreach: "pause", Deadline: "60s"})
	ro := f.waitTerminal(t, id, 4*time.Minute)
	if ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s, want succeeded:\n%s", ro.State, describeRollout(ro))
	}
	got := dispatched(f.audit(t, id))
	for _, n := range nodes {
		b := was[n.name]
		step := applyStep(ro, n.name)
		if rn := rolloutNode(ro, n.name); rn.Phase != engine.PhaseSucceeded {
			t.Errorf("%s: phase %s, want succeeded", n.name, rn.Phase)
		}
		if !slices.Equal(got[n.name], []string{"apply"}) {
			t.Errorf("%s got steps %v, want one apply", n.name, got[n.name])
		}
		if v := f.installed(t, n); v != "installed 1.3" {
			t.Errorf("%s: %s is %q, want installed 1.3", n.name, testPackage, v)
		}

		// The node rebooted once: a new boot ID, its container ended and
		// was started again by Docker once, one reboot requested.
		now := f.bootID(t, n)
		if now == b.boot {
			t.Errorf("%s: boot ID still %s: no reboot", n.name, now)
		}
		if r := f.restartCount(t, n); r != b.restarts+1 {
			t.Errorf("%s: Docker restarted its container %d times during the rollout, want 1 (the reboot)", n.name, r-b.restarts)
		}
		reboots := strings.TrimSpace(f.mustSh(t, n, "cat /var/log/drover-fleettest-reboots.log"))
		if lines := strings.Split(reboots, "\n"); len(lines) != 1 || !strings.HasSuffix(lines[0], "reboot requested; ending boot "+b.boot) {
			t.Errorf("%s: reboots requested:\n%s\nwant one, ending boot %s", n.name, reboots, b.boot)
		}
		if out, _ := f.sh(n, "ls /run/reboot-required 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("%s: /run/reboot-required after the reboot: %s", n.name, out)
		}
		f.waitNodeBoot(t, n, now, 30*time.Second)
		// The agent came back with the identity it enrolled with: no new
		// enrolment (its token is spent), no other key.
		if idPEM, err := os.ReadFile(filepath.Join(n.stateDir, "tls", "identity.pem")); err != nil || !bytes.Equal(idPEM, b.identity) {
			t.Errorf("%s: the agent's identity changed across the reboot (%v)", n.name, err)
		}

		// The step ran once: one Apply, one apt install.
		if c := f.snapshots(n, step); c != 1 {
			t.Errorf("%s: journal shows %d Apply starts of the step, want 1", n.name, c)
		}
		if c := f.countIn(t, n, "^Commandline: apt-get install .* "+testPackage+"=1\\.3$", "/var/log/apt/history.log"); c != 1 {
			t.Errorf("%s: history.log shows %d apt-get installs of 1.3, want exactly 1", n.name, c)
		}
		if c := f.countIn(t, n, " status installed "+testPackage+":"+arch+" 1.3$", "/var/log/dpkg.log"); c != 1 {
			t.Errorf("%s: dpkg.log shows 1.3 installed %d times, want exactly 1", n.name, c)
		}

		// The agent journalled the boot ID before the reboot, and its
		// result names it as the boot it rebooted from, on the new boot.
		j := journalOf(f.journal(n), step)
		if len(j.rebooting) != 1 || j.rebooting[0] != b.boot {
			t.Errorf("%s: journalled reboots from boot IDs %v, want [%s]", n.name, j.rebooting, b.boot)
		}
		if !j.rebootRequired {
			t.Errorf("%s: the apt outcome in the journal does not say a reboot is required", n.name)
		}
		if j.result == nil {
			t.Fatalf("%s: no result in the journal", n.name)
		}
		res := j.result
		ev, _ := res["evidence"].(map[string]any)
		if res["phase"] != string(engine.PhaseVerifying) || res["gate"] != string(engine.Pass) || res["bootId"] != now ||
			fmt.Sprint(ev["rebootsFromBootIds"]) != fmt.Sprint([]string{b.boot}) {
			t.Errorf("%s: result %v %v on boot %v, rebooted from %v; want verifying pass on boot %s, rebooted from [%s]",
				n.name, res["phase"], res["gate"], res["bootId"], ev["rebootsFromBootIds"], now, b.boot)
		}
		t.Logf("%s: rebooted from boot %s to %s (its container ended and Docker started it again); apt installed 1.3 once; the agent's account:\n%s",
			n.name, b.boot, now, f.agentLog(n, step, "boot "+b.boot, "boot "+now))
	}
}

// agentLog returns the lines of n's container log (the entrypoint's and
// the agent's, over every start of the container) that hold one of words.
func (f *fleet) agentLog(n *node, words ...string) string {
	out, _ := docker(context.Background(), "logs", n.container)
	var keep []string
	for line := range strings.Lines(out) {
		for _, w := range words {
			if strings.Contains(line, w) {
				keep = append(keep, "  "+strings.TrimSpace(line))
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}

// bootID is the boot ID n's agent reads.
func (f *fleet) bootID(t *testing.T, n *node) string {
	t.Helper()
	id := strings.TrimSpace(f.mustSh(t, n, "cat /proc/sys/kernel/random/boot_id"))
	if len(id) != 36 {
		t.Fatalf("%s: boot ID %q", n.name, id)
	}
	return id
}

// restartCount is how often Docker's restart policy started n's
// container again since it was last started by hand.
func (f *fleet) restartCount(t *testing.T, n *node) int {
	t.Helper()
	out := mustDocker(t, "inspect", "-f", "{{.RestartCount}}", n.container)
	c, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s: restart count %q", n.name, out)
	}
	return c
}

// waitNodeBoot waits until the server knows n's boot ID is boot (the
// agent reports its facts when it starts).
func (f *fleet) waitNodeBoot(t *testing.T, n *node, boot string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		nd, err := f.api.GetNode(context.Background(), n.name)
		if err == nil && nd.Facts.BootID == boot {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the server knows boot ID %q (%v), the node has %s", n.name, nd.Facts.BootID, err, boot)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// stepJournal is what a node's journal says about one step's reboots.
type stepJournal struct {
	rebooting      []string       // boot IDs of the rebooting records
	rebootRequired bool           // an action's outcome asked for a reboot
	result         map[string]any // the last result's report
}

func journalOf(recs []map[string]any, step string) stepJournal {
	var j stepJournal
	for _, r := range recs {
		if r["step"] != step {
			continue
		}
		switch r["type"] {
		case "rebooting":
			s, _ := r["bootId"].(string)
			j.rebooting = append(j.rebooting, s)
		case "action":
			if o, ok := r["outcome"].(map[string]any); ok && o["rebootRequired"] == true {
				j.rebootRequired = true
			}
		case "result":
			j.result, _ = r["report"].(map[string]any)
		}
	}
	return j
}
