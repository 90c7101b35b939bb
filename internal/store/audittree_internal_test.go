package store

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestCompactRange: the root VerifyAudit computes leaf by leaf is
// tlog.TreeHash's at every size.
func TestCompactRange(t *testing.T) {
	stored := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var c compactRange
	if c.root() != (tlog.Hash{}) {
		t.Fatal("root of no leaves is not the zero hash")
	}
	for n := int64(0); n < 300; n++ {
		data := fmt.Appendf(nil, "record %d", n)
		hs, err := tlog.StoredHashes(n, data, r)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hs {
			stored[tlog.StoredHashIndex(0, n)+int64(i)] = h
		}
		c.add(tlog.RecordHash(data))
		want, err := tlog.TreeHash(n+1, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.root(); got != want {
			t.Fatalf("size %d: root %v, want %v", n+1, got, want)
		}
	}
}
