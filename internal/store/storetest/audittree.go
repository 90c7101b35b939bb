package storetest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/drover-dev/drover/internal/auditlog"
	"github.com/drover-dev/drover/internal/store"
)

// runAuditTree runs the Merkle tree and signed checkpoint cases.
func runAuditTree(t *testing.T, h func(f func(t *testing.T, s Backend)) func(t *testing.T)) {
	t.Run("AuditTreeProofs", h(testAuditTreeProofs))
	t.Run("AuditSignedEdit", h(testAuditSignedEdit))
	t.Run("AuditSignedDelete", h(testAuditSignedDelete))
	t.Run("AuditSignedSwap", h(testAuditSignedSwap))
	t.Run("AuditSignedInsertBehind", h(testAuditSignedInsertBehind))
	t.Run("AuditSignedRewrite", h(testAuditSignedRewrite))
	t.Run("AuditSignedOtherKey", h(testAuditSignedOtherKey))
	t.Run("AuditSignedAdoptLegacy", h(testAuditSignedAdoptLegacy))
	t.Run("AuditSignedConcurrentServers", h(testAuditSignedConcurrentServers))
}

// NewAuditKey returns a fresh audit key for tests.
func NewAuditKey(t testing.TB) *auditlog.Key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, auditlog.KeyName)
	if err != nil {
		t.Fatal(err)
	}
	k, err := auditlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedBusy arms s with a new key, runs busy and checks that the log
// verifies with a checkpoint covering every entry.
func signedBusy(t *testing.T, s store.Store) (*auditlog.Key, int64) {
	t.Helper()
	k := NewAuditKey(t)
	s.SetAuditKey(k)
	n := int64(busy(t, s))
	v := verifyOK(t, s)
	if v.Checkpoint != n || v.Entries != n {
		t.Fatalf("VerifyAudit = %+v; want a signed checkpoint of all %d entries", v, n)
	}
	c := get(s.LatestAuditCheckpoint(context.Background()))(t)
	tree, err := auditlog.OpenCheckpoint(c.Note, k.Verifier)
	if err != nil || tree.N != n || tree.Hash != c.Root || c.Root != v.Root {
		t.Fatalf("latest checkpoint %+v (note %q): %v; want size %d root %v", tree, c.Note, err, n, v.Root)
	}
	return k, n
}

// treeOf computes the Merkle tree of entries in memory: its stored
// hashes and its root after each entry (roots[i] has i leaves).
func treeOf(t *testing.T, entries []store.AuditEntry) (map[int64]tlog.Hash, []tlog.Hash) {
	t.Helper()
	stored := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := stored[x]
			if !ok {
				return nil, fmt.Errorf("no hash %d", x)
			}
			out[i] = h
		}
		return out, nil
	})
	roots := []tlog.Hash{{}}
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), store.AuditRecord(e), r)
		ok(t, err)
		for j, h := range hs {
			stored[tlog.StoredHashIndex(0, int64(i))+int64(j)] = h
		}
		root, err := tlog.TreeHash(int64(i+1), r)
		ok(t, err)
		roots = append(roots, root)
	}
	return stored, roots
}

func testAuditTreeProofs(t *testing.T, s Backend) {
	ctx := context.Background()
	// Written without a key: the tree grows anyway; arming later adopts it.
	n := int64(busy(t, s))
	entries := get(s.ListAudit(ctx, 0, 100000, ""))(t)
	_, roots := treeOf(t, entries)
	v := verifyOK(t, s)
	if v.Root != roots[n] || v.Checkpoint != 0 {
		t.Fatalf("VerifyAudit root %v checkpoint %d; want root %v, no checkpoint", v.Root, v.Checkpoint, roots[n])
	}
	if _, err := s.LatestAuditCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LatestAuditCheckpoint without a key = %v, want ErrNotFound", err)
	}
	k := NewAuditKey(t)
	s.SetAuditKey(k)
	get(s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "c"}, 0, "bob"))(t)
	entries = get(s.ListAudit(ctx, 0, 100000, ""))(t)
	if len(entries) != int(n)+2 || entries[n].Action != "audit.adopt" || entries[n+1].Action != "node.labels" {
		t.Fatalf("after arming: %d entries, last %+v; want audit.adopt then node.labels", len(entries), entries[len(entries)-1])
	}
	n += 2
	_, roots = treeOf(t, entries)
	v = verifyOK(t, s)
	c := get(s.LatestAuditCheckpoint(ctx))(t)
	if v.Checkpoint != n || c.Size != n || c.Root != roots[n] {
		t.Fatalf("checkpoint %d root %v, verified %d; want %d %v", c.Size, c.Root, v.Checkpoint, n, roots[n])
	}
	for old := int64(1); old <= n; old++ {
		for _, size := range []int64{old, (old + n) / 2, n} {
			p := get(s.AuditTreeProof(ctx, old, size))(t)
			if err := tlog.CheckTree(p, size, roots[size], old, roots[old]); err != nil {
				t.Fatalf("tree proof %d -> %d: %v", old, size, err)
			}
		}
	}
	for _, e := range entries {
		for _, size := range []int64{e.Seq, n} {
			p := get(s.AuditRecordProof(ctx, e.Seq, size))(t)
			if err := tlog.CheckRecord(p, size, roots[size], e.Seq-1, tlog.RecordHash(store.AuditRecord(e))); err != nil {
				t.Fatalf("record proof of %d in %d: %v", e.Seq, size, err)
			}
		}
	}
	if _, err := s.AuditTreeProof(ctx, 1, n+1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("proof beyond the tree = %v, want ErrNotFound", err)
	}
	if _, err := s.AuditRecordProof(ctx, n+1, n+1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("record proof beyond the tree = %v, want ErrNotFound", err)
	}
}

