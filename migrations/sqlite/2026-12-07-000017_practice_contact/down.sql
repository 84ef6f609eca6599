ALTER TABLE practices DROP COLUMN telephone;
ALTER TABLE practices DROP COLUMN address;
