-- Keygate schema v12 (SQLite): one narrow row per token and UTC day, for rankings by token.
-- Keep in step with migrations/postgres/0012_usage_token_day.sql (the reasons are there).

CREATE TABLE usage_token_day (
    bucket    INTEGER NOT NULL,
    token_id  TEXT NOT NULL,
    team_id   TEXT NOT NULL DEFAULT '',
    calls     INTEGER NOT NULL,
    errors    INTEGER NOT NULL,
    PRIMARY KEY (bucket, token_id, team_id)
) WITHOUT ROWID;
CREATE INDEX usage_token_day_team ON usage_token_day (team_id, bucket, token_id, calls, errors);

INSERT INTO usage_token_day (bucket, token_id, team_id, calls, errors)
SELECT bucket, token_id, team_id, SUM(calls),
       SUM(CASE WHEN status >= 400 THEN calls ELSE 0 END)
FROM usage_rollup_day
GROUP BY bucket, token_id, team_id;
