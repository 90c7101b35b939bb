package agentcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

func TestMainCommandLine(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		args []string
		code int
		out  string // in stdout + stderr
	}{
		{[]string{"--help"}, ExitOK, "Usage: drover-agent --server URL --state-dir DIR"},
		{[]string{"--version"}, ExitOK, "drover-agent dev"},
		{[]string{"--nope"}, ExitUsage, "unknown flag: --nope"},
		{[]string{"extra"}, ExitUsage, `unexpected arguments ["extra"]`},
		{[]string{"--state-dir", dir}, ExitUsage, "--server is required"},
		{[]string{"--server", "http://s", "--state-dir", dir}, ExitUsage, "or, insecure, an agent token (--token) is required"},
		{[]string{"--server", "https://s", "--token", "t", "--state-dir", dir}, ExitUsage, "--token is the insecure shared agent token"},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--label", "zone"}, ExitUsage, `--label "zone": want KEY=VALUE`},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--node-id", "bad id"}, ExitUsage, `node id "bad id"`},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--kubeconfig", "k", "--kube-in-cluster"}, ExitUsage, "exclude each other"},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--sim", "--kube-in-cluster"}, ExitUsage, "--sim simulates kubernetes-node actions"},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--artifact-url", "http://a"}, ExitUsage, "--artifact-url needs --artifact-root"},
		{[]string{"--server", "http://s", "--token", "t", "--state-dir", dir, "--kubeconfig", filepath.Join(dir, "missing")}, ExitError, "kubernetes: kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), "drover-agent", tt.args, getenv, &stdout, &stderr)
			if out := stdout.String() + stderr.String(); code != tt.code || !strings.Contains(out, tt.out) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d with %q", code, out, tt.code, tt.out)
			}
		})
	}
}

// TestHostAgentKubernetes: with a kubeconfig the host's registry gets the
// Kubernetes node driver, for the node named by --kube-node.
func TestHostAgentKubernetes(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	drain := plan.Action{KubernetesNode: &plan.KubernetesNodeAction{Drain: true}}
	for _, o := range []options{{}, {kubeconfig: kc, kubeNode: "worker-7"}} {
		cfg := agent.Config{}
		if err := hostAgent(&cfg, nil, o); err != nil {
			t.Fatal(err)
		}
		d, err := cfg.Drivers.For(drain, fleet.Facts{})
		if o.kubeconfig == "" {
			if err == nil {
				t.Errorf("no kubeconfig: kubernetes-node driver %T registered", d)
			}
			continue
		}
		if _, ok := d.(*driver.KubernetesNode); !ok || err != nil {
			t.Errorf("kubeconfig: driver %T, %v", d, err)
		}
	}
}

func TestMainStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := Main(ctx, "drover-agent", []string{"--server", "http://127.0.0.1:1", "--token", "t", "--state-dir", t.TempDir(), "--sim", "--node-id", "n1"}, nil, &stdout, &stderr)
	if code != ExitOK {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
