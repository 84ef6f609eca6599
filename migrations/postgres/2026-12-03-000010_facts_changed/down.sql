DROP TRIGGER review_tasks_facts_changed ON review_tasks;
DROP TRIGGER proxy_roles_facts_changed ON proxy_roles;
DROP TRIGGER identity_bindings_facts_changed ON identity_bindings;
DROP TRIGGER record_access_codes_facts_changed ON record_access_codes;
DROP TRIGGER online_accounts_facts_changed ON online_accounts;
DROP TRIGGER patients_facts_changed ON patients;
DROP TRIGGER practices_facts_changed ON practices;
DROP FUNCTION gateway_facts_changed();