func testAuditSignedEdit(t *testing.T, s Backend) {
	ctx := context.Background()
	signedBusy(t, s)
	if _, err := s.ExecRaw(ctx, `UPDATE audit SET detail = ? WHERE seq = ?`, `{"forged":true}`, 5); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 5, "edited")
}

func testAuditSignedDelete(t *testing.T, s Backend) {
	ctx := context.Background()
	_, n := signedBusy(t, s)
	if _, err := s.ExecRaw(ctx, `DELETE FROM audit WHERE seq = ?`, 7); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 7, "deleted")

	// Deleting the tail and moving the head back consistently: the
	// signed checkpoint still counts the deleted entries.
	if _, err := s.ExecRaw(ctx, `DELETE FROM audit WHERE seq >= ?`, 7); err != nil {
		t.Fatal(err)
	}
	e6 := get(s.ListAudit(ctx, 5, 1, ""))(t)[0]
	if _, err := s.ExecRaw(ctx, `UPDATE audit_head SET seq = ?, hash = ?, tree_size = ? WHERE id = 1`, 6, e6.Hash, 6); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 7, "truncated", fmt.Sprint(n))
	// And drover refuses to write on top of it.
	_, err := s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob")
	wantErr(t, err, store.ErrAuditTampered, "append to a truncated log")
}

func testAuditSignedSwap(t *testing.T, s Backend) {
	ctx := context.Background()
	signedBusy(t, s)
	for _, q := range [][2]int64{{5, -5}, {6, 5}, {-5, 6}} {
		if _, err := s.ExecRaw(ctx, `UPDATE audit SET seq = ? WHERE seq = ?`, q[1], q[0]); err != nil {
			t.Fatal(err)
		}
	}
	wantBad(t, s, 5, "reordered")
}

