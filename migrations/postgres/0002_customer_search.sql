-- The text search's index: every three-character piece (trigram) of each
-- customer's lower-cased name and email, so `search LIKE '%word%'` is an
-- index lookup instead of a scan of every customer (src/registry/read.rs).
-- pg_trgm ships with PostgreSQL and is a trusted extension (13 and later):
-- the registry's role needs only CREATE on its database.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_search_trigrams ON customers USING gin (search gin_trgm_ops);
