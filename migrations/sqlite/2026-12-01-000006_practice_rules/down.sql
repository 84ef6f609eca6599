DROP TABLE scheduled_runs;
DROP TABLE supplier_events;
DROP TABLE bulk_jobs;
DROP TABLE record_access_codes;
ALTER TABLE patients DROP COLUMN deceased_on;
PRAGMA defer_foreign_keys = ON;
CREATE TABLE online_accounts_copy AS SELECT * FROM online_accounts;
DROP TABLE online_accounts;
CREATE TABLE online_accounts (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL UNIQUE REFERENCES patients (id),
    practice_id TEXT NOT NULL REFERENCES practices (id),
    status TEXT NOT NULL,
    status_reason TEXT,
    email TEXT NOT NULL,
    access TEXT NOT NULL,
    verification TEXT NOT NULL,
    attestation TEXT NOT NULL,
    supplier_ref TEXT,
    supplier_account_id TEXT,
    linkage_key_enc TEXT,
    linkage_key_issued_at TIMESTAMP,
    letter_printed_at TIMESTAMP,
    letter_expires_at TIMESTAMP,
    last_error TEXT,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO online_accounts SELECT id, patient_id, practice_id, status, status_reason, email, access, verification,
    attestation, supplier_ref, supplier_account_id, linkage_key_enc, linkage_key_issued_at, letter_printed_at,
    letter_expires_at, last_error, version, created_at, updated_at FROM online_accounts_copy;
DROP TABLE online_accounts_copy;
CREATE INDEX online_accounts_practice_idx ON online_accounts (practice_id);
CREATE INDEX online_accounts_email_idx ON online_accounts (email);
