package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runMain runs Main in-process and returns its exit code and output.
func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDemoJSONShape(t *testing.T) {
	code, out, errOut := runMain(t, "demo", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var got struct {
		Rollouts []struct {
			Name, State, HaltReason                                    string
			Halted                                                     bool
			NodesSucceeded, NodesFailed, NodesRolledBack, NodesTouched int
			Waves                                                      []struct {
				Name             string
				Nodes            int
				StartedAtSeconds *float64
				EndedAtSeconds   *float64
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("demo --json is not JSON: %v\n%s", err, out)
	}
	if len(got.Rollouts) != 2 {
		t.Fatalf("%d rollouts", len(got.Rollouts))
	}
	bad, good := got.Rollouts[0], got.Rollouts[1]
	if !bad.Halted || bad.State != "halted" || bad.NodesTouched > bad.Waves[0].Nodes || bad.NodesRolledBack == 0 {
		t.Errorf("bad change: %+v", bad)
	}
	for _, w := range bad.Waves[1:] {
		if w.StartedAtSeconds != nil {
			t.Errorf("bad change: wave %s started", w.Name)
		}
	}
	if good.Halted || good.State != "succeeded" || good.NodesSucceeded != 40 || good.NodesTouched != 40 {
		t.Errorf("good change: %+v", good)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(plan, []byte(`apiVersion: drover.dev/v1
name: p
target:
  selector: "true"
change:
  actions:
    - package:
        packages:
          - name: curl
            version: 8.5.0
waves:
  - name: canary
    nodes: 3
    canary: true
  - name: rest
limits:
  maxInFlight: 5
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"version"}, ExitOK},
		{[]string{"plan", "validate", plan}, ExitOK},
		{[]string{"plan", "validate", filepath.Join(dir, "missing.yaml")}, ExitError},
		{[]string{"plan", "validate"}, ExitUsage},
		{[]string{"bogus"}, ExitUsage},
		{[]string{"simulate", plan, "--nodes", "30"}, ExitOK},
		{[]string{"simulate", plan, "--nodes", "30", "--fail", "true"}, ExitHalted},
		{[]string{"simulate", plan, "--nodes", "30", "-o", "yaml"}, ExitOK},
		{[]string{"simulate", plan}, ExitUsage},
	}
	for _, tt := range tests {
		code, out, errOut := runMain(t, tt.args...)
		if code != tt.code {
			t.Errorf("drover %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), code, tt.code, out, errOut)
		}
	}
}
