-- Keygate schema v4 (SQLite): ListTokens by scope/tag walks token_scopes in the list order
-- instead of probing every token (bench/README.md, finding 2).
-- Keep in step with migrations/postgres/0004_scope_order.sql.

ALTER TABLE token_scopes ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
UPDATE token_scopes SET created_at = (SELECT t.created_at FROM tokens t WHERE t.id = token_scopes.token_id);
CREATE INDEX token_scopes_scope_created ON token_scopes (scope, created_at DESC, token_id DESC);
