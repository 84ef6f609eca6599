-- Nothing to change back (see up.sql).
SELECT 1;
