//! GP clinical system suppliers: one canonical model, one trait, two real HTTP adapters with
//! their own wire formats (EMIS-like JSON, TPP-like XML), and simulators of both.

pub mod emis;
pub mod emis_desk;
pub mod emis_record;
mod http;
#[allow(
    clippy::expect_used,
    reason = "the simulators stand in for suppliers in development and tests"
)]
pub mod simulator;
pub mod tpp;
pub mod tpp_desk;
pub mod tpp_record;
pub mod wire_time;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::domain::clinical::ClinicalRecord;
use crate::domain::transactional::{
    Appointment, Booking, Cancellation, DayRange, Order, PrescriptionRequest, RepeatMedication, Slot,
};
use crate::domain::{AccessSettings, Supplier};

/// What the gateway asks a supplier to create: an online account for a registered patient.
#[derive(Debug, Clone)]
pub struct CreateAccount {
    /// NHS number (or CHI / H&C number) as 10 digits.
    pub patient_identifier: String,
    pub ods_code: String,
    pub email: Option<String>,
    pub family_name: String,
    pub birth_date: NaiveDate,
    pub access: AccessSettings,
}

/// What the gateway asks a supplier to do for a proxy role: link the proxy to the patient's
/// record with what the role grants.
#[derive(Debug, Clone)]
pub struct LinkProxy {
    pub patient_identifier: String,
    pub proxy_nhs_number: String,
    pub ods_code: String,
    /// The relationship code (PRN, Personal, ...).
    pub relationship: String,
    pub access: AccessSettings,
    pub end_date: Option<NaiveDate>,
}

/// Credentials the supplier issued for an account. `linkage_key` is a secret.
#[derive(Clone)]
pub struct AccountCredentials {
    /// The supplier's own handle for later calls (EMIS-like AccessIdentityGuid, TPP-like account id).
    pub supplier_ref: String,
    /// The Account ID printed on the registration letter.
    pub account_id: String,
    pub linkage_key: String,
}

impl AccountCredentials {
    /// Credentials as a supplier's reply gives them, each checked before it is stored, logged
    /// or printed on a letter.
    pub fn from_reply(supplier_ref: String, account_id: String, linkage_key: String) -> Result<Self, SupplierError> {
        Ok(Self {
            supplier_ref: issued(supplier_ref, "reference")?,
            account_id: issued(account_id, "Account ID")?,
            linkage_key: issued(linkage_key, "linkage key")?,
        })
    }
}

/// An identifier or key a supplier issued: 1 to 128 visible ASCII characters. Anything else in
/// a reply is not an answer the gateway can keep, and is refused like an unreadable reply.
pub fn issued(value: String, what: &str) -> Result<String, SupplierError> {
    if (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(value)
    } else {
        Err(SupplierError::Rejected {
            code: "INVALID_REPLY".to_owned(),
            message: format!("the supplier's reply carries a {what} that is not 1 to 128 visible characters"),
        })
    }
}

impl std::fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountCredentials")
            .field("supplier_ref", &self.supplier_ref)
            .field("account_id", &self.account_id)
            .field("linkage_key", &"<redacted>")
            .finish()
    }
}

/// Supplier failures, normalised across suppliers. Every supplier error code maps to one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupplierError {
    #[error("online services are not enabled at the practice")]
    PracticeNotEnabled,
    #[error("the patient is not registered at the practice")]
    PatientNotFound,
    #[error("the patient's record is archived")]
    Archived,
    #[error("the patient is under the supplier's minimum age for an online account")]
    UnderMinimumAge,
    #[error("the patient already has an online account")]
    Conflict,
    /// The supplier already holds this proxy link.
    #[error("the proxy is already linked to the patient")]
    ProxyExists,
    /// The supplier will not link this proxy (for example the proxy is the patient).
    #[error("the supplier refused the proxy link")]
    ProxyRefused,
    #[error("the details do not match the supplier's record")]
    InvalidDetails,
    /// The slot was booked by someone else, or is no longer offered.
    #[error("the slot is not free")]
    SlotUnavailable,
    /// No slot, appointment or repeat of this patient has the id given.
    #[error("the supplier holds no such item for the patient")]
    ItemNotFound,
    /// The practice's rules no longer let this appointment be cancelled online.
    #[error("the appointment can no longer be cancelled online")]
    TooLateToCancel,
    /// The practice asks for a reason when booking.
    #[error("the practice asks for a reason when booking")]
    ReasonRequired,
    /// The medication is not a repeat the patient may request online now.
    #[error("the medication cannot be requested online")]
    NotRequestable,
    /// Down, 5xx, throttled: worth retrying.
    #[error("the supplier is unavailable: {0}")]
    Unavailable(String),
    /// No answer within the time allowed: worth retrying.
    #[error("the supplier did not answer in time")]
    TimedOut,
    /// A refusal the gateway cannot classify further; not retried.
    #[error("the supplier refused the request ({code}): {message}")]
    Rejected { code: String, message: String },
}

