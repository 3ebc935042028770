-- Keygate schema v5 (PostgreSQL): usage events reported by gateways, and each gateway's totals.
-- Keep in step with migrations/sqlite/0005_usage.sql.
-- Telemetry, not configuration: these tables are written without audit rows or change events.

-- One row per request a gateway answered. Empty strings mean "none" (no key, no route...).
-- Rows older than KEYGATE_USAGE_RETENTION_DAYS (by `at`) are deleted periodically.
CREATE TABLE usage_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway         TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    at              BIGINT NOT NULL,
    token_hash      TEXT NOT NULL DEFAULT '',
    token_id        TEXT NOT NULL DEFAULT '',
    team_id         TEXT NOT NULL DEFAULT '',
    route           TEXT NOT NULL DEFAULT '',
    method          TEXT NOT NULL DEFAULT '',
    status          INTEGER NOT NULL,
    error           TEXT NOT NULL DEFAULT '',
    latency_us      BIGINT NOT NULL DEFAULT 0,
    request_bytes   BIGINT NOT NULL DEFAULT 0,
    response_bytes  BIGINT NOT NULL DEFAULT 0,
    client_ip       TEXT NOT NULL DEFAULT '',
    user_agent      TEXT NOT NULL DEFAULT '',
    config_revision BIGINT NOT NULL DEFAULT 0,
    request_id      TEXT NOT NULL DEFAULT '',
    -- A batch resent after a timeout is stored once.
    UNIQUE (gateway, event_id)
);
-- ListUsageEvents walks these newest first; `usage_events_at` also serves retention.
CREATE INDEX usage_events_team_at ON usage_events (team_id, at DESC, id DESC);
CREATE INDEX usage_events_token_at ON usage_events (token_id, at DESC, id DESC);
CREATE INDEX usage_events_at ON usage_events (at DESC, id DESC);

CREATE TABLE gateways (
    name          TEXT PRIMARY KEY,
    reported_by   TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    events_total  BIGINT NOT NULL DEFAULT 0,
    dropped_total BIGINT NOT NULL DEFAULT 0
);
