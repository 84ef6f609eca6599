//! `QuestionnaireResponse`: a person's request for proxy access, and reading it back.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, get, post, web};

use super::{Failure, informational, media_type, ok, uuid_id};
use crate::domain::policy::Action;
use crate::fhir::vrs::VrsError;
use crate::fhir::{OperationOutcome, questionnaire_response};
use crate::http::body::RawBody;
use crate::services::access::{self, Target};
use crate::services::{Caller, proxy};
use crate::state::AppState;

/// Ask for proxy access to a patient (or, as the patient, nominate a proxy).
///
/// The signed-in person must be the request's `source`. The request becomes a `proposed` proxy
/// role and a review Task for the patient's practice; the answer carries the reference code the
/// applicant quotes, and `Location` names the stored request.
#[utoipa::path(
    tag = "Proxy access",
    request_body(content = String, content_type = "application/fhir+json", description = "A completed QuestionnaireResponse, as in the VRS examples"),
    responses(
        (status = 200, description = "Accepted: an informational OperationOutcome whose coding is the reference code; `Location: /QuestionnaireResponse/{id}`", body = OperationOutcome),
        (status = 400, description = "BAD_REQUEST (not a valid access request), INVALID_IDENTIFIER_VALUE, INVALID_PATIENT_IDENTIFIER_VALUE, or MISSING_VALUE (no X-Request-ID)", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: only people (P9) may ask, and only as the request's source", body = OperationOutcome),
        (status = 409, description = "DUPLICATE_RELATIONSHIP: the proxy already has a proposed, active or inactive role for the patient", body = OperationOutcome),
        (status = 415, description = "UNSUPPORTED_MEDIA: the body is not application/fhir+json", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/QuestionnaireResponse")]
#[tracing::instrument(skip_all)]
pub async fn submit(state: web::Data<AppState>, caller: Caller, body: RawBody) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::CreateAccessRequest, Target::None).await?;
    media_type(body.content_type(), &["application/fhir+json"])?;
    let (form, _) = questionnaire_response::access_request(body.bytes())?;
    let text = String::from_utf8_lossy(body.bytes()).into_owned();
    let request = proxy::submit_request(&state.core, &caller, form, text).await?;
    let mut response = ok(StatusCode::OK, &informational(Some(&request.reference)));
    if let Ok(v) = header::HeaderValue::from_str(&format!("{}/QuestionnaireResponse/{}", state.base_url, request.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Read an access request: as submitted, with its id and reference code.
#[utoipa::path(
    tag = "Proxy access",
    params(("id" = String, Path, description = "The access request id (a UUID)")),
    responses(
        (status = 200, description = "The QuestionnaireResponse", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_IDENTIFIER_VALUE: the id is not a UUID; MISSING_VALUE: no X-Request-ID", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN", body = OperationOutcome),
        (status = 404, description = "QUESTIONNAIRE_RESPONSE_NOT_FOUND: no request the caller may see has this id", body = OperationOutcome),
        (status = 405, description = "METHOD_NOT_ALLOWED: no id given", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/QuestionnaireResponse/{id}")]
#[tracing::instrument(skip_all)]
pub async fn read(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::ReadAccessRequest, Target::Pending).await?;
    let id = uuid_id(&id).ok_or_else(|| {
        VrsError::invalid(
            400,
            "INVALID_IDENTIFIER_VALUE",
            "Invalid identifier value",
            "The specified access request ID is invalid. Access request IDs must be a valid UUID.",
        )
        .spine()
    })?;
    let permit = access::authorize(
        &state.core,
        &caller,
        Action::ReadAccessRequest,
        Target::AccessRequest(id),
    )
    .await?;
    let request = proxy::request(&permit)?;
    Ok(ok(
        StatusCode::OK,
        &questionnaire_response::stored(&request.body, &request.id, &request.reference),
    ))
}
