-- Keygate schema v3 (SQLite): change-feed followers and service-account capabilities.
-- Keep in step with migrations/postgres/0003_sync.sql.

-- '' (a team role only), 'sync' (may follow the change feed), 'gateway' (may report usage).
ALTER TABLE service_accounts ADD COLUMN capability TEXT NOT NULL DEFAULT '';

CREATE TABLE sync_followers (
    follower         TEXT PRIMARY KEY,
    applied_revision INTEGER NOT NULL,
    last_error       TEXT NOT NULL DEFAULT '',
    applied_changes  INTEGER NOT NULL DEFAULT 0,
    reported_at      INTEGER NOT NULL,
    resync_requested BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX change_events_at ON change_events (at);
