package plan

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeChangeTimeout: the README's default for change.timeout is
// DefaultChangeTimeout, and its error text is the validator's.
func TestReadmeChangeTimeout(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, want := range []string{
		"`change.timeout`\n(default " + DefaultChangeTimeout.String() + ",",
		"timeout: 45m   # default " + DefaultChangeTimeout.String() + "; must be longer than 0",
		"the agent uses the " + DefaultChangeTimeout.String() + " default",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q", want)
		}
	}
	ed, err := os.ReadFile("testdata/bad-plans/change-timeout-zero.err")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ed), "change.timeout: timeout must be longer than 0") {
		t.Errorf("validator says %q", ed)
	}
}
