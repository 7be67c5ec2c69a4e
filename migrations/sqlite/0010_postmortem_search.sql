-- Full-text search over postmortems: the title and the text of every section (not the JSON
-- keys), in an FTS5 index kept in step with `postmortems` by triggers, so every writer (pages,
-- API, demo and bulk loaders) is covered. The store searches for word beginnings ("replica*").
-- Diacritics are kept, like PostgreSQL's 'simple' configuration, so both answer alike.

CREATE VIRTUAL TABLE postmortem_search USING fts5 (body, tokenize = 'unicode61 remove_diacritics 0');

CREATE TRIGGER postmortem_search_insert AFTER INSERT ON postmortems BEGIN
    INSERT INTO postmortem_search (rowid, body)
    VALUES (new.id, new.title || ' ' || COALESCE((SELECT group_concat(value, ' ') FROM json_each(new.sections)), ''));
END;

CREATE TRIGGER postmortem_search_update AFTER UPDATE OF title, sections ON postmortems BEGIN
    DELETE FROM postmortem_search WHERE rowid = old.id;
    INSERT INTO postmortem_search (rowid, body)
    VALUES (new.id, new.title || ' ' || COALESCE((SELECT group_concat(value, ' ') FROM json_each(new.sections)), ''));
END;

CREATE TRIGGER postmortem_search_delete AFTER DELETE ON postmortems BEGIN
    DELETE FROM postmortem_search WHERE rowid = old.id;
END;

INSERT INTO postmortem_search (rowid, body)
SELECT id, title || ' ' || COALESCE((SELECT group_concat(value, ' ') FROM json_each(sections)), '')
FROM postmortems;
