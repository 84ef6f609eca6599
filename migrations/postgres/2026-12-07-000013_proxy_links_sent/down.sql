DROP INDEX outbox_jobs_patient_idx;
CREATE INDEX outbox_jobs_patient_idx ON outbox_jobs (patient_id);
DROP INDEX access_requests_submitter_idx;
ALTER TABLE proxy_roles DROP COLUMN sent_access;
