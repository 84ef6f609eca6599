//! Record-access codes, self-registration with NHS login, and a patient asking for record
//! access.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, post, web};

use super::body::{RawBody, resource, resource_id};
use super::error::{ApiError, ErrorCode};
use crate::domain::policy::Action;
use crate::domain::{NhsNumber, OdsCode};
use crate::fhir::{OperationOutcome, Parameter, Parameters, operations};
use crate::identity::Principal;
use crate::services::access::{self, Target};
use crate::services::{Caller, record_access};
use crate::state::AppState;

fn codes_result(changed: bool, codes: &[record_access::CodeEntry]) -> Parameters {
    let mut parameter = vec![Parameter::boolean("changed", changed)];
    parameter.extend(codes.iter().map(operations::access_code_group));
    Parameters::new(parameter)
}

async fn change_code(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: &RawBody,
    add: bool,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(id)?;
    let action = if add {
        Action::AddAccessCode
    } else {
        Action::RemoveAccessCode
    };
    let permit = access::authorize(&state.core, caller, action, Target::Patient(id)).await?;
    let code = operations::access_code(&body.parameters()?)?;
    let codes = record_access::codes_after(&state.core, permit, code, add, &caller.principal.recorded_as()).await?;
    Ok(resource(StatusCode::OK, &codes_result(codes.0, &codes.1), None, None))
}

/// Add a record-access code to a patient's record, with SNOMED CT `code`:
/// 1364731000000104 (enhanced review indicated: no automatic prospective access),
/// 1364751000000106 (enhanced review not indicated: overrides 104) or 1290331000000103 (online
/// access declined by the patient: no record access, do not re-approach). The supplier is told
/// at once what the patient's account gives now. Adding a code the record has changes nothing.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "code", "valueCoding": {"system": "http://snomed.info/sct", "code": "1364731000000104"}}]
    })),
    responses(
        (status = 200, description = "`changed` and the codes now on the record", body = Parameters),
        (status = 400, description = "No code, or an unknown one", body = OperationOutcome),
        (status = 403, description = "The caller's role may not change access", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$add-record-access-code")]
#[tracing::instrument(skip_all)]
pub async fn add_code(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    change_code(&state, &caller, &id, &body, true).await
}

/// Remove a record-access code from a patient's record (the record keeps who removed it and
/// when). Removing a code the record does not carry changes nothing.
#[utoipa::path(
    tag = "Online accounts",
    params(("id" = String, Path, description = "Patient id")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "code", "valueCoding": {"system": "http://snomed.info/sct", "code": "1364731000000104"}}]
    })),
    responses(
        (status = 200, description = "`changed` and the codes now on the record", body = Parameters),
        (status = 400, description = "No code, or an unknown one", body = OperationOutcome),
        (status = 403, description = "The caller's role may not change access", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/{id}/$remove-record-access-code")]
#[tracing::instrument(skip_all)]
pub async fn remove_code(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    change_code(&state, &caller, &id, &body, false).await
}

fn optional_string(p: &Parameters, name: &str) -> Option<String> {
    p.get(name)
        .and_then(|x| x.value_string.clone().or_else(|| x.value_code.clone()))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Register oneself for online services with NHS login: the patient's own token (P9), or an
/// identity provider acting for them (system scope `identity:register`, naming `nhsNumber`
/// and `odsCode`). No letter and no linkage key; the account gets appointments and repeat
/// prescriptions, and the record access the practice's model gives (opt-out: full prospective
/// access). Refused for under 16s, a practice with online services off, a record coded
/// 1290331000000103, and a patient not registered at the practice named.
#[utoipa::path(
    tag = "Patient access",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "nhsNumber", "valueString": "9990000158"},
            {"name": "odsCode", "valueString": "A81001"},
            {"name": "email", "valueString": "lucy.evans@example.org"}
        ]
    })),
    responses(
        (status = 202, description = "Account pending at the supplier; provisioning Task referenced", body = Parameters),
        (status = 403, description = "Not P9, or a system without identity:register", body = OperationOutcome),
        (status = 409, description = "ONLINE_ACCOUNT_EXISTS", body = OperationOutcome),
        (status = 422, description = "PATIENT_NOT_REGISTERED, PRACTICE_NOT_ENABLED or REGISTRATION_CONDITION_NOT_MET (under 16, declined)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/$register-online-services")]
