-- Nothing to change: the PostgreSQL tree lets the triggers leave the notification of the
-- gateway's own writes to the gateway. SQLite has neither; this keeps the two trees' versions in
-- step.
SELECT 1;
