package store

// The audit log's Merkle tree and its signed checkpoints.
//
// Every entry is a record of a golang.org/x/mod/sumdb/tlog tree (leaf
// Seq-1 = tlog.RecordHash(AuditRecord(e))); the tree's stored hashes
// (tlog.StoredHashes) live in audit_tree, keyed by stored-hash index,
// and are appended in the transaction that appends the entries. A store
// holding an audit key (SetAuditKey) also stores, in that transaction, a
// checkpoint of the new tree signed with it (audit_checkpoints): one per
// committing transaction, so that no committed entry is ever uncovered.
// Before extending, the appender checks that the latest checkpoint is
// signed by its key and matches the stored tree: it never signs over
// entries or tree hashes written behind its back (ErrAuditTampered).
//
// The hash chain (prev/hash) is kept: it is what an entry shown alone
// carries (api.AuditEntry.Hash), it locates an edit to one entry even
// when the tree hashes were recomputed, and the tree adds what the chain
// lacks: a short signed commitment to the whole log, and logarithmic
// proofs that a client's remembered log is a prefix of the current one
// (tlog.CheckTree) and that an entry is in it (tlog.CheckRecord).

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/drover-dev/drover/internal/auditlog"
)

// auditSigning is the store's audit key, set by SetAuditKey.
type auditSigning struct {
	key atomic.Pointer[auditlog.Key]
	// span and recent are the checkpoint retention (options).
	span, recent int64
	// verified is the last checkpoint note the appender verified, so the
	// common case (this store signed the latest checkpoint) skips the
	// signature check.
	verified atomic.Pointer[[]byte]
}

func (s *sqlStore) SetAuditKey(k *auditlog.Key) {
	s.audit.key.Store(k)
	s.audit.verified.Store(nil)
}

