ALTER TABLE audit_events RENAME TO audit_events_partitioned;
ALTER TABLE audit_events_partitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_partitioned_pkey;
ALTER TABLE audit_events_partitioned RENAME CONSTRAINT audit_events_chain_seq_unique TO audit_events_partitioned_chain_seq_unique;
DROP INDEX audit_events_patient_idx;
DROP INDEX audit_events_recorded_idx;
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_practice_idx;
DROP INDEX audit_events_request_idx;

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
    practice TEXT,
    rule TEXT,
    code TEXT,
    CONSTRAINT audit_events_chain_seq_unique UNIQUE (chain, seq)
);
INSERT INTO audit_events (id, chain, seq, recorded_at, actor_kind, actor, patient_id, action, outcome,
    assurance, reason, request_id, prev_hash, hash, practice, rule, code)
SELECT id, chain, seq, recorded_at, actor_kind, actor, patient_id, action, outcome,
    assurance, reason, request_id, prev_hash, hash, practice, rule, code
FROM audit_events_partitioned;
DROP TABLE audit_events_partitioned;

CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, recorded_at);
CREATE INDEX audit_events_recorded_idx ON audit_events (recorded_at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, recorded_at);
CREATE INDEX audit_events_practice_idx ON audit_events (practice, recorded_at);
CREATE INDEX audit_events_request_idx ON audit_events (request_id) WHERE request_id IS NOT NULL;
