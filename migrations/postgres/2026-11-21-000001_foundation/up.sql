CREATE TABLE practices (
    id TEXT PRIMARY KEY,
    ods_code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    supplier TEXT NOT NULL,
    settings TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE patients (
    id TEXT PRIMARY KEY,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    identifier_system TEXT NOT NULL,
    identifier_value TEXT NOT NULL,
    family TEXT NOT NULL,
    family_folded TEXT NOT NULL,
    given TEXT NOT NULL,
    birth_date DATE NOT NULL,
    gender TEXT NOT NULL,
    email TEXT,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CONSTRAINT patients_identifier_unique UNIQUE (identifier_system, identifier_value)
);
CREATE INDEX patients_practice_idx ON patients (practice_id);
CREATE INDEX patients_family_idx ON patients (family_folded);
CREATE INDEX patients_birth_date_idx ON patients (birth_date);

-- Completed writes, kept so that a retried request with the same X-Request-ID gets the first
-- response back. status is NULL while the first request is still running.
CREATE TABLE idempotency_records (
    caller TEXT NOT NULL,
    request_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    response_headers TEXT,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX idempotency_records_created_idx ON idempotency_records (created_at);
