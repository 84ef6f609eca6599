//! Online-account operations on a patient, the registration letter, and provisioning Tasks.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::audit::audited;
use super::auth::Authenticated;
use super::body::{FhirBody, Paging, resource};
use super::search::{parse_query, searchset};
use crate::db::accounts::OnlineAccount;
use crate::domain::registration::RuleViolation;
use crate::domain::{AccessSettings, IdentityVerification, RecordAccessLevel, Services, VerificationMethod};
use crate::error::{ApiError, ErrorCode};
use crate::fhir::{Bundle, OperationOutcome, OperationOutcomeIssue, Parameter, Parameters, Task};
use crate::identity::Principal;
use crate::services::accounts::{self, Accepted, AnyTask, RegistrationInput, violation};
use crate::state::AppState;

fn rule(field: &str, message: &str) -> ApiError {
    violation(RuleViolation::new(field, message))
}

fn check_parameters(p: &Parameters) -> Result<(), ApiError> {
    if p.resource_type != "Parameters" {
        return Err(ApiError::invalid_resource(
            "the body must be a Parameters resource",
            "Parameters.resourceType",
        ));
    }
    Ok(())
}

fn required_bool(p: &Parameters, name: &str) -> Result<bool, ApiError> {
    p.get(name)
        .and_then(|x| x.value_boolean)
        .ok_or_else(|| rule(name, &format!("{name} is required (valueBoolean)")))
}

fn parse_access(p: &Parameters) -> Result<AccessSettings, ApiError> {
    let flag = |group: &Parameter, name: &str| -> Result<bool, ApiError> {
        match group.part(name) {
            None => Ok(false),
            Some(x) => x
                .value_boolean
                .ok_or_else(|| rule(&format!("services.{name}"), "needs valueBoolean")),
        }
    };
    let services = match p.get("services") {
        None => Services::default(),
        Some(g) => {
            if let Some(unknown) = g
                .part
                .iter()
                .find(|x| !["appointments", "prescriptions", "messaging"].contains(&x.name.as_str()))
            {
                return Err(rule(
                    &format!("services.{}", unknown.name),
                    "unknown service (appointments, prescriptions or messaging)",
                ));
            }
            Services {
                appointments: flag(g, "appointments")?,
                prescriptions: flag(g, "prescriptions")?,
                messaging: flag(g, "messaging")?,
            }
        }
    };
    let (record_level, record_from) = match p.get("recordAccess") {
        None => (RecordAccessLevel::None, None),
        Some(g) => {
            let level = g.part("level").and_then(|x| x.value_code.as_deref()).ok_or_else(|| {
                rule(
                    "recordAccess.level",
                    "recordAccess needs a level (none, summary, detailed-coded or full)",
                )
            })?;
            let level = RecordAccessLevel::parse(level).ok_or_else(|| {
                rule(
                    "recordAccess.level",
                    "level must be none, summary, detailed-coded or full",
                )
            })?;
            let from = match g.part("from") {
                None => None,
                Some(x) => Some(
                    x.value_date
                        .as_deref()
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                        .ok_or_else(|| rule("recordAccess.from", "from must be a date (valueDate, YYYY-MM-DD)"))?,
                ),
            };
            (level, from)
        }
    };
    Ok(AccessSettings {
        services,
        record_level,
        record_from,
    })
}

