package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// The fleet: six nodes over three suites and two zones, the target of the
// rollouts (role fleet), plus two nodes for bad input (role bad): odd,
// and disk, whose /var/cache/apt/archives is a 1 MiB tmpfs (a full disk:
// a package of the repository is about 2.5 MB).
func fleetNodes() []*node {
	return []*node{
		{name: "a1", suite: "bullseye", zone: "a", role: "fleet"},
		{name: "b1", suite: "bookworm", zone: "b", role: "fleet"},
		{name: "a2", suite: "trixie", zone: "a", role: "fleet"},
		{name: "b2", suite: "bullseye", zone: "b", role: "fleet"},
		{name: "a3", suite: "bookworm", zone: "a", role: "fleet"},
		{name: "b3", suite: "trixie", zone: "b", role: "fleet"},
		{name: "odd", suite: "bookworm", zone: "x", role: "bad"},
		{name: "disk", suite: "trixie", zone: "x", role: "bad", tmpfs: "/var/cache/apt/archives:size=1m"},
	}
}

const fleetSelector = `node.labels.role == "fleet"`

// TestDebianFleet runs the real server and real agents with the real apt
// driver on a Debian fleet in Docker. The subtests run in order; each
// starts from the state the previous ones left.
func TestDebianFleet(t *testing.T) {
	start := time.Now()
	// About 4 minutes with a warm build cache, plus building drover cold.
	if d, ok := t.Deadline(); ok && time.Until(d) < 8*time.Minute {
		t.Fatalf("the Debian fleet test needs up to 8 minutes; go test's -timeout leaves %s (run it with -timeout 20m)", time.Until(d).Round(time.Second))
	}
	f := setup(t, fleetNodes())
	t.Cleanup(func() { t.Logf("fleet test took %s", time.Since(start).Round(time.Second)) })
	zoneOf := map[string]string{}
	for _, n := range f.nodes {
		zoneOf[n.name] = n.zone
		if got := f.installed(t, n); got != "installed 1.0" {
			t.Fatalf("%s starts with %s %q, want installed 1.0", n.name, testPackage, got)
		}
	}
	fleet := func() []*node {
		var out []*node
		for _, n := range f.nodes {
			if n.role == "fleet" {
				out = append(out, n)
			}
		}
		return out
	}

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"roll-1.1-zone-cap", func(t *testing.T) { f.rollGood(t, fleet(), zoneOf) }},
		{"bad-1.2-canary-rolled-back", func(t *testing.T) { f.rollBad(t, fleet()) }},
		{"restart-while-apt-runs", func(t *testing.T) { f.restartDuringApt(t, f.byName["a2"]) }},
		{"restart-after-apt-ran", func(t *testing.T) { f.restartDuringSoak(t, f.byName["b1"]) }},
		// Bad input on the two bad-input nodes and a rolling reboot of two
		// fleet nodes, while the idle agent of a third is measured: four
		// groups in parallel.
		{"bad-input-reboot-and-footprint", func(t *testing.T) {
			t.Run("odd", func(t *testing.T) {
				t.Parallel()
				t.Run("version-not-in-repository", func(t *testing.T) { f.badVersion(t, f.byName["odd"]) })
				t.Run("dpkg-lock-held", func(t *testing.T) { f.lockHeld(t, f.byName["odd"]) })
				t.Run("probe-command-hangs", func(t *testing.T) { f.probeHangs(t, f.byName["odd"]) })
			})
			t.Run("disk", func(t *testing.T) {
				t.Parallel()
				t.Run("disk-full", func(t *testing.T) { f.diskFull(t, f.byName["disk"]) })
				t.Run("hostile-payloads", func(t *testing.T) { f.hostilePayloads(t, f.byName["disk"]) })
			})
			t.Run("rolling-reboot", func(t *testing.T) {
				t.Parallel()
				f.rebootRoll(t, []*node{f.byName["a3"], f.byName["b3"]})
			})
			t.Run("agent-footprint", func(t *testing.T) {
				t.Parallel()
				f.footprint(t, f.byName["a1"])
			})
		}},
		{"node-stopped-for-good", func(t *testing.T) { f.stopForGood(t, fleet(), zoneOf) }},
	}
	for _, s := range steps {
		t0 := time.Now()
		ok := t.Run(s.name, s.fn)
		t.Logf("%s: %s", s.name, time.Since(t0).Round(100*time.Millisecond))
		if !ok {
			t.FailNow() // the next steps build on this one's state
		}
	}
	if v, err := f.api.VerifyAudit(context.Background()); err != nil || !v.OK {
		t.Errorf("audit chain: %+v %v", v, err)
	}
}

