-- What the patient's clinical system was last told a proxy link gives: the role's grants as
-- they are in effect (capped by the patient's own access). When the patient's access in effect
-- changes, every link whose effect differs from this is sent again.
ALTER TABLE proxy_roles ADD COLUMN sent_access TEXT;

-- Access requests are limited per person over a day.
CREATE INDEX access_requests_submitter_idx ON access_requests (submitted_by, created_at);

-- A patient's provisioning jobs run in the order they were made: the claim looks for an
-- earlier unfinished job of the same patient.
DROP INDEX outbox_jobs_patient_idx;
CREATE INDEX outbox_jobs_patient_idx ON outbox_jobs (patient_id, created_at);
