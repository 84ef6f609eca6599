//! The one boundary error type. Every failure a caller can see becomes an `OperationOutcome`
//! with a stable code from the gateway's CodeSystem and a status decided by that code alone.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::domain::policy::Refusal;
use crate::fhir::{FhirError, OperationOutcome};
use crate::services::{Error, Reason};

/// Stable, greppable error codes. Adding one is a documented API change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidResource,
    InvalidSearchParameter,
    InvalidIdentifier,
    MissingAccessToken,
    InvalidAccessToken,
    AccessDenied,
    RoleNotPermitted,
    InsufficientScope,
    OutsideOwnPractice,
    InsufficientAssurance,
    NoActiveOnlineAccount,
    ProxyRoleNotActive,
    ServiceNotGranted,
    ResourceNotFound,
    MethodNotAllowed,
    NotAcceptable,
    VersionConflict,
    DuplicateResource,
    RequestInProgress,
    PreconditionRequired,
    PreconditionFailed,
    MultipleMatches,
    PayloadTooLarge,
    UnsupportedMediaType,
    RequestIdReused,
    UnknownPractice,
    BusinessRule,
    RegistrationConditionNotMet,
    PracticeNotEnabled,
    AccountExists,
    AccountState,
    LinkageKeyExpired,
    IdentityMismatch,
    LinkageDetailsInvalid,
    LinkageLocked,
    AccountDisabled,
    PatientNotRegistered,
    PatientDeceased,
    TooManyRequests,
    ServiceUnavailable,
    InternalError,
    InvalidParameter,
    SupplierFailed,
    SupplierTimeout,
    SlotUnavailable,
    CancellationNotAllowed,
    ReasonRequired,
    NotRequestable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 49] = [
        Self::InvalidRequest,
        Self::InvalidResource,
        Self::InvalidSearchParameter,
        Self::InvalidIdentifier,
        Self::MissingAccessToken,
        Self::InvalidAccessToken,
        Self::AccessDenied,
        Self::RoleNotPermitted,
        Self::InsufficientScope,
        Self::OutsideOwnPractice,
        Self::InsufficientAssurance,
        Self::NoActiveOnlineAccount,
        Self::ProxyRoleNotActive,
        Self::ServiceNotGranted,
        Self::ResourceNotFound,
        Self::MethodNotAllowed,
        Self::NotAcceptable,
        Self::VersionConflict,
        Self::DuplicateResource,
        Self::RequestInProgress,
        Self::PreconditionRequired,
        Self::PreconditionFailed,
        Self::MultipleMatches,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::RequestIdReused,
        Self::UnknownPractice,
        Self::BusinessRule,
        Self::RegistrationConditionNotMet,
        Self::PracticeNotEnabled,
        Self::AccountExists,
        Self::AccountState,
        Self::LinkageKeyExpired,
        Self::IdentityMismatch,
        Self::LinkageDetailsInvalid,
        Self::LinkageLocked,
        Self::AccountDisabled,
        Self::PatientNotRegistered,
        Self::PatientDeceased,
        Self::TooManyRequests,
        Self::ServiceUnavailable,
        Self::InternalError,
        Self::InvalidParameter,
        Self::SupplierFailed,
        Self::SupplierTimeout,
        Self::SlotUnavailable,
        Self::CancellationNotAllowed,
        Self::ReasonRequired,
        Self::NotRequestable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::InvalidResource => "INVALID_RESOURCE",
            Self::InvalidSearchParameter => "INVALID_SEARCH_PARAMETER",
            Self::InvalidIdentifier => "INVALID_IDENTIFIER",
            Self::MissingAccessToken => "MISSING_ACCESS_TOKEN",
            Self::InvalidAccessToken => "INVALID_ACCESS_TOKEN",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::RoleNotPermitted => "ROLE_NOT_PERMITTED",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::OutsideOwnPractice => "OUTSIDE_OWN_PRACTICE",
            Self::InsufficientAssurance => "INSUFFICIENT_IDENTITY_ASSURANCE",
            Self::NoActiveOnlineAccount => "NO_ACTIVE_ONLINE_ACCOUNT",
            Self::ProxyRoleNotActive => "PROXY_ROLE_NOT_ACTIVE",
            Self::ServiceNotGranted => "SERVICE_NOT_GRANTED",
            Self::ResourceNotFound => "RESOURCE_NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::NotAcceptable => "NOT_ACCEPTABLE",
            Self::VersionConflict => "VERSION_CONFLICT",
            Self::DuplicateResource => "DUPLICATE_RESOURCE",
            Self::RequestInProgress => "REQUEST_IN_PROGRESS",
            Self::PreconditionRequired => "PRECONDITION_REQUIRED",
            Self::PreconditionFailed => "PRECONDITION_FAILED",
            Self::MultipleMatches => "MULTIPLE_MATCHES",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::RequestIdReused => "REQUEST_ID_REUSED",
            Self::UnknownPractice => "UNKNOWN_PRACTICE",
            Self::BusinessRule => "BUSINESS_RULE_VIOLATION",
            Self::RegistrationConditionNotMet => "REGISTRATION_CONDITION_NOT_MET",
            Self::PracticeNotEnabled => "PRACTICE_NOT_ENABLED",
            Self::AccountExists => "ONLINE_ACCOUNT_EXISTS",
            Self::AccountState => "ONLINE_ACCOUNT_STATE",
            Self::LinkageKeyExpired => "LINKAGE_KEY_EXPIRED",
            Self::IdentityMismatch => "IDENTITY_MISMATCH",
            Self::LinkageDetailsInvalid => "LINKAGE_DETAILS_INVALID",
            Self::LinkageLocked => "LINKAGE_LOCKED",
            Self::AccountDisabled => "ONLINE_ACCOUNT_DISABLED",
            Self::PatientNotRegistered => "PATIENT_NOT_REGISTERED",
            Self::PatientDeceased => "PATIENT_DECEASED",
            Self::TooManyRequests => "TOO_MANY_REQUESTS",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::InternalError => "INTERNAL_ERROR",
            Self::InvalidParameter => "INVALID_PARAMETER",
            Self::SupplierFailed => "SUPPLIER_ERROR",
            Self::SupplierTimeout => "SUPPLIER_TIMEOUT",
            Self::SlotUnavailable => "SLOT_UNAVAILABLE",
            Self::CancellationNotAllowed => "CANCELLATION_NOT_ALLOWED",
            Self::ReasonRequired => "REASON_REQUIRED",
            Self::NotRequestable => "MEDICATION_NOT_REQUESTABLE",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::InvalidResource | Self::InvalidSearchParameter | Self::InvalidIdentifier => {
                StatusCode::BAD_REQUEST
            }
            Self::MissingAccessToken | Self::InvalidAccessToken => StatusCode::UNAUTHORIZED,
            Self::AccessDenied
            | Self::RoleNotPermitted
            | Self::InsufficientScope
            | Self::OutsideOwnPractice
            | Self::InsufficientAssurance
            | Self::NoActiveOnlineAccount
            | Self::ProxyRoleNotActive
            | Self::ServiceNotGranted
            | Self::IdentityMismatch
            | Self::AccountDisabled => StatusCode::FORBIDDEN,
            Self::ResourceNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Self::VersionConflict
            | Self::DuplicateResource
            | Self::RequestInProgress
            | Self::AccountExists
            | Self::AccountState
            | Self::LinkageKeyExpired => StatusCode::CONFLICT,
            Self::PreconditionRequired | Self::PreconditionFailed | Self::MultipleMatches => {
                StatusCode::PRECONDITION_FAILED
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RequestIdReused
            | Self::UnknownPractice
            | Self::BusinessRule
            | Self::RegistrationConditionNotMet
            | Self::PracticeNotEnabled
            | Self::LinkageDetailsInvalid
            | Self::PatientNotRegistered
            | Self::PatientDeceased => StatusCode::UNPROCESSABLE_ENTITY,
            Self::LinkageLocked => StatusCode::TOO_MANY_REQUESTS,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidParameter => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SupplierFailed => StatusCode::BAD_GATEWAY,
            Self::SupplierTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::SlotUnavailable => StatusCode::CONFLICT,
            Self::CancellationNotAllowed | Self::ReasonRequired | Self::NotRequestable => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        }
    }

    /// The FHIR `IssueType` that best describes the code.
    pub fn issue_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::InvalidResource | Self::InvalidIdentifier => "invalid",
            Self::InvalidSearchParameter => "invalid",
            Self::MissingAccessToken | Self::InvalidAccessToken => "login",
            Self::AccessDenied
            | Self::RoleNotPermitted
            | Self::InsufficientScope
            | Self::OutsideOwnPractice
            | Self::InsufficientAssurance
            | Self::NoActiveOnlineAccount
            | Self::ProxyRoleNotActive
            | Self::ServiceNotGranted
            | Self::IdentityMismatch
            | Self::AccountDisabled => "forbidden",
            Self::LinkageDetailsInvalid | Self::PatientNotRegistered | Self::PatientDeceased => "business-rule",
            Self::LinkageLocked => "throttled",
            Self::ResourceNotFound => "not-found",
            Self::MethodNotAllowed | Self::NotAcceptable | Self::UnsupportedMediaType => "not-supported",
            Self::VersionConflict | Self::RequestInProgress => "conflict",
            Self::DuplicateResource => "duplicate",
            Self::PreconditionRequired | Self::PreconditionFailed | Self::MultipleMatches => "conflict",
            Self::PayloadTooLarge => "too-costly",
            Self::RequestIdReused
            | Self::UnknownPractice
            | Self::BusinessRule
            | Self::RegistrationConditionNotMet
            | Self::PracticeNotEnabled => "business-rule",
            Self::AccountExists => "duplicate",
            Self::AccountState | Self::LinkageKeyExpired => "conflict",
            Self::TooManyRequests => "throttled",
            Self::ServiceUnavailable => "transient",
            Self::InternalError => "exception",
            Self::InvalidParameter => "invalid",
            Self::SupplierFailed => "exception",
            Self::SupplierTimeout => "timeout",
            Self::SlotUnavailable => "conflict",
            Self::CancellationNotAllowed | Self::NotRequestable => "business-rule",
            Self::ReasonRequired => "required",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is not valid",
            Self::InvalidResource => "The resource is not valid",
            Self::InvalidSearchParameter => "A search parameter is not supported or not valid",
            Self::InvalidIdentifier => "An identifier is not valid",
            Self::MissingAccessToken => "A bearer token is required",
            Self::InvalidAccessToken => "The bearer token is not acceptable",
            Self::AccessDenied => "The caller may not do this",
            Self::RoleNotPermitted => "No role the staff member holds allows this",
            Self::InsufficientScope => "The client's token lacks the scope this needs",
            Self::OutsideOwnPractice => "Staff may act only within their own practice",
            Self::InsufficientAssurance => "The identity assurance of the token is too low",
            Self::NoActiveOnlineAccount => "The patient has no active online account at their practice",
            Self::ProxyRoleNotActive => "The proxy role is not active",
            Self::ServiceNotGranted => "The online service is not switched on for this caller",
            Self::ResourceNotFound => "The resource does not exist",
            Self::MethodNotAllowed => "The method is not supported on this resource",
            Self::NotAcceptable => "The requested representation is not available",
            Self::VersionConflict => "The resource has changed since the given version",
            Self::DuplicateResource => "The resource already exists",
            Self::RequestInProgress => "A request with the same X-Request-ID is still being processed",
            Self::PreconditionRequired => "A precondition header is required",
            Self::PreconditionFailed => "The resource has changed since the version in If-Match",
            Self::MultipleMatches => "The condition matches more than one resource",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The content type is not supported",
            Self::RequestIdReused => "The X-Request-ID was already used for a different request",
            Self::UnknownPractice => "The practice is not known to the gateway",
            Self::BusinessRule => "The request breaks a business rule",
            Self::RegistrationConditionNotMet => "A condition for registering for online services is not met",
            Self::PracticeNotEnabled => "Online services are not enabled at the practice",
            Self::AccountExists => "The patient already has an online account",
            Self::AccountState => "The online account is not in a state that allows this",
            Self::LinkageKeyExpired => "The registration letter's linkage key has expired; reset the account",
            Self::IdentityMismatch => "The identity is bound to a different NHS number",
            Self::LinkageDetailsInvalid => "The registration details do not match an online account",
            Self::LinkageLocked => "Too many failed attempts for this Account ID; try again later",
            Self::AccountDisabled => "The online account is disabled",
            Self::PatientNotRegistered => "The patient is not registered at the practice",
            Self::PatientDeceased => "The patient has died: online access has ended and cannot be changed",
            Self::TooManyRequests => "Too many requests",
            Self::ServiceUnavailable => "The service is temporarily unavailable",
            Self::InternalError => "An unexpected error occurred",
            Self::InvalidParameter => "A parameter is not one the operation takes, or its value is not valid",
            Self::SupplierFailed => "The patient's clinical system failed or gave an answer that cannot be used",
            Self::SupplierTimeout => "The patient's clinical system did not answer in time",
            Self::SlotUnavailable => "The slot does not exist or is no longer free",
            Self::CancellationNotAllowed => "The practice does not let this appointment be cancelled online",
            Self::ReasonRequired => "The practice asks for a reason when booking",
            Self::NotRequestable => "The medication is not a current repeat the patient may request online",
        }
    }
}

