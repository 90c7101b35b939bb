-- Webhook outbox (see internal/webhook and docs/webhooks.md).
--
-- webhook_outbox: one row per audit entry that is a webhook event
-- (store.WebhookEventOf), inserted by the very transaction that appends
-- the entry, so a state change and its notification commit together.
-- id is the audit entry's seq (the body's details are the entry's);
-- stream is the rollout the event is about ('' for fleet-wide events:
-- stop-the-line, drift) and stream_seq its 1-based position in that
-- stream, without gaps. Rows are allocated under the audit head lock, so
-- they commit in id order.
--
-- webhook_subscriptions: each configured subscription's start: it is
-- sent the events with id > start_after (those committed after it was
-- first configured).
--
-- webhook_cursors: per subscription and stream, the id of the last
-- event the receiver acknowledged with a 2xx.
CREATE TABLE webhook_outbox (
	id         INTEGER PRIMARY KEY,
	stream     TEXT NOT NULL,
	stream_seq INTEGER NOT NULL,
	event      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	UNIQUE (stream, stream_seq)
);
CREATE INDEX webhook_outbox_at ON webhook_outbox (at);

CREATE TABLE webhook_subscriptions (
	name        TEXT PRIMARY KEY,
	start_after INTEGER NOT NULL,
	created_at  INTEGER NOT NULL
);

CREATE TABLE webhook_cursors (
	subscription TEXT NOT NULL,
	stream       TEXT NOT NULL,
	last_id      INTEGER NOT NULL,
	delivered_at INTEGER NOT NULL,
	PRIMARY KEY (subscription, stream)
);
