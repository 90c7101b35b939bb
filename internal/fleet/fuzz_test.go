package fleet

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadInventory feeds arbitrary bytes to the inventory loader under
// each format's file name: it must never panic, and whatever it accepts
// must be nodes with valid, unique IDs.
func FuzzLoadInventory(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(filepath.Base(p), data)
		}
	}
	f.Add("hosts.ini", []byte("[web]\nweb[01:03].example.com zone=a\n[web:vars]\ntier=web\n"))
	f.Add("inv.yaml", []byte("all:\n  hosts:\n    a: {zone: b}\n"))
	f.Add("nodes.json", []byte(`{"nodes":[{"id":"n1","facts":{"os":{"family":"debian"}}}]}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		nodes, err := LoadInventory(name, data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, n := range nodes {
			if err := ValidID(n.ID); err != nil {
				t.Fatalf("accepted node with invalid id %q: %v", n.ID, err)
			}
			if seen[n.ID] {
				t.Fatalf("accepted duplicate node id %q", n.ID)
			}
			seen[n.ID] = true
		}
	})
}
