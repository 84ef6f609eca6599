-- Bulk exports of a practice's audit trail for auditors (FHIR Bulk Data `$export` of
-- AuditEvent): the job, worked in the background by any instance under a lease and resumed
-- from its cursor, and its output files, kept in the database so that every instance can
-- answer a status poll or a download. Both are removed once the job expires.
CREATE TABLE audit_exports (
    id TEXT PRIMARY KEY,
    -- ODS code of the practice whose events are exported.
    practice TEXT NOT NULL,
    -- The caller key of whoever asked, as the audit trail names them.
    requested_by TEXT NOT NULL,
    -- The kick-off request's URL, repeated in the manifest.
    request TEXT NOT NULL,
    -- Events recorded in [since, until); since is open when not given.
    since TIMESTAMP,
    until TIMESTAMP NOT NULL,
    transaction_time TIMESTAMP NOT NULL,
    -- in-progress | completed | failed (a cancelled export is removed)
    status TEXT NOT NULL,
    -- The last event written: recorded_at, chain and seq (events are written in that order).
    cursor_recorded_at TIMESTAMP,
    cursor_chain TEXT,
    cursor_seq BIGINT,
    exported BIGINT NOT NULL,
    files BIGINT NOT NULL,
    -- Why a failed job failed, as the caller is told it.
    error TEXT,
    claimed_by TEXT,
    claimed_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_exports_due_idx ON audit_exports (status, claimed_until);
CREATE INDEX audit_exports_expiry_idx ON audit_exports (expires_at);

-- One NDJSON file of an export: a fixed number of AuditEvents, one per line.
CREATE TABLE audit_export_files (
    export_id TEXT NOT NULL REFERENCES audit_exports (id) ON DELETE CASCADE,
    part BIGINT NOT NULL,
    events BIGINT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (export_id, part)
);
