-- The trail partitioned by month (PostgreSQL only; SQLite keeps one table), so a month of it is
-- a table of its own: old months can be detached or dropped whole once archived, and recent
-- reads and checks touch recent partitions. The gateway creates each month's partition ahead
-- (housekeeping); an event outside every partition lands in the default one rather than fail.
--
-- A unique constraint on a partitioned table must include the partition key, so the primary
-- key and (chain, seq) include recorded_at: (chain, seq) alone is no longer enforced by the
-- database. A chain is appended to by one writer only, which reconciles with the chain's stored
-- head before it writes again after a failure.
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_unpartitioned_pkey;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT audit_events_chain_seq_unique TO audit_events_unpartitioned_chain_seq_unique;
DROP INDEX audit_events_patient_idx;
DROP INDEX audit_events_recorded_idx;
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_practice_idx;
DROP INDEX audit_events_request_idx;

CREATE TABLE audit_events (
    id TEXT NOT NULL,
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
    CONSTRAINT audit_events_pkey PRIMARY KEY (id, recorded_at),
    CONSTRAINT audit_events_chain_seq_unique UNIQUE (chain, seq, recorded_at)
) PARTITION BY RANGE (recorded_at);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- One partition a month from the oldest event to two months ahead.
DO $$
DECLARE
    month date;
    stop date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months')::date;
BEGIN
    SELECT date_trunc('month', COALESCE(min(recorded_at), now() AT TIME ZONE 'UTC'))::date
        INTO month FROM audit_events_unpartitioned;
    WHILE month < stop LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
            'audit_events_' || to_char(month, 'YYYY_MM'), month, (month + interval '1 month')::date
        );
        month := (month + interval '1 month')::date;
    END LOOP;
END $$;

INSERT INTO audit_events (id, chain, seq, recorded_at, actor_kind, actor, patient_id, action, outcome,
    assurance, reason, request_id, prev_hash, hash, practice, rule, code)
SELECT id, chain, seq, recorded_at, actor_kind, actor, patient_id, action, outcome,
    assurance, reason, request_id, prev_hash, hash, practice, rule, code
FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;

CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, recorded_at);
CREATE INDEX audit_events_recorded_idx ON audit_events (recorded_at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, recorded_at);
CREATE INDEX audit_events_practice_idx ON audit_events (practice, recorded_at);
CREATE INDEX audit_events_request_idx ON audit_events (request_id) WHERE request_id IS NOT NULL;
