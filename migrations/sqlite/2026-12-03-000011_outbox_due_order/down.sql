DROP INDEX outbox_jobs_due_idx;
CREATE INDEX outbox_jobs_due_idx ON outbox_jobs (status, next_attempt_at);