impl SupplierError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::TimedOut)
    }

    /// The gateway's own description of the failure, for Task output and the account's status
    /// reason: never the supplier's or a library's text.
    pub fn description(&self) -> &'static str {
        match self {
            Self::PracticeNotEnabled => "online services are not enabled at the practice",
            Self::PatientNotFound => "the patient is not registered at the practice",
            Self::Archived => "the patient's record is archived",
            Self::UnderMinimumAge => "the patient is under the supplier's minimum age for an online account",
            Self::Conflict => "the patient already has an online account at the supplier",
            Self::ProxyExists => "the supplier already links this proxy to the patient",
            Self::ProxyRefused => "the supplier refused to link this proxy",
            Self::InvalidDetails => "the details do not match the supplier's record",
            Self::SlotUnavailable => "the slot is not free",
            Self::ItemNotFound => "the supplier holds no such item for the patient",
            Self::TooLateToCancel => "the appointment can no longer be cancelled online",
            Self::ReasonRequired => "the practice asks for a reason when booking",
            Self::NotRequestable => "the medication cannot be requested online",
            Self::Unavailable(_) => "the supplier is unavailable",
            Self::TimedOut => "the supplier did not answer in time",
            Self::Rejected { .. } => "the supplier refused the request",
        }
    }

    /// Code and description, with the supplier's own error key where it is a plain code.
    pub fn summary(&self) -> String {
        match self {
            Self::Rejected { code, .. }
                if !code.is_empty()
                    && code.len() <= 16
                    && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                format!("{} ({code}): {}", self.code(), self.description())
            }
            _ => format!("{}: {}", self.code(), self.description()),
        }
    }

    /// A stable code for Task output and OperationOutcomes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PracticeNotEnabled => "SUPPLIER_PRACTICE_NOT_ENABLED",
            Self::PatientNotFound => "SUPPLIER_PATIENT_NOT_FOUND",
            Self::Archived => "SUPPLIER_PATIENT_ARCHIVED",
            Self::UnderMinimumAge => "SUPPLIER_UNDER_MINIMUM_AGE",
            Self::Conflict => "SUPPLIER_CONFLICT",
            Self::ProxyExists => "SUPPLIER_PROXY_EXISTS",
            Self::ProxyRefused => "SUPPLIER_PROXY_REFUSED",
            Self::InvalidDetails => "SUPPLIER_INVALID_DETAILS",
            Self::SlotUnavailable => "SUPPLIER_SLOT_UNAVAILABLE",
            Self::ItemNotFound => "SUPPLIER_ITEM_NOT_FOUND",
            Self::TooLateToCancel => "SUPPLIER_TOO_LATE_TO_CANCEL",
            Self::ReasonRequired => "SUPPLIER_REASON_REQUIRED",
            Self::NotRequestable => "SUPPLIER_NOT_REQUESTABLE",
            Self::Unavailable(_) => "SUPPLIER_UNAVAILABLE",
            Self::TimedOut => "SUPPLIER_TIMEOUT",
            Self::Rejected { .. } => "SUPPLIER_REJECTED",
        }
    }
}

/// A synchronous read made on a patient's request: its own time limit and the largest answer
/// the gateway takes.
#[derive(Debug, Clone, Copy)]
pub struct Reads {
    pub timeout: std::time::Duration,
    pub max_bytes: usize,
}

