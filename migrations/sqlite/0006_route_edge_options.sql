-- Keygate schema v6 (SQLite): per-route CORS origins and rate limit, carried to the edge.
-- Keep in step with migrations/postgres/0006_route_edge_options.sql.

ALTER TABLE routes ADD COLUMN cors_origins TEXT NOT NULL DEFAULT '[]';   -- JSON array, sorted
ALTER TABLE routes ADD COLUMN rate_limit_per_minute INTEGER NOT NULL DEFAULT 0;  -- 0: none
