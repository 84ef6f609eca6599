-- Nothing to create: the PostgreSQL tree adds triggers that notify the gateway of changes to
-- the tables decisions are read from. SQLite has no notifications, and the gateway keeps no
-- reads between requests on it; this keeps the two trees' versions in step.
SELECT 1;
