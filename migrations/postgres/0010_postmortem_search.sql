-- Full-text search over postmortems: the title and the string values of the sections (not the
-- JSON keys) as a stored tsvector with a GIN index. The 'simple' configuration lowercases
-- without stemming or stop words, like SQLite's unicode61 tokenizer, so both answer alike.
-- A generated column stays in step with every writer (pages, API, demo and bulk loaders).
-- fastupdate = off: postmortems are written rarely, and with a pending list after a bulk load the
-- planner priced the index above a sequential scan that detoasts every tsvector (25-40 ms at
-- 5,000 postmortems against about 1 ms through the index).

ALTER TABLE postmortems ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple'::regconfig, title)
    || jsonb_to_tsvector('simple'::regconfig, sections::jsonb, '["string"]'::jsonb)
) STORED;

CREATE INDEX postmortems_search ON postmortems USING GIN (search) WITH (fastupdate = off);
