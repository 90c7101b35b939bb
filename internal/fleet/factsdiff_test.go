package fleet

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDiffFacts(t *testing.T) {
	old := Facts{OS: OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-17", Arch: "amd64",
		Packages: map[string]string{"openssl": "3.0.11", "curl": "7.88", "a/b~c": "1"},
		Modules:  []string{"ext4", "xfs"}, Runtime: Runtime{Docker: "24.0"}}
	new := Facts{OS: OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-18", Arch: "amd64",
		Packages: map[string]string{"openssl": "3.0.13", "libfoo": "1.2"},
		Modules:  []string{"xfs", "nf_tables"}, Kubelet: "1.30.1"}
	got := DiffFacts(old, new, 50, 128)
	want := []FactChange{
		{Op: "changed", Path: "/kernel", Old: "6.1.0-17", New: "6.1.0-18"},
		{Op: "removed", Path: "/runtime/docker", Old: "24.0"},
		{Op: "added", Path: "/kubelet", New: "1.30.1"},
		{Op: "removed", Path: "/packages/a~1b~0c", Old: "1"},
		{Op: "removed", Path: "/packages/curl", Old: "7.88"},
		{Op: "added", Path: "/packages/libfoo", New: "1.2"},
		{Op: "changed", Path: "/packages/openssl", Old: "3.0.11", New: "3.0.13"},
		{Op: "removed", Path: "/modules", Old: "ext4"},
		{Op: "added", Path: "/modules", New: "nf_tables"},
	}
	if !reflect.DeepEqual(got.Changes, want) || got.More != 0 {
		t.Fatalf("DiffFacts =\n%+v\nmore %d, want\n%+v", got.Changes, got.More, want)
	}
	if d := DiffFacts(new, new, 50, 128); len(d.Changes) != 0 || d.More != 0 {
		t.Fatalf("diff of equal facts = %+v", d)
	}
	// Reordering a list is no change.
	reordered := new
	reordered.Modules = []string{"nf_tables", "xfs"}
	if d := DiffFacts(new, reordered, 50, 128); len(d.Changes) != 0 {
		t.Fatalf("reordered list diff = %+v", d)
	}
}

// TestDiffFactsBounded: the diff of any two sets of facts stays small,
// whatever their size: changes capped with a count of the rest, paths and
// values cut with a marker.
func TestDiffFactsBounded(t *testing.T) {
	huge := strings.Repeat("x", 100_000)
	old := Facts{Kernel: "6.1", Packages: map[string]string{}}
	new := Facts{Kernel: huge, Packages: map[string]string{}, Modules: []string{huge}}
	for i := range 5000 {
		old.Packages[fmt.Sprintf("pkg%04d", i)] = "1.0"
		new.Packages[fmt.Sprintf("pkg%04d", i)] = "2.0-" + huge[:i%300]
	}
	new.Packages[huge] = huge
	d := DiffFacts(old, new, 50, 128)
	if len(d.Changes) != 50 || d.More != 5003-50 {
		t.Fatalf("changes %d, more %d; want 50 and %d", len(d.Changes), d.More, 5003-50)
	}
	if d.Changes[0].Path != "/kernel" || !strings.HasSuffix(d.Changes[0].New.(string), "…(+99890 bytes)") {
		t.Fatalf("first change = %+v, want the kernel first, cut", d.Changes[0])
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Changes {
		for _, v := range []any{c.Path, c.Old, c.New} {
			if s, ok := v.(string); ok && len(s) > 128 {
				t.Fatalf("value of %d bytes kept: %.40s...", len(s), s)
			}
		}
	}
	if len(b) > 50*(128*3+40) {
		t.Fatalf("diff encodes to %d bytes", len(b))
	}
}

func TestFactsDigest(t *testing.T) {
	a := Facts{Packages: map[string]string{"a": "1", "b": "2"}}
	b := Facts{Packages: map[string]string{"b": "2", "a": "1"}}
	da, na, err := FactsDigest(a)
	if err != nil {
		t.Fatal(err)
	}
	db, _, _ := FactsDigest(b)
	dc, _, _ := FactsDigest(Facts{Packages: map[string]string{"a": "1", "b": "3"}})
	if da != db || da == dc || len(da) != 64 || na == 0 {
		t.Fatalf("digests %s %s %s (size %d): equal facts must match, different must not", da, db, dc, na)
	}
}

// BenchmarkDiffFacts is a registration's diff: a node's first facts (a
// Debian host with 400 packages) against none, and a re-registration with
// a tenth of the packages upgraded.
func BenchmarkDiffFacts(b *testing.B) {
	facts := func(v int) Facts {
		pk := make(map[string]string, 400)
		for i := range 400 {
			pk[fmt.Sprintf("pkg-%03d", i)] = fmt.Sprintf("1.%d-%d", i, v*(i%10/9))
		}
		return Facts{OS: OS{Family: "debian", Version: "12"}, Kernel: "6.1.0-26", Arch: "amd64", Packages: pk}
	}
	first, again := facts(1), facts(2)
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			DiffFacts(Facts{}, first, 50, 128)
		}
	})
	b.Run("upgrade", func(b *testing.B) {
		for b.Loop() {
			DiffFacts(first, again, 50, 128)
		}
	})
}