// Scenario 1: 1.0 -> 1.1 over the fleet with max in flight 2 and a zone
// cap of 1. Every node ends at 1.1; the audit log shows the caps held.
func (f *fleet) rollGood(t *testing.T, nodes []*node, zoneOf map[string]string) {
	id := f.create(t, planSpec{Name: "testsvc-1-1", Selector: fleetSelector, Version: "1.1",
		Limits: "  maxInFlight: 2\n  caps:\n    zone: 1\n", OnBreach: "pause"})
	ro := f.waitTerminal(t, id, 5*time.Minute)
	if ro.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s, want succeeded:\n%s", ro.State, describeRollout(ro))
	}
	for _, n := range nodes {
		if got := f.installed(t, n); got != "installed 1.1" {
			t.Errorf("%s: %s is %q, want installed 1.1", n.name, testPackage, got)
		}
		if rn := rolloutNode(ro, n.name); rn.Phase != engine.PhaseSucceeded {
			t.Errorf("%s: phase %s, want succeeded", n.name, rn.Phase)
		}
	}
	r := replayInFlight(f.audit(t, id), zoneOf)
	t.Logf("in flight, rebuilt from the audit log:\n  %s", strings.Join(r.Timeline, "\n  "))
	if r.MaxTotal > 2 || r.MaxZone["a"] > 1 || r.MaxZone["b"] > 1 {
		t.Errorf("caps exceeded: max in flight %d (cap 2), per zone %v (cap 1)", r.MaxTotal, r.MaxZone)
	}
	if r.MaxTotal < 2 {
		t.Errorf("max in flight was %d: the two zones never ran in parallel", r.MaxTotal)
	}
}

// Scenario 2: 1.1 -> 1.2. The canary's http probe fails (503), the
// canary's budget of 0 breaches, the canary is rolled back by a real apt
// downgrade to 1.1, the rollout halts, and no other node gets a step.
func (f *fleet) rollBad(t *testing.T, nodes []*node) {
	id := f.create(t, planSpec{Name: "testsvc-1-2", Selector: fleetSelector, Version: "1.2",
		Waves:  "  - name: canary\n    nodes: 1\n    canary: true\n  - name: rest\n",
		Limits: "  maxInFlight: 2\n  caps:\n    zone: 1\n", OnBreach: "rollback-wave", Deadline: "10s"})
	ro := f.waitTerminal(t, id, 4*time.Minute)
	if ro.State != engine.RolloutHalted {
		t.Fatalf("rollout %s, want halted:\n%s", ro.State, describeRollout(ro))
	}
	var canary string
	for _, n := range ro.Nodes {
		if n.Wave == "canary" {
			canary = n.ID
		}
	}
	if canary == "" {
		t.Fatalf("no canary node:\n%s", describeRollout(ro))
	}
	entries := f.audit(t, id)
	if rn := rolloutNode(ro, canary); rn.Phase != engine.PhaseRolledBack {
		t.Errorf("canary %s: phase %s, want rolled-back", canary, rn.Phase)
	}
	failed := strings.Join(reasons(entries, canary, engine.PhaseFailed), " | ")
	if !strings.Contains(failed, "http http://127.0.0.1:8080/health") || !strings.Contains(failed, "503") {
		t.Errorf("canary %s failed with %q, want the http probe's 503", canary, failed)
	}
	t.Logf("canary %s failed: %s; rollout: %s", canary, failed, ro.Reason)
	got := dispatched(entries)
	if want := []string{"apply", "rollback"}; !slices.Equal(got[canary], want) {
		t.Errorf("canary %s got steps %v, want %v", canary, got[canary], want)
	}
	for _, n := range nodes {
		if got := f.installed(t, n); got != "installed 1.1" {
			t.Errorf("%s: %s is %q after the rollback, want installed 1.1", n.name, testPackage, got)
		}
		if n.name != canary && len(got[n.name]) > 0 {
			t.Errorf("%s is not the canary but got steps %v", n.name, got[n.name])
		}
	}
	// The rollback was a real apt downgrade on the canary.
	c := f.byName[canary]
	hist := f.mustSh(t, c, "cat /var/log/apt/history.log")
	if !regexp.MustCompile(`Commandline: apt-get install .*--allow-downgrades.* drover-testsvc=1\.1\n(Requested-By: .*\n)?Downgrade: drover-testsvc:\S+ \(1\.2, 1\.1\)`).MatchString(hist) {
		t.Errorf("%s: no apt downgrade 1.2 -> 1.1 in history.log:\n%s", canary, hist)
	}
}

