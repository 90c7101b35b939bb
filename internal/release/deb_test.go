package release

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// debContainer is a drover-fleet:bookworm container (scripts/deps.sh
// builds the image; no systemd runs in it, so the scripts' systemctl
// calls are skipped as on any host without systemd) with the packages of
// two releases mounted at /v1 and /v2.
type debContainer struct {
	t    *testing.T
	name string
}

func startDebContainer(t *testing.T, v1, v2 string) *debContainer {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("docker not found: the .deb test installs the packages in a drover-fleet:bookworm container")
	}
	c := &debContainer{t: t, name: "drover-release-test-" + randName()}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--rm", "--name", c.name, "--label", "drover-release-test=1",
		"-v", v1+":/v1:ro", "-v", v2+":/v2:ro", "drover-fleet:bookworm", "sleep", "infinity").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", c.name).Run() })
	return c
}

func randName() string {
	return strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "")
}

// sh runs script in the container and returns its output; a failure
// fails the test.
func (c *debContainer) sh(script string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "exec", c.name, "sh", "-ec", script).CombinedOutput()
	if err != nil {
		c.t.Fatalf("in the container: %s\n%v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestDebAgent installs, upgrades, removes and purges drover-agent with
// the real dpkg: the conffile, the state directory and its journal
// survive the upgrade and the removal; only the purge deletes them.
func TestDebAgent(t *testing.T) {
	v1, _ := buildRelease(t, "1.0.0")
	v2, _ := buildRelease(t, "1.1.0")
	c := startDebContainer(t, v1, v2)
	out := c.sh("dpkg -i /v1/drover-agent_1.0.0_amd64.deb")
	if !strings.Contains(out, "Setting up drover-agent (1.0.0)") {
		t.Errorf("dpkg -i:\n%s", out)
	}
	if got := c.sh("drover-agent"); got != "drover-agent 1.0.0" {
		t.Errorf("installed program says %q", got)
	}
	if got := c.sh("stat -c '%a %U' /etc/drover/agent.yaml /var/lib/drover /usr/lib/systemd/system/drover-agent.service /usr/bin/drover-agent"); got != "600 root\n700 root\n644 root\n755 root" {
		t.Errorf("modes and owners:\n%s", got)
	}
	if got := c.sh("dpkg-query -W -f '${Conffiles}' drover-agent"); !strings.Contains(got, "/etc/drover/agent.yaml") {
		t.Errorf("conffiles: %q", got)
	}
	// The agent's journal and an edited config, then the upgrade.
	c.sh(`echo '{"type":"step","id":"s1"}' >/var/lib/drover/journal.jsonl
echo 'server: https://drover.example.net:7070' >>/etc/drover/agent.yaml`)
	before := c.sh("sha256sum /var/lib/drover/journal.jsonl /etc/drover/agent.yaml")
	out = c.sh("dpkg -i /v2/drover-agent_1.1.0_amd64.deb")
	if !strings.Contains(out, "Unpacking drover-agent (1.1.0) over (1.0.0)") {
		t.Errorf("upgrade:\n%s", out)
	}
	if got := c.sh("drover-agent"); got != "drover-agent 1.1.0" {
		t.Errorf("after the upgrade the program says %q", got)
	}
	if after := c.sh("sha256sum /var/lib/drover/journal.jsonl /etc/drover/agent.yaml"); after != before {
		t.Errorf("the upgrade changed the journal or the config:\n%s\nwas\n%s", after, before)
	}
	// Removal keeps the state and the conffile; purge deletes both.
	c.sh("dpkg -r drover-agent")
	if got := c.sh("test ! -e /usr/bin/drover-agent && cat /var/lib/drover/journal.jsonl && grep -c '^server:' /etc/drover/agent.yaml"); got != `{"type":"step","id":"s1"}`+"\n1" {
		t.Errorf("after dpkg -r: %q", got)
	}
	c.sh("dpkg -P drover-agent")
	if got := c.sh("ls -d /var/lib/drover /etc/drover 2>&1 || true"); strings.Count(got, "No such file") != 2 {
		t.Errorf("after dpkg -P: %q", got)
	}
}

// TestDebServer: the server's package makes its user, gives it the data
// directory and the config (which holds users' tokens) read-only, and
// keeps the data across an upgrade and a removal; purge deletes the data
// and the user.
func TestDebServer(t *testing.T) {
	v1, _ := buildRelease(t, "1.0.0")
	v2, _ := buildRelease(t, "1.1.0")
	c := startDebContainer(t, v1, v2)
	c.sh("dpkg -i /v1/drover_1.0.0_amd64.deb")
	if got := c.sh("getent passwd drover | cut -d: -f6,7"); got != "/var/lib/drover-server:/usr/sbin/nologin" {
		t.Errorf("user drover: %q", got)
	}
	if got := c.sh("stat -c '%a %U:%G' /etc/drover/server.yaml /var/lib/drover-server"); got != "640 root:drover\n700 drover:drover" {
		t.Errorf("modes and owners:\n%s", got)
	}
	c.sh("echo data >/var/lib/drover-server/drover.db")
	c.sh("dpkg -i /v2/drover_1.1.0_amd64.deb")
	if got := c.sh("drover; cat /var/lib/drover-server/drover.db; stat -c '%a %U:%G' /etc/drover/server.yaml"); got != "drover 1.1.0\ndata\n640 root:drover" {
		t.Errorf("after the upgrade: %q", got)
	}
	c.sh("dpkg -r drover")
	if got := c.sh("cat /var/lib/drover-server/drover.db"); got != "data" {
		t.Errorf("after dpkg -r: %q", got)
	}
	c.sh("dpkg -P drover")
	if got := c.sh("ls /var/lib/drover-server 2>&1 || true; getent passwd drover || echo no user"); !strings.Contains(got, "No such file") || !strings.Contains(got, "no user") {
		t.Errorf("after dpkg -P: %q", got)
	}
}
