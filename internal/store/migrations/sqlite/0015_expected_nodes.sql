-- Inventories imported into the server (drover nodes import): each names
-- the hosts expected to run an agent. A host is an expected node; its
-- inventory variables are its labels, well-known variables its facts
-- (fleet.LoadInventory), its groups the inventory groups it is in. An
-- import replaces an inventory's hosts in one transaction.
CREATE TABLE inventories (
	name        TEXT PRIMARY KEY,
	source      TEXT NOT NULL, -- the file it was imported from
	format      TEXT NOT NULL, -- drover, ansible-ini, ansible-yaml
	imported_at INTEGER NOT NULL,
	imported_by TEXT NOT NULL
);

CREATE TABLE expected_nodes (
	inventory   TEXT NOT NULL REFERENCES inventories (name) ON DELETE CASCADE,
	host        TEXT NOT NULL,
	labels      TEXT NOT NULL, -- JSON object
	host_groups TEXT NOT NULL, -- JSON array, sorted
	facts       TEXT NOT NULL, -- JSON fleet.Facts
	imported_at INTEGER NOT NULL,   -- when the host was added or last changed
	PRIMARY KEY (inventory, host)
);
CREATE INDEX expected_nodes_host ON expected_nodes (host);

-- An enrolment token may be bound to one node name (drover enroll
-- tokens): only that node may enrol with it. '' binds none.
ALTER TABLE enroll_tokens ADD COLUMN node_id TEXT NOT NULL DEFAULT '';
