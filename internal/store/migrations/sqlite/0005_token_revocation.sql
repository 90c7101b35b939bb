-- API token revocation: an admin's revocation is recorded (when, by
-- whom) instead of deleting the row, so that listings and the audit log
-- still name the token. A revoked token no longer authenticates.
-- revoked_at is 0 while the token is not revoked.
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
