-- The audit log's Merkle tree (golang.org/x/mod/sumdb/tlog): the stored
-- hashes of the tree whose leaf i is entry seq i+1 (its canonical
-- record), keyed by tlog stored-hash index, appended in the transaction
-- that appends the entries.
CREATE TABLE audit_tree (
	idx  BIGINT PRIMARY KEY,
	hash BYTEA NOT NULL
);

-- Leaves in audit_tree; equal to audit_head.seq after every append. The
-- entries of a database migrated from version 1 join the tree at the
-- first append.
ALTER TABLE audit_head ADD COLUMN tree_size BIGINT NOT NULL DEFAULT 0;

-- Signed tree heads: one per transaction that appended entries, signed
-- with the servers' audit key (note is a signed note whose text is
-- tlog.FormatTree(size, root)).
CREATE TABLE audit_checkpoints (
	size BIGINT PRIMARY KEY,
	root BYTEA NOT NULL,
	note TEXT NOT NULL,
	at   BIGINT NOT NULL
);
