DROP TABLE instance_heartbeats;
ALTER TABLE idempotency_records DROP COLUMN owner;
