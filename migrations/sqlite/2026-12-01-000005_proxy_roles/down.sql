CREATE TABLE outbox_jobs_old (
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
INSERT INTO outbox_jobs_old SELECT id, kind, account_id, patient_id, supplier, payload, idempotency_key, status,
    attempts, max_attempts, next_attempt_at, claimed_by, claimed_until, last_error, created_at, updated_at
    FROM outbox_jobs WHERE account_id IS NOT NULL;
DROP TABLE outbox_jobs;
ALTER TABLE outbox_jobs_old RENAME TO outbox_jobs;
CREATE INDEX outbox_jobs_due_idx ON outbox_jobs (status, next_attempt_at);
CREATE INDEX outbox_jobs_account_idx ON outbox_jobs (account_id, created_at);
CREATE INDEX outbox_jobs_patient_idx ON outbox_jobs (patient_id);
DROP TABLE proxy_reviews;
DROP TABLE access_requests;
DROP TABLE proxy_roles;
