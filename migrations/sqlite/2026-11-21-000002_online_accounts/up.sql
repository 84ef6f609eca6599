-- One online-services account per patient record, mirrored from the supplier.
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
    -- AES-256-GCM ciphertext of the linkage key; never the key itself.
    linkage_key_enc TEXT,
    linkage_key_issued_at TIMESTAMP,
    letter_printed_at TIMESTAMP,
    letter_expires_at TIMESTAMP,
    last_error TEXT,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX online_accounts_practice_idx ON online_accounts (practice_id);
CREATE INDEX online_accounts_email_idx ON online_accounts (email);

-- Transactional outbox: provisioning calls to suppliers, committed with the state change that
-- needs them and worked off by any gateway instance.
CREATE TABLE outbox_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES online_accounts (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    supplier TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_by TEXT,
    claimed_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX outbox_jobs_due_idx ON outbox_jobs (status, next_attempt_at);
CREATE INDEX outbox_jobs_account_idx ON outbox_jobs (account_id, created_at);
CREATE INDEX outbox_jobs_patient_idx ON outbox_jobs (patient_id);

-- Record reviews before historic record access is switched on.
CREATE TABLE review_tasks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES online_accounts (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    status TEXT NOT NULL,
    requested_access TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    completed_by TEXT,
    note TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX review_tasks_patient_idx ON review_tasks (patient_id);
