-- Keygate schema v10 (SQLite): ListTokens sort orders. Keep in step with
-- migrations/postgres/0010_token_list.sql.
--
-- Each index holds a sort key and the id, in the exact expression the list query orders and
-- pages by (store/sql/tokens.rs), so every page of a sorted list is an index range walk:
-- never used sorts as the oldest use (-1), never expiring after every expiry (i64 max).
-- created_at already has tokens_created (0001); filtering by last use uses
-- tokens_last_used_at (0008).

CREATE INDEX tokens_name_id ON tokens (name, id);
CREATE INDEX tokens_last_used_sort ON tokens (COALESCE(last_used_at, -1), id);
CREATE INDEX tokens_expires_sort ON tokens (COALESCE(expires_at, 9223372036854775807), id);
