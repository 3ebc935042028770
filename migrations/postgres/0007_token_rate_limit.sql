-- Keygate schema v7 (PostgreSQL): per-token rate limit, carried to the edge in the token record.
-- Keep in step with migrations/sqlite/0007_token_rate_limit.sql.

ALTER TABLE tokens ADD COLUMN rate_limit_per_minute BIGINT NOT NULL DEFAULT 0;  -- 0: none