fn parse_registration(p: &Parameters, principal: &Principal) -> Result<RegistrationInput, ApiError> {
    check_parameters(p)?;
    let v = p
        .get("identityVerification")
        .ok_or_else(|| rule("identityVerification", "record how the patient's identity was verified"))?;
    let method = v
        .part("method")
        .and_then(|m| m.value_code.as_deref())
        .ok_or_else(|| rule("identityVerification.method", "method is required"))?;
    let method = VerificationMethod::parse(method).ok_or_else(|| {
        rule(
            "identityVerification.method",
            "method must be nhs-login-p9, documents-in-person, vouching or vouching-with-record-confirmation",
        )
    })?;
    let documents = v.parts("document").filter_map(|d| d.value_string.clone()).collect();
    let verified_by = match v.part("verifiedBy") {
        Some(b) => b
            .value_string
            .clone()
            .ok_or_else(|| rule("identityVerification.verifiedBy", "verifiedBy needs valueString"))?,
        None => match principal {
            Principal::Staff(s) => s.subject.clone(),
            _ => String::new(),
        },
    };
    let verified_at = match v.part("verifiedAt") {
        Some(t) => t
            .value_date_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                rule(
                    "identityVerification.verifiedAt",
                    "verifiedAt must be a dateTime with a time zone",
                )
            })?,
        None => Utc::now(),
    };
    Ok(RegistrationInput {
        verification: IdentityVerification {
            method,
            documents,
            verified_by,
            verified_at,
        },
        email: match p.get("email") {
            None => None,
            Some(e) => Some(
                e.value_string
                    .clone()
                    .ok_or_else(|| rule("email", "email needs valueString"))?,
            ),
        },
        responsibilities_acknowledged: required_bool(p, "responsibilitiesAcknowledged")?,
        coercion_considered: required_bool(p, "coercionConsidered")?,
        capacity_considered: required_bool(p, "capacityConsidered")?,
        access: parse_access(p)?,
    })
}

fn access_parts(a: &AccessSettings) -> Vec<Parameter> {
    let mut record = vec![Parameter::code("level", a.record_level.as_str())];
    if let Some(from) = a.record_from {
        record.push(Parameter::date("from", from));
    }
    vec![
        Parameter::group(
            "services",
            vec![
                Parameter::boolean("appointments", a.services.appointments),
                Parameter::boolean("prescriptions", a.services.prescriptions),
                Parameter::boolean("messaging", a.services.messaging),
            ],
        ),
        Parameter::group("recordAccess", record),
    ]
}

fn account_group(a: &OnlineAccount) -> Parameter {
    let mut parts = vec![Parameter::code("status", a.status.as_str())];
    if let Some(reason) = &a.status_reason {
        parts.push(Parameter::string("statusReason", reason.clone()));
    }
    if let Some(id) = &a.account_id {
        parts.push(Parameter::string("accountId", id.clone()));
    }
    if !a.email.is_empty() {
        parts.push(Parameter::string("email", a.email.clone()));
    }
    parts.push(Parameter::string("verificationMethod", a.verification.method.as_str()));
    parts.extend(access_parts(&a.access));
    parts.push(Parameter::boolean("linkageKeyIssued", a.linkage_key_sealed.is_some()));
    if let Some(expires) = a.letter_expires_at {
        parts.push(Parameter::date_time("letterExpiresAt", expires.and_utc()));
    }
    if let Some(e) = &a.last_error {
        parts.push(Parameter::string("lastError", e.clone()));
    }
    Parameter::group("account", parts)
}

