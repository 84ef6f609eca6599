//! Use cases. Each function authorises through `access` before it touches data.

pub mod access;
pub mod accounts;
pub mod identity;
pub mod patients;
pub mod practices;
pub mod provisioning;