// waitIn polls a shell condition inside n until it succeeds.
func (f *fleet) waitIn(t *testing.T, n *node, script string, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := f.sh(n, script); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not seen within %s", n.name, what, within)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// countIn counts the lines of file inside n matching the extended regexp.
func (f *fleet) countIn(t *testing.T, n *node, re, file string) int {
	t.Helper()
	out, _ := f.sh(n, fmt.Sprintf("grep -cE %s %s || true", shQuote(re), file))
	c, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("%s: grep %s: %q", n.name, file, out)
	}
	return c
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// snapshots counts the journal's snapshot records of a step: each one
// marks an Apply that began.
func (f *fleet) snapshots(n *node, step string) int {
	c := 0
	for _, r := range f.journal(n) {
		if r["step"] == step && r["type"] == "action" && r["stage"] == "snapshot" {
			c++
		}
	}
	return c
}

func applyStep(ro api.Rollout, node string) string {
	return ro.ID + "/" + node + "/apply/1"
}

// Scenario 3a: the container restarts while apt runs the slow preinst of
// 1.1.1: an unplanned reboot (a new boot ID, see entrypoint), as after a
// power cut. dpkg is cut short and leaves the package half-installed.
// The agent comes back, reads its journal, does not run the step again,
// verifies (the package is not at 1.1.1), undoes what had begun (apt
// refuses until dpkg --configure -a finishes the interrupted run, then
// reinstalls 1.1) and reports the step interrupted, not failed: an
// interruption says nothing about the change. The plan's default
// onInterrupted: retry sends the node back to its wave, and the second
// attempt installs 1.1.1; the rollout succeeds.
func (f *fleet) restartDuringApt(t *testing.T, n *node) {
	id := f.create(t, planSpec{Name: "restart-during-apt", Selector: `node.id == "` + n.name + `"`, Version: "1.1.1", Deadline: "60s"})
	f.waitIn(t, n, "test -e /run/drover-testsvc-preinst", 2*time.Minute, "the preinst of 1.1.1 running")
	t0 := time.Now()
	mustDocker(t, "restart", "-t", "2", n.container)
	t.Logf("restarted %s while apt ran the preinst of 1.1.1 (%s)", n.name, time.Since(t0).Round(time.Millisecond))
	ro := f.waitTerminal(t, id, 3*time.Minute)
	entries := f.audit(t, id)
	var interrupted []string
	for _, e := range entries {
		var d struct{ Reported engine.Phase }
		if e.Action == "node.phase" && e.Object == "node/"+n.name && json.Unmarshal(e.Detail, &d) == nil && d.Reported == engine.PhaseInterrupted {
			interrupted = append(interrupted, detailOf(e).Reason)
		}
	}
	why := strings.Join(interrupted, " | ")
	t.Logf("%s: rollout %s; step interrupted: %s", n.name, ro.State, why)
	if ro.State != engine.RolloutSucceeded || rolloutNode(ro, n.name).Phase != engine.PhaseSucceeded {
		t.Errorf("rollout %s, want succeeded after one retry of the interrupted step:\n%s", ro.State, describeRollout(ro))
	}
	if failed := reasons(entries, n.name, engine.PhaseFailed); len(failed) > 0 {
		t.Errorf("the interrupted step was counted as failed: %q", failed)
	}
	if len(interrupted) != 1 || !strings.Contains(why, "interrupted while package "+testPackage+" 1.1.1 was being applied") || !strings.Contains(why, "not re-run") {
		t.Errorf("interruptions %q: want one, saying the step was interrupted while applying and not re-run", interrupted)
	}
	if !strings.Contains(why, "the node rebooted") {
		t.Errorf("interruption %q does not say the node rebooted (the restart gave the container a new boot ID)", why)
	}
	if got := f.installed(t, n); got != "installed 1.1.1" {
		t.Errorf("%s is %q, want installed 1.1.1 (by the retry)", testPackage, got)
	}
	arch := debArch()
	if c := f.countIn(t, n, " upgrade "+testPackage+":"+arch+" 1.1 1.1.1$", "/var/log/dpkg.log"); c != 2 {
		t.Errorf("dpkg.log shows %d upgrades 1.1 -> 1.1.1, want 2 (the interrupted one and the retry)", c)
	}
	if c := f.countIn(t, n, "^Commandline: apt-get install .* "+testPackage+"=1\\.1\\.1$", "/var/log/apt/history.log"); c != 2 {
		t.Errorf("history.log shows %d apt-get installs of 1.1.1, want 2", c)
	}
	if c := f.countIn(t, n, " status installed "+testPackage+":"+arch+" 1.1.1$", "/var/log/dpkg.log"); c != 1 {
		t.Errorf("dpkg.log shows 1.1.1 installed %d times, want 1 (the retry)", c)
	}
	if c := f.snapshots(n, applyStep(ro, n.name)); c != 1 {
		t.Errorf("journal shows %d Apply starts of the interrupted step, want 1 (never re-run)", c)
	}
	if c := f.snapshots(n, ro.ID+"/"+n.name+"/apply/2"); c != 1 {
		t.Errorf("journal shows %d Apply starts of the retry, want 1", c)
	}
	if c := f.countIn(t, n, "^Reinstall: "+testPackage+":"+arch+" \\(1\\.1\\)$", "/var/log/apt/history.log"); c != 1 {
		t.Errorf("history.log shows %d reinstalls of the half-installed 1.1, want 1", c)
	}
}

// Scenario 3b: the container restarts (an unplanned reboot) after apt
// installed 1.1.1, while the agent soaks the step's probes. The agent
// resumes from its journal, verifies 1.1.1 in place, probes again and
// reports success; apt ran once.
func (f *fleet) restartDuringSoak(t *testing.T, n *node) {
	arch := debArch()
	id := f.create(t, planSpec{Name: "restart-during-soak", Selector: `node.id == "` + n.name + `"`, Version: "1.1.1",
		MinHealthy: "15s", Deadline: "60s"})
	f.waitIn(t, n, "grep -qE "+shQuote(" status installed "+testPackage+":"+arch+" 1.1.1$")+" /var/log/dpkg.log", 2*time.Minute, "1.1.1 installed")
	mustDocker(t, "restart", "-t", "2", n.container)
	t.Logf("restarted %s right after apt installed 1.1.1", n.name)
	ro := f.waitTerminal(t, id, 3*time.Minute)
	if ro.State != engine.RolloutSucceeded || rolloutNode(ro, n.name).Phase != engine.PhaseSucceeded {
		t.Errorf("rollout %s, want succeeded:\n%s", ro.State, describeRollout(ro))
	}
	if got := f.installed(t, n); got != "installed 1.1.1" {
		t.Errorf("%s is %q, want installed 1.1.1", testPackage, got)
	}
	if c := f.countIn(t, n, " status installed "+testPackage+":"+arch+" 1.1.1$", "/var/log/dpkg.log"); c != 1 {
		t.Errorf("dpkg.log shows 1.1.1 installed %d times, want exactly 1", c)
	}
	if c := f.countIn(t, n, "^Upgrade: "+testPackage+":"+arch+" \\(1\\.1, 1\\.1\\.1\\)$", "/var/log/apt/history.log"); c != 1 {
		t.Errorf("history.log shows %d upgrades 1.1 -> 1.1.1, want exactly 1", c)
	}
	if c := f.snapshots(n, applyStep(ro, n.name)); c != 1 {
		t.Errorf("journal shows %d Apply starts of the step, want 1", c)
	}
	logs, _ := docker(context.Background(), "logs", n.container)
	if !strings.Contains(logs, "resuming interrupted step") {
		t.Errorf("the agent's log does not show the step resumed after the restart:\n%s", tail(logs, 30))
	}
}

// failedWith runs a one-node rollout expected to fail and returns the
// reason the node failed with, and the final rollout.
func (f *fleet) failedWith(t *testing.T, p planSpec, n *node) (string, api.Rollout) {
	t.Helper()
	p.Selector = `node.id == "` + n.name + `"`
	id := f.create(t, p)
	ro := f.waitTerminal(t, id, 3*time.Minute)
	failed := strings.Join(reasons(f.audit(t, id), n.name, engine.PhaseFailed), " | ")
	t.Logf("%s: rollout %s, node %s; failed with: %s", n.name, ro.State, rolloutNode(ro, n.name).Phase, failed)
	if ro.State != engine.RolloutHalted {
		t.Errorf("rollout %s, want halted:\n%s", ro.State, describeRollout(ro))
	}
	return failed, ro
}

func (f *fleet) badVersion(t *testing.T, n *node) {
	// The step's own check, as when the repository changed after the
	// fleet pre-flight (which TestDebianFleetPreflight shows stopping this).
	failed, _ := f.failedWith(t, planSpec{Name: "no-such-version", Version: "9.9", NoPreflight: true}, n)
	for _, want := range []string{testPackage + "=9.9: version not available (available: ", "target not available", "nothing was changed"} {
		if !strings.Contains(failed, want) {
			t.Errorf("reason %q does not contain %q", failed, want)
		}
	}
	if got := f.installed(t, n); got != "installed 1.0" {
		t.Errorf("%s is %q, want installed 1.0 (unchanged)", testPackage, got)
	}
}

// lockHeld: another process holds /var/lib/dpkg/lock-frontend the way apt
// does (an fcntl lock: flock(1) takes a BSD lock, which apt does not see).
func (f *fleet) lockHeld(t *testing.T, n *node) {
	if _, err := docker(context.Background(), "exec", "-d", n.container, "sh", "-c",
		"echo $$ >/tmp/lockholder.pid; exec /opt/drover/drover-testsvc hold-lock /var/lib/dpkg/lock-frontend 300s >/tmp/lockholder.out 2>&1"); err != nil {
		t.Fatal(err)
	}
	f.waitIn(t, n, "grep -q locked /tmp/lockholder.out", 30*time.Second, "the lock held")
	defer f.sh(n, "kill $(cat /tmp/lockholder.pid)")
	failed, _ := f.failedWith(t, planSpec{Name: "dpkg-locked", Version: "1.1"}, n)
	for _, want := range []string{"lock /var/lib/dpkg/lock-frontend held by process", "(drover-testsvc)"} {
		if !strings.Contains(failed, want) {
			t.Errorf("reason %q does not contain %q", failed, want)
		}
	}
	if got := f.installed(t, n); got != "installed 1.0" {
		t.Errorf("%s is %q, want installed 1.0 (unchanged)", testPackage, got)
	}
}

// probeHangs: the step applies, then its command probe hangs; each try is
// killed at its timeout, the node fails past its healthy deadline and the
// rollback downgrades it again. The probe hangs after the rollback too, so
// the rollback is not verified: the node is rollback-unhealthy (kept out
// of service) and the rollout ends failed rather than halted.
func (f *fleet) probeHangs(t *testing.T, n *node) {
	p := planSpec{Name: "probe-hangs", Version: "1.1", Deadline: "6s", Selector: `node.id == "` + n.name + `"`,
		Probes: "      - name: hangs\n        kind: command\n        command: [sleep, \"3600\"]\n        timeout: 2s\n        interval: 1s\n"}
	ro := f.waitTerminal(t, f.create(t, p), 3*time.Minute)
	failed := strings.Join(reasons(f.audit(t, ro.ID), n.name, engine.PhaseFailed), " | ")
	if ro.State != engine.RolloutFailed {
		t.Errorf("rollout %s, want failed (its node unhealthy after the rollback):\n%s", ro.State, describeRollout(ro))
	}
	for _, want := range []string{"node probes did not pass within 6s", "hangs: command sleep 3600: no exit within the timeout"} {
		if !strings.Contains(failed, want) {
			t.Errorf("reason %q does not contain %q", failed, want)
		}
	}
	if rn := rolloutNode(ro, n.name); rn.Phase != engine.PhaseRollbackUnhealthy || !strings.Contains(rn.Reason, "still unhealthy") {
		t.Errorf("node %s (%s), want rollback-unhealthy", rn.Phase, rn.Reason)
	}
	if got := f.installed(t, n); got != "installed 1.0" {
		t.Errorf("%s is %q, want installed 1.0 (rolled back)", testPackage, got)
	}
	if out, _ := f.sh(n, "ps -eo args 2>/dev/null || for p in /proc/[0-9]*; do tr '\\0' ' ' <$p/cmdline; echo; done"); strings.Contains(out, "sleep 3600") {
		t.Errorf("the hung probe command is still running:\n%s", out)
	}
}

func (f *fleet) diskFull(t *testing.T, n *node) {
	// The step's own check, as when the disk filled after the fleet
	// pre-flight.
	failed, _ := f.failedWith(t, planSpec{Name: "disk-full", Version: "1.1", NoPreflight: true}, n)
	if !regexp.MustCompile(`apt: download needs \d+ bytes, \d+ free: not enough disk space`).MatchString(failed) || !strings.Contains(failed, "nothing was changed") {
		t.Errorf("reason %q does not say the download does not fit", failed)
	}
	if got := f.installed(t, n); got != "installed 1.0" {
		t.Errorf("%s is %q, want installed 1.0 (unchanged)", testPackage, got)
	}
}

// footprint measures the idle agent inside a container: its resident set
// (VmRSS) and the CPU it used over 60 s of 10 s heartbeats.
func (f *fleet) footprint(t *testing.T, n *node) {
	pid := strings.TrimSpace(f.mustSh(t, n, `for p in /proc/[0-9]*; do if [ "$(cat $p/comm 2>/dev/null)" = drover ]; then echo ${p#/proc/}; fi; done`))
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("agent process not found: %q", pid)
	}
	kib := func(status, field string) int {
		if m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindStringSubmatch(status); m != nil {
			v, _ := strconv.Atoi(m[1])
			return v
		}
		return -1
	}
	var anon, file, pss int
	read := func() (rssKiB, ticks int) {
		status := f.mustSh(t, n, "cat /proc/"+pid+"/status")
		rssKiB, anon, file = kib(status, "VmRSS"), kib(status, "RssAnon"), kib(status, "RssFile")
		pss = kib(f.mustSh(t, n, "cat /proc/"+pid+"/smaps_rollup"), "Pss")
		stat := f.mustSh(t, n, "cat /proc/"+pid+"/stat")
		fields := strings.Fields(stat[strings.LastIndex(stat, ")")+1:])
		ut, _ := strconv.Atoi(fields[11]) // utime, field 14
		st, _ := strconv.Atoi(fields[12]) // stime, field 15
		return rssKiB, ut + st
	}
	const window = 60 * time.Second
	rss0, t0 := read()
	time.Sleep(window)
	rss1, t1 := read()
	const hz = 100 // USER_HZ on Linux
	cpu := time.Duration(t1-t0) * time.Second / hz
	pct := 100 * cpu.Seconds() / window.Seconds()
	t.Logf("idle agent on %s (%s): VmRSS %d KiB -> %d KiB (%.1f MiB: anonymous %d KiB, file-backed %d KiB, the static binary's pages shared by every agent on the host; PSS %d KiB); CPU %s over %s = %.3f%% of a core (heartbeat %s)",
		n.name, n.suite, rss0, rss1, float64(rss1)/1024, anon, file, pss, cpu, window, pct, pollWait)
	// The goal: 20 MiB of the agent's own memory (anonymous: the binary's
	// clean file-backed pages are shared and reclaimable) and 0.1% of a core.
	if anon > 20*1024 || pct > 0.1 {
		t.Errorf("idle agent over the goal of 20 MiB anonymous memory and 0.1%% of a core: %d KiB, %.3f%%", anon, pct)
	}
}

