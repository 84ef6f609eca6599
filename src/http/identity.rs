//! Patient-app and identity-provider endpoints.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};

use super::body::{RawBody, resource};
use super::error::ApiError;
use crate::fhir::{OperationOutcome, Parameter, Parameters, operations};
use crate::services::{Caller, identity};
use crate::state::AppState;

/// Everyone the caller may act for, with the services and record access in effect for each.
///
/// For patient callers (NHS login-like tokens, P5 or higher). The first call binds the token's
/// subject to the practice record with the token's NHS number.
#[utoipa::path(
    tag = "Patient access",
    responses(
        (status = 200, description = "One `access` group per patient the caller may act for", body = Parameters, content_type = "application/fhir+json"),
        (status = 401, description = "No valid bearer token", body = OperationOutcome),
        (status = 403, description = "Not a patient token, assurance too low, or identity bound to another NHS number", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/$my-access")]
#[tracing::instrument(skip_all)]
pub async fn my_access(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let entries = identity::my_access(&state.core, &caller).await?;
    Ok(resource(StatusCode::OK, &operations::my_access(&entries), None, None))
}

/// Check registration-letter details for an identity provider.
///
/// Wrong key, wrong Account ID, wrong name or date of birth all get the same answer; repeated
/// failures lock the Account ID for a while.
#[utoipa::path(
    tag = "Identity provider",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [
            {"name": "odsCode", "valueString": "A81001"},
            {"name": "accountId", "valueString": "ABCD2345EF"},
            {"name": "linkageKey", "valueString": "K7M3PQ9RSTUV2WX"},
            {"name": "familyName", "valueString": "Smith"},
            {"name": "birthDate", "valueDate": "1980-05-01"}
        ]
    })),
    responses(
        (status = 200, description = "Details match an active account: nhsNumber and accountStatus", body = Parameters),
        (status = 403, description = "Not an identity-provider client with the identity:verify-linkage scope", body = OperationOutcome),
        (status = 409, description = "LINKAGE_KEY_EXPIRED", body = OperationOutcome),
        (status = 422, description = "LINKAGE_DETAILS_INVALID, ONLINE_ACCOUNT_DISABLED or PRACTICE_NOT_ENABLED", body = OperationOutcome),
        (status = 429, description = "LINKAGE_LOCKED after repeated failures", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/$verify-linkage")]
#[tracing::instrument(skip_all)]
pub async fn verify_linkage(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    identity::may_verify_linkage(&state.core, &caller).await?;
    let details = operations::linkage_details(&body.parameters()?)?;
    let verified = identity::verify_linkage(&state.core, &caller, details).await?;
    let id = &verified.patient.details.identifier;
    Ok(resource(
        StatusCode::OK,
        &Parameters::new(vec![
            Parameter::string("nhsNumber", id.value()),
            Parameter::string("identifierSystem", id.system().uri()),
            Parameter::code("accountStatus", verified.account_status.as_str()),
            Parameter::string("odsCode", verified.patient.practice_ods.as_str()),
        ]),
        None,
        None,
    ))
}

/// Record that an identity-provider subject is a patient registered at a practice.
///
/// The issuer must be one of the gateway's trusted patient issuers (in the dev profile,
/// `{base}/dev-idp/patient`).
#[utoipa::path(
    tag = "Identity provider",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [
            {"name": "issuer", "valueString": "http://127.0.0.1:8080/dev-idp/patient"},
            {"name": "sub", "valueString": "49f470a1-cc52-49b7-beba-0f9cec937c46"},
            {"name": "nhsNumber", "valueString": "9990000158"},
            {"name": "identityProofingLevel", "valueCode": "P9"},
            {"name": "odsCode", "valueString": "A81001"}
        ]
    })),
    responses(
        (status = 200, description = "The binding", body = Parameters),
        (status = 403, description = "Wrong client or scope, or the subject is bound to another NHS number", body = OperationOutcome),
        (status = 422, description = "PATIENT_NOT_REGISTERED or UNKNOWN_PRACTICE", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/$link-identity")]
#[tracing::instrument(skip_all)]
pub async fn link_identity(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    identity::may_link_identity(&state.core, &caller).await?;
    let assertion = operations::identity_assertion(&body.parameters()?)?;
    let (binding, patient) = identity::link_identity(&state.core, &caller, assertion).await?;
    Ok(resource(
        StatusCode::OK,
        &Parameters::new(vec![
            Parameter::reference("patient", format!("Patient/{}", patient.id)),
            Parameter::string("issuer", binding.issuer),
            Parameter::string("sub", binding.subject),
            Parameter::code("identityProofingLevel", binding.proofing_level),
            Parameter::string("odsCode", patient.practice_ods.as_str()),
            Parameter::code("source", binding.source),
        ]),
        None,
        None,
    ))
}
