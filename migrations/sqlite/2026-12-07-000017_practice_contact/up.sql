-- A practice's postal address (JSON: lines, city, postal code) and telephone number, printed on
-- registration letters and shown on Organization. Practices made before this have neither until
-- their staff add them.
ALTER TABLE practices ADD COLUMN address TEXT;
ALTER TABLE practices ADD COLUMN telephone TEXT;