fn accepted_response(base_url: &str, accepted: &Accepted) -> HttpResponse {
    let mut parameter = vec![account_group(&accepted.account)];
    if let Some(job) = &accepted.job {
        parameter.push(Parameter::reference("task", format!("Task/{}", job.id)));
    }
    if let Some(review) = &accepted.review {
        parameter.push(Parameter::reference("reviewTask", format!("Task/{}", review.id)));
    }
    let mut issues: Vec<OperationOutcomeIssue> = accepted
        .warnings
        .iter()
        .map(|w| OperationOutcomeIssue {
            severity: "warning".into(),
            code: "business-rule".into(),
            details: None,
            diagnostics: Some(w.clone()),
            expression: vec![],
        })
        .collect();
    if accepted.review.is_some() {
        issues.push(OperationOutcomeIssue {
            severity: "information".into(),
            code: "informational".into(),
            details: None,
            diagnostics: Some("historic record access waits for a record review; prospective access starts now. Explain the delay to the patient.".into()),
            expression: vec![],
        });
    }
    if !issues.is_empty() {
        let outcome = OperationOutcome {
            resource_type: "OperationOutcome".into(),
            issue: issues,
        };
        parameter.push(Parameter::resource(
            "outcome",
            serde_json::to_value(outcome).unwrap_or_default(),
        ));
    }
    let mut response = resource(StatusCode::ACCEPTED, &Parameters::new(parameter), None, None);
    if let Some(job) = &accepted.job
        && let Ok(v) = header::HeaderValue::from_str(&format!("{base_url}/Task/{}", job.id))
    {
        response.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    response
}

/// Register a patient for online services and create their account at the practice's supplier.
///
/// Records identity verification, the email address, the staff attestation and the requested
/// access. The account is `pending` until the supplier confirms (see the returned Task).
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "identityVerification", "part": [
                {"name": "method", "valueCode": "documents-in-person"},
                {"name": "document", "valueString": "passport"},
                {"name": "verifiedAt", "valueDateTime": "2026-11-21T10:00:00Z"}
            ]},
            {"name": "email", "valueString": "jane.smith@example.org"},
            {"name": "responsibilitiesAcknowledged", "valueBoolean": true},
            {"name": "coercionConsidered", "valueBoolean": true},
            {"name": "capacityConsidered", "valueBoolean": true},
            {"name": "services", "part": [
                {"name": "appointments", "valueBoolean": true},
                {"name": "prescriptions", "valueBoolean": true},
                {"name": "messaging", "valueBoolean": true}
            ]},
            {"name": "recordAccess", "part": [
                {"name": "level", "valueCode": "full"},
                {"name": "from", "valueDate": "2026-11-21"}
            ]}
        ]
    })),
    responses(
        (status = 202, description = "Account pending; provisioning Task referenced", body = Parameters, content_type = "application/fhir+json"),
        (status = 403, description = "Not staff of the patient's practice", body = OperationOutcome),
        (status = 409, description = "The patient already has an account", body = OperationOutcome),
        (status = 422, description = "A registration condition is not met (the expression names it)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$register-online-services")]
#[tracing::instrument(skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
    FhirBody(body): FhirBody<Parameters>,
) -> Result<HttpResponse, ApiError> {
    let result = match parse_registration(&body, &principal) {
        Ok(input) => accounts::register(&state, &principal, &id, input).await,
        Err(e) => Err(e),
    };
    let accepted = audited(&state, &req, Some(&principal), "register", Some(&id), result).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Change the services and record access of an existing online account.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json"),
    responses(
        (status = 202, description = "Change accepted; forwarded to the supplier", body = Parameters),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 422, description = "Not allowed for this account (the expression names why)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$set-online-access")]
