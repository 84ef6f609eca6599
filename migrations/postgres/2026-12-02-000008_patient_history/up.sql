-- Every superseded version of a patient record, kept so that `_history` lists each version and
-- vread answers for it. The current version stays in `patients`.
CREATE TABLE patient_versions (
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    practice_id TEXT NOT NULL REFERENCES practices (id),
    identifier_system TEXT NOT NULL,
    identifier_value TEXT NOT NULL,
    family TEXT NOT NULL,
    family_folded TEXT NOT NULL,
    given TEXT NOT NULL,
    birth_date DATE NOT NULL,
    gender TEXT NOT NULL,
    email TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deceased_on DATE,
    PRIMARY KEY (id, version)
);
