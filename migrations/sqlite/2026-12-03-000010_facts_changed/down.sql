-- Nothing to drop (see up.sql).
SELECT 1;
