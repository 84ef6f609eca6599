//! The one integration test binary. Each test spawns its own gateway on port 0 with its own
//! database: a fresh SQLite file, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set.

mod access;
mod architecture;
mod audit_export;
mod audit_trail;
mod auth;
mod conformance;
mod console;
mod entitlements;
mod helpers;
mod identity;
mod kept_reads;
mod migrations;
mod openapi;
mod operations;
mod organizations;
mod outage;
mod patients;
mod practice_rules;
mod proxy;
mod record;
mod registration;
mod request_ids;
mod suppliers;
mod swagger;
mod transactional;
