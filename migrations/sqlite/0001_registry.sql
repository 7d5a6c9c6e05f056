-- The customer registry and audit trail (SQLite). The same contract as
-- ../postgres/0001_registry.sql; src/registry reads both alike.
-- Times are milliseconds since the Unix epoch (UTC).

-- One row; the retention the audit triggers enforce (NULL: keep every
-- entry). The gateway writes `[registry] audit_retention_days` here at start.
CREATE TABLE registry_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    audit_retention_days INTEGER CHECK (audit_retention_days IS NULL OR audit_retention_days > 0)
);
INSERT INTO registry_settings (id, audit_retention_days) VALUES (1, NULL);

-- The intent: written before DNA is called; never changed.
CREATE TABLE audit_entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('customer.create', 'customer.activate', 'customer.suspend')),
    principal TEXT NOT NULL,
    request_id TEXT NOT NULL,
    idempotency_key TEXT,
    -- The caller's customer_id (a create), else NULL until the outcome.
    customer_ref TEXT,
    -- DNA's id (activate, suspend); a create's is in its outcome.
    dna_id INTEGER,
    -- The normalized request body, JSON; never a secret.
    request TEXT NOT NULL
);

-- The outcome: written once, after the call. An entry without one was sent
-- (or was about to be) and its answer never recorded: `unknown`.
CREATE TABLE audit_outcomes (
    seq INTEGER PRIMARY KEY REFERENCES audit_entries (seq),
    at_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'unknown')),
    -- The gateway's status and problem type for `refused` and `unknown`.
    status INTEGER,
    problem_type TEXT,
    dna_id INTEGER,
    -- DNA's answer as the gateway normalized it, JSON (`succeeded`).
    answer TEXT
);

-- Append-only, enforced by the database: no update, and no delete of an
-- entry younger than the retention (or of any, when it is NULL).
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_outcomes_no_update BEFORE UPDATE ON audit_outcomes
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_entries_kept BEFORE DELETE ON audit_entries
WHEN (SELECT audit_retention_days FROM registry_settings WHERE id = 1) IS NULL
  OR OLD.at_ms > CAST(strftime('%s', 'now') AS INTEGER) * 1000
       - (SELECT audit_retention_days FROM registry_settings WHERE id = 1) * 86400000
BEGIN
    SELECT RAISE(ABORT, 'audit entries younger than the retention are kept');
END;
CREATE TRIGGER audit_outcomes_kept BEFORE DELETE ON audit_outcomes
WHEN (SELECT audit_retention_days FROM registry_settings WHERE id = 1) IS NULL
  OR (SELECT at_ms FROM audit_entries WHERE seq = OLD.seq) > CAST(strftime('%s', 'now') AS INTEGER) * 1000
       - (SELECT audit_retention_days FROM registry_settings WHERE id = 1) * 86400000
BEGIN
    SELECT RAISE(ABORT, 'audit entries younger than the retention are kept');
END;

-- The trail is read newest first by (at_ms, seq), within each filter.
CREATE INDEX audit_by_principal ON audit_entries (principal, at_ms, seq);
CREATE INDEX audit_by_operation ON audit_entries (operation, at_ms, seq);
CREATE INDEX audit_by_customer_ref ON audit_entries (customer_ref, seq);
CREATE INDEX audit_by_dna_id ON audit_entries (dna_id, seq);
CREATE INDEX audit_by_time ON audit_entries (at_ms, seq);
CREATE INDEX audit_outcomes_by_dna_id ON audit_outcomes (dna_id, seq);

-- Each customer as last known, kept current from the audit rows in the
-- same transaction as each outcome.
CREATE TABLE customers (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    dna_id INTEGER UNIQUE,
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
    -- pending, active, suspended, or unknown (an outcome that was lost).
    status TEXT NOT NULL,
    -- Lower-cased name and email, what the text search reads.
    search TEXT NOT NULL,
    -- The create's time and principal; NULL when the gateway never saw it.
    created_at_ms INTEGER,
    created_by TEXT,
    first_seen_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    last_operation TEXT NOT NULL,
    last_outcome TEXT NOT NULL
);
-- Newest first, and the same order within each filter a list takes.
CREATE INDEX customers_newest ON customers (first_seen_ms, row_id);
CREATE INDEX customers_by_status ON customers (status, first_seen_ms, row_id);
CREATE INDEX customers_by_email ON customers (lower(email), first_seen_ms, row_id);
CREATE INDEX customers_by_created_by ON customers (created_by, first_seen_ms, row_id);