// checkCovered runs before a signed append: the latest checkpoint must be
// signed by key and cover exactly the seq entries and the stored tree. A
// log with entries and no checkpoint at all is adopted, with an entry
// saying so.
func (t *tx) checkCovered(s *auditSigning, seq int64, key *auditlog.Key, clock func() time.Time) error {
	var size int64
	var root []byte
	var msg string
	err := t.queryRow("SELECT size, root, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&size, &root, &msg)
	switch {
	case isNoRows(err):
		if seq > 0 {
			adopt := AuditEntry{At: clock(), Actor: "drover", Action: "audit.adopt", Object: "audit",
				Detail: detail(map[string]any{"entries": seq, "key": auditlog.KeyID(key.Verifier)})}
			t.pending = append([]AuditEntry{adopt}, t.pending...)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read audit checkpoint: %w", err)
	}
	if size != seq {
		return fmt.Errorf("%w: the log has %d entries but its latest signed checkpoint covers %d: entries were appended or deleted behind drover's back (drover audit verify tells which)",
			ErrAuditTampered, seq, size)
	}
	var tree tlog.Tree
	if last := s.verified.Load(); last != nil && bytes.Equal(*last, []byte(msg)) {
		tree, err = auditlog.ParseCheckpoint([]byte(msg)) // signature checked before
	} else {
		tree, err = auditlog.OpenCheckpoint([]byte(msg), key.Verifier)
	}
	if err != nil {
		return fmt.Errorf("%w: latest checkpoint (size %d): %v; all servers sharing a database must share one audit key", ErrAuditTampered, size, err)
	}
	if tree.N != size || !bytes.Equal(tree.Hash[:], root) {
		return fmt.Errorf("%w: the checkpoint row of size %d does not match its signed note", ErrAuditTampered, size)
	}
	th, err := tlog.TreeHash(seq, newTreeWriter(t, seq))
	if err != nil {
		return fmt.Errorf("%w: audit tree: %v", ErrAuditTampered, err)
	}
	if !bytes.Equal(th[:], root) {
		return fmt.Errorf("%w: the stored Merkle tree does not match the latest signed checkpoint (size %d): its hashes were rewritten",
			ErrAuditTampered, size)
	}
	return nil
}

// signCheckpoint stores the checkpoint of the tree just extended from
// prevSize leaves, and prunes old checkpoints when the log crosses a span
// (see WithCheckpointRetention).
func (t *tx) signCheckpoint(s *auditSigning, w *treeWriter, key *auditlog.Key, clock func() time.Time, prevSize int64) error {
	root, err := tlog.TreeHash(w.size, w)
	if err != nil {
		return fmt.Errorf("audit tree root: %w", err)
	}
	msg, err := auditlog.SignCheckpoint(key.Signer, tlog.Tree{N: w.size, Hash: root})
	if err != nil {
		return err
	}
	if _, err := t.exec("INSERT INTO audit_checkpoints (size, root, note, at) VALUES (?, ?, ?, ?)",
		w.size, root[:], string(msg), nanos(clock())); err != nil {
		return t.conflictOnUnique(err, "store audit checkpoint %d", w.size)
	}
	if span := s.span; prevSize/span != w.size/span && w.size > s.recent {
		// Older than the recent window and not the first of its span.
		if _, err := t.exec(`DELETE FROM audit_checkpoints WHERE size < ? AND EXISTS (
	SELECT 1 FROM audit_checkpoints c WHERE c.size < audit_checkpoints.size AND c.size >= (audit_checkpoints.size / ?) * ?)`,
			w.size-s.recent, span, span); err != nil {
			return fmt.Errorf("prune audit checkpoints: %w", err)
		}
	}
	// Remembered before COMMIT: if the transaction fails, the next
	// append finds another note and verifies it.
	s.verified.Store(&msg)
	return nil
}

// treeWriter extends the tree inside a write transaction. It is the
// tlog.HashReader of the tree being written: hashes added and not yet
// flushed are read from memory.
type treeWriter struct {
	t     *tx
	size  int64 // leaves
	fresh map[int64]tlog.Hash
	order []int64 // fresh indexes in insertion order, to flush
}

func newTreeWriter(t *tx, size int64) *treeWriter {
	return &treeWriter{t: t, size: size, fresh: map[int64]tlog.Hash{}}
}

func (w *treeWriter) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var need []int64
	for _, i := range indexes {
		if _, ok := w.fresh[i]; !ok {
			need = append(need, i)
		}
	}
	stored, err := w.t.readStoredHashes(need)
	if err != nil {
		return nil, err
	}
	for k, i := range indexes {
		h, ok := w.fresh[i]
		if !ok {
			h = stored[i]
		}
		out[k] = h
	}
	return out, nil
}

// add appends one record to the tree.
func (w *treeWriter) add(record []byte) error {
	hs, err := tlog.StoredHashes(w.size, record, w)
	if err != nil {
		return fmt.Errorf("audit tree: add leaf %d: %w", w.size, err)
	}
	base := tlog.StoredHashIndex(0, w.size)
	for i, h := range hs {
		w.fresh[base+int64(i)] = h
		w.order = append(w.order, base+int64(i))
	}
	w.size++
	return nil
}

// flush inserts the hashes added since the last flush.
func (w *treeWriter) flush() error {
	if len(w.order) == 0 {
		return nil
	}
	if w.t.d.name == "postgres" {
		idx := make([]int64, len(w.order))
		hashes := make([][]byte, len(w.order))
		for i, k := range w.order {
			h := w.fresh[k]
			idx[i], hashes[i] = k, h[:]
		}
		if _, err := w.t.exec("INSERT INTO audit_tree (idx, hash) SELECT * FROM unnest(?::bigint[], ?::bytea[])", idx, hashes); err != nil {
			return w.t.conflictOnUnique(err, "audit tree: store %d hashes", len(idx))
		}
	} else {
		for _, k := range w.order {
			h := w.fresh[k]
			if _, err := w.t.exec("INSERT INTO audit_tree (idx, hash) VALUES (?, ?)", k, h[:]); err != nil {
				return w.t.conflictOnUnique(err, "audit tree: store hash %d", k)
			}
		}
	}
	clear(w.fresh)
	w.order = w.order[:0]
	return nil
}

// catchUp adds the entries w.size+1..seq, already in the audit table, to
// the tree.
func (w *treeWriter) catchUp(seq int64) error {
	for w.size < seq {
		rows, err := w.t.query("SELECT "+auditColumns+" FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT 1000", w.size, seq)
		if err != nil {
			return fmt.Errorf("audit tree: catch up: %w", err)
		}
		var es []AuditEntry
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("audit tree: catch up: %w", err)
			}
			es = append(es, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("audit tree: catch up: %w", err)
		}
		for _, e := range es {
			if e.Seq != w.size+1 {
				return fmt.Errorf("%w: audit entry %d is missing", ErrAuditTampered, w.size+1)
			}
			if err := w.add(AuditRecord(e)); err != nil {
				return err
			}
		}
		if len(es) == 0 {
			return fmt.Errorf("%w: audit entry %d is missing", ErrAuditTampered, w.size+1)
		}
		if err := w.flush(); err != nil {
			return err
		}
	}
	return nil
}