/// An error a caller sees. `message` is written for the caller; it never carries an internal cause.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// FHIRPath of the offending element, where one applies.
    pub expression: Option<String>,
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            expression: None,
            retry_after_seconds: None,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn invalid_resource(message: impl Into<String>, expression: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidResource, message).at(expression)
    }

    pub fn not_found(resource_type: &str) -> Self {
        Self::new(ErrorCode::ResourceNotFound, format!("{resource_type} not found"))
    }

    /// The resource changed between the caller's read and this write.
    pub fn version_conflict() -> Self {
        Self::new(
            ErrorCode::VersionConflict,
            "the resource has changed since the version you sent; read it again and retry",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AccessDenied, message)
    }

    /// A failure whose cause must not reach the caller. The cause is logged with the request id.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, ErrorCode::InternalError.display())
    }

    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(ErrorCode::ServiceUnavailable, ErrorCode::ServiceUnavailable.display())
    }

    pub fn outcome(&self) -> OperationOutcome {
        OperationOutcome::error(
            self.code.issue_type(),
            self.code.as_str(),
            self.code.display(),
            &self.message,
            self.expression.as_deref(),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type(crate::fhir::FHIR_JSON);
        builder.insert_header((header::CACHE_CONTROL, "no-store"));
        match self.code {
            ErrorCode::MissingAccessToken => {
                builder.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="gp-online-gateway", error="invalid_request", error_description="a bearer token is required""#,
                    ),
                ));
            }
            ErrorCode::InvalidAccessToken => {
                let description: String = self
                    .message
                    .chars()
                    .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .collect();
                let value = format!(
                    r#"Bearer realm="gp-online-gateway", error="invalid_token", error_description="{description}""#
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    builder.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            ErrorCode::InvalidRequest if self.expression.as_deref() == Some("Authorization") => {
                builder.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gp-online-gateway", error="invalid_request""#),
                ));
            }
            ErrorCode::InsufficientAssurance | ErrorCode::InsufficientScope => {
                builder.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="gp-online-gateway", error="insufficient_scope""#),
                ));
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after_seconds {
            builder.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        let mut response = builder.json(self.outcome());
        // The audit middleware records the code of a request that never reached a decision,
        // and the proxy endpoints answer it in the VRS shape.
        response.extensions_mut().insert(self.code);
        response.extensions_mut().insert(self.clone());
        response
    }
}

