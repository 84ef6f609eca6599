DROP TABLE audit_export_files;
DROP TABLE audit_exports;