// readStoredHashes reads the stored hashes at indexes; a missing one is
// an error. One statement of fixed text whatever the count: a JSON array
// on SQLite, an array parameter on PostgreSQL.
func (t *tx) readStoredHashes(indexes []int64) (map[int64]tlog.Hash, error) {
	out := make(map[int64]tlog.Hash, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	var rows *sql.Rows
	var err error
	if t.d.name == "postgres" {
		rows, err = t.query("SELECT idx, hash FROM audit_tree WHERE idx = ANY(?::bigint[])", indexes)
	} else {
		list, _ := json.Marshal(indexes)
		rows, err = t.query("SELECT idx, hash FROM audit_tree WHERE idx IN (SELECT value FROM json_each(?))", string(list))
	}
	if err != nil {
		return nil, fmt.Errorf("audit tree: read hashes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, fmt.Errorf("audit tree: read hashes: %w", err)
		}
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("audit tree: stored hash %d has %d bytes", i, len(b))
		}
		out[i] = tlog.Hash(b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit tree: read hashes: %w", err)
	}
	for _, i := range indexes {
		if _, ok := out[i]; !ok {
			level, n := tlog.SplitStoredHashIndex(i)
			return nil, fmt.Errorf("audit tree: stored hash %d (level %d, node %d) is missing", i, level, n)
		}
	}
	return out, nil
}

// treeReader is the tlog.HashReader of the stored tree in a read
// transaction.
type treeReader struct{ t *tx }

func (r treeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	m, err := r.t.readStoredHashes(indexes)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for k, i := range indexes {
		out[k] = m[i]
	}
	return out, nil
}

func (t *tx) treeSize() (int64, error) {
	var n int64
	if err := t.queryRow("SELECT tree_size FROM audit_head WHERE id = 1").Scan(&n); err != nil {
		return 0, fmt.Errorf("read audit tree size: %w", err)
	}
	return n, nil
}

func (s *sqlStore) LatestAuditCheckpoint(ctx context.Context) (AuditCheckpoint, error) {
	var c AuditCheckpoint
	var root []byte
	var msg string
	var at int64
	err := s.db.QueryRowContext(ctx, "SELECT size, root, note, at FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&c.Size, &root, &msg, &at)
	if isNoRows(err) {
		return c, fmt.Errorf("audit checkpoint: none signed yet: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read audit checkpoint: %w", err)
	}
	if len(root) != tlog.HashSize {
		return c, fmt.Errorf("audit checkpoint %d: root has %d bytes", c.Size, len(root))
	}
	c.Root, c.Note, c.At = tlog.Hash(root), []byte(msg), fromNanos(at)
	return c, nil
}

func (s *sqlStore) AuditTreeProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	if oldSize < 1 || oldSize > newSize {
		return nil, fmt.Errorf("tree proof from %d to %d: want 1 <= old <= new", oldSize, newSize)
	}
	var p tlog.TreeProof
	err := s.read(ctx, func(t *tx) error {
		n, err := t.treeSize()
		if err != nil {
			return err
		}
		if newSize > n {
			return fmt.Errorf("tree of size %d: the audit tree has %d leaves: %w", newSize, n, ErrNotFound)
		}
		p, err = tlog.ProveTree(newSize, oldSize, treeReader{t})
		return err
	})
	return p, err
}

func (s *sqlStore) AuditRecordProof(ctx context.Context, seq, size int64) (tlog.RecordProof, error) {
	if seq < 1 || seq > size {
		return nil, fmt.Errorf("record proof of entry %d in a tree of size %d: want 1 <= seq <= size", seq, size)
	}
	var p tlog.RecordProof
	err := s.read(ctx, func(t *tx) error {
		n, err := t.treeSize()
		if err != nil {
			return err
		}
		if size > n {
			return fmt.Errorf("tree of size %d: the audit tree has %d leaves: %w", size, n, ErrNotFound)
		}
		p, err = tlog.ProveRecord(size, seq-1, treeReader{t})
		return err
	})
	return p, err
}

// compactRange is the Merkle tree of the leaves seen so far as its
// perfect subtrees, largest first: enough to compute the root after every
// leaf in O(log n) memory.
type compactRange struct {
	hashes []tlog.Hash
	sizes  []int64
}

func (c *compactRange) add(h tlog.Hash) {
	c.hashes, c.sizes = append(c.hashes, h), append(c.sizes, 1)
	for n := len(c.sizes); n >= 2 && c.sizes[n-1] == c.sizes[n-2]; n-- {
		c.hashes[n-2] = tlog.NodeHash(c.hashes[n-2], c.hashes[n-1])
		c.sizes[n-2] *= 2
		c.hashes, c.sizes = c.hashes[:n-1], c.sizes[:n-1]
	}
}

// root is tlog.TreeHash of the leaves added.
func (c *compactRange) root() tlog.Hash {
	if len(c.hashes) == 0 {
		return tlog.Hash{}
	}
	r := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		r = tlog.NodeHash(c.hashes[i], r)
	}
	return r
}

