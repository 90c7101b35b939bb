package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// TestAnsibleEnrolment is enrolment at scale end to end: the real `drover
// server` (TLS, its own CA), an Ansible INI inventory of three bare
// drover-fleet:bookworm containers (no agent, no Python) imported with
// `drover nodes import`, their coverage (none), one enrolment token per
// host from `drover token enroll --inventory`, and the repository's
// playbook deploy/ansible/enroll.yml run by the real ansible-playbook
// over Docker's connection (ansible_connection=docker): it installs the
// drover-agent binary, writes its configuration and starts it (the
// containers have no systemd). The agents enrol with their bound tokens,
// register with their inventory labels, and coverage is complete. A
// second run of the playbook changes nothing and needs no token.
//
// Two hosts get the binary, the third a .deb of it. It needs Docker, the
// image drover-fleet:bookworm (scripts/fleet-rootfs.sh), dpkg-deb
// and ansible-playbook (scripts/deps.sh installs Debian's ansible); it
// fails, never skips, without them.
func TestAnsibleEnrolment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("the Ansible enrolment test needs the Docker CLI: docker not found")
	}
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		t.Fatal("the Ansible enrolment test needs ansible-playbook (scripts/deps.sh installs Debian's ansible)")
	}
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", "drover-fleet:bookworm"); err != nil {
		t.Fatalf("image drover-fleet:bookworm missing (scripts/fleet-rootfs.sh builds it): %v", err)
	}
	root := moduleRoot(t)
	f := &fleet{t: t, id: randHex(4), dir: t.TempDir(), byName: map[string]*node{}}
	f.bin = filepath.Join(f.dir, "bin")
	if err := os.MkdirAll(f.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	drover, agentBin := filepath.Join(f.bin, "drover"), filepath.Join(f.bin, "drover-agent")
	goBuild(t, root, drover, "./cmd/drover")
	goBuild(t, root, agentBin, "./cmd/drover-agent")
	ctx, cancel = context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	sweepStale(t)
	f.network = "drover-fleettest-" + f.id
	mustDocker(t, "network", "create", "--label", "drover-fleettest="+f.id, "--label", pidLabel(), f.network)
	t.Cleanup(f.cleanup)
	f.gateway = strings.TrimSpace(mustDocker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", f.network))
	f.startServer(t)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range f.nodes {
			out, _ := docker(context.Background(), "exec", n.container, "sh", "-c", "cat /var/log/drover-agent.log /etc/default/drover-agent")
			t.Logf("== %s agent log and configuration:\n%s", n.name, tail(out, 60))
		}
	})
	caFile := filepath.Join(f.dir, "ca.pem")
	if err := os.WriteFile(caFile, f.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	// Three bare containers: a shell and coreutils, no agent, no Python.
	zones := map[string]string{"inv-a": "a", "inv-b": "b", "inv-c": "a"}
	var inv strings.Builder
	inv.WriteString("[web]\n")
	for _, name := range []string{"inv-a", "inv-b", "inv-c"} {
		n := &node{name: name, suite: "bookworm", zone: zones[name], container: "drover-fleettest-" + f.id + "-" + name,
			stateDir: "/var/lib/drover (in the container)"}
		f.nodes = append(f.nodes, n)
		f.byName[name] = n
		mustDocker(t, "run", "-d", "--init", "--name", n.container, "--hostname", name, "--network", f.network,
			"--label", "drover-fleettest="+f.id, "--label", pidLabel(), "drover-fleet:bookworm", "sleep", "infinity")
		fmt.Fprintf(&inv, "%s ansible_host=%s zone=%s\n", name, n.container, n.zone)
	}
	inv.WriteString("\n[web:vars]\nansible_connection=docker\ntier=frontend\n")
	invFile := filepath.Join(f.dir, "lab.ini")
	if err := os.WriteFile(invFile, []byte(inv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// inv-a and inv-b get the binary, inv-c a .deb of it (the role's two
	// ways), through Ansible's group_vars and host_vars next to the
	// inventory, which drover nodes import does not read.
	deb := buildAgentDeb(t, ctx, f.dir, agentBin)
	for file, text := range map[string]string{
		"group_vars/all.yml":  "drover_agent_binary: " + agentBin + "\n",
		"host_vars/inv-c.yml": "drover_agent_binary: \"\"\ndrover_agent_deb: " + deb + "\n",
	} {
		p := filepath.Join(f.dir, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, drover, args...)
		cmd.Env = append(os.Environ(), "DROVER_SERVER="+f.server, "DROVER_TOKEN="+f.api.Token, "DROVER_CA_CERT="+caFile)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("drover %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out)
	}
	coverage := func() api.InventoryStatus {
		t.Helper()
		var st api.InventoryStatus
		if err := json.Unmarshal([]byte(cli("nodes", "coverage", "--inventory", "lab", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	out := cli("nodes", "import", invFile, "--inventory", "lab", "--yes")
	if !strings.Contains(out, "inventory lab imported: 3 hosts (3 added") {
		t.Fatalf("import: %s", out)
	}
	if out = cli("nodes", "import", invFile, "--inventory", "lab", "--yes"); !strings.Contains(out, "no change") {
		t.Fatalf("re-import: %s", out)
	}
	if st := coverage(); st.Expected != 3 || st.Covered != 0 || len(st.Missing) != 3 {
		t.Fatalf("coverage before the playbook: %+v", st)
	}

	tokens := filepath.Join(f.dir, "tokens.json")
	if err := os.WriteFile(tokens, []byte(cli("token", "enroll", "--inventory", "lab", "--ttl", "15m")), 0o600); err != nil {
		t.Fatal(err)
	}

	playbook := func() string {
		t.Helper()
		start := time.Now()
		cmd := exec.CommandContext(ctx, "ansible-playbook", "-i", invFile, filepath.Join(root, "deploy", "ansible", "enroll.yml"),
			"-e", "@"+tokens, "-e", "drover_server="+f.server)
		cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+filepath.Join(f.dir, "ansible"), "ANSIBLE_NOCOLOR=1",
			"ANSIBLE_LOCAL_TEMP="+filepath.Join(f.dir, "ansible", "tmp"), "ANSIBLE_RETRY_FILES_ENABLED=0")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ansible-playbook: %v\n%s", err, b)
		}
		_, recap, _ := strings.Cut(string(b), "PLAY RECAP")
		t.Logf("ansible-playbook ran in %s; PLAY RECAP%s", time.Since(start).Round(time.Millisecond), strings.TrimRight(recap, "\n"))
		return string(b)
	}
	recap := playbook()
	if !strings.Contains(recap, "failed=0") {
		t.Fatalf("playbook:\n%s", recap)
	}
	f.waitRegistered(t, 3, 2*time.Minute)
	st := coverage()
	if st.Expected != 3 || st.Covered != 3 || len(st.Missing) != 0 {
		t.Fatalf("coverage after the playbook: %+v", st)
	}
	for _, n := range f.nodes {
		nd, err := f.api.GetNode(ctx, n.name)
		if err != nil {
			t.Fatal(err)
		}
		if nd.Labels["zone"] != n.zone || nd.Labels["tier"] != "frontend" || nd.Labels["group.web"] != "true" {
			t.Errorf("%s registered with labels %v, want its inventory's", n.name, nd.Labels)
		}
		if _, ok := nd.Labels["ansible_connection"]; ok {
			t.Errorf("%s carries Ansible's connection variable as a label", n.name)
		}
	}

	if out, err := docker(ctx, "exec", f.byName["inv-c"].container, "dpkg-query", "-W", "-f", "${Version}", "drover-agent"); err != nil || out != "0.0.0~test" {
		t.Errorf("inv-c: the drover-agent package is not installed: %q %v", out, err)
	}
	if out, err := docker(ctx, "exec", f.byName["inv-a"].container, "test", "-x", "/usr/local/bin/drover-agent"); err != nil {
		t.Errorf("inv-a: no binary at /usr/local/bin/drover-agent: %s %v", out, err)
	}

	// Again: every host is enrolled, nothing changes, no token needed.
	if err := os.WriteFile(tokens, []byte(`{"drover_ca_hash": "`+f.caHash+`", "drover_enroll_tokens": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	recap = playbook()
	for _, n := range f.nodes {
		if !strings.Contains(recap, n.name) || !strings.Contains(recap, "changed=0") {
			t.Errorf("second run changed something:\n%s", recap)
			break
		}
	}
	if strings.Count(recap, "changed=0") != 3 {
		t.Errorf("second run: want changed=0 on the three hosts:\n%s", recap)
	}
}

// buildAgentDeb packs the agent binary as a minimal drover-agent .deb
// (/usr/bin/drover-agent, no unit: the role writes its own), standing in
// for the release package.
func buildAgentDeb(t *testing.T, ctx context.Context, dir, agentBin string) string {
	t.Helper()
	root := filepath.Join(dir, "deb")
	for _, d := range []string{"DEBIAN", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/drover-agent"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	control := "Package: drover-agent\nVersion: 0.0.0~test\nArchitecture: amd64\nMaintainer: drover tests <test@example.invalid>\n" +
		"Description: drover agent (test package)\n"
	if err := os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(dir, "drover-agent_0.0.0~test_amd64.deb")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb
}
