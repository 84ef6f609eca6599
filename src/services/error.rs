//! What can go wrong in a use case. Only `http/` turns these into responses.

use crate::db::DbError;
use crate::domain::policy::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The access-decision engine refused. `resource` is what the caller asked for.
    #[error("refused ({})", refusal.code())]
    Refused {
        refusal: Refusal,
        resource: &'static str,
        detail: String,
    },
    #[error("{message}")]
    NotFound { resource: &'static str, message: String },
    /// The request is understood and allowed, but cannot be done as asked.
    #[error("{message}")]
    Rejected {
        reason: Reason,
        message: String,
        /// The parameter or element at fault (a dot-separated parameter path or a FHIRPath).
        field: Option<String>,
    },
    /// A proxy request that cannot be carried out, in the VRS vocabulary.
    #[error("proxy request refused ({})", .0.code())]
    Proxy(crate::domain::proxy::Problem),
    /// The decision could not be put on record in time: nothing was done.
    #[error("the audit trail is not writing")]
    AuditUnavailable,
    /// A dependency (the database) is unavailable; the cause is logged, never shown.
    #[error("a dependency is unavailable")]
    Unavailable,
    /// The patient's clinical system failed or gave an answer the gateway cannot use (502).
    #[error("the clinical system failed ({0})")]
    Supplier(&'static str),
    /// The patient's clinical system did not answer in time (504).
    #[error("the clinical system did not answer in time")]
    SupplierTimedOut,
    /// Something that should not happen; the cause is logged, never shown.
    #[error("internal error")]
    Internal,
}

/// Why an allowed request could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidRequest,
    /// A resource in the body that breaks a rule of its own (an order naming nothing).
    InvalidResource,
    InvalidSearch,
    InvalidIdentifier,
    VersionConflict,
    PreconditionRequired,
    /// `If-Match` names a version that is no longer the current one.
    PreconditionFailed,
    MultipleMatches,
    Duplicate,
    UnknownPractice,
    BusinessRule,
    RegistrationCondition,
    PracticeNotEnabled,
    AccountExists,
    AccountState,
    AccountDisabled,
    LinkageKeyExpired,
    LinkageDetailsInvalid,
    LinkageLocked {
        retry_after_seconds: u64,
    },
    /// The caller already holds as much of this as they may; some of it goes in this long.
    TooMany {
        retry_after_seconds: u64,
    },
    PatientNotRegistered,
    IdentityMismatch,
    /// The patient has died: nothing more is switched on or changed for them.
    PatientDeceased,
    /// The slot does not exist or is no longer free.
    SlotUnavailable,
    /// The practice's rules no longer let the appointment be cancelled online.
    CancellationNotAllowed,
    /// The practice asks for a reason when booking.
    ReasonRequired,
    /// Not a current repeat the patient may request online.
    NotRequestable,
}

impl Error {
    pub fn rejected(reason: Reason, message: impl Into<String>) -> Self {
        Self::Rejected {
            reason,
            message: message.into(),
            field: None,
        }
    }

    /// Names the parameter or element at fault.
    pub fn at(self, at: impl Into<String>) -> Self {
        match self {
            Self::Rejected { reason, message, .. } => Self::Rejected {
                reason,
                message,
                field: Some(at.into()),
            },
            other => other,
        }
    }

    /// A supplier failure on a call made on a patient's request: 504 when it did not answer in
    /// time, else 502 with the normalised code. The supplier's own words go to the log (scrubbed),
    /// never to the caller.
    pub fn from_supplier(e: &crate::suppliers::SupplierError) -> Self {
        tracing::warn!(error = %e.summary(), "the clinical system could not answer");
        match e {
            crate::suppliers::SupplierError::TimedOut => Self::SupplierTimedOut,
            other => Self::Supplier(other.code()),
        }
    }

    pub fn not_found(resource: &'static str) -> Self {
        Self::NotFound {
            resource,
            message: format!("{resource} not found"),
        }
    }

    /// FHIR: a stale `If-Match` is 412.
    pub fn stale_if_match() -> Self {
        Self::rejected(
            Reason::PreconditionFailed,
            "the resource has changed since the version in If-Match; read it again",
        )
    }

    pub fn version_conflict() -> Self {
        Self::rejected(
            Reason::VersionConflict,
            "the resource has changed since the version you sent; read it again and retry",
        )
    }

    /// A failure whose cause must not reach the caller. The cause is logged with the request.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => {
                // The outage itself is logged by the database watcher, once per change of state.
                tracing::debug!(error = %cause, "database unavailable");
                Self::Unavailable
            }
            DbError::UniqueViolation => Self::rejected(Reason::Duplicate, "the resource already exists"),
            DbError::Query(cause) => Self::internal(cause),
        }
    }
}

impl From<crate::domain::account::StateError> for Error {
    fn from(e: crate::domain::account::StateError) -> Self {
        Self::rejected(Reason::AccountState, e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::domain::proxy::Problem> for Error {
    fn from(p: crate::domain::proxy::Problem) -> Self {
        Self::Proxy(p)
    }
}
