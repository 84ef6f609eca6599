//! Pure rules and validated types. Nothing here knows about HTTP, databases or clocks.

mod identifiers;
mod patient;
mod practice;

pub use identifiers::{IdentifierError, NhsNumber, OdsCode, PatientIdentifier, PatientIdentifierSystem};
pub use patient::{Gender, PatientDetails, PatientDetailsError};
pub use practice::{AccessModel, OnlineServicesSettings, Supplier};
mod records;
pub use records::{PatientRecord, PracticeRecord};
mod access;
pub use access::{AccessSettings, RecordAccessLevel, Services};
pub mod registration;
pub use registration::{AccountStatus, Attestation, IdentityVerification, VerificationMethod};
pub mod provisioning;
pub use provisioning::{JobKind, JobStatus};