#[tracing::instrument(skip_all)]
pub async fn register_self(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::RegisterSelf, Target::Pending).await?;
    let params = if body.is_empty() {
        Parameters::new(vec![])
    } else {
        body.parameters()?
    };
    let ods = match optional_string(&params, "odsCode") {
        Some(o) => Some(OdsCode::parse(&o).map_err(|_| ApiError::invalid("odsCode is not an ODS code").at("odsCode"))?),
        None => None,
    };
    let target = match &caller.principal {
        Principal::System(_) => {
            let nhs = optional_string(&params, "nhsNumber")
                .ok_or_else(|| ApiError::invalid("nhsNumber is required").at("nhsNumber"))?;
            let nhs = NhsNumber::parse(&nhs)
                .map_err(|_| ApiError::invalid("nhsNumber is not a valid NHS number").at("nhsNumber"))?;
            if ods.is_none() {
                return Err(ApiError::invalid("odsCode is required").at("odsCode"));
            }
            Target::PatientNhs(nhs)
        }
        _ => Target::OwnRecord,
    };
    let permit = match access::authorize(&state.core, &caller, Action::RegisterSelf, target).await {
        // A number no practice here holds is answered like one registered elsewhere.
        Err(crate::services::Error::Refused { refusal, .. }) if access::hides_target(&refusal) => None,
        other => Some(other?),
    };
    let registered = permit
        .as_ref()
        .and_then(|p| p.patient.as_ref())
        .map(|p| p.practice_ods.clone());
    // Unknown anywhere and registered elsewhere get the same answer: the identity provider
    // learns nothing about a practice it did not name.
    let named_practice = match (&registered, &ods) {
        (Some(at), Some(named)) => at == named,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !named_practice {
        access::conclude(&state.core, &caller, None).await?;
        return Err(ApiError::new(
            ErrorCode::PatientNotRegistered,
            "the patient is not registered at the practice named (or at any practice using this service)",
        )
        .at("odsCode"));
    }
    let Some(permit) = permit else {
        return Err(ApiError::new(
            ErrorCode::InternalError,
            "a refused registration reached the service",
        ));
    };
    let email = optional_string(&params, "email");
    let accepted = record_access::register_self(&state.core, permit, &caller, email).await?;
    Ok(super::accounts::accepted_response(&state.base_url, &accepted))
}

