-- Keygate schema v13 (PostgreSQL): token search by substring through a pg_trgm index.
-- Keep in step with migrations/sqlite/0013_token_search.sql.
--
-- ListTokens' text filter is `lower(name || ' ' || description) LIKE '%q%'`
-- (store/sql/tokens.rs); a GIN trigram index on that exact expression answers it from the
-- index instead of reading every token. pg_trgm ships with PostgreSQL (contrib) and is a
-- trusted extension: a database owner may create it. Where it cannot be created (no contrib
-- package, no privilege), the migration still succeeds with a warning and search stays a
-- sequential scan; create the extension and the index by hand later (README, "PostgreSQL").

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'keygate: pg_trgm unavailable (%); token search reads every token', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX tokens_search_trgm ON tokens
            USING gin ((lower(name || ' ' || description)) gin_trgm_ops);
    END IF;
END
$$;
