-- Keygate schema v11 (PostgreSQL): covering indexes for the analytics queries that sum many
-- detail rows (BatchGetTokenUsage, rankings): the sums read only (key, bucket, status,
-- calls), never the rows with their sketches (bench/README.md, usage analytics: the batch
-- call spent most of its time fetching heap pages for columns it does not use).
-- Keep in step with migrations/sqlite/0011_usage_covering.sql.

DROP INDEX usage_rollup_minute_token;
DROP INDEX usage_rollup_hour_token;
DROP INDEX usage_rollup_day_token;
CREATE INDEX usage_rollup_minute_token ON usage_rollup_minute (token_id, bucket) INCLUDE (status, calls);
CREATE INDEX usage_rollup_hour_token ON usage_rollup_hour (token_id, bucket) INCLUDE (status, calls);
CREATE INDEX usage_rollup_day_token ON usage_rollup_day (token_id, bucket) INCLUDE (status, calls);
-- Rankings over a range: every key of the range, without the sketches.
CREATE INDEX usage_rollup_hour_rank ON usage_rollup_hour (bucket) INCLUDE (token_id, team_id, route, status, error, calls);
CREATE INDEX usage_rollup_day_rank ON usage_rollup_day (bucket) INCLUDE (token_id, team_id, route, status, error, calls);
