//! What goes into the outbox: each job kind's payload, snapshotted when the job is enqueued, and
//! how a job is built to go into the same transaction as the change that needs it. The outbox
//! workers (`provisioning`) run them; everything that changes what a supplier holds makes them.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::SupplierSettings;
use crate::db;
use crate::domain::provisioning::OutboxJob;
use crate::domain::{AccessSettings, JobKind, JobSubject, Supplier};

/// What each job kind carries. Snapshotted when the job is enqueued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobPayload {
    CreateAccount {
        patient_identifier: String,
        ods_code: String,
        email: Option<String>,
        family_name: String,
        birth_date: NaiveDate,
        access: AccessSettings,
        /// The patient registered themself with NHS login: no linkage key is issued.
        #[serde(default)]
        nhs_login: bool,
    },
    /// `access` is what the supplier is to give (the practice's model applied); `grant` the
    /// change staff asked for, confirmed when the supplier accepts it.
    SetAccess {
        access: AccessSettings,
        #[serde(default)]
        grant: Option<AccessSettings>,
    },
    ResetLinkageKey,
    SetAccountStatus {
        enabled: bool,
        reason: Option<String>,
    },
    LinkProxy {
        patient_identifier: String,
        proxy_nhs_number: String,
        ods_code: String,
        relationship: String,
        access: AccessSettings,
        end_date: Option<NaiveDate>,
    },
    SetProxyAccess {
        access: AccessSettings,
    },
    RevokeProxy {
        reason: String,
    },
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            Self::CreateAccount { .. } => JobKind::CreateAccount,
            Self::SetAccess { .. } => JobKind::SetAccess,
            Self::ResetLinkageKey => JobKind::ResetLinkageKey,
            Self::SetAccountStatus { .. } => JobKind::SetAccountStatus,
            Self::LinkProxy { .. } => JobKind::LinkProxy,
            Self::SetProxyAccess { .. } => JobKind::SetProxyAccess,
            Self::RevokeProxy { .. } => JobKind::RevokeProxy,
        }
    }
}

/// Builds a job for an account or a proxy role, to go into the same transaction as the change
/// that needs it.
pub fn job(
    settings: &SupplierSettings,
    subject: JobSubject<'_>,
    patient_id: &str,
    supplier: Supplier,
    payload: &JobPayload,
) -> OutboxJob {
    OutboxJob::new(
        payload.kind(),
        subject,
        patient_id,
        supplier.as_str(),
        serde_json::to_value(payload).unwrap_or_default(),
        i32::try_from(settings.max_attempts).unwrap_or(i32::MAX),
        db::now(),
    )
}