fn refusal_code(r: &Refusal) -> ErrorCode {
    match r {
        Refusal::ActorKind => ErrorCode::AccessDenied,
        Refusal::RoleNotPermitted => ErrorCode::RoleNotPermitted,
        Refusal::ScopeMissing => ErrorCode::InsufficientScope,
        Refusal::InsufficientAssurance => ErrorCode::InsufficientAssurance,
        Refusal::IdentityMismatch => ErrorCode::IdentityMismatch,
        Refusal::NotVisible => ErrorCode::ResourceNotFound,
        Refusal::OutsideOwnPractice => ErrorCode::OutsideOwnPractice,
        Refusal::NoActiveAccount => ErrorCode::NoActiveOnlineAccount,
        Refusal::AccountDisabled => ErrorCode::AccountDisabled,
        Refusal::PatientDeceased => ErrorCode::PatientDeceased,
        Refusal::ProxyRoleNotActive => ErrorCode::ProxyRoleNotActive,
        Refusal::ServiceNotGranted => ErrorCode::ServiceNotGranted,
    }
}

fn reason_code(r: Reason) -> ErrorCode {
    match r {
        Reason::InvalidRequest => ErrorCode::InvalidRequest,
        Reason::InvalidResource => ErrorCode::InvalidResource,
        Reason::InvalidSearch => ErrorCode::InvalidSearchParameter,
        Reason::InvalidIdentifier => ErrorCode::InvalidIdentifier,
        Reason::VersionConflict => ErrorCode::VersionConflict,
        Reason::PreconditionRequired => ErrorCode::PreconditionRequired,
        Reason::PreconditionFailed => ErrorCode::PreconditionFailed,
        Reason::MultipleMatches => ErrorCode::MultipleMatches,
        Reason::Duplicate => ErrorCode::DuplicateResource,
        Reason::UnknownPractice => ErrorCode::UnknownPractice,
        Reason::BusinessRule => ErrorCode::BusinessRule,
        Reason::RegistrationCondition => ErrorCode::RegistrationConditionNotMet,
        Reason::PracticeNotEnabled => ErrorCode::PracticeNotEnabled,
        Reason::AccountExists => ErrorCode::AccountExists,
        Reason::AccountState => ErrorCode::AccountState,
        Reason::AccountDisabled => ErrorCode::AccountDisabled,
        Reason::LinkageKeyExpired => ErrorCode::LinkageKeyExpired,
        Reason::LinkageDetailsInvalid => ErrorCode::LinkageDetailsInvalid,
        Reason::LinkageLocked { .. } => ErrorCode::LinkageLocked,
        Reason::TooMany { .. } => ErrorCode::TooManyRequests,
        Reason::PatientNotRegistered => ErrorCode::PatientNotRegistered,
        Reason::IdentityMismatch => ErrorCode::IdentityMismatch,
        Reason::PatientDeceased => ErrorCode::PatientDeceased,
        Reason::SlotUnavailable => ErrorCode::SlotUnavailable,
        Reason::CancellationNotAllowed => ErrorCode::CancellationNotAllowed,
        Reason::ReasonRequired => ErrorCode::ReasonRequired,
        Reason::NotRequestable => ErrorCode::NotRequestable,
    }
}

