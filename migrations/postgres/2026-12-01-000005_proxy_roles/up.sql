-- Proxy roles (the VRS Consent): a person acting for a patient.
CREATE TABLE proxy_roles (
    id TEXT PRIMARY KEY,
    proxy_nhs_number TEXT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    patient_nhs_number TEXT NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    status TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason_text TEXT,
    legal_basis TEXT NOT NULL,
    relationships TEXT NOT NULL,
    grantor TEXT,
    date_time TIMESTAMP NOT NULL,
    period_start TIMESTAMP,
    period_end TIMESTAMP,
    grants TEXT NOT NULL,
    assessment TEXT NOT NULL,
    access_request_id TEXT,
    supplier_ref TEXT,
    last_used_at TIMESTAMP,
    reviewed_at TIMESTAMP,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX proxy_roles_proxy_idx ON proxy_roles (proxy_nhs_number);
CREATE INDEX proxy_roles_patient_idx ON proxy_roles (patient_id);
CREATE INDEX proxy_roles_patient_nhs_idx ON proxy_roles (patient_nhs_number);

-- Access requests (the VRS QuestionnaireResponse) as submitted.
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    proxy_nhs_number TEXT NOT NULL,
    patient_nhs_number TEXT NOT NULL,
    patient_id TEXT REFERENCES patients (id),
    role_id TEXT REFERENCES proxy_roles (id),
    body TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX access_requests_pair_idx ON access_requests (proxy_nhs_number, patient_nhs_number);

-- A practice's review of a proposed proxy role.
CREATE TABLE proxy_reviews (
    id TEXT PRIMARY KEY,
    role_id TEXT NOT NULL REFERENCES proxy_roles (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    status TEXT NOT NULL,
    completed_by TEXT,
    note TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX proxy_reviews_patient_idx ON proxy_reviews (patient_id);
CREATE INDEX proxy_reviews_role_idx ON proxy_reviews (role_id);

-- Provisioning jobs belong to an online account or to a proxy role.
ALTER TABLE outbox_jobs ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE outbox_jobs ADD COLUMN role_id TEXT REFERENCES proxy_roles (id);
CREATE INDEX outbox_jobs_role_idx ON outbox_jobs (role_id, created_at);
