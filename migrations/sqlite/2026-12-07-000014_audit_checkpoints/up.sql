-- Where each chain was last found whole, signed: `$verify` goes on from here instead of from
-- the chain's first event, so its cost follows what was written since.
CREATE TABLE audit_checkpoints (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    verified_at TIMESTAMP NOT NULL,
    signature TEXT NOT NULL
);
