-- Which practice patient record an identity-provider subject is.
CREATE TABLE identity_bindings (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    nhs_number TEXT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    practice_id TEXT NOT NULL REFERENCES practices (id),
    proofing_level TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identity_bindings_patient_idx ON identity_bindings (patient_id);

-- Failed linkage verifications per (practice, Account ID), for lockout. Kept for account ids that
-- do not exist too, so the lockout cannot be used to find out which do.
CREATE TABLE linkage_attempts (
    ods_code TEXT NOT NULL,
    account_id TEXT NOT NULL,
    failures INTEGER NOT NULL,
    window_started_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (ods_code, account_id)
);

-- Append-only audit trail. Each gateway instance writes its own hash chain (chain, seq), so
-- instances never contend for one chain head.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    patient_id TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    assurance TEXT,
    reason TEXT,
    request_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    CONSTRAINT audit_events_chain_seq_unique UNIQUE (chain, seq)
);
CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, recorded_at);
