-- AuditEvent searches by request id (the id an error tells the caller to quote) find their
-- events by index rather than by reading the whole trail.
CREATE INDEX audit_events_request_idx ON audit_events (request_id) WHERE request_id IS NOT NULL;
