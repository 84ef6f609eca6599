DROP TABLE idempotency_records;
DROP TABLE patients;
DROP TABLE practices;
