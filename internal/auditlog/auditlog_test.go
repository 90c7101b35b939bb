package auditlog

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func testKey(t testing.TB) *Key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.key")
	k, created, err := LoadOrCreateKey(path, rand.Reader)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = %v, created %v", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, fi.Mode())
	}
	k2, created, err := LoadOrCreateKey(path, rand.Reader)
	if err != nil || created || k2.VKey != k.VKey {
		t.Fatalf("second LoadOrCreateKey = %v, created %v, same key %v", err, created, k2 != nil && k2.VKey == k.VKey)
	}
	// Many keys: '+' in the base64 part must not confuse ParseKey.
	for range 64 {
		testKey(t)
	}
	if _, err := ParseKey(k.VKey); err == nil {
		t.Fatal("ParseKey accepted a verifier key")
	}
}

func TestCheckpoint(t *testing.T) {
	k, other := testKey(t), testKey(t)
	tree := tlog.Tree{N: 42, Hash: tlog.RecordHash([]byte("x"))}
	msg, err := SignCheckpoint(k.Signer, tree)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenCheckpoint(msg, k.Verifier); err != nil || got != tree {
		t.Fatalf("OpenCheckpoint = %+v, %v", got, err)
	}
	if got, err := ParseCheckpoint(msg); err != nil || got != tree {
		t.Fatalf("ParseCheckpoint = %+v, %v", got, err)
	}
	if _, err := OpenCheckpoint(msg, other.Verifier); err == nil || !strings.Contains(err.Error(), "not signed by the audit key") {
		t.Fatalf("OpenCheckpoint with another key = %v", err)
	}
	forged := bytes.Replace(msg, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := OpenCheckpoint(forged, k.Verifier); err == nil {
		t.Fatal("a checkpoint with its size changed verified")
	}
	hs := []tlog.Hash{tree.Hash, {}}
	if got, err := DecodeHashes(EncodeHashes(hs)); err != nil || len(got) != 2 || got[0] != hs[0] {
		t.Fatalf("DecodeHashes(EncodeHashes) = %v, %v", got, err)
	}
}

// FuzzCheckpoint: parsing and verifying arbitrary checkpoints never
// panics, and whatever verifies parses to the same tree.
func FuzzCheckpoint(f *testing.F) {
	k := testKey(f)
	msg, _ := SignCheckpoint(k.Signer, tlog.Tree{N: 7, Hash: tlog.RecordHash([]byte("seed"))})
	f.Add(msg)
	f.Add([]byte("go.sum database tree\n7\nAAAA\n\n— x y\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, msg []byte) {
		parsed, perr := ParseCheckpoint(msg)
		tree, err := OpenCheckpoint(msg, k.Verifier)
		if err == nil && (perr != nil || parsed != tree) {
			t.Fatalf("verified %+v but parsed %+v, %v", tree, parsed, perr)
		}
	})
}

// FuzzProof: decoding arbitrary proofs and checking them against
// arbitrary sizes never panics, and never proves a false statement about
// a real tree.
func FuzzProof(f *testing.F) {
	leaves := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("e")}
	stored := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	roots := []tlog.Hash{{}}
	for i, l := range leaves {
		hs, _ := tlog.StoredHashes(int64(i), l, r)
		for j, h := range hs {
			stored[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
		root, _ := tlog.TreeHash(int64(i+1), r)
		roots = append(roots, root)
	}
	good, _ := tlog.ProveTree(5, 2, r)
	f.Add(strings.Join(EncodeHashes(good), "\n"), int64(2), int64(5))
	f.Add("", int64(0), int64(0))
	f.Add("!!!", int64(-1), int64(1<<62))
	f.Fuzz(func(t *testing.T, proof string, old, size int64) {
		hs, err := DecodeHashes(strings.Split(proof, "\n"))
		if err != nil {
			return
		}
		_ = tlog.CheckRecord(hs, size, roots[5], old, tlog.RecordHash([]byte("z")))
		if old >= 1 && old <= 5 && size >= old && size <= 5 {
			// A proof that a tree extends one with another leaf at old-1
			// must fail.
			forgedOld := tlog.NodeHash(roots[old], tlog.RecordHash([]byte("forged")))
			if tlog.CheckTree(hs, size, roots[size], old, forgedOld) == nil && forgedOld != roots[old] {
				t.Fatalf("proof %q proves a forged tree of size %d is a prefix of the tree of size %d", proof, old, size)
			}
		}
	})
}
