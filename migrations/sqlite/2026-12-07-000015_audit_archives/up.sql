-- Ranges of a chain written to an archive and read back whole. Only these may be dropped;
-- once dropped, the last one's hash is where the retained rest of the chain starts.
CREATE TABLE audit_archives (
    chain TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    anchor TEXT NOT NULL,
    last_hash TEXT NOT NULL,
    events BIGINT NOT NULL,
    location TEXT NOT NULL,
    archived_at TIMESTAMP NOT NULL,
    dropped_at TIMESTAMP,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain, first_seq)
);
