-- A gateway instance announces its own writes to these tables from a connection of its own,
-- after they commit, and its connections carry gateway.facts_announced = on while it does: the
-- trigger then leaves the notification to it. PostgreSQL lets only one notifying transaction
-- commit at a time across the database, holding the lock through the commit's flush, so a
-- notification in every write transaction made the gateway's writes queue behind each other.
-- Every other writer (an administrator's statement, an instance that cannot announce just now)
-- is still notified here.
CREATE OR REPLACE FUNCTION gateway_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('gateway.facts_announced', true) IS DISTINCT FROM 'on' THEN
        PERFORM pg_notify('gateway_facts_' || left(md5(TG_TABLE_SCHEMA), 16), '');
    END IF;
    RETURN NULL;
END
$$;
