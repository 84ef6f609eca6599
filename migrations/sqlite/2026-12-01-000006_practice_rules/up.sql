-- An online account belongs to a patient at one practice: a patient who moves can have one at
-- the new practice while the old one is kept, ended, for the record. SQLite cannot drop the
-- UNIQUE constraint in place: the table is rebuilt, with the references to it checked at commit.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE online_accounts_copy AS SELECT * FROM online_accounts;
DROP TABLE online_accounts;
CREATE TABLE online_accounts (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    practice_id TEXT NOT NULL REFERENCES practices (id),
    status TEXT NOT NULL,
    status_reason TEXT,
    email TEXT NOT NULL,
    access TEXT NOT NULL,
    verification TEXT NOT NULL,
    attestation TEXT NOT NULL,
    supplier_ref TEXT,
    supplier_account_id TEXT,
    -- AES-256-GCM ciphertext of the linkage key; never the key itself.
    linkage_key_enc TEXT,
    linkage_key_issued_at TIMESTAMP,
    letter_printed_at TIMESTAMP,
    letter_expires_at TIMESTAMP,
    last_error TEXT,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- A change the supplier has not confirmed yet; `access` is what it has confirmed.
    pending_access TEXT,
    -- The access the supplier was last told to give (the practice's model applied).
    sent_access TEXT,
    -- `practice` (registered by staff) or `nhs-login` (the patient registered themself).
    source TEXT NOT NULL DEFAULT 'practice'
);
INSERT INTO online_accounts (id, patient_id, practice_id, status, status_reason, email, access, verification,
    attestation, supplier_ref, supplier_account_id, linkage_key_enc, linkage_key_issued_at, letter_printed_at,
    letter_expires_at, last_error, version, created_at, updated_at)
    SELECT id, patient_id, practice_id, status, status_reason, email, access, verification, attestation,
        supplier_ref, supplier_account_id, linkage_key_enc, linkage_key_issued_at, letter_printed_at,
        letter_expires_at, last_error, version, created_at, updated_at FROM online_accounts_copy;
DROP TABLE online_accounts_copy;
CREATE UNIQUE INDEX online_accounts_patient_practice_idx ON online_accounts (patient_id, practice_id);
CREATE INDEX online_accounts_practice_idx ON online_accounts (practice_id);
CREATE INDEX online_accounts_email_idx ON online_accounts (email);

ALTER TABLE patients ADD COLUMN deceased_on DATE;

-- SNOMED CT record-access codes on a patient's record. A removed code keeps its row.
CREATE TABLE record_access_codes (
    id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    code TEXT NOT NULL,
    source TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TIMESTAMP NOT NULL,
    removed_by TEXT,
    removed_at TIMESTAMP
);
CREATE UNIQUE INDEX record_access_codes_active_idx ON record_access_codes (patient_id, code) WHERE removed_at IS NULL;

-- Practice-wide jobs (applying the opt-in model), resumable from their cursor.
CREATE TABLE bulk_jobs (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    cursor TEXT NOT NULL,
    processed BIGINT NOT NULL,
    total BIGINT NOT NULL,
    counts TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    claimed_by TEXT,
    claimed_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX bulk_jobs_due_idx ON bulk_jobs (status, claimed_until);

-- Registration events from supplier systems, kept by their id so a repeat changes nothing.
CREATE TABLE supplier_events (
    event_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    patient_id TEXT,
    outcome TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);

-- Scheduled runs (the daily transitions): one instance claims each day's run.
CREATE TABLE scheduled_runs (
    name TEXT NOT NULL,
    day DATE NOT NULL,
    claimed_by TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    report TEXT,
    PRIMARY KEY (name, day)
);
