DROP TABLE audit_events;
DROP TABLE linkage_attempts;
DROP TABLE identity_bindings;
