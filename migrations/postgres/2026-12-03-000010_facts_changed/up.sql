-- Every write to a table the access decisions are read from notifies the schema's channel,
-- whoever makes it: each gateway instance listens, and forgets the reads it keeps when it hears.
-- One notification per statement; PostgreSQL folds a transaction's into one. The channel is
-- named from the schema (hashed, as channel names are short), so gateways on other schemas of
-- the same database do not hear each other.
CREATE FUNCTION gateway_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_facts_' || left(md5(TG_TABLE_SCHEMA), 16), '');
    RETURN NULL;
END
$$;

CREATE TRIGGER practices_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON practices
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER patients_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON patients
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER online_accounts_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON online_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER record_access_codes_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON record_access_codes
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER identity_bindings_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON identity_bindings
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER proxy_roles_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON proxy_roles
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
CREATE TRIGGER review_tasks_facts_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON review_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_facts_changed();
