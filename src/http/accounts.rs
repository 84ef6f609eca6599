//! Online-account operations on a patient, the registration letter, and provisioning Tasks.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{Paging, RawBody, resource, resource_id};
use super::error::{ApiError, ErrorCode};
use super::search::{parse_query, searchset};
use crate::domain::policy::Action;
use crate::fhir::{Bundle, OperationOutcome, Parameters, Task, operations};
use crate::services::Caller;
use crate::services::access::{self, AnyTask, Target};
use crate::services::accounts::{self, Accepted};
use crate::state::AppState;

pub(super) fn accepted_response(base_url: &str, accepted: &Accepted) -> HttpResponse {
    let body = operations::accepted(
        &accepted.account,
        accepted.job.as_ref(),
        accepted.review.as_ref(),
        &accepted.warnings,
    );
    let mut response = resource(StatusCode::ACCEPTED, &body, None, None);
    if let Some(job) = &accepted.job
        && let Ok(v) = header::HeaderValue::from_str(&format!("{base_url}/Task/{}", job.id))
    {
        response.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    response
}

async fn patient_permit(
    state: &AppState,
    caller: &Caller,
    action: Action,
    id: &str,
) -> Result<access::Permit, ApiError> {
    let id = resource_id(id)?;
    Ok(access::authorize(&state.core, caller, action, Target::Patient(id)).await?)
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
            {"name": "email", "valueString": "lucy.evans@example.org"},
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
        (status = 403, description = "The caller's role may not register patients", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
        (status = 409, description = "The patient already has an account", body = OperationOutcome),
        (status = 422, description = "A registration condition is not met (the expression names it)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$register-online-services")]
#[tracing::instrument(skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::RegisterOnlineServices, &id).await?;
    let by = caller.principal.recorded_as();
    let input = operations::registration(&body.parameters()?, &by, state.core.clock.now().and_utc())?;
    let accepted = accounts::register(&state.core, permit, input, &by).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Change the services and record access of an existing online account.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "services", "part": [
                {"name": "appointments", "valueBoolean": true},
                {"name": "prescriptions", "valueBoolean": true},
                {"name": "messaging", "valueBoolean": false}
            ]},
            {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}
        ]
    })),
    responses(
        (status = 202, description = "Change accepted; forwarded to the supplier", body = Parameters),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 409, description = "The account cannot change in its state", body = OperationOutcome),
        (status = 422, description = "Not allowed for this account (the expression names why)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$set-online-access")]
#[tracing::instrument(skip_all)]
pub async fn set_access(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::SetOnlineAccess, &id).await?;
    let change = operations::access_change(&body.parameters()?)?;
    let accepted = accounts::set_access(&state.core, permit, change, &caller.principal.recorded_as()).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Issue a new linkage key; the old one stops working at once. A new letter must be printed.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 202, description = "Reset accepted", body = Parameters),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 409, description = "The account cannot be reset in its state", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$reset-online-account")]
#[tracing::instrument(skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::ResetOnlineAccount, &id).await?;
    let accepted = accounts::reset(&state.core, permit).await?;
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
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 409, description = "Not in a state that can be disabled", body = OperationOutcome),
        (status = 422, description = "No reason given", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$disable-online-account")]
#[tracing::instrument(skip_all)]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::DisableOnlineAccount, &id).await?;
    let reason = operations::disable_reason(&body.parameters()?)?;
    let accepted = accounts::set_enabled(&state.core, permit, false, Some(reason)).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Re-enable a disabled online account.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    responses(
        (status = 202, description = "Re-enabled; forwarded to the supplier", body = Parameters),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 409, description = "The account is not disabled", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$enable-online-account")]
#[tracing::instrument(skip_all)]
pub async fn enable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::EnableOnlineAccount, &id).await?;
    let accepted = accounts::set_enabled(&state.core, permit, true, None).await?;
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
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::ReadOnlineAccount, &id).await?;
    let (account, effective, codes) = crate::services::record_access::account_view(&state.core, &permit).await?;
    Ok(resource(
        StatusCode::OK,
        &operations::account(&account, &effective, &codes),
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
    /// The practice's address as printed: street lines, town, postcode (empty if not recorded).
    pub practice_address: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub practice_telephone: Option<String>,
    /// What the account gives now, in the words the letter prints.
    pub switched_on: Vec<String>,
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
            (String = "application/pdf"),
        )),
        (status = 404, description = "No such patient or no account", body = OperationOutcome),
        (status = 409, description = "No active account with a key, or the key expired (reset needed)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/$registration-letter")]
#[tracing::instrument(skip_all)]
pub async fn letter(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = patient_permit(&state, &caller, Action::PrintRegistrationLetter, &id).await?;
    let wants_pdf = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/pdf"));
    let letter = accounts::letter(&state.core, permit).await?;
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
        practice_address: crate::letter::address_lines(&letter),
        practice_telephone: letter.practice_telephone.as_ref().map(|t| t.as_str().to_owned()),
        switched_on: crate::letter::switched_on(&letter.access),
        patient_name: letter.patient_name.clone(),
        patient_identifier: LetterIdentifier {
            system: letter.patient_identifier.system().uri().into(),
            label: letter.patient_identifier.system().label().into(),
            value: letter.patient_identifier.value().into(),
        },
        account_id: letter.account_id.clone(),
        linkage_key: letter.linkage_key.clone(),
        printed_on: crate::fhir::date(letter.printed_on),
        expires_on: crate::fhir::date(letter.expires_on),
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
        AnyTask::ProxyReview(r) => Task::from_proxy_review(r),
        AnyTask::Bulk(j) => Task::from_bulk(j),
    }
}

