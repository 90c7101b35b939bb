package plan

import (
	"strings"
	"testing"
)

// TestPreflightDefault: a plan without a preflight section runs the node
// pre-flight (onFail: block, timeout 5m, unavailable: proceed) and says
// so when shown; onFail: ignore opts out and shows nothing else.
func TestPreflightDefault(t *testing.T) {
	const head = `apiVersion: drover.dev/v1
name: pf
target:
  selector: node.os.family == "debian"
change:
  actions:
    - package:
        packages: [{name: curl, version: "7.88.1-10+deb12u8"}]
waves:
  - name: all
`
	p, err := Parse("default.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	want := Preflight{OnFail: PreflightBlock, Timeout: DefaultPreflightTimeout, Unavailable: PreflightProceed}
	if p.Preflight == nil || *p.Preflight != want || !p.Preflight.Runs() {
		t.Fatalf("default pre-flight: got %+v, want %+v", p.Preflight, want)
	}
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "preflight:\n    onFail: block\n    timeout: 5m0s\n    unavailable: proceed\n") &&
		!strings.Contains(string(out), "preflight:\n  onFail: block\n  timeout: 5m\n  unavailable: proceed\n") {
		t.Errorf("plan show does not show the default pre-flight:\n%s", out)
	}
	again, err := Parse("shown.yaml", out)
	if err != nil {
		t.Fatalf("the shown plan does not parse: %v", err)
	}
	if *again.Preflight != want {
		t.Errorf("shown and parsed again: %+v", again.Preflight)
	}

	off, err := Parse("off.yaml", []byte(head+"preflight:\n  onFail: ignore\n"))
	if err != nil {
		t.Fatal(err)
	}
	if off.Preflight.Runs() || *off.Preflight != (Preflight{OnFail: PreflightIgnore}) {
		t.Errorf("onFail: ignore: got %+v, want no pre-flight and nothing filled in", off.Preflight)
	}
}
