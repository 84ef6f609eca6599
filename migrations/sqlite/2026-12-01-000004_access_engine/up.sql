-- What each audit event's decision was about and which rule decided it.
ALTER TABLE audit_events ADD COLUMN practice TEXT;
ALTER TABLE audit_events ADD COLUMN rule TEXT;
ALTER TABLE audit_events ADD COLUMN code TEXT;
CREATE INDEX audit_events_recorded_idx ON audit_events (recorded_at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, recorded_at);
CREATE INDEX audit_events_practice_idx ON audit_events (practice, recorded_at);

-- One row per hash chain (one per gateway instance start). A chain is anchored to the head of
-- the chain started before it, and its head is kept here, each with a MAC under a key the
-- database does not hold: a deleted or truncated chain is detected, not only an edited event.
CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    started_at TIMESTAMP NOT NULL,
    anchor_chain TEXT,
    anchor_seq BIGINT,
    anchor_hash TEXT,
    anchor_mac TEXT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    head_mac TEXT NOT NULL
);

-- The facts last seen for each caller, so that $explain-access can replay a decision for a
-- caller named by its audit-trail key.
CREATE TABLE actor_snapshots (
    caller_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    facts TEXT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL
);
