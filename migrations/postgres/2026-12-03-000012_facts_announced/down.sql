CREATE OR REPLACE FUNCTION gateway_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_facts_' || left(md5(TG_TABLE_SCHEMA), 16), '');
    RETURN NULL;
END
$$;