// VerifyAudit checks, in one snapshot of the database:
//   - the chain from seq 1 to the head recorded in audit_head: the first
//     entry missing (deleted), linked to the wrong predecessor
//     (reordered or inserted) or not matching its hash (edited);
//   - the Merkle tree: every entry's record hash against its stored leaf
//     (edited, chain recomputed) and the root recomputed from the entries
//     against every checkpoint's root (rewritten, tree recomputed);
//   - with an audit key: that the latest checkpoint is signed by it and
//     covers exactly the log (uncovered entries were appended behind the
//     back; a shorter log was truncated), else the newest checkpoint
//     that is signed bounds the rewritten part;
//   - that no entry lies beyond the recorded head.
//
// Entries appended while it runs are not seen.
func (s *sqlStore) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	key := s.audit.key.Load()
	var v AuditVerification
	err := s.read(ctx, func(t *tx) error {
		var err error
		v, err = verifyAudit(t, key)
		return err
	})
	if err != nil {
		return AuditVerification{}, fmt.Errorf("verify audit: %w", err)
	}
	return v, nil
}

type checkpointRow struct {
	size int64
	root []byte
	note string
}

func verifyAudit(t *tx, key *auditlog.Key) (AuditVerification, error) {
	var headSeq, treeSize int64
	var headHash []byte
	if err := t.queryRow("SELECT seq, hash, tree_size FROM audit_head WHERE id = 1").Scan(&headSeq, &headHash, &treeSize); err != nil {
		return AuditVerification{}, fmt.Errorf("read head: %w", err)
	}
	var latest checkpointRow
	hasCheckpoint := true
	err := t.queryRow("SELECT size, root, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").Scan(&latest.size, &latest.root, &latest.note)
	if isNoRows(err) {
		hasCheckpoint = false
	} else if err != nil {
		return AuditVerification{}, fmt.Errorf("read checkpoint: %w", err)
	}

	const page = 1000
	var prev []byte
	var tree compactRange
	expect := int64(1)
	lastCheckpoint := int64(0) // the last checkpoint size whose root matched
	bad := func(seq int64, format string, args ...any) (AuditVerification, error) {
		head := prev
		if seq != expect {
			head = nil // the bad part starts before the entry the walk reached
		}
		return AuditVerification{Entries: seq - 1, Head: head, FirstBad: seq, Problem: fmt.Sprintf(format, args...)}, nil
	}
	for expect <= headSeq {
		last := min(expect+page-1, headSeq)
		entries, err := t.auditRange(expect, last)
		if err != nil {
			return AuditVerification{}, err
		}
		if len(entries) == 0 {
			return bad(expect, "entries %d to %d are missing: the log was truncated (deleted)", expect, headSeq)
		}
		var leaves map[int64]tlog.Hash
		if expect <= treeSize {
			leaves, err = t.leafHashes(expect, min(last, treeSize))
			if err != nil {
				return AuditVerification{}, err
			}
		}
		checkpoints, err := t.checkpointRoots(expect, last)
		if err != nil {
			return AuditVerification{}, err
		}
		for _, e := range entries {
			if e.Seq != expect {
				return bad(expect, "entry %d is missing: deleted (next entry is %d)", expect, e.Seq)
			}
			if !bytes.Equal(e.Prev, prev) {
				return bad(e.Seq, "entry %d does not link to entry %d (prev hash mismatch): entries were reordered or inserted", e.Seq, e.Seq-1)
			}
			if want := AuditHash(prev, e); !bytes.Equal(want, e.Hash) {
				return bad(e.Seq, "entry %d does not match its hash: its content was edited", e.Seq)
			}
			rh := tlog.RecordHash(AuditRecord(e))
			if e.Seq <= treeSize {
				leaf, ok := leaves[e.Seq]
				if !ok {
					return bad(e.Seq, "the Merkle tree has no leaf for entry %d: its stored hashes were deleted", e.Seq)
				}
				if leaf != rh {
					return bad(e.Seq, "entry %d does not match its leaf in the Merkle tree: edited, with the chain hashes recomputed", e.Seq)
				}
			}
			tree.add(rh)
			if root, ok := checkpoints[e.Seq]; ok {
				if r := tree.root(); !bytes.Equal(r[:], root) {
					return bad(lastCheckpoint+1, "entries %d to %d do not match the checkpoint of size %d: rewritten (chain and tree hashes recomputed)",
						lastCheckpoint+1, e.Seq, e.Seq)
				}
				lastCheckpoint = e.Seq
			}
			prev = e.Hash
			expect++
		}
	}
	if headSeq > 0 && !bytes.Equal(prev, headHash) {
		return bad(headSeq, "entry %d does not match the recorded head of the log: edited or replaced", headSeq)
	}
	root := tree.root()
	v := AuditVerification{OK: true, Entries: headSeq, Head: prev, Root: root}
	switch {
	case hasCheckpoint && latest.size > headSeq:
		return bad(headSeq+1, "the latest signed checkpoint covers %d entries but the log has %d: entries %d to %d were deleted (truncated)",
			latest.size, headSeq, headSeq+1, latest.size)
	case key != nil && !hasCheckpoint && headSeq > 0:
		return bad(1, "no signed checkpoint covers the log's %d entries: the checkpoints were deleted, or every entry was written behind drover's back", headSeq)
	case key != nil && latest.size < headSeq:
		return bad(latest.size+1, "entries %d to %d are not covered by a signed checkpoint (the latest covers %d): appended behind drover's back",
			latest.size+1, headSeq, latest.size)
	}
	if key != nil && hasCheckpoint {
		if err := checkNote(latest, key); err != nil {
			good, err2 := t.newestSigned(latest.size, key)
			if err2 != nil {
				return AuditVerification{}, err2
			}
			return bad(good+1, "the latest checkpoint (size %d): %v: entries %d to %d were rewritten or appended without the audit key (or all servers do not share one key)",
				latest.size, err, good+1, headSeq)
		}
		v.Checkpoint = latest.size
	}
	var beyond sql.NullInt64
	if err := t.queryRow("SELECT MIN(seq) FROM audit WHERE seq > ?", headSeq).Scan(&beyond); err != nil {
		return AuditVerification{}, fmt.Errorf("read entries beyond the head: %w", err)
	}
	if beyond.Valid {
		v = AuditVerification{Entries: headSeq, Head: prev, FirstBad: beyond.Int64,
			Problem: fmt.Sprintf("entry %d lies beyond the recorded head of the log (%d entries): inserted behind drover's back", beyond.Int64, headSeq)}
	}
	return v, nil
}

