package plan

import (
	"path/filepath"
	"reflect"
	"testing"
)

// TestExamples parses every plan in examples/ and checks that the
// effective plan survives Marshal and Parse unchanged and that Defaults is
// idempotent on it.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("want at least 6 examples, found %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := ParseFile(f)
			if err != nil {
				t.Fatalf("parse:\n%v", err)
			}
			out, err := Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if testing.Verbose() {
				t.Logf("effective plan:\n%s", out)
			}
			q, err := Parse("effective.yaml", out)
			if err != nil {
				t.Fatalf("parse of the marshalled effective plan:\n%v\n%s", err, out)
			}
			assertSamePlan(t, p, q)
			again := clonePlan(t, p)
			Defaults(again)
			assertSamePlan(t, p, again)
		})
	}
}

// assertSamePlan compares the exported content of two plans.
func assertSamePlan(t *testing.T, want, got *Plan) {
	t.Helper()
	w, g := *want, *got
	w.file, w.pos, g.file, g.pos = "", nil, "", nil
	if !reflect.DeepEqual(w, g) {
		a, _ := Marshal(&w)
		b, _ := Marshal(&g)
		t.Errorf("plans differ:\n--- want\n%s\n--- got\n%s", a, b)
	}
}

func clonePlan(t *testing.T, p *Plan) *Plan {
	t.Helper()
	out, err := Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse("clone.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
