-- Advisory catalog: one row per advisory (DSA-5532-1, USN-6477-1,
-- RHSA-2024:2447 ...), doc its advisory.Advisory as JSON, hash the
-- SHA-256 of doc (a re-import of the same advisory changes nothing),
-- modified its Modified in Unix nanoseconds (a newer one replaces it).
-- advisory_keys index what advisories are looked up by: kind 'alias'
-- (the ID itself, CVE, KB, other vendors' IDs) and 'ecosystem'
-- (debian:12, rhel:9 ...).
CREATE TABLE advisories (
	id          TEXT PRIMARY KEY,
	modified    BIGINT NOT NULL,
	published   BIGINT NOT NULL,
	severity    TEXT NOT NULL,
	hash        TEXT NOT NULL,
	doc         TEXT NOT NULL,
	imported_at BIGINT NOT NULL
);
CREATE TABLE advisory_keys (
	kind        TEXT NOT NULL,
	key         TEXT NOT NULL,
	advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
	PRIMARY KEY (kind, key, advisory_id)
);
CREATE INDEX advisory_keys_advisory ON advisory_keys (advisory_id);
