use chrono::{DateTime, Utc};

use super::{OdsCode, OnlineServicesSettings, PatientDetails, Supplier};

/// A stored practice with its version for optimistic concurrency.
#[derive(Debug, Clone)]
pub struct PracticeRecord {
    pub id: String,
    pub ods_code: OdsCode,
    pub name: String,
    pub supplier: Supplier,
    pub settings: OnlineServicesSettings,
    pub address: Option<super::PracticeAddress>,
    pub telephone: Option<super::Telephone>,
    pub version: i64,
    pub last_updated: DateTime<Utc>,
}

/// A stored practice patient record.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub id: String,
    pub practice_id: String,
    pub practice_ods: OdsCode,
    pub details: PatientDetails,
    pub version: i64,
    pub last_updated: DateTime<Utc>,
    /// When the patient died, as their registration says.
    pub deceased_on: Option<chrono::NaiveDate>,
}