/// A patient asks their practice for (more) record access from their app. Creates a
/// record-review Task; the practice approves it (`$complete`) or declines it with a reason.
/// At an opt-in practice this is how a patient gets record access.
#[utoipa::path(
    tag = "Patient access",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "recordAccess", "part": [
            {"name": "level", "valueCode": "full"},
            {"name": "from", "valueDate": "2026-12-01"}
        ]}]
    })),
    responses(
        (status = 202, description = "The request, as a review Task for the practice", body = Parameters),
        (status = 403, description = "Not P9, or no active online account", body = OperationOutcome),
        (status = 409, description = "A request is already waiting", body = OperationOutcome),
        (status = 422, description = "The record says the patient declined online access", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/$request-record-access")]
#[tracing::instrument(skip_all)]
pub async fn request_record_access(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let permit = access::authorize(&state.core, &caller, Action::RequestRecordAccess, Target::OwnRecord).await?;
    let change = operations::access_change(&body.parameters()?)?;
    let current = permit
        .account
        .as_ref()
        .map(|a| a.latest_access().clone())
        .unwrap_or_else(crate::domain::AccessSettings::none);
    let requested = change.applied_to(&current);
    let accepted =
        record_access::request_record_access(&state.core, permit, requested, &caller.principal.caller_key()).await?;
    Ok(super::accounts::accepted_response(&state.base_url, &accepted))
}

/// Move a practice to opt-in record access, as one resumable job.
///
/// The practice's model becomes opt-in at once. Then every patient of 16 or over (and those
/// turning 16 within `turningSixteenWithinDays`) without record access is given
/// 1364731000000104, and every account whose record access was given automatically is told to
/// give none until the patient opts in. Progress and counts are on the returned Task; a job
/// already running is answered instead of starting another.
#[utoipa::path(
    tag = "Organization",
    params(("id" = String, Path, description = "Logical id of the practice")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "turningSixteenWithinDays", "valueInteger": 90}]
    })),
    responses(
        (status = 202, description = "The job's Task (`Content-Location`); poll it for progress", content_type = "application/fhir+json"),
        (status = 400, description = "turningSixteenWithinDays is not 0 to 365", body = OperationOutcome),
        (status = 403, description = "The caller's role may not change the practice's settings", body = OperationOutcome),
        (status = 404, description = "No such practice", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Organization/{id}/$apply-opt-in-model")]
#[tracing::instrument(skip_all)]
pub async fn apply_opt_in_model(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    let permit = access::authorize(
        &state.core,
        &caller,
        Action::ApplyOptInModel,
        Target::Practice(crate::domain::PracticeRef::Id(id)),
    )
    .await?;
    let params = if body.is_empty() {
        Parameters::new(vec![])
    } else {
        body.parameters()?
    };
    let days = match params.get("turningSixteenWithinDays") {
        None => 0,
        Some(p) => p
            .value_integer
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| *d <= 365)
            .ok_or_else(|| {
                ApiError::invalid("turningSixteenWithinDays needs valueInteger from 0 to 365")
                    .at("turningSixteenWithinDays")
            })?,
    };
    let (job, _) = crate::services::bulk::start_opt_in(
        &state.core,
        permit,
        crate::domain::record_access::OptInParams {
            turning_sixteen_within_days: days,
        },
        &caller.principal.recorded_as(),
    )
    .await?;
    let mut response = resource(StatusCode::ACCEPTED, &crate::fhir::Task::from_bulk(&job), None, None);
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("{}/Task/{}", state.base_url, job.id)) {
        response
            .headers_mut()
            .insert(actix_web::http::header::CONTENT_LOCATION, v);
    }
    Ok(response)
}

fn report(r: &crate::services::transitions::TransitionReport) -> Parameters {
    Parameters::new(vec![
        Parameter {
            name: "asOf".into(),
            value_date_time: Some(crate::fhir::instant(r.as_of.and_utc())),
            ..Default::default()
        },
        Parameter::count("accountsUpdated", r.accounts_updated),
        Parameter::count("lettersExpired", r.letters_expired),
        Parameter::count("rolesEnded", r.roles_ended),
    ])
}

/// Run the daily transitions now: patients who turned 16 get what the practice's model gives,
/// registration letters past their two weeks are marked expired, lapsed proxy roles end. Safe
/// to run again. Outside production, `now` runs them as of another time.
#[utoipa::path(
    tag = "Operations",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [{"name": "now", "valueDateTime": "2027-06-01T02:00:00Z"}]
    })),
    responses(
        (status = 200, description = "What changed", body = Parameters),
        (status = 400, description = "`now` is malformed, or given in production", body = OperationOutcome),
        (status = 403, description = "Not a system client with operations:transitions", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/$run-transitions")]
#[tracing::instrument(skip_all)]
pub async fn run_transitions(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::RunTransitions, Target::None).await?;
    let params = if body.is_empty() {
        Parameters::new(vec![])
    } else {
        body.parameters()?
    };
    let now = match params.get("now") {
        None => state.core.clock.now(),
        Some(_) if state.core.settings.env == crate::config::Environment::Production => {
            return Err(ApiError::invalid("now cannot be set in production").at("now"));
        }
        Some(p) => p
            .value_date_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc).naive_utc())
            .ok_or_else(|| ApiError::invalid("now needs valueDateTime with a time zone").at("now"))?,
    };
    let r = crate::services::transitions::run(&state.core, now).await?;
    Ok(resource(StatusCode::OK, &report(&r), None, None))
}

