-- An online account belongs to a patient at one practice: a patient who moves can have one at
-- the new practice while the old one is kept, ended, for the record.
ALTER TABLE online_accounts DROP CONSTRAINT online_accounts_patient_id_key;
CREATE UNIQUE INDEX online_accounts_patient_practice_idx ON online_accounts (patient_id, practice_id);
-- A change the supplier has not confirmed yet; `access` is what it has confirmed.
ALTER TABLE online_accounts ADD COLUMN pending_access TEXT;
-- The access the supplier was last told to give (the practice's model applied).
ALTER TABLE online_accounts ADD COLUMN sent_access TEXT;
-- `practice` (registered by staff) or `nhs-login` (the patient registered themself).
ALTER TABLE online_accounts ADD COLUMN source TEXT NOT NULL DEFAULT 'practice';

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
