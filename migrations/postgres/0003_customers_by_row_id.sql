-- Customers are listed newest first in the order the registry first
-- recorded them (`row_id`), no longer by the recording instance's clock
-- (`first_seen_ms`): one order for every instance on one database, and the
-- order the text search's index (0002) walks, newest first, so a search
-- stops at its page instead of sorting every match (src/registry/read/search.rs).
-- Each filter's index ends in that order.
DROP INDEX customers_newest;
DROP INDEX customers_by_status;
DROP INDEX customers_by_email;
DROP INDEX customers_by_created_by;
CREATE INDEX customers_by_status ON customers (status, row_id);
CREATE INDEX customers_by_email ON customers (lower(email), row_id);
CREATE INDEX customers_by_created_by ON customers (created_by, row_id);

-- The trigram index takes each new customer at once instead of through
-- GIN's pending list: every search scans that list (up to 4 MB of entries
-- not yet merged) until a vacuum merges it, which made a search after a
-- burst of writes several times slower. A customer's write costs that
-- merge instead; writes here are far rarer than searches.
ALTER INDEX customers_search_trigrams SET (fastupdate = off);
SELECT gin_clean_pending_list('customers_search_trigrams');
