DROP TABLE review_tasks;
DROP TABLE outbox_jobs;
DROP TABLE online_accounts;