/// Every call carries an idempotency key, sent as `X-Request-ID` and reused on every retry of
/// the same job, so a supplier that saw the first attempt does not act twice.
#[async_trait::async_trait]
pub trait SupplierAdapter: Send + Sync {
    fn supplier(&self) -> Supplier;

    async fn create_account(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
    ) -> Result<AccountCredentials, SupplierError>;

    /// Creates the account of a patient who registered themself with NHS login: no letter and
    /// no linkage key. Returns the supplier's handle for the account.
    async fn register_nhs_login(&self, idempotency_key: &str, request: &CreateAccount)
    -> Result<String, SupplierError>;

    async fn set_access(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError>;

    /// Issues a new linkage key; the old one stops working.
    async fn reset_linkage_key(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
    ) -> Result<AccountCredentials, SupplierError>;

    /// Disables (with a reason) or re-enables an account.
    async fn set_account_enabled(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), SupplierError>;

    /// Links a proxy to a patient's record; returns the supplier's handle for the link.
    async fn link_proxy(&self, idempotency_key: &str, request: &LinkProxy) -> Result<String, SupplierError>;

    /// Changes what a linked proxy may do.
    async fn set_proxy_access(
        &self,
        idempotency_key: &str,
        link_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError>;

    /// Ends a proxy's access.
    async fn revoke_proxy(&self, idempotency_key: &str, link_ref: &str, reason: &str) -> Result<(), SupplierError>;

    /// The patient's whole record at their practice, every entry with the flags that decide
    /// whether it may be shown online, and the practice's restricted areas: the gateway filters
    /// it. A read: `request_id` only traces it.
    async fn record(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<ClinicalRecord, SupplierError>;

    /// The free slots at the practice in the days given.
    async fn slots(
        &self,
        request_id: &str,
        ods_code: &str,
        range: DayRange,
        reads: Reads,
    ) -> Result<Vec<Slot>, SupplierError>;

    /// The patient's appointments at the practice, booked and cancelled, past and upcoming.
    async fn appointments(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<Appointment>, SupplierError>;

    /// Books a free slot. The key makes a repeat of the same booking answer the first.
    async fn book(&self, idempotency_key: &str, booking: &Booking, reads: Reads) -> Result<Appointment, SupplierError>;

    /// Cancels one of the patient's appointments, within the practice's rules.
    async fn cancel(
        &self,
        idempotency_key: &str,
        cancellation: &Cancellation,
        reads: Reads,
    ) -> Result<Appointment, SupplierError>;

    /// The patient's repeat medication templates, each with whether it may be requested.
    async fn repeats(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<RepeatMedication>, SupplierError>;

    /// The patient's repeat requests and their status.
    async fn prescription_requests(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<PrescriptionRequest>, SupplierError>;

    /// Requests one or more repeats. The key makes a repeat of the same request answer the first.
    async fn request_repeats(
        &self,
        idempotency_key: &str,
        order: &Order,
        reads: Reads,
    ) -> Result<PrescriptionRequest, SupplierError>;
}

/// The adapters by supplier, built once at start.
#[derive(Clone, Default)]
pub struct SupplierRegistry {
    adapters: HashMap<Supplier, Arc<dyn SupplierAdapter>>,
}

impl SupplierRegistry {
    pub fn with(mut self, adapter: Arc<dyn SupplierAdapter>) -> Self {
        self.adapters.insert(adapter.supplier(), adapter);
        self
    }

    pub fn get(&self, supplier: Supplier) -> Option<Arc<dyn SupplierAdapter>> {
        self.adapters.get(&supplier).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_a_supplier_issues_are_checked_before_they_are_kept() {
        assert_eq!(issued("ABC-123_x".into(), "reference").unwrap(), "ABC-123_x");
        for bad in ["", "two words", "new\nline", "nul\u{0}", "caf\u{e9}"] {
            assert!(issued(bad.into(), "reference").is_err(), "{bad:?}");
        }
        assert!(issued("a".repeat(129), "reference").is_err());
        assert!(AccountCredentials::from_reply("g".into(), "A1".into(), "K 1".into()).is_err());
    }
}
