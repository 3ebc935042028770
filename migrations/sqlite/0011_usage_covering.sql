-- Keygate schema v11 (SQLite): covering indexes for the analytics queries that sum many
-- detail rows (BatchGetTokenUsage, rankings): the sums read only (key, bucket, status,
-- calls), never the rows with their sketches. SQLite has no INCLUDE: the columns are key
-- columns. Keep in step with migrations/postgres/0011_usage_covering.sql.

DROP INDEX usage_rollup_minute_token;
DROP INDEX usage_rollup_hour_token;
DROP INDEX usage_rollup_day_token;
CREATE INDEX usage_rollup_minute_token ON usage_rollup_minute (token_id, bucket, status, calls);
CREATE INDEX usage_rollup_hour_token ON usage_rollup_hour (token_id, bucket, status, calls);
CREATE INDEX usage_rollup_day_token ON usage_rollup_day (token_id, bucket, status, calls);
CREATE INDEX usage_rollup_hour_rank ON usage_rollup_hour (bucket, token_id, team_id, route, status, error, calls);
CREATE INDEX usage_rollup_day_rank ON usage_rollup_day (bucket, token_id, team_id, route, status, error, calls);
