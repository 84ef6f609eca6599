//! What identity providers send: registration letter details to check, and assertions that a
//! subject is a patient registered at a practice.

use chrono::NaiveDate;

use super::{NhsNumber, OdsCode, ProofingLevel};

/// The details from a registration letter, as an identity provider sends them to be checked.
#[derive(Debug, Clone)]
pub struct LinkageDetails {
    pub ods_code: OdsCode,
    pub account_id: String,
    pub linkage_key: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
}

/// An identity provider's assertion that a subject is a patient registered at a practice.
#[derive(Debug, Clone)]
pub struct IdentityAssertion {
    pub issuer: String,
    pub subject: String,
    pub nhs_number: NhsNumber,
    pub proofing_level: ProofingLevel,
    pub ods_code: OdsCode,
}
