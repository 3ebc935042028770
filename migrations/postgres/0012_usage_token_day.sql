-- Keygate schema v12 (PostgreSQL): one narrow row per token and UTC day, for rankings by token.
-- Keep in step with migrations/sqlite/0012_usage_token_day.sql.
--
-- A 30-day ranking of 10,000 tokens summed every (token, route, status, error) row of the day
-- tier, sketches and all (about 680k rows; bench/README.md, finding U2). This table holds the
-- same calls summed per (day, token, team): about 310k rows for that range, 5 columns wide.
-- Written additively in the ingesting transaction beside the tiers (store/sql/rollups.rs),
-- kept as long as the day tier. `errors` counts calls with status >= 400.

CREATE TABLE usage_token_day (
    bucket    BIGINT NOT NULL,
    token_id  TEXT NOT NULL,
    team_id   TEXT NOT NULL DEFAULT '',
    calls     BIGINT NOT NULL,
    errors    BIGINT NOT NULL,
    PRIMARY KEY (bucket, token_id, team_id)
);
CREATE INDEX usage_token_day_rank ON usage_token_day (bucket) INCLUDE (token_id, calls, errors);
CREATE INDEX usage_token_day_team ON usage_token_day (team_id, bucket) INCLUDE (token_id, calls, errors);

INSERT INTO usage_token_day (bucket, token_id, team_id, calls, errors)
SELECT bucket, token_id, team_id, SUM(calls),
       SUM(CASE WHEN status >= 400 THEN calls ELSE 0 END)
FROM usage_rollup_day
GROUP BY bucket, token_id, team_id;
