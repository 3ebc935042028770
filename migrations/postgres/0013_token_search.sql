-- Keygate schema v13 (PostgreSQL): nothing to do; keeps the version in step with
-- migrations/sqlite/0013_token_search.sql.
--
-- SQLite gains a trigram index for ListTokens' substring search in v13. PostgreSQL has had
-- one since v1: `tokens_search`, a pg_trgm GIN index on `lower(name || ' ' || description)`,
-- the exact expression the filter uses (store/sql/tokens.rs; checked by
-- tests/store_lists.rs, `token_search`).

SELECT 1;
