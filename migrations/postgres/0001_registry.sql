-- The customer registry and audit trail (PostgreSQL). The same contract as
-- ../sqlite/0001_registry.sql; src/registry reads both alike.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE registry_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    audit_retention_days BIGINT CHECK (audit_retention_days IS NULL OR audit_retention_days > 0)
);
INSERT INTO registry_settings (id, audit_retention_days) VALUES (1, NULL);

CREATE TABLE audit_entries (
    seq BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('customer.create', 'customer.activate', 'customer.suspend')),
    principal TEXT NOT NULL,
    request_id TEXT NOT NULL,
    idempotency_key TEXT,
    customer_ref TEXT,
    dna_id BIGINT,
    request TEXT NOT NULL
);

CREATE TABLE audit_outcomes (
    seq BIGINT PRIMARY KEY REFERENCES audit_entries (seq),
    at_ms BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'unknown')),
    status BIGINT,
    problem_type TEXT,
    dna_id BIGINT,
    answer TEXT
);

-- Append-only, enforced by the database: no update, no truncate, and no
-- delete of an entry younger than the retention (or of any, when it is NULL).
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END
$$;
CREATE FUNCTION audit_refuse_young_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    days BIGINT;
    entry_at BIGINT;
BEGIN
    SELECT audit_retention_days INTO days FROM registry_settings WHERE id = 1;
    IF TG_TABLE_NAME = 'audit_outcomes' THEN
        SELECT at_ms INTO entry_at FROM audit_entries WHERE seq = OLD.seq;
    ELSE
        entry_at := OLD.at_ms;
    END IF;
    IF days IS NULL
       OR entry_at > (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT - days * 86400000 THEN
        RAISE EXCEPTION 'audit entries younger than the retention are kept';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_outcomes_no_update BEFORE UPDATE ON audit_outcomes
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_outcomes_no_truncate BEFORE TRUNCATE ON audit_outcomes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_entries_kept BEFORE DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_young_delete();
CREATE TRIGGER audit_outcomes_kept BEFORE DELETE ON audit_outcomes
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_young_delete();

-- The trail is read newest first by (at_ms, seq), within each filter.
CREATE INDEX audit_by_principal ON audit_entries (principal, at_ms, seq);
CREATE INDEX audit_by_operation ON audit_entries (operation, at_ms, seq);
CREATE INDEX audit_by_customer_ref ON audit_entries (customer_ref, seq);
CREATE INDEX audit_by_dna_id ON audit_entries (dna_id, seq);
CREATE INDEX audit_by_time ON audit_entries (at_ms, seq);
CREATE INDEX audit_outcomes_by_dna_id ON audit_outcomes (dna_id, seq);

CREATE TABLE customers (
    row_id BIGSERIAL PRIMARY KEY,
    dna_id BIGINT UNIQUE,
    customer_id TEXT UNIQUE,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    address TEXT,
    zipcode TEXT,
    billing_address TEXT,
    billing_zipcode TEXT,
    subreseller_id TEXT,
    ns_domain TEXT,
    status TEXT NOT NULL,
    search TEXT NOT NULL,
    created_at_ms BIGINT,
    created_by TEXT,
    first_seen_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_operation TEXT NOT NULL,
    last_outcome TEXT NOT NULL
);
CREATE INDEX customers_newest ON customers (first_seen_ms, row_id);
CREATE INDEX customers_by_status ON customers (status, first_seen_ms, row_id);
CREATE INDEX customers_by_email ON customers (lower(email), first_seen_ms, row_id);
CREATE INDEX customers_by_created_by ON customers (created_by, first_seen_ms, row_id);