/// A field named by a service: a FHIRPath (`Patient.identifier`) as it is, or an operation
/// parameter path (`recordAccess.from`) turned into one.
fn expression(field: String) -> String {
    if field.starts_with(char::is_uppercase) {
        field
    } else {
        crate::fhir::parameter_path(&field)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            // A target the caller may not see answers exactly like one that does not exist.
            Error::Refused {
                refusal: Refusal::NotVisible,
                resource,
                ..
            } => ApiError::not_found(resource),
            Error::Refused { refusal, detail, .. } => ApiError::new(refusal_code(&refusal), detail),
            Error::NotFound { message, .. } => ApiError::new(ErrorCode::ResourceNotFound, message),
            Error::Rejected { reason, message, field } => {
                let mut error = ApiError::new(reason_code(reason), message);
                if let Reason::LinkageLocked { retry_after_seconds } | Reason::TooMany { retry_after_seconds } = reason
                {
                    error.retry_after_seconds = Some(retry_after_seconds);
                }
                match field {
                    Some(f) => error.at(expression(f)),
                    None => error,
                }
            }
            // Proxy problems are answered in the VRS shape by the proxy handlers; anywhere else
            // they are business-rule refusals.
            Error::Proxy(p) => ApiError::new(ErrorCode::BusinessRule, p.detail().unwrap_or(p.code()).to_owned()),
            Error::AuditUnavailable => ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the audit trail cannot be written just now; nothing was done, try again shortly",
            ),
            Error::Unavailable => ApiError::new(ErrorCode::ServiceUnavailable, ErrorCode::ServiceUnavailable.display()),
            Error::Supplier(code) => ApiError::new(
                ErrorCode::SupplierFailed,
                format!("{} ({code}); try again later", ErrorCode::SupplierFailed.display()),
            ),
            Error::SupplierTimedOut => ApiError::new(ErrorCode::SupplierTimeout, ErrorCode::SupplierTimeout.display()),
            Error::Internal => ApiError::new(ErrorCode::InternalError, ErrorCode::InternalError.display()),
        }
    }
}

impl From<FhirError> for ApiError {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::Resource { message, expression } => {
                let error = ApiError::new(ErrorCode::InvalidResource, message);
                match expression {
                    Some(x) => error.at(x),
                    None => error,
                }
            }
            FhirError::Identifier { message, expression } => {
                ApiError::new(ErrorCode::InvalidIdentifier, message).at(expression)
            }
            FhirError::Parameter { message, expression } => {
                ApiError::new(ErrorCode::InvalidRequest, message).at(expression)
            }
            FhirError::Condition { message, expression } => {
                ApiError::new(ErrorCode::RegistrationConditionNotMet, message).at(expression)
            }
        }
    }
}
