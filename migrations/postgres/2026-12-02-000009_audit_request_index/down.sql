DROP INDEX audit_events_request_idx;
