-- +goose Up
-- Tenants (issue 9 part 3): API keys per owner, admin keys apart from tenant
-- keys, revocation, and per-owner quota overrides. Same SQL on SQLite and
-- PostgreSQL, times in Unix microseconds as in 00001.
ALTER TABLE api_keys ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
-- The key's first characters, shown in listings to tell keys apart (never enough to use one).
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
-- The id of the key this one replaced (rotation), for the audit trail.
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;
-- Before tenants every key acted for its owner with every right: the default
-- owner's keys (the configured one, the generated one) stay admin keys.
UPDATE api_keys SET admin = TRUE WHERE owner = 'default';
CREATE INDEX ix_api_keys_owner ON api_keys (owner, id);

-- Per-owner quota overrides set through the admin API; a NULL column inherits
-- the configured value (quotas.owners.<owner>, else the quotas defaults).
-- 0 means unlimited.
CREATE TABLE owner_quotas (
    owner                TEXT PRIMARY KEY,
    max_sandboxes        BIGINT,
    max_running_sessions BIGINT,
    max_cargos           BIGINT,
    max_cargo_mb         BIGINT,
    updated_at           BIGINT NOT NULL
);

-- +goose Down
DROP TABLE owner_quotas;
DROP INDEX ix_api_keys_owner;
ALTER TABLE api_keys DROP COLUMN rotated_from;
ALTER TABLE api_keys DROP COLUMN revoked_at;
ALTER TABLE api_keys DROP COLUMN label;
ALTER TABLE api_keys DROP COLUMN prefix;
ALTER TABLE api_keys DROP COLUMN admin;