#[tracing::instrument(skip_all)]
pub async fn set_access(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
    FhirBody(body): FhirBody<Parameters>,
) -> Result<HttpResponse, ApiError> {
    let result = match check_parameters(&body).and_then(|_| parse_access(&body)) {
        Ok(access) => accounts::set_access(&state, &principal, &id, access).await,
        Err(e) => Err(e),
    };
    let accepted = audited(&state, &req, Some(&principal), "set-online-access", Some(&id), result).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Issue a new linkage key; the old one stops working at once. A new letter must be printed.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 202, description = "Reset accepted", body = Parameters),
        (status = 409, description = "The account cannot be reset in its state", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$reset-online-account")]
#[tracing::instrument(skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let result = accounts::reset(&state, &principal, &id).await;
    let accepted = audited(
        &state,
        &req,
        Some(&principal),
        "reset-online-account",
        Some(&id),
        result,
    )
    .await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Disable an online account (for example after misuse). A reason is required.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "suspected coercion"}]
    })),
    responses(
        (status = 202, description = "Disabled; forwarded to the supplier", body = Parameters),
        (status = 409, description = "Not in a state that can be disabled", body = OperationOutcome),
        (status = 422, description = "No reason given", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$disable-online-account")]
#[tracing::instrument(skip_all)]
pub async fn disable(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
    FhirBody(body): FhirBody<Parameters>,
) -> Result<HttpResponse, ApiError> {
    let reason = check_parameters(&body).and_then(|_| {
        body.get("reason")
            .and_then(|r| r.value_string.clone())
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty() && r.chars().count() <= 500)
            .ok_or_else(|| {
                rule(
                    "reason",
                    "say why the account is being disabled (at most 500 characters)",
                )
            })
    });
    let result = match reason {
        Ok(reason) => accounts::set_enabled(&state, &principal, &id, false, Some(reason)).await,
        Err(e) => Err(e),
    };
    let accepted = audited(
        &state,
        &req,
        Some(&principal),
        "disable-online-account",
        Some(&id),
        result,
    )
    .await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Re-enable a disabled online account.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 202, description = "Re-enabled; forwarded to the supplier", body = Parameters),
        (status = 409, description = "The account is not disabled", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$enable-online-account")]
#[tracing::instrument(skip_all)]
pub async fn enable(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let result = accounts::set_enabled(&state, &principal, &id, true, None).await;
    let accepted = audited(
        &state,
        &req,
        Some(&principal),
        "enable-online-account",
        Some(&id),
        result,
    )
    .await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// The patient's online account: status, services, record access (never the linkage key).
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 200, description = "The account", body = Parameters),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/$online-account")]
#[tracing::instrument(skip_all)]
pub async fn account(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let result = accounts::account_for(&state, &principal, &id).await;
    let (_, _, account) = audited(&state, &req, Some(&principal), "read-online-account", Some(&id), result).await?;
    Ok(resource(
        StatusCode::OK,
        &Parameters::new(vec![account_group(&account)]),
        Some(account.version),
        Some(account.last_updated()),
    ))
}

/// The registration letter in its JSON form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationLetter {
    pub practice_name: String,
    /// The practice's ODS code.
    pub practice_id: String,
    pub patient_name: String,
    pub patient_identifier: LetterIdentifier,
    pub account_id: String,
    pub linkage_key: String,
    pub printed_on: String,
    /// After this date the details stop working and the account must be reset.
    pub expires_on: String,
    pub guidance: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LetterIdentifier {
    pub system: String,
    /// NHS number, CHI number or H&C number
    pub label: String,
    pub value: String,
}

/// Print the registration letter: PDF with `Accept: application/pdf`, JSON otherwise.
///
/// The only place the linkage key is ever returned. The first print starts its 14-day validity.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 200, description = "The letter", content(
            (RegistrationLetter = "application/json"),
            (Vec<u8> = "application/pdf"),
        )),
        (status = 409, description = "No active account with a key, or the key expired (reset needed)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/$registration-letter")]
#[tracing::instrument(skip_all)]
pub async fn letter(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wants_pdf = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/pdf"));
    let result = accounts::letter(&state, &principal, &id).await;
    let letter = audited(&state, &req, Some(&principal), "letter", Some(&id), result).await?;
    if wants_pdf {
        return Ok(HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                "inline; filename=\"registration-letter.pdf\"",
            ))
            .body(crate::letter::render_pdf(&letter)));
    }
    let body = RegistrationLetter {
        practice_name: letter.practice_name.clone(),
        practice_id: letter.ods_code.clone(),
        patient_name: letter.patient_name.clone(),
        patient_identifier: LetterIdentifier {
            system: letter.patient_identifier.system().uri().into(),
            label: letter.patient_identifier.system().label().into(),
            value: letter.patient_identifier.value().into(),
        },
        account_id: letter.account_id.clone(),
        linkage_key: letter.linkage_key.clone(),
        printed_on: letter.printed_on.format("%Y-%m-%d").to_string(),
        expires_on: letter.expires_on.format("%Y-%m-%d").to_string(),
        guidance: crate::letter::GUIDANCE.iter().map(|g| (*g).to_owned()).collect(),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

fn task_json(t: &AnyTask) -> Task {
    match t {
        AnyTask::Job(j) => Task::from_job(j),
        AnyTask::Review(r) => Task::from_review(r),
    }
}

/// Read a Task: a provisioning job (attempts, last error) or a record review.
#[utoipa::path(
    tag = "Task",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "The Task", body = Task, content_type = "application/fhir+json"),
        (status = 404, description = "No such Task (or not visible to the caller)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Task/{id}")]
