//! GP Online Services Gateway: a FHIR R4-style gateway for GP online services.

// Nothing a caller sends may panic a worker: outside tests there is no unwrap, expect or
// string slicing by byte index; the few expects on values the code itself builds say why.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::string_slice))]

pub mod audit;
pub mod cli;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
#[allow(clippy::expect_used, reason = "the seed data is constant and checked by its tests")]
pub mod dev;
pub mod domain;
pub mod fhir;
pub mod http;
pub mod identity;
pub mod letter;
#[allow(clippy::expect_used, reason = "metric definitions are constant; built once at start")]
pub mod metrics;
pub mod ratelimit;
pub mod services;
pub mod startup;
pub mod state;
pub mod suppliers;
pub mod telemetry;

pub use startup::Application;
