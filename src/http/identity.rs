//! Patient-app and identity-provider endpoints, and the audit trail.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::NaiveDate;

use super::audit::audited;
use super::auth::Authenticated;
use super::body::{FhirBody, Paging, resource};
use super::search::searchset;
use crate::db;
use crate::domain::{NhsNumber, OdsCode};
use crate::error::{ApiError, ErrorCode};
use crate::fhir::{AuditEvent, Bundle, Identifier, OperationOutcome, Parameter, Parameters};
use crate::identity::{Principal, ProofingLevel};
use crate::services::identity::{self, AccessEntry, IdentityAssertion, LinkageDetails};
use crate::services::patients;
use crate::state::AppState;

fn bad(name: &str, message: &str) -> ApiError {
    ApiError::invalid(message.to_owned()).at(crate::fhir::parameter_path(name))
}

fn string_param(p: &Parameters, name: &str) -> Result<String, ApiError> {
    p.get(name)
        .and_then(|x| x.value_string.clone().or_else(|| x.value_code.clone()))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| bad(name, &format!("{name} is required")))
}

fn entry_parameter(e: &AccessEntry) -> Parameter {
    let a = &e.effective;
    let mut record = vec![Parameter::code("level", a.record_level.as_str())];
    if let Some(from) = a.record_from {
        record.push(Parameter::date("from", from));
    }
    let identifier = e.patient.details.identifier.clone();
    let mut parts = vec![
        Parameter {
            name: "patient".into(),
            value_reference: Some(crate::fhir::Reference {
                reference: Some(format!("Patient/{}", e.patient.id)),
                identifier: Some(Identifier {
                    use_: None,
                    system: Some(identifier.system().uri().into()),
                    value: Some(identifier.value().into()),
                }),
                display: Some(
                    format!("{} {}", e.patient.details.given.join(" "), e.patient.details.family)
                        .trim()
                        .to_owned(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        },
        Parameter::code("relationship", e.relationship),
        Parameter::string("practice", e.patient.practice_ods.as_str()),
        Parameter::code("accountStatus", e.status.clone()),
        Parameter::group(
            "services",
            vec![
                Parameter::boolean("appointments", a.services.appointments),
                Parameter::boolean("prescriptions", a.services.prescriptions),
                Parameter::boolean("messaging", a.services.messaging),
            ],
        ),
        Parameter::group("recordAccess", record),
    ];
    if let Some(r) = &e.reason {
        parts.push(Parameter::string("reason", r.clone()));
    }
    Parameter::group("access", parts)
}

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
pub async fn my_access(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let result = match &principal {
        Principal::Patient(p) => identity::my_access(&state, p).await,
        _ => Err(ApiError::forbidden("$my-access is for patient identities")),
    };
    let patient_id = result
        .as_ref()
        .ok()
        .and_then(|(me, _)| me.as_ref().map(|m| m.patient.id.clone()));
    let (_, entries) = audited(
        &state,
        &req,
        Some(&principal),
        "my-access",
        patient_id.as_deref(),
        result,
    )
    .await?;
    Ok(resource(
        StatusCode::OK,
        &Parameters::new(entries.iter().map(entry_parameter).collect()),
        None,
        None,
    ))
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
            {"name": "accountId", "valueString": "ABCD2345EFGH"},
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
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    FhirBody(body): FhirBody<Parameters>,
) -> Result<HttpResponse, ApiError> {
    let parsed = (|| {
        identity::require_scope(&principal, "identity:verify-linkage")?;
        let ods = OdsCode::parse(&string_param(&body, "odsCode")?).map_err(|e| bad("odsCode", &e.to_string()))?;
        let birth = body
            .get("birthDate")
            .and_then(|b| b.value_date.as_deref())
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| bad("birthDate", "birthDate is required (valueDate, YYYY-MM-DD)"))?;
        Ok(LinkageDetails {
            ods_code: ods,
            account_id: string_param(&body, "accountId")?,
            linkage_key: string_param(&body, "linkageKey")?,
            family_name: string_param(&body, "familyName")?,
            birth_date: birth,
        })
    })();
    let result = match parsed {
        Ok(details) => identity::verify_linkage(&state, details).await,
        Err(e) => Err(e),
    };
    let patient_id = result.as_ref().ok().map(|(v, _)| v.patient.id.clone());
    let (verified, _) = audited(
        &state,
        &req,
        Some(&principal),
        "verify-linkage",
        patient_id.as_deref(),
        result,
    )
    .await?;
    let id = verified.patient.details.identifier.clone();
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
#[utoipa::path(
    tag = "Identity provider",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [
            {"name": "issuer", "valueString": "https://auth.login.nhs.uk"},
            {"name": "sub", "valueString": "49f470a1-cc52-49b7-beba-0f9cec937c46"},
            {"name": "nhsNumber", "valueString": "9990000018"},
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
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    FhirBody(body): FhirBody<Parameters>,
) -> Result<HttpResponse, ApiError> {
    let parsed = (|| {
        identity::require_scope(&principal, "identity:link")?;
        Ok(IdentityAssertion {
            issuer: string_param(&body, "issuer")?,
            subject: string_param(&body, "sub")?,
            nhs_number: NhsNumber::parse(&string_param(&body, "nhsNumber")?).map_err(|e| {
                ApiError::new(ErrorCode::InvalidIdentifier, e.to_string()).at(crate::fhir::parameter_path("nhsNumber"))
            })?,
            proofing_level: ProofingLevel::parse(&string_param(&body, "identityProofingLevel")?)
                .ok_or_else(|| bad("identityProofingLevel", "identityProofingLevel is P0, P5 or P9"))?,
            ods_code: OdsCode::parse(&string_param(&body, "odsCode")?).map_err(|e| bad("odsCode", &e.to_string()))?,
        })
    })();
    let result = match parsed {
        Ok(a) => identity::link_identity(&state, a).await,
        Err(e) => Err(e),
    };
    let patient_id = result.as_ref().ok().map(|(_, p)| p.id.clone());
    let (binding, patient) = audited(
        &state,
        &req,
        Some(&principal),
        "link-identity",
        patient_id.as_deref(),
        result,
    )
    .await?;
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

fn date_bound(raw: &str) -> Result<(bool, chrono::NaiveDateTime), ApiError> {
    let bad = || ApiError::new(ErrorCode::InvalidSearchParameter, "date is [ge|gt|le|lt|eq]YYYY-MM-DD");
    let (prefix, date) = if raw.len() > 10 { raw.split_at(2) } else { ("eq", raw) };
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
    let start = day.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
    let next = start + chrono::Duration::days(1);
    // true = lower bound, false = upper bound (exclusive)
    match prefix {
        "ge" => Ok((true, start)),
        "gt" => Ok((true, next)),
        "le" => Ok((false, next)),
        "lt" => Ok((false, start)),
        _ => Err(bad()),
    }
}

/// Search the audit trail for a patient (staff of the patient's practice).
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("patient" = String, Query, description = "Patient/{id} or {id} (required)"),
        ("date" = Option<String>, Query, description = "Repeatable: geYYYY-MM-DD, leYYYY-MM-DD, or a single day YYYY-MM-DD"),
        ("_count" = Option<i64>, Query),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of AuditEvents, newest first", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "Missing or bad parameter", body = OperationOutcome),
        (status = 403, description = "Not staff of the patient's practice", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent")]
#[tracing::instrument(skip_all)]
pub async fn search_audit(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut patient = None;
    let (mut from, mut to) = (None, None);
    let mut params = std::collections::BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "patient" => patient = Some(v.strip_prefix("Patient/").unwrap_or(&v).to_owned()),
            "date" => {
                if v.len() == 10 {
                    let (_, start) = date_bound(&format!("ge{v}"))?;
                    let (_, end) = date_bound(&format!("le{v}"))?;
                    from = Some(start);
                    to = Some(end);
                } else {
                    match date_bound(&v)? {
                        (true, t) => from = Some(t),
                        (false, t) => to = Some(t),
                    }
                }
            }
            "_count" | "_offset" => {}
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidSearchParameter,
                    format!(
                        "search parameter '{other}' is not supported here (supported: patient, date, _count, _offset)"
                    ),
                ));
            }
        }
        params.insert(k.to_string(), v.to_string());
    }
    let patient = patient.ok_or_else(|| ApiError::new(ErrorCode::InvalidSearchParameter, "patient is required"))?;
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
    )?;
    // Staff only; reading the patient then confines them to their own practice.
    let allowed = match &principal {
        Principal::Staff(_) => patients::read(&state, &principal, patient.clone()).await.map(|_| ()),
        _ => Err(ApiError::forbidden("only practice staff may read the audit trail")),
    };
    audited(&state, &req, Some(&principal), "search-audit", Some(&patient), allowed).await?;
    let (offset, count) = (paging.offset, paging.count);
    let (total, events) = db::run(&state.pool, move |c| {
        crate::audit::search(c, &patient, from, to, offset, count)
    })
    .await?;
    let entries = events
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                serde_json::to_value(AuditEvent::from_stored(e)).unwrap_or_default(),
            )
        })
        .collect();
    Ok(resource(
        StatusCode::OK,
        &searchset(&state.base_url, "AuditEvent", &params, &paging, total, entries),
        None,
        None,
    ))
}