async fn task_permit(state: &AppState, caller: &Caller, action: Action, id: &str) -> Result<access::Permit, ApiError> {
    let id = resource_id(id)?;
    Ok(access::authorize(&state.core, caller, action, Target::Task(id)).await?)
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
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = task_permit(&state, &caller, Action::ReadTask, &id).await?;
    let task = accounts::task(&permit)?;
    Ok(resource(StatusCode::OK, &task_json(&task), None, None))
}

const TASK_STATUSES: [&str; 5] = ["requested", "in-progress", "completed", "failed", "cancelled"];

/// Search Tasks for a patient, or a practice's worklist, optionally by status.
#[utoipa::path(
    tag = "Task",
    params(
        ("patient" = Option<String>, Query, description = "Patient/{id} or {id}: every Task about the patient"),
        ("owner" = Option<String>, Query, description = "Organization/{id}, an organisation id or an ODS code: the practice's worklist (provisioning jobs not completed, open record and proxy-role reviews, its recent opt-in jobs); one of patient and owner is required"),
        ("status" = Option<String>, Query, description = "requested | in-progress | completed | failed | cancelled"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of Tasks", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "Missing or bad parameter", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Task")]
#[tracing::instrument(skip_all)]
pub async fn search_tasks(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::SearchTasks, Target::Pending).await?;
    let params = parse_query(req.query_string(), &["patient", "owner", "status", "_count", "_offset"])?;
    let target = match (params.get("patient"), params.get("owner")) {
        (Some(patient), None) => {
            let patient = resource_id(patient.strip_prefix("Patient/").unwrap_or(patient)).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidSearchParameter,
                    "patient must be Patient/{id} or {id}",
                )
                .at("patient")
            })?;
            Target::Patient(patient)
        }
        (None, Some(owner)) => Target::Practice(practice_ref(owner)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "name either patient or owner, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "patient or owner is required",
            ));
        }
    };
    // Filtered on the FHIR Task status, which both kinds of Task map to in one place.
    let status = params.get("status").map(String::as_str);
    if status.is_some_and(|s| !TASK_STATUSES.contains(&s)) {
        return Err(ApiError::new(
            ErrorCode::InvalidSearchParameter,
            "status must be requested, in-progress, completed, failed or cancelled",
        ));
    }
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
        super::search::strict_handling(&req),
    )?;
    let worklist = matches!(target, Target::Practice(_));
    let permit = access::authorize(&state.core, &caller, Action::SearchTasks, target).await?;
    let found = if worklist {
        accounts::worklist(&state.core, &permit).await?
    } else {
        accounts::tasks_for(&state.core, &permit).await?
    };
    let mut tasks: Vec<Task> = found
        .iter()
        .map(task_json)
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
    request_body(content = Option<Parameters>, content_type = "application/fhir+json", description = "Optional note", example = json!({
        "resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "No third-party information found"}]
    })),
    responses(
        (status = 202, description = "Review completed; access change forwarded", body = Parameters),
        (status = 404, description = "No such Task (or not visible to the caller)", body = OperationOutcome),
        (status = 409, description = "Already completed", body = OperationOutcome),
        (status = 422, description = "Not a record-review Task", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Task/{id}/$complete")]
#[tracing::instrument(skip_all)]
pub async fn complete_task(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let permit = task_permit(&state, &caller, Action::CompleteTask, &id).await?;
    let (decision, note) = if body.is_empty() {
        (crate::domain::review::ReviewDecision::Approve, None)
    } else {
        let p = body.parameters()?;
        (operations::review_decision(&p)?, operations::note(&p)?)
    };
    let accepted =
        accounts::complete_review(&state.core, permit, decision, note, &caller.principal.recorded_as()).await?;
    Ok(accepted_response(&state.base_url, &accepted))
}

/// Retry a failed provisioning Task (after the supplier problem is fixed). Same idempotency key.
#[utoipa::path(
    tag = "Task",
    params(("id" = String, Path, description = "Provisioning Task id")),
    responses(
        (status = 200, description = "Queued again", body = Task),
        (status = 404, description = "No such Task (or not visible to the caller)", body = OperationOutcome),
        (status = 409, description = "The Task has not failed", body = OperationOutcome),
        (status = 422, description = "Not a provisioning Task", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Task/{id}/$retry")]
#[tracing::instrument(skip_all)]
pub async fn retry_task(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let permit = task_permit(&state, &caller, Action::RetryTask, &id).await?;
    let job = accounts::retry_job(&state.core, permit).await?;
    Ok(resource(StatusCode::OK, &Task::from_job(&job), None, None))
}

/// A practice as a Task search's `owner` names it: `Organization/{id}`, an organisation id, or
/// its ODS code.
fn practice_ref(raw: &str) -> Result<crate::domain::PracticeRef, ApiError> {
    use crate::domain::{OdsCode, PracticeRef};
    if let Some(id) = raw.strip_prefix("Organization/") {
        return Ok(PracticeRef::Id(resource_id(id)?));
    }
    if let Ok(ods) = OdsCode::parse(raw) {
        return Ok(PracticeRef::Ods(ods));
    }
    resource_id(raw).map(PracticeRef::Id).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidSearchParameter,
            "owner must be Organization/{id}, an organisation id or an ODS code",
        )
        .at("owner")
    })
}