// Scenario 4: a zone-a node's container is stopped for good while its step
// runs. Its node becomes unknown past the lease and keeps its slot: zone
// a stays at its cap, the other zone-a nodes wait (never dispatched) while
// zone b finishes, and max in flight and the zone caps hold throughout.
func (f *fleet) stopForGood(t *testing.T, nodes []*node, zoneOf map[string]string) {
	id := f.create(t, planSpec{Name: "testsvc-back-to-1-0", Selector: fleetSelector, Version: "1.0",
		Limits: "  maxInFlight: 2\n  caps:\n    zone: 1\n", OnBreach: "pause", MinHealthy: "8s", Deadline: "30s"})
	var victim string
	f.waitRollout(t, id, 2*time.Minute, "a zone-a node in flight", func(ro api.Rollout) bool {
		for _, n := range ro.Nodes {
			if zoneOf[n.ID] == "a" && (n.Phase == engine.PhaseQueued || n.Phase == engine.PhaseRunning || n.Phase == engine.PhaseVerifying) {
				victim = n.ID
				return true
			}
		}
		return false
	})
	stoppedAt := time.Now()
	// docker kill is a manual stop: the restart policy that brings
	// rebooted containers back leaves this one down.
	mustDocker(t, "kill", f.byName[victim].container)
	t.Logf("killed %s (zone a) while its step ran", victim)
	ro := f.waitRollout(t, id, lease+time.Minute, victim+" unknown", func(ro api.Rollout) bool {
		return rolloutNode(ro, victim).Phase == engine.PhaseUnknown
	})
	t.Logf("%s unknown %s after it was stopped: %s", victim, time.Since(stoppedAt).Round(time.Second), rolloutNode(ro, victim).Reason)
	capWait := "zone a at cap 1/1"
	ro = f.waitRollout(t, id, 3*time.Minute, "zone b done and zone a waiting at its cap", func(ro api.Rollout) bool {
		for _, n := range ro.Nodes {
			if zoneOf[n.ID] == "b" && n.Phase != engine.PhaseSucceeded {
				return false
			}
		}
		for _, w := range ro.Waits {
			if strings.Contains(w.Reason, capWait) {
				return true
			}
		}
		return false
	})
	t.Logf("rollout after zone b finished:\n%s", describeRollout(ro))
	if ro.State != engine.RolloutRunning {
		t.Errorf("rollout %s, want running (waiting)", ro.State)
	}
	entries := f.audit(t, id)
	got := dispatched(entries)
	for _, n := range nodes {
		rn := rolloutNode(ro, n.name)
		switch {
		case n.name == victim:
			if rn.Phase != engine.PhaseUnknown || !strings.Contains(rn.Reason, "agent silent since") {
				t.Errorf("%s: %s %q, want unknown with the agent silent", n.name, rn.Phase, rn.Reason)
			}
		case n.zone == "a":
			if rn.Phase != engine.PhasePending || len(got[n.name]) > 0 {
				t.Errorf("%s (zone a): %s with steps %v, want pending and never dispatched", n.name, rn.Phase, got[n.name])
			}
		default:
			if v := f.installed(t, n); v != "installed 1.0" {
				t.Errorf("%s: %q, want installed 1.0", n.name, v)
			}
		}
	}
	waitNodes := ""
	for _, w := range ro.Waits {
		if strings.Contains(w.Reason, capWait) {
			waitNodes = fmt.Sprint(w.Nodes)
		}
	}
	t.Logf("waits: %q for %s", capWait, waitNodes)
	r := replayInFlight(entries, zoneOf)
	t.Logf("in flight, rebuilt from the audit log:\n  %s", strings.Join(r.Timeline, "\n  "))
	if r.MaxTotal > 2 || r.MaxZone["a"] > 1 || r.MaxZone["b"] > 1 {
		t.Errorf("caps exceeded: max in flight %d (cap 2), per zone %v (cap 1)", r.MaxTotal, r.MaxZone)
	}
	if st := strings.TrimSpace(mustDocker(t, "inspect", "-f", "{{.State.Status}}", f.byName[victim].container)); st != "exited" {
		t.Errorf("%s's container is %s, want exited (stopped for good)", victim, st)
	}
	if _, err := f.api.Command(context.Background(), id, "abort", ro.Version, api.CommandRequest{Reason: "fleet test: " + victim + " is gone for good"}); err != nil {
		t.Errorf("abort: %v", err)
	}
}