#[tracing::instrument(skip_all)]
pub async fn read_task(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = accounts::task(&state, &principal, &id).await?;
    Ok(resource(StatusCode::OK, &task_json(&task), None, None))
}

/// Search Tasks for a patient, optionally by status.
#[utoipa::path(
    tag = "Task",
    params(
        ("patient" = String, Query, description = "Patient/{id} or {id} (required)"),
        ("status" = Option<String>, Query, description = "requested | in-progress | completed | failed | cancelled"),
        ("_count" = Option<i64>, Query),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of Tasks", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "Missing or bad parameter", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Task")]
#[tracing::instrument(skip_all)]
pub async fn search_tasks(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = parse_query(req.query_string(), &["patient", "status", "_count", "_offset"])?;
    let patient = params
        .get("patient")
        .map(|p| p.strip_prefix("Patient/").unwrap_or(p).to_owned())
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidSearchParameter, "patient is required"))?;
    // Filtered on the FHIR Task status, which both kinds of Task map to in one place.
    let status = params.get("status").map(String::as_str);
    if status.is_some_and(|s| !["requested", "in-progress", "completed", "failed", "cancelled"].contains(&s)) {
        return Err(ApiError::new(
            ErrorCode::InvalidSearchParameter,
            "status must be requested, in-progress, completed, failed or cancelled",
        ));
    }
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
    )?;
    let (jobs, reviews) = accounts::tasks_for(&state, &principal, &patient).await?;
    let mut tasks: Vec<Task> = jobs
        .iter()
        .map(Task::from_job)
        .chain(reviews.iter().map(Task::from_review))
        .filter(|t| status.is_none_or(|s| t.status == s))
        .collect();
    tasks.sort_by(|a, b| a.authored_on.cmp(&b.authored_on).then(a.id.cmp(&b.id)));
    let total = i64::try_from(tasks.len()).unwrap_or(0);
    let page = tasks
        .into_iter()
        .skip(usize::try_from(paging.offset).unwrap_or(0))
        .take(usize::try_from(paging.count).unwrap_or(0))
        .map(|t| (t.id.clone(), serde_json::to_value(&t).unwrap_or_default()))
        .collect();
    Ok(resource(
        StatusCode::OK,
        &searchset(&state.base_url, "Task", &params, &paging, total, page),
        None,
        None,
    ))
}

/// Complete a record-review Task: switches the reviewed historic access on.
#[utoipa::path(
    tag = "Task",
    params(("id" = String, Path, description = "Record-review Task id")),
    request_body(content = Option<Parameters>, content_type = "application/fhir+json", description = "Optional note: {\"name\":\"note\",\"valueString\":...}"),
    responses(
        (status = 202, description = "Review completed; access change forwarded", body = Parameters),
        (status = 409, description = "Already completed", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Task/{id}/$complete")]
#[tracing::instrument(skip_all)]
pub async fn complete_task(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
    body: Option<FhirBody<Parameters>>,
) -> Result<HttpResponse, ApiError> {
    let note = body.and_then(|FhirBody(p)| p.get("note").and_then(|n| n.value_string.clone()));
    let accepted = accounts::complete_review(&state, &principal, &id, note).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Retry a failed provisioning Task (after the supplier problem is fixed). Same idempotency key.
#[utoipa::path(
    tag = "Task",
    params(("id" = String, Path, description = "Provisioning Task id")),
    responses(
        (status = 200, description = "Queued again", body = Task),
        (status = 409, description = "The Task has not failed", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Task/{id}/$retry")]
#[tracing::instrument(skip_all)]
pub async fn retry_task(
    state: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = accounts::retry_job(&state, &principal, &id).await?;
    Ok(resource(StatusCode::OK, &Task::from_job(&job), None, None))
}
