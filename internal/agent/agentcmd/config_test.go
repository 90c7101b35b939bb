package agentcmd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseWith parses args like Main, then applies the config file.
func parseWith(t *testing.T, args []string, env map[string]string) (options, error) {
	t.Helper()
	var o options
	f := flags(&o, "drover-agent", io.Discard)
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o, applyConfigFile(f, o.config, func(k string) string { return env[k] })
}

// The file < the environment < the command line.
func TestConfigFilePrecedence(t *testing.T) {
	p := writeConfig(t, `# the packaged file
server: https://file:7070
state-dir: /var/lib/file
node-id: from-file
enroll-token: file-token
heartbeat: 15s
allow-command-probes: true
label:
  - zone=a
  - role=web
`)
	o, err := parseWith(t, []string{"--config", p, "--node-id", "from-flag"}, map[string]string{"DROVER_ENROLL_TOKEN": "env-token"})
	if err != nil {
		t.Fatal(err)
	}
	if o.server != "https://file:7070" || o.stateDir != "/var/lib/file" || o.heartbeat.String() != "15s" || !o.allowCommandProbes {
		t.Errorf("file values not applied: %+v", o)
	}
	if o.nodeID != "from-flag" {
		t.Errorf("node-id = %q: the flag must win over the file", o.nodeID)
	}
	if o.enrollToken != "" {
		t.Errorf("enroll-token = %q: the environment must win over the file (run reads it)", o.enrollToken)
	}
	if !slices.Equal(o.labels, []string{"zone=a", "role=web"}) {
		t.Errorf("labels = %q", o.labels)
	}
}

// The packaged default file (comments only) sets nothing.
func TestConfigFilePackagedDefault(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "etc", "agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := parseWith(t, []string{"--config", writeConfig(t, string(data))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.server != "" || o.stateDir != "" {
		t.Errorf("the default file set values: %+v", o)
	}
}

// A bad file is refused with its name, the line and the key; nothing of it
// is applied.
func TestConfigFileErrors(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"servr: x\n", `line 1: unknown key "servr"`},
		{"server: a\nserver: b\n", `line 2: key "server" given twice`},
		{"server: [a, b]\n", "server takes one value, not a list"},
		{"server: a\nheartbeat: soon\n", "heartbeat"},
		{"label: {a: b}\n", "want a value or a list"},
		{"- a\n", "want a mapping"},
		{"config: other.yaml\n", `unknown key "config"`},
	} {
		p := writeConfig(t, tt.text)
		o, err := parseWith(t, []string{"--config", p}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: err = %v, want %q and the file name", tt.text, err, tt.want)
		}
		if o.server != "" {
			t.Errorf("%q: server %q applied from a refused file", tt.text, o.server)
		}
	}
	var stderr bytes.Buffer
	if code := Main(t.Context(), "drover-agent", []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, nil, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "missing.yaml") {
		t.Errorf("missing file: exit %d, %s", code, stderr.String())
	}
}

func TestServiceCommandLine(t *testing.T) {
	var stderr bytes.Buffer
	if code := Main(t.Context(), "drover-agent", []string{"service", "start"}, nil, io.Discard, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "service install|uninstall") {
		t.Errorf("exit %d, %s", code, stderr.String())
	}
	stderr.Reset()
	// On Linux the packages' systemd unit registers the agent.
	if code := Main(t.Context(), "drover-agent", []string{"service", "install"}, nil, io.Discard, &stderr); code != ExitError || !strings.Contains(stderr.String(), "systemd unit") {
		t.Errorf("exit %d, %s", code, stderr.String())
	}
}

func TestReplacedOnDisk(t *testing.T) {
	if replacedOnDisk()() {
		t.Error("the test binary reads as replaced")
	}
}
