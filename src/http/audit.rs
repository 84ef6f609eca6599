//! Audit by construction. Every request to an endpoint that takes a token gets a trail; the
//! access service records the engine's decision in it, and this middleware makes sure the
//! trail is committed before the response leaves. A request that ends before any decision
//! (a refused token, a bad request id, an unknown endpoint) is recorded here; a handler that
//! answers success without a decision on record is a bug, answered 500 and recorded as such.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};

use super::error::{ApiError, ErrorCode};
use super::request_ids::{REPLAYED, RequestIds};
use crate::audit::{Outcome, Trail};
use crate::domain::policy::Action;
use crate::services::access::Refused;
use crate::state::AppState;

/// Paths that take no token and reveal nothing about anyone: not audited.
pub fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/metadata" | "/metrics" | "/openapi.json" | "/docs" | "/favicon.ico"
    ) || path.starts_with("/health/")
        || path.starts_with("/docs/")
        || path.starts_with("/dev-idp/")
        || path == "/dev/clock"
        // The console's pages act through the API, whose calls are audited as any client's.
        || path == "/console"
        || path.starts_with("/console/")
}

/// The engine action each endpoint asks for, by method and route pattern.
pub fn action_for(method: &Method, pattern: &str) -> Option<Action> {
    use Action::*;
    Some(match (method.as_str(), pattern) {
        ("GET", "/Patient/{id}" | "/Patient/{id}/_history" | "/Patient/{id}/_history/{vid}") => ReadPatient,
        ("GET", "/Patient") => SearchPatients,
        ("POST", "/Patient") => CreatePatient,
        ("PUT", "/Patient/{id}" | "/Patient") => UpdatePatient,
        ("GET", "/Organization/{id}") => ReadPractice,
        ("GET", "/Organization") => SearchPractices,
        ("PUT", "/Organization/{id}") => UpdatePractice,
        ("POST", "/Patient/{id}/$register-online-services") => RegisterOnlineServices,
        ("POST", "/Patient/{id}/$set-online-access") => SetOnlineAccess,
        ("POST", "/Patient/{id}/$reset-online-account") => ResetOnlineAccount,
        ("POST", "/Patient/{id}/$disable-online-account") => DisableOnlineAccount,
        ("POST", "/Patient/{id}/$enable-online-account") => EnableOnlineAccount,
        ("GET", "/Patient/{id}/$online-account") => ReadOnlineAccount,
        ("GET", "/Patient/{id}/$registration-letter") => PrintRegistrationLetter,
        ("GET", "/Task/{id}") => ReadTask,
        ("GET", "/Task") => SearchTasks,
        ("POST", "/Task/{id}/$complete") => CompleteTask,
        ("POST", "/Task/{id}/$retry") => RetryTask,
        ("GET", "/$my-access") => MyAccess,
        ("POST", "/$verify-linkage") => VerifyLinkage,
        ("POST", "/$link-identity") => LinkIdentity,
        ("GET", "/AuditEvent") => SearchAudit,
        ("GET", "/AuditEvent/$verify") => VerifyAudit,
        ("GET", "/$explain-access") => ExplainAccess,
        ("GET", "/AuditEvent/$export") => ExportAudit,
        ("GET", "/AuditEvent/$export/{id}" | "/AuditEvent/$export/{id}/{part}") => ReadAuditExport,
        ("DELETE", "/AuditEvent/$export/{id}") => CancelAuditExport,
        ("GET", "/Patient/{id}/$service-access") => return None,
        ("POST", "/QuestionnaireResponse") => CreateAccessRequest,
        ("GET", "/QuestionnaireResponse/{id}") => ReadAccessRequest,
        ("GET", "/RelatedPerson") => SearchRelatedPersons,
        ("GET", "/Consent") => SearchProxyRoles,
        ("POST", "/Consent") => CreateProxyRole,
        ("GET", "/Consent/{id}") => ReadProxyRole,
        ("PATCH", "/Consent/{id}") => UpdateProxyRole,
        ("POST", "/Consent/{id}/$set-proxy-access") => SetProxyAccess,
        ("POST", "/Patient/{id}/$add-record-access-code") => AddAccessCode,
        ("POST", "/Patient/{id}/$remove-record-access-code") => RemoveAccessCode,
        ("POST", "/Patient/$register-online-services") => RegisterSelf,
        ("POST", "/$request-record-access") => RequestRecordAccess,
        ("POST", "/Organization/{id}/$apply-opt-in-model") => ApplyOptInModel,
        ("POST", "/$run-transitions") => RunTransitions,
        ("POST", "/$registration-event") => RecordRegistrationEvent,
        ("POST", "/Patient/$gpc.getstructuredrecord") => ReadRecord,
        ("GET", "/Slot" | "/Appointment") => ReadAppointments,
        ("POST", "/Appointment") => BookAppointment,
        ("PUT", "/Appointment/{id}") => CancelAppointment,
        ("POST", "/MedicationRequest") => RequestPrescription,
        (
            "GET",
            "/AllergyIntolerance"
            | "/MedicationStatement"
            | "/MedicationRequest"
            | "/Condition"
            | "/Immunization"
            | "/Observation"
            | "/Encounter"
            | "/ServiceRequest"
            | "/DocumentReference"
            | "/Binary/{id}",
        ) => ReadRecord,
        _ => return None,
    })
}