/// Recompute every audit hash chain and report the first break, if any (staff).
#[utoipa::path(
    tag = "AuditEvent",
    responses(
        (status = 200, description = "valid, chains, events, and firstBroken when the trail was altered", body = Parameters),
        (status = 403, description = "Not staff", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent/$verify")]
#[tracing::instrument(skip_all)]
pub async fn verify_audit(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    if !matches!(principal, Principal::Staff(_)) {
        return Err(ApiError::forbidden("only staff may verify the audit trail"));
    }
    let v = db::run(&state.pool, crate::audit::verify).await?;
    let mut parameter = vec![
        Parameter::boolean("valid", v.first_broken.is_none()),
        Parameter {
            name: "chains".into(),
            value_integer: Some(i64::try_from(v.chains).unwrap_or(i64::MAX)),
            ..Default::default()
        },
        Parameter {
            name: "events".into(),
            value_integer: Some(i64::try_from(v.events).unwrap_or(i64::MAX)),
            ..Default::default()
        },
    ];
    if let Some((id, seq, why)) = v.first_broken {
        parameter.push(Parameter::group(
            "firstBroken",
            vec![
                Parameter::reference("event", format!("AuditEvent/{id}")),
                Parameter {
                    name: "seq".into(),
                    value_integer: Some(seq),
                    ..Default::default()
                },
                Parameter::string("reason", why),
            ],
        ));
    }
    Ok(resource(StatusCode::OK, &Parameters::new(parameter), None, None))
}
