-- Workers claim due jobs in (next_attempt_at, created_at) order with a LIMIT. With created_at in
-- the index the scan yields that order itself and stops after the batch; without it, every due
-- job (the whole backlog, under load) was read, checked for earlier jobs of its subject, and
-- sorted on each claim.
DROP INDEX outbox_jobs_due_idx;
CREATE INDEX outbox_jobs_due_idx ON outbox_jobs (status, next_attempt_at, created_at);
