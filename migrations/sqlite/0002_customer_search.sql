-- The text search's index: every three-character piece (trigram) of each
-- customer's lower-cased name and email, in an FTS5 table that holds no
-- copy of the text (its content is `customers.search`). A search word of
-- three characters or more is looked up here instead of scanning every
-- customer (src/registry/read.rs); shorter words still scan.
CREATE VIRTUAL TABLE customers_search USING fts5(
    search, content = 'customers', content_rowid = 'row_id', tokenize = 'trigram'
);
INSERT INTO customers_search (customers_search) VALUES ('rebuild');

-- Kept current with the customers table (an upsert leaves `search` alone).
CREATE TRIGGER customers_search_insert AFTER INSERT ON customers BEGIN
    INSERT INTO customers_search (rowid, search) VALUES (new.row_id, new.search);
END;
CREATE TRIGGER customers_search_update AFTER UPDATE OF search ON customers BEGIN
    INSERT INTO customers_search (customers_search, rowid, search)
        VALUES ('delete', old.row_id, old.search);
    INSERT INTO customers_search (rowid, search) VALUES (new.row_id, new.search);
END;
CREATE TRIGGER customers_search_delete AFTER DELETE ON customers BEGIN
    INSERT INTO customers_search (customers_search, rowid, search)
        VALUES ('delete', old.row_id, old.search);
END;
