DROP TABLE actor_snapshots;
DROP TABLE audit_chains;
DROP INDEX audit_events_practice_idx;
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_recorded_idx;
ALTER TABLE audit_events DROP COLUMN code;
ALTER TABLE audit_events DROP COLUMN rule;
ALTER TABLE audit_events DROP COLUMN practice;
