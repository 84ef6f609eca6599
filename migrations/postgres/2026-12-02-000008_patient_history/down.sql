DROP TABLE patient_versions;
