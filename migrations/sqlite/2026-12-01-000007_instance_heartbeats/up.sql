-- Which instance is carrying out a claimed request, and when each instance last said it is
-- alive: a claim whose instance has gone quiet is abandoned and can be retried at once.
ALTER TABLE idempotency_records ADD COLUMN owner TEXT;
CREATE TABLE instance_heartbeats (
    instance TEXT PRIMARY KEY,
    beat_at TIMESTAMP NOT NULL
);
