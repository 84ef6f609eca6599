//! GP Online Services Gateway: a FHIR R4-style gateway for GP online services.

pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod dev;
pub mod domain;
pub mod fhir;
pub mod http;
pub mod identity;
pub mod letter;
pub mod metrics;
pub mod ratelimit;
pub mod services;
pub mod startup;
pub mod state;
pub mod suppliers;
pub mod telemetry;

pub use startup::Application;
