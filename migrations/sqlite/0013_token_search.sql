-- Keygate schema v13 (SQLite): token search by substring through an FTS5 trigram index.
-- Keep in step with migrations/postgres/0013_token_search.sql.
--
-- ListTokens' text filter matches a substring of `name || ' ' || description`, any case.
-- As a LIKE '%q%' it read every token (about 150 ms at 100,000 tokens; bench/README.md,
-- "Admin UI"). `token_search` holds that same text under the trigram tokenizer, which answers
-- a quoted phrase of 3 or more characters as a case-insensitive substring match from its
-- index; shorter queries keep the LIKE (store/sql/tokens.rs).
--
-- The FTS rows are keyed by `token_search_ids.rowid`, an INTEGER PRIMARY KEY, which VACUUM
-- keeps (tokens' own implicit rowid it may renumber, as tokens.id is TEXT). Triggers keep both
-- tables in step with every insert, rename and delete, whoever writes.

CREATE TABLE token_search_ids (
    rowid    INTEGER PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE
);

CREATE VIRTUAL TABLE token_search USING fts5 (text, tokenize = 'trigram');

INSERT INTO token_search_ids (token_id) SELECT id FROM tokens ORDER BY created_at, id;
INSERT INTO token_search (rowid, text)
    SELECT s.rowid, t.name || ' ' || t.description
    FROM token_search_ids s JOIN tokens t ON t.id = s.token_id;

CREATE TRIGGER tokens_search_insert AFTER INSERT ON tokens BEGIN
    INSERT INTO token_search_ids (token_id) VALUES (new.id);
    INSERT INTO token_search (rowid, text)
        VALUES ((SELECT rowid FROM token_search_ids WHERE token_id = new.id),
                new.name || ' ' || new.description);
END;

CREATE TRIGGER tokens_search_update AFTER UPDATE OF name, description ON tokens BEGIN
    UPDATE token_search SET text = new.name || ' ' || new.description
        WHERE rowid = (SELECT rowid FROM token_search_ids WHERE token_id = new.id);
END;

CREATE TRIGGER tokens_search_delete AFTER DELETE ON tokens BEGIN
    DELETE FROM token_search
        WHERE rowid = (SELECT rowid FROM token_search_ids WHERE token_id = old.id);
    DELETE FROM token_search_ids WHERE token_id = old.id;
END;
