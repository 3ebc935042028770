-- Keygate schema v14 (SQLite): what `keygate import old-system` needs (docs/migrating.md).
-- Keep in step with migrations/postgres/0014_import.sql.
--
-- tokens.legacy_prefix: the key format prefix of a token imported with its old key (`ntk`);
-- empty for tokens issued here. `keygate token list --legacy` lists the ones still live.
-- invitations.system_admin: an imported system admin gets the flag when accepting.
-- import_map: old id -> new id per source and kind, with a fingerprint of the mapped content,
-- so a second run applies only what changed in the old system. Kind `cursor` rows hold the
-- highest old row id read of append-only tables (usage logs, audit logs) in `new_id`.
-- import_runs: one row per applied run (dry runs write nothing).

ALTER TABLE tokens ADD COLUMN legacy_prefix TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_legacy ON tokens (created_at DESC, id DESC) WHERE legacy_prefix <> '';

ALTER TABLE invitations ADD COLUMN system_admin BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE import_map (
    source      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    old_id      TEXT NOT NULL,
    new_id      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    -- Routes: the backend secret this import last wrote, sealed like route_secrets (AAD
    -- `<route id>/<slot>`), so a later run can tell a secret changed in the old KV (written
    -- again) from one changed here since (kept).
    secret      TEXT NOT NULL DEFAULT '',
    run_id      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (source, kind, old_id)
);

CREATE TABLE import_runs (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    summary     TEXT NOT NULL
);
