//! Pure rules and validated types. Nothing here knows about HTTP, databases or clocks.

mod access;
pub mod account;
mod assurance;
pub mod audit;
pub mod clinical;
pub mod entitlements;
mod identifiers;
pub mod identity;
pub mod ids;
mod patient;
pub mod policy;
mod practice;
pub mod provisioning;
pub mod proxy;
pub mod record_access;
mod records;
pub mod registration;
pub mod review;
pub mod text;
pub mod transactional;

pub use access::{AccessSettings, PatientAccess, RecordAccessLevel, ServiceLevel, Services};
pub use account::OnlineAccount;
pub use assurance::{AssurancePolicy, ProofingLevel, vot_is_well_formed, vot_level};
pub use identifiers::{IdentifierError, NhsNumber, OdsCode, PatientIdentifier, PatientIdentifierSystem};
pub use patient::{Gender, NewPatient, PatientDetails, PatientDetailsError, is_plausible_email};
pub use practice::{
    AccessModel, OnlineServicesSettings, PracticeAddress, PracticeChanges, PracticeContactError, PracticeRef, Supplier,
    Telephone,
};
pub use provisioning::{JobKind, JobStatus, JobSubject};
pub use records::{PatientRecord, PracticeRecord};
pub use registration::{AccountStatus, Attestation, IdentityVerification, VerificationMethod};