/// Record a registration event from a supplier system (system scope `supplier:events`):
/// `type` `transferred` (the patient's registration moved to `odsCode`), `deceased`, or
/// `code-added` / `code-removed` (a record-access `code` set in the clinical system), with
/// `eventId`, `nhsNumber` and `date`. A move ends access and proxy roles at the old practice and
/// lets the patient be registered at the new one, with prospective access from the move; a
/// death ends the patient's access and roles, and roles in which they were the proxy. The same
/// `eventId` again answers what the first did and changes nothing.
#[utoipa::path(
    tag = "Operations",
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters", "parameter": [
            {"name": "eventId", "valueString": "emis-evt-000123"},
            {"name": "type", "valueCode": "transferred"},
            {"name": "nhsNumber", "valueString": "9990000158"},
            {"name": "odsCode", "valueString": "B82005"},
            {"name": "date", "valueDate": "2026-11-30"}
        ]
    })),
    responses(
        (status = 200, description = "What the event did (`replayed` for a repeat)", body = Parameters),
        (status = 400, description = "A missing or malformed part, or a date in the future", body = OperationOutcome),
        (status = 403, description = "Not a system client with supplier:events", body = OperationOutcome),
        (status = 409, description = "Another system already sent an event with this id", body = OperationOutcome),
        (status = 422, description = "PATIENT_NOT_REGISTERED or UNKNOWN_PRACTICE", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/$registration-event")]
#[tracing::instrument(skip_all)]
pub async fn registration_event(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::RecordRegistrationEvent, Target::Pending).await?;
    let p = body.parameters()?;
    let required =
        |name: &str| optional_string(&p, name).ok_or_else(|| ApiError::invalid(format!("{name} is required")).at(name));
    let event_id = required("eventId")?;
    if event_id.chars().count() > 128 || !event_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid("eventId is 1 to 128 visible ASCII characters").at("eventId"));
    }
    let nhs = NhsNumber::parse(&required("nhsNumber")?)
        .map_err(|_| ApiError::invalid("nhsNumber is not a valid NHS number").at("nhsNumber"))?;
    let on = p
        .get("date")
        .and_then(|d| d.value_date.as_deref())
        .and_then(operations::parse_date)
        .ok_or_else(|| ApiError::invalid("date needs valueDate (YYYY-MM-DD)").at("date"))?;
    let kind = match required("type")?.as_str() {
        "transferred" => crate::services::events::EventKind::Transferred {
            to: OdsCode::parse(&required("odsCode")?)
                .map_err(|_| ApiError::invalid("odsCode is not an ODS code").at("odsCode"))?,
        },
        "deceased" => crate::services::events::EventKind::Deceased,
        kind @ ("code-added" | "code-removed") => crate::services::events::EventKind::Code {
            code: operations::access_code(&p)?,
            added: kind == "code-added",
        },
        _ => {
            return Err(ApiError::invalid("type is transferred, deceased, code-added or code-removed").at("type"));
        }
    };
    let outcome = crate::services::events::record(
        &state.core,
        &caller,
        crate::services::events::RegistrationEvent {
            event_id,
            kind,
            nhs_number: nhs,
            on,
        },
    )
    .await?;
    Ok(resource(
        StatusCode::OK,
        &Parameters::new(vec![
            Parameter::string("eventId", outcome.event_id.clone()),
            Parameter::code("outcome", outcome.outcome.clone()),
            Parameter::reference("patient", format!("Patient/{}", outcome.patient_id)),
            Parameter::count("accountsEnded", outcome.accounts_ended),
            Parameter::count("rolesEnded", outcome.roles_ended),
            Parameter::boolean("replayed", outcome.replayed),
        ]),
        None,
        None,
    ))
}