// checkNote checks that a checkpoint row's note is signed by key and
// says what the row says.
func checkNote(c checkpointRow, key *auditlog.Key) error {
	tree, err := auditlog.OpenCheckpoint([]byte(c.note), key.Verifier)
	if err != nil {
		return err
	}
	if tree.N != c.size || !bytes.Equal(tree.Hash[:], c.root) {
		return errors.New("its signed note says another size or root than its row")
	}
	return nil
}

// newestSigned returns the size of the newest checkpoint below size that
// is signed by key (0 if none): the log up to it is vouched for.
func (t *tx) newestSigned(size int64, key *auditlog.Key) (int64, error) {
	for {
		var c checkpointRow
		err := t.queryRow("SELECT size, root, note FROM audit_checkpoints WHERE size < ? ORDER BY size DESC LIMIT 1", size).Scan(&c.size, &c.root, &c.note)
		if isNoRows(err) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read checkpoint: %w", err)
		}
		if checkNote(c, key) == nil {
			return c.size, nil
		}
		size = c.size
	}
}

// auditRange reads entries first..last in seq order.
func (t *tx) auditRange(first, last int64) ([]AuditEntry, error) {
	rows, err := t.query("SELECT "+auditColumns+" FROM audit WHERE seq >= ? AND seq <= ? ORDER BY seq", first, last)
	if err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("read entries: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read entries: %w", err)
	}
	return out, nil
}

