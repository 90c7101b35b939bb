-- Baselines (see internal/baseline and docs/baselines.md).
--
-- baselines: every version of every baseline (versions are never
-- deleted or changed; the current one is the highest); doc is the
-- baseline.Baseline as JSON.
-- baseline_exemptions: one exemption per baseline and node, replaced by
-- a newer one; expired ones are kept (they no longer apply).
-- drift_events: package changes no drover step explains, and pins the
-- facts broke (kind changed-out-of-band | pin-violated | hold-removed).
CREATE TABLE baselines (
	name    TEXT NOT NULL,
	version BIGINT NOT NULL,
	doc     TEXT NOT NULL,
	actor   TEXT NOT NULL,
	at      BIGINT NOT NULL,
	PRIMARY KEY (name, version)
);

CREATE TABLE baseline_exemptions (
	baseline TEXT NOT NULL,
	node     TEXT NOT NULL,
	by_actor TEXT NOT NULL,
	reason   TEXT NOT NULL,
	expires  BIGINT NOT NULL,
	at       BIGINT NOT NULL,
	PRIMARY KEY (baseline, node)
);

CREATE TABLE drift_events (
	id BIGSERIAL PRIMARY KEY,
	node        TEXT NOT NULL,
	package     TEXT NOT NULL,
	from_ver    TEXT NOT NULL,
	to_ver      TEXT NOT NULL,
	kind        TEXT NOT NULL,
	baseline    TEXT NOT NULL,
	reason      TEXT NOT NULL,
	detected_at BIGINT NOT NULL
);
CREATE INDEX drift_events_node ON drift_events (node, id);
CREATE INDEX drift_events_at ON drift_events (detected_at);