// testAuditSignedInsertBehind: an entry inserted directly, first naively,
// then by a forger who also links it into the chain, adds it to the tree
// and advances the head: only the missing signature gives it away, and
// drover refuses to sign over it.
func testAuditSignedInsertBehind(t *testing.T, s Backend) {
	ctx := context.Background()
	_, n := signedBusy(t, s)
	entries := get(s.ListAudit(ctx, 0, 100000, ""))(t)
	last := entries[n-1]
	forged := store.AuditEntry{Seq: n + 1, At: last.At, Actor: "alice", Action: "rollout.approve", Object: "rollout/r1",
		Rollout: "r1", Detail: json.RawMessage(`{"by":"alice"}`), Prev: last.Hash}
	forged.Hash = store.AuditHash(forged.Prev, forged)
	if _, err := s.ExecRaw(ctx, `INSERT INTO audit (seq, at, actor, action, object, rollout, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		forged.Seq, forged.At.UnixNano(), forged.Actor, forged.Action, forged.Object, forged.Rollout, string(forged.Detail), forged.Prev, forged.Hash); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, n+1, "beyond the recorded head", "behind")

	// The thorough forger: tree hashes and head too.
	stored, _ := treeOf(t, append(entries, forged))
	for i := tlog.StoredHashCount(n); i < tlog.StoredHashCount(n+1); i++ {
		h := stored[i]
		if _, err := s.ExecRaw(ctx, `INSERT INTO audit_tree (idx, hash) VALUES (?, ?)`, i, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ExecRaw(ctx, `UPDATE audit_head SET seq = ?, hash = ?, tree_size = ? WHERE id = 1`, n+1, forged.Hash, n+1); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, n+1, "not covered by a signed checkpoint", "behind drover's back")
	_, err := s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob")
	wantErr(t, err, store.ErrAuditTampered, "append over an entry inserted behind the back")
	wantBad(t, s, n+1, "behind drover's back")
}

// RewriteAudit replaces the detail of entry seq and recomputes everything
// an attacker without the audit key can: the chain from there on, the
// head and the whole Merkle tree (not the signed checkpoints). It
// returns the rewritten entries.
func RewriteAudit(t *testing.T, s Backend, seq int64) []store.AuditEntry {
	t.Helper()
	ctx := context.Background()
	entries := get(s.ListAudit(ctx, 0, 100000, ""))(t)
	var prev []byte
	for i := range entries {
		e := &entries[i]
		if e.Seq == seq {
			e.Detail = json.RawMessage(`{"rewritten":true}`)
		}
		e.Prev = prev
		e.Hash = store.AuditHash(prev, *e)
		prev = e.Hash
		if _, err := s.ExecRaw(ctx, `UPDATE audit SET detail = ?, prev = ?, hash = ? WHERE seq = ?`, string(e.Detail), nonNilBytes(e.Prev), e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ExecRaw(ctx, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev); err != nil {
		t.Fatal(err)
	}
	stored, _ := treeOf(t, entries)
	if _, err := s.ExecRaw(ctx, `DELETE FROM audit_tree`); err != nil {
		t.Fatal(err)
	}
	for i, h := range stored {
		if _, err := s.ExecRaw(ctx, `INSERT INTO audit_tree (idx, hash) VALUES (?, ?)`, i, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	return entries
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func testAuditSignedRewrite(t *testing.T, s Backend) {
	ctx := context.Background()
	_, n := signedBusy(t, s)
	entries := RewriteAudit(t, s, 3)
	// Chain and tree agree with the entries; the checkpoints do not.
	wantBad(t, s, 3, "do not match the checkpoint of size 3", "rewritten")

	// The forger rewrites the checkpoints' roots too, but cannot sign.
	_, roots := treeOf(t, entries)
	for size := int64(1); size <= n; size++ {
		if _, err := s.ExecRaw(ctx, `UPDATE audit_checkpoints SET root = ? WHERE size = ?`, roots[size][:], size); err != nil {
			t.Fatal(err)
		}
	}
	wantBad(t, s, 3, "latest checkpoint", "rewritten")
	_, err := s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob")
	wantErr(t, err, store.ErrAuditTampered, "append over a rewritten log")

	// The forger deletes the checkpoints: nothing vouches for the log.
	if _, err := s.ExecRaw(ctx, `DELETE FROM audit_checkpoints`); err != nil {
		t.Fatal(err)
	}
	wantBad(t, s, 1, "no signed checkpoint")
	// The next append adopts the log it finds, saying so in the log: from
	// here only a client that remembers an earlier checkpoint (drover
	// audit verify) can tell that history was rewritten.
	get(s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob"))(t)
	verifyOK(t, s)
	adopted := get(s.ListAudit(ctx, n, 1, ""))(t)
	if len(adopted) != 1 || adopted[0].Action != "audit.adopt" {
		t.Fatalf("entry %d = %+v, want audit.adopt", n+1, adopted)
	}
}

func testAuditSignedOtherKey(t *testing.T, s Backend) {
	ctx := context.Background()
	_, n := signedBusy(t, s)
	other := reopen(t, s)
	other.SetAuditKey(NewAuditKey(t))
	_, err := other.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob")
	wantErr(t, err, store.ErrAuditTampered, "append by a server with another audit key")
	v := get(other.VerifyAudit(ctx))(t)
	if v.OK || v.FirstBad != 1 {
		t.Fatalf("VerifyAudit with another key = %+v; want the log unvouched from entry 1", v)
	}
	if c := get(s.LatestAuditCheckpoint(ctx))(t); c.Size != n {
		t.Fatalf("checkpoint moved to %d", c.Size)
	}
	verifyOK(t, s)
}

// testAuditSignedAdoptLegacy: a log from before the tree (schema 1:
// entries, no tree, no checkpoint) joins the tree and is adopted at the
// first signed append.
func testAuditSignedAdoptLegacy(t *testing.T, s Backend) {
	ctx := context.Background()
	n := int64(busy(t, s))
	for _, q := range []string{`DELETE FROM audit_tree`, `UPDATE audit_head SET tree_size = 0 WHERE id = 1`} {
		if _, err := s.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	verifyOK(t, s)
	s.SetAuditKey(NewAuditKey(t))
	wantBad(t, s, 1, "no signed checkpoint")
	get(s.SetNodeLabels(ctx, "n1", map[string]string{"zone": "z"}, 0, "bob"))(t)
	v := verifyOK(t, s)
	if v.Checkpoint != n+2 {
		t.Fatalf("VerifyAudit = %+v; want a checkpoint of %d entries", v, n+2)
	}
}

// testAuditSignedConcurrentServers: two servers sharing a key append
// concurrently; every checkpoint is signed and the log verifies.
func testAuditSignedConcurrentServers(t *testing.T, s Backend) {
	ctx := context.Background()
	k := NewAuditKey(t)
	s.SetAuditKey(k)
	fixture(t, s)
	other := reopen(t, s)
	other.SetAuditKey(k)
	errs := make(chan error, 40)
	for w := 0; w < 4; w++ {
		st := []store.Store{s, other}[w%2]
		go func() {
			var err error
			for i := 0; i < 10 && err == nil; i++ {
				_, err = st.SetNodeLabels(ctx, fmt.Sprintf("n%d", w+1), map[string]string{"i": fmt.Sprint(i)}, 0, "bob")
			}
			errs <- err
		}()
	}
	for w := 0; w < 4; w++ {
		ok(t, <-errs)
	}
	for _, st := range []store.Store{s, other} {
		v := verifyOK(t, st)
		if v.Checkpoint != v.Entries {
			t.Fatalf("VerifyAudit = %+v; want the checkpoint to cover every entry", v)
		}
	}
}
