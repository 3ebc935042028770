-- Keygate schema v8 (PostgreSQL): usage rollups in three tiers, batch idempotency, per-minute
-- gateway health. Keep in step with migrations/sqlite/0008_usage_rollups.sql.
-- Telemetry, not configuration: written without audit rows or change events.
--
-- Tiers (bucket = start of the UTC minute / hour / day, epoch ms), kept 48 hours / 90 days /
-- 400 days. `usage_rollup_*` is the detail: one row per (bucket, token, team, route, status,
-- error code). `usage_series_*` holds the same requests summed per dimension: `total` (key ''),
-- `team` (team id), `route` (route name), `gateway` (gateway name), so totals never scan the
-- detail. `sketch` is a keygate-rollup latency sketch (format v1, rollup/README.md), merged in
-- Rust: the control plane reads the row, merges and writes it back, serialised by the single
-- SQLite writer or, on PostgreSQL, by a transaction-level advisory lock.

CREATE TABLE usage_rollup_minute (
    bucket          BIGINT NOT NULL,
    token_id        TEXT NOT NULL DEFAULT '',
    team_id         TEXT NOT NULL DEFAULT '',
    route           TEXT NOT NULL DEFAULT '',
    status          INTEGER NOT NULL,
    error           TEXT NOT NULL DEFAULT '',
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (bucket, token_id, team_id, route, status, error)
);
CREATE INDEX usage_rollup_minute_token ON usage_rollup_minute (token_id, bucket);
CREATE INDEX usage_rollup_minute_team ON usage_rollup_minute (team_id, bucket);
CREATE INDEX usage_rollup_minute_route ON usage_rollup_minute (route, bucket);

CREATE TABLE usage_series_minute (
    dim             TEXT NOT NULL,
    dim_key         TEXT NOT NULL,
    bucket          BIGINT NOT NULL,
    status          INTEGER NOT NULL,
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (dim, dim_key, bucket, status)
);
CREATE INDEX usage_series_minute_bucket ON usage_series_minute (bucket);

CREATE TABLE usage_rollup_hour (
    bucket          BIGINT NOT NULL,
    token_id        TEXT NOT NULL DEFAULT '',
    team_id         TEXT NOT NULL DEFAULT '',
    route           TEXT NOT NULL DEFAULT '',
    status          INTEGER NOT NULL,
    error           TEXT NOT NULL DEFAULT '',
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (bucket, token_id, team_id, route, status, error)
);
CREATE INDEX usage_rollup_hour_token ON usage_rollup_hour (token_id, bucket);
CREATE INDEX usage_rollup_hour_team ON usage_rollup_hour (team_id, bucket);
CREATE INDEX usage_rollup_hour_route ON usage_rollup_hour (route, bucket);

CREATE TABLE usage_series_hour (
    dim             TEXT NOT NULL,
    dim_key         TEXT NOT NULL,
    bucket          BIGINT NOT NULL,
    status          INTEGER NOT NULL,
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (dim, dim_key, bucket, status)
);
CREATE INDEX usage_series_hour_bucket ON usage_series_hour (bucket);

CREATE TABLE usage_rollup_day (
    bucket          BIGINT NOT NULL,
    token_id        TEXT NOT NULL DEFAULT '',
    team_id         TEXT NOT NULL DEFAULT '',
    route           TEXT NOT NULL DEFAULT '',
    status          INTEGER NOT NULL,
    error           TEXT NOT NULL DEFAULT '',
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (bucket, token_id, team_id, route, status, error)
);
CREATE INDEX usage_rollup_day_token ON usage_rollup_day (token_id, bucket);
CREATE INDEX usage_rollup_day_team ON usage_rollup_day (team_id, bucket);
CREATE INDEX usage_rollup_day_route ON usage_rollup_day (route, bucket);

CREATE TABLE usage_series_day (
    dim             TEXT NOT NULL,
    dim_key         TEXT NOT NULL,
    bucket          BIGINT NOT NULL,
    status          INTEGER NOT NULL,
    calls           BIGINT NOT NULL,
    request_bytes   BIGINT NOT NULL,
    response_bytes  BIGINT NOT NULL,
    latency_sum_us  BIGINT NOT NULL,
    latency_min_us  BIGINT NOT NULL,
    latency_max_us  BIGINT NOT NULL,
    sketch          BYTEA NOT NULL,
    PRIMARY KEY (dim, dim_key, bucket, status)
);
CREATE INDEX usage_series_day_bucket ON usage_series_day (bucket);

-- IngestUsage calls already stored, by (gateway, batch_id): a replay changes nothing.
-- Kept 48 hours.
CREATE TABLE usage_batches (
    gateway   TEXT NOT NULL,
    batch_id  TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (gateway, batch_id)
);
CREATE INDEX usage_batches_at ON usage_batches (at);

-- What each gateway reported per minute of arrival (ListGateways' "last hour" and the
-- gateway alerts). Kept 48 hours.
CREATE TABLE gateway_minutes (
    gateway          TEXT NOT NULL,
    minute           BIGINT NOT NULL,
    requests         BIGINT NOT NULL DEFAULT 0,
    events           BIGINT NOT NULL DEFAULT 0,
    events_dropped   BIGINT NOT NULL DEFAULT 0,
    rollups_dropped  BIGINT NOT NULL DEFAULT 0,
    sampled_out      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (gateway, minute)
);

ALTER TABLE gateways ADD COLUMN config_revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE gateways ADD COLUMN version TEXT NOT NULL DEFAULT '';

-- Token lists filtered or sorted by last use.
CREATE INDEX tokens_last_used_at ON tokens (last_used_at);