// leafHashes reads the stored leaf hashes of entries first..last, by seq.
func (t *tx) leafHashes(first, last int64) (map[int64]tlog.Hash, error) {
	lo, hi := tlog.StoredHashIndex(0, first-1), tlog.StoredHashIndex(0, last-1)
	rows, err := t.query("SELECT idx, hash FROM audit_tree WHERE idx >= ? AND idx <= ?", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read tree leaves: %w", err)
	}
	defer rows.Close()
	out := map[int64]tlog.Hash{}
	for rows.Next() {
		var i int64
		var b []byte
		if err := rows.Scan(&i, &b); err != nil {
			return nil, fmt.Errorf("read tree leaves: %w", err)
		}
		if level, n := tlog.SplitStoredHashIndex(i); level == 0 && len(b) == tlog.HashSize {
			out[n+1] = tlog.Hash(b)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read tree leaves: %w", err)
	}
	return out, nil
}

// checkpointRoots reads the roots of checkpoints of sizes first..last.
func (t *tx) checkpointRoots(first, last int64) (map[int64][]byte, error) {
	rows, err := t.query("SELECT size, root FROM audit_checkpoints WHERE size >= ? AND size <= ?", first, last)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[int64][]byte{}
	for rows.Next() {
		var n int64
		var root []byte
		if err := rows.Scan(&n, &root); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		out[n] = root
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}
