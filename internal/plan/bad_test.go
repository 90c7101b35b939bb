package plan

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite golden files (testdata/bad-plans/*.err, schema/plan.schema.json)")

// TestBadPlans parses every plan in testdata/bad-plans, each holding
// exactly one mistake, and compares the one error it must give with
// NAME.err. Run with -rewrite to regenerate the .err files, then read the
// diff: these messages are what operators see.
func TestBadPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/bad-plans/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("want at least 30 bad plans, found %d", len(files))
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(name, data)
			if err == nil {
				t.Fatalf("%s parsed without error", name)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			if len(es) != 1 {
				t.Errorf("want exactly one error, got %d:\n%v", len(es), err)
			}
			checkPositions(t, es)
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *rewrite {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestBadPlans -rewrite)", err)
			}
			if got != string(want) {
				t.Errorf("error differs from %s\n got: %s\nwant: %s", golden, got, want)
			}
		})
	}
}

func checkPositions(t *testing.T, es Errors) {
	t.Helper()
	for _, e := range es {
		if e.Line < 1 || e.Col < 1 {
			t.Errorf("error without position: %#v", e)
		}
		if e.File == "" || e.Msg == "" {
			t.Errorf("error without file or message: %#v", e)
		}
	}
}

// TestManyProblems checks that one parse reports every problem, in order.
func TestManyProblems(t *testing.T) {
	src := `apiVersion: drover.dev/v2
name: Many_Problems
target:
  selector: node.os.family ==
change:
  actions:
    - package:
        packages:
          - name: openssl
            version: latest
      kernel:
        version: 6.1.0
waves:
  - name: canary
    nodes: 0
    after: [prod]
  - name: prod
    nodes: abc
  - name: prod
limits:
  maxConcurent: 3
  caps:
    zone: -1
windows:
  definitions:
    eu:
      timeZone: Europe/Berln
      spans:
        - days: [Sat]
          start: "2am"
          duration: 4h
failureBudget:
  maxFailures: 150%
gates:
  wave:
    - name: latency
      mode: deltas
      query: up
`
	_, err := Parse("many.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	checkPositions(t, es)
	want := []string{
		"many.yaml:1:13: apiVersion: unsupported",
		"many.yaml:2:7: name: invalid name",
		"many.yaml:4:30: target.selector: invalid selector",
		"many.yaml:10:22: change.actions[0].package.packages[0].version: version must be exact",
		"many.yaml:11:7: change.actions[0].kernel: action has two kinds",
		"many.yaml:15:12: waves[0].nodes: a wave of 0 nodes",
		"many.yaml:16:5: waves: cycle canary -> prod -> canary",
		"many.yaml:18:12: waves[1].nodes: expected a count",
		"many.yaml:19:11: waves[2].name: duplicate wave name",
		"many.yaml:21:3: limits: unknown field \"maxConcurent\"",
		"many.yaml:23:11: limits.caps.zone: cap must be at least 1, got -1",
		"many.yaml:27:17: windows.definitions.eu.timeZone: unknown time zone",
		"many.yaml:30:18: windows.definitions.eu.spans[0].start: expected a local time",
		"many.yaml:33:16: failureBudget.maxFailures: a percent must be",
		"many.yaml:37:13: gates.wave[0].mode: expected",
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("missing error %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}
