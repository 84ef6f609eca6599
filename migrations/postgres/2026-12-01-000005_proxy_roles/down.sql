DROP INDEX outbox_jobs_role_idx;
DELETE FROM outbox_jobs WHERE account_id IS NULL;
ALTER TABLE outbox_jobs DROP COLUMN role_id;
ALTER TABLE outbox_jobs ALTER COLUMN account_id SET NOT NULL;
DROP TABLE proxy_reviews;
DROP TABLE access_requests;
DROP TABLE proxy_roles;