pub async fn audit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(state), false) = (state, is_public(req.path())) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let trail = Trail::default();
    req.extensions_mut().insert(trail.clone());
    let method = req.method().clone();
    let mut response = next.call(req).await?.map_into_boxed_body();

    let status = response.status();
    let replayed = response.headers().contains_key(REPLAYED);
    // 304: the read was answered, the caller's copy being current.
    let answered = status.is_success() || status == actix_web::http::StatusCode::NOT_MODIFIED;
    if trail.has_record() && !(answered || replayed) {
        let code = error_code(&response);
        let outcome = if status.is_server_error() {
            Outcome::Error
        } else {
            Outcome::Denied
        };
        trail.failed(&state.core.audit, outcome, code);
    }
    if !trail.has_record() {
        let request = response.request().clone();
        let authenticated = super::auth::outcome(&request);
        let principal = authenticated.as_ref().and_then(|r| r.as_ref().ok());
        let action = request
            .match_pattern()
            .and_then(|p| action_for(&method, &p))
            .map_or("unknown-endpoint", Action::name);
        let code = error_code(&response);
        let (outcome, rule, code, reason) = if replayed {
            let outcome = if status.is_success() {
                Outcome::Success
            } else {
                Outcome::Denied
            };
            (outcome, "request-replay", code, None)
        } else if status.is_success() || status.is_redirection() {
            tracing::error!(action, "a handler answered without an access decision on record");
            let error = ApiError::new(ErrorCode::InternalError, ErrorCode::InternalError.display());
            response = replace(response, &error);
            (
                Outcome::Error,
                "no-decision",
                Some(ErrorCode::InternalError.as_str()),
                None,
            )
        } else {
            let rule = if matches!(authenticated, Some(Err(_))) {
                "authentication"
            } else {
                "request"
            };
            let reason = match &authenticated {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            let outcome = if status.is_server_error() {
                Outcome::Error
            } else {
                Outcome::Denied
            };
            (outcome, rule, code, reason)
        };
        let request_id = request.extensions().get::<RequestIds>().map(|r| r.request_id.clone());
        let refused = Refused {
            principal,
            action,
            outcome,
            rule,
            code,
            reason,
            practice: None,
            request_id,
        };
        trail.record(&state.core.audit, refused.record());
    }
    if trail.commit(&state.core.audit).await.is_err() {
        // Nothing leaves without its decision on record.
        let error = ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the audit trail cannot be written just now; try again shortly",
        );
        return Ok(replace(response, &error));
    }
    Ok(response)
}

/// The stable code an error response carries, FHIR or VRS.
fn error_code(response: &ServiceResponse<BoxBody>) -> Option<&'static str> {
    let extensions = response.response().extensions();
    extensions
        .get::<ErrorCode>()
        .map(|c| c.as_str())
        .or_else(|| extensions.get::<super::proxy::VrsRendered>().map(|v| v.0))
}

fn replace(response: ServiceResponse<BoxBody>, error: &ApiError) -> ServiceResponse<BoxBody> {
    let (request, _) = response.into_parts();
    ServiceResponse::new(request, error.error_response())
}
