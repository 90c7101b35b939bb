package fleettest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/release"
)

// agentStart is how a packaged node starts its agent: the real
// drover-agent .deb (1.0.0, from /opt/drover) installed with dpkg -i on
// the first boot, its config file /etc/drover/agent.yaml filled in as an
// operator would (server, node ID, enrolment token, CA pin), and then the
// command line of the package's systemd unit, ExecStart of
// deploy/systemd/drover-agent.service. The containers have no systemd: the
// postinst skips its systemctl calls as on any host without it, and this
// script stands in for the unit. The harness's DROVER_* variables are
// unset so that the config file alone configures the agent.
const agentStart = `if ! dpkg-query -W -f '${Status}' drover-agent 2>/dev/null | grep -q 'ok installed'; then
	dpkg -i /opt/drover/drover-agent_1.0.0_$(dpkg --print-architecture).deb
	cat >>/etc/drover/agent.yaml <<EOF
server: $DROVER_SERVER
node-id: $DROVER_NODE
enroll-token: $DROVER_ENROLL_TOKEN
ca-hash: "$DROVER_CA_HASH"
allow-command-probes: true
EOF
fi
unset DROVER_SERVER DROVER_ENROLL_TOKEN DROVER_CA_HASH DROVER_NODE
exec /usr/bin/drover-agent --config /etc/drover/agent.yaml --state-dir /var/lib/drover
`

// buildAgentPackages builds the real drover-agent and packages it with
// internal/release as 1.0.0 (into bin, which the containers mount at
// /opt/drover) and 1.1.0 (into the apt repository, for a rollout to
// install), and writes entrypoint-packaged.sh: the fleet's entrypoint
// with agentStart in place of its `drover agent`.
func buildAgentPackages(t *testing.T, root, bin, repo string) {
	t.Helper()
	bins := t.TempDir()
	goBuild(t, root, filepath.Join(bins, "drover-agent-linux-"+debArch()), "./cmd/drover-agent")
	for dir, version := range map[string]string{bin: "1.0.0", repo: "1.1.0"} {
		if _, err := release.Build(release.Options{Version: version, Root: root, BinDir: bins, OutDir: dir,
			Only: []string{"drover-agent"}, Formats: []string{"deb"}, Arches: []string{debArch()}}); err != nil {
			t.Fatalf("package drover-agent %s: %v", version, err)
		}
	}
	i := strings.Index(entrypoint, "exec /opt/drover/drover agent")
	if i < 0 {
		t.Fatal("the fleet entrypoint no longer starts /opt/drover/drover agent")
	}
	script := strings.ReplaceAll(entrypoint[:i], "$FLEET_BASE_KERNEL", baseKernelPackage) + agentStart
	if err := os.WriteFile(filepath.Join(bin, "entrypoint-packaged.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// agentProcs lists the processes running /usr/bin/drover-agent: "PID
// PROGRAM" ("... (deleted)" when the program was replaced since).
const agentProcs = `for p in /proc/[0-9]*; do case "$(readlink $p/exe)" in /usr/bin/drover-agent*) echo "${p#/proc/} $(readlink $p/exe)";; esac; done`

// TestPackagedAgent installs drover-agent from its .deb in a Debian
// container, where it enrols from its packaged config; then a rollout
// upgrades the drover-agent package itself to 1.1.0 through the agent's
// own apt step. dpkg replaces the running agent's program mid-step; the
// agent finishes the step (the rollout succeeds), then re-executes the
// new program in the same process, and its journal and identity survive.
func TestPackagedAgent(t *testing.T) {
	n := &node{name: "pkg1", suite: "bookworm", zone: "a", role: "fleet", packaged: true}
	f := setup(t, []*node{n}) // waits until the agent enrolled and registered
	before := strings.TrimSpace(f.mustSh(t, n, agentProcs))
	t.Logf("packaged agent running: %s", before)
	if got := f.mustSh(t, n, "dpkg-query -W -f '${Version}' drover-agent"); got != "1.0.0" {
		t.Fatalf("drover-agent %q installed, want 1.0.0", got)
	}
	p := planSpec{Name: "agent-1-1-0", Selector: `node.labels.role == "fleet"`, Version: "1.1.0", OnBreach: "pause"}
	plan := strings.Replace(p.yaml(), "- name: "+testPackage, "- name: drover-agent", 1)
	ro, err := f.api.CreateRollout(t.Context(), p.Name+".yaml", plan)
	if err != nil {
		t.Fatalf("create rollout: %v\n%s", err, plan)
	}
	done := f.waitTerminal(t, ro.ID, 4*time.Minute)
	if done.State != engine.RolloutSucceeded {
		t.Fatalf("rollout %s, want succeeded:\n%s", done.State, describeRollout(done))
	}
	if got := f.mustSh(t, n, "dpkg-query -W -f '${Version} ${Status}' drover-agent"); got != "1.1.0 install ok installed" {
		t.Errorf("drover-agent after the rollout: %q", got)
	}
	// Once the step is reported the agent restarts into the new program:
	// the same PID, its program no longer the deleted 1.0.0 file.
	f.waitIn(t, n, `for p in /proc/[0-9]*; do [ "$(readlink $p/exe)" = /usr/bin/drover-agent ] && exit 0; done; exit 1`, time.Minute, "the agent running the upgraded program")
	after := strings.TrimSpace(f.mustSh(t, n, agentProcs))
	t.Logf("after the upgrade: %s", after)
	if len(strings.Fields(after)) != 2 || strings.Fields(after)[0] != strings.Fields(before)[0] {
		t.Errorf("agent before the upgrade %q, after %q: want the same PID running the new program", before, after)
	}
	if logs := mustDocker(t, "logs", n.container); !strings.Contains(logs, "agent program replaced on disk during a step") {
		t.Errorf("the agent did not log its restart into the replaced program:\n%s", tail(logs, 30))
	}
	// The journal holds the step's result; the config file is the one the
	// first boot filled in; the state dir keeps the journal.
	var result bool
	for _, r := range f.journal(n) {
		if r["type"] == "result" {
			result = true
		}
	}
	if !result {
		t.Errorf("journal has no step result after the upgrade: %v", f.journal(n))
	}
	if got := f.mustSh(t, n, "grep -c '^enroll-token:' /etc/drover/agent.yaml; ls /var/lib/drover"); !strings.HasPrefix(got, "1\n") || !strings.Contains(got, "journal.jsonl") {
		t.Errorf("config or state after the upgrade:\n%s", got)
	}
}
