//! The proxy API, wire-compatible with NHS England's Validated Relationships Service:
//! `QuestionnaireResponse` (access requests), `RelatedPerson` (relationships) and `Consent`
//! (proxy roles), with VRS error codes and `OperationOutcome` shapes.

pub mod consent;
pub mod questionnaire_response;
pub mod related_person;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};

use super::error::ApiError;
use crate::domain::policy::Refusal;
use crate::fhir::vrs::VrsError;
use crate::services::Error;

/// Whether a path belongs to the VRS resources.
pub fn is_vrs(path: &str) -> bool {
    ["/Consent", "/RelatedPerson", "/QuestionnaireResponse"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

impl std::fmt::Display for VrsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.diagnostics)
    }
}

impl ResponseError for VrsError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code())
            .content_type(crate::fhir::FHIR_JSON)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(self.outcome());
        response.extensions_mut().insert(VrsRendered(self.code));
        response
    }
}

/// Marks a response already in the VRS shape, with its code for the audit trail.
#[derive(Clone, Copy)]
pub struct VrsRendered(pub &'static str);

/// What a proxy handler fails with: a VRS error, or a gateway error shown the VRS way.
#[derive(Debug)]
pub enum Failure {
    Vrs(VrsError),
    Api(ApiError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Vrs(v) => v.fmt(f),
            Self::Api(a) => a.fmt(f),
        }
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Vrs(v) => v.status_code(),
            Self::Api(a) => a.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Vrs(v) => v.error_response(),
            Self::Api(a) => a.error_response(),
        }
    }
}

impl From<VrsError> for Failure {
    fn from(v: VrsError) -> Self {
        Self::Vrs(v)
    }
}

impl From<ApiError> for Failure {
    fn from(a: ApiError) -> Self {
        Self::Api(a)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::Proxy(p) => Self::Vrs(VrsError::from_problem(&p)),
            // A role or request the caller may not see is answered like one that does not exist.
            Error::Refused {
                refusal: Refusal::NotVisible,
                resource,
                ..
            } => Self::Vrs(VrsError::from_problem(&match resource {
                "QuestionnaireResponse" => crate::domain::proxy::Problem::AccessRequestNotFound,
                "Consent" => crate::domain::proxy::Problem::RoleNotFound,
                _ => crate::domain::proxy::Problem::InvalidPatient(
                    "the patient is not registered at a practice the caller may act for".into(),
                ),
            })),
            other => Self::Api(other.into()),
        }
    }
}

/// A gateway error in the VRS shape, where VRS has a word for it; the gateway's code stays on
/// the response for the audit trail.
pub fn rendered(status: StatusCode, api: &ApiError) -> Option<HttpResponse> {
    let vrs = VrsError::from_gateway(status.as_u16(), &api.message)?;
    let mut response = vrs.error_response();
    response.extensions_mut().insert(api.code);
    Some(response)
}

/// VRS endpoints answer every error in the VRS shape: gateway errors (a refused token, a
/// refusal, an outage) are shown with the VRS code for them, and a method or path VRS does not
/// have is `METHOD_NOT_ALLOWED`.
pub async fn vrs_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !is_vrs(req.path()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let response = next.call(req).await?.map_into_boxed_body();
    if response.response().extensions().get::<VrsRendered>().is_some() {
        return Ok(response);
    }
    let unrouted = response.response().extensions().get::<super::Unrouted>().is_some();
    let api = response.response().extensions().get::<ApiError>().cloned();
    let rendered = match (unrouted, api) {
        (true, _) => {
            let mut r = VrsError::method_not_allowed().error_response();
            r.extensions_mut().insert(super::error::ErrorCode::MethodNotAllowed);
            r
        }
        (false, Some(api)) => match rendered(response.status(), &api) {
            Some(r) => r,
            None => return Ok(response),
        },
        (false, None) => return Ok(response),
    };
    let keep: Vec<(header::HeaderName, HeaderValue)> = [header::WWW_AUTHENTICATE, header::RETRY_AFTER]
        .into_iter()
        .filter_map(|h| response.headers().get(&h).map(|v| (h, v.clone())))
        .collect();
    let (request, _) = response.into_parts();
    let mut rendered = rendered;
    for (name, value) in keep {
        rendered.headers_mut().insert(name, value);
    }
    Ok(ServiceResponse::new(request, rendered))
}

/// A query string as name-value pairs, in order, repeats kept. A name or value with a
/// control character, or longer than any parameter VRS has, is refused at the boundary.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, VrsError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if let Some((name, _)) = pairs.iter().find(|(n, v)| {
        crate::domain::text::forbidden_character(n).is_some()
            || crate::domain::text::forbidden_character(v).is_some()
            || n.len() > 64
            || v.len() > 1024
    }) {
        return Err(VrsError::invalid(
            400,
            "INVALID_VALUE",
            "Required parameter(s) are invalid.",
            format!("the parameter {} holds a control character or is too long", shown(name)),
        ));
    }
    Ok(pairs)
}

/// A parameter name as a message may show it: escaped and bounded.
fn shown(name: &str) -> String {
    crate::domain::text::shown(name, 40)
}

/// `INVALID_PARAMETER` for a search parameter VRS does not have or a value it does not allow.
pub fn invalid_parameter(name: &str) -> VrsError {
    VrsError::invalid_parameter(format!(
        "Invalid request with error - {} parameter is invalid.",
        shown(name)
    ))
}

/// A successful VRS response: `application/fhir+json`, not cached.
pub fn ok(status: StatusCode, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(crate::fhir::FHIR_JSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// A UUID path id, as every VRS id is.
pub fn uuid_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .filter(|_| raw.len() == 36)
        .map(|u| u.hyphenated().to_string())
}

/// The content type a body must have (`expected`, with or without a charset), or 415.
pub fn media_type(content_type: Option<&str>, expected: &[&str]) -> Result<(), VrsError> {
    match content_type {
        Some(t) if expected.contains(&t) => Ok(()),
        _ => Err(VrsError::unsupported_media_type()),
    }
}

/// The informational `OperationOutcome` VRS answers a successful write with.
pub fn informational(code: Option<&str>) -> serde_json::Value {
    let mut issue = serde_json::json!({"severity": "information", "code": "informational"});
    if let Some(c) = code {
        issue["details"] = serde_json::json!({"coding": [{"code": c, "display": c}]});
    }
    serde_json::json!({"resourceType": "OperationOutcome", "issue": [issue]})
}
