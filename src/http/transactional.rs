//! Appointments (`Slot`, `Appointment`) and repeat prescriptions (`MedicationRequest` with
//! `intent=plan` for the repeats that may be requested, `intent=order` for the requests), in R4,
//! for the patient and the people who act for them, modelled on GP Connect (Patient Facing)
//! Appointment Management and Prescriptions.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{Duration, NaiveDateTime};
use serde_json::{Value, json};

use super::body::{Paging, RawBody};
use super::error::{ApiError, ErrorCode};
use super::search::{parse_pairs_with, searchset, strict_handling};
use crate::domain::policy::Action;
use crate::domain::text::is_resource_id;
use crate::domain::transactional::{
    self, Appointment, AppointmentStatus, DayRange, PrescriptionRequest, PrescriptionStatus, RepeatMedication, Slot,
};
use crate::fhir::{FHIR_JSON, OperationOutcome, UtcInstant};
use crate::services::Caller;
use crate::services::access::{self, Target};
use crate::services::transactional::{self as desk, Desk, Whose};
use crate::state::AppState;

const STATUS_EXTENSION: &str = "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/prescription-request-status";
const COURSE_OF_THERAPY: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy";

/// Answers about a patient's care: never kept by anyone on the way.
fn private(status: actix_web::http::StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(FHIR_JSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// An R4 `instant` (the suppliers' times are UTC).
fn instant(at: NaiveDateTime) -> String {
    UtcInstant(at).to_string()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSearchParameter, message)
}

/// The query's parameters, each given at most once except those in `repeatable`.
fn query(req: &HttpRequest, allowed: &[&str], repeatable: &[&str]) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in parse_pairs_with(req.query_string(), allowed, strict_handling(req))? {
        let values = params.entry(k.clone()).or_default();
        if !values.is_empty() && !repeatable.contains(&k.as_str()) {
            return Err(invalid(format!("search parameter '{k}' may be given only once")));
        }
        values.push(v);
    }
    Ok(params)
}

fn first<'a>(params: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    params.get(name).and_then(|v| v.first()).map(String::as_str)
}

/// `patient=Patient/{id}` or `patient={id}`; absent: the caller's own record.
fn whose(raw: Option<&str>, at: &str) -> Result<Whose, ApiError> {
    let Some(raw) = raw else {
        return Ok(Whose::Own);
    };
    let id = raw.strip_prefix("Patient/").unwrap_or(raw);
    if !is_resource_id(id) {
        return Err(invalid(format!("{at} must be Patient/{{id}}")).at(at.to_owned()));
    }
    Ok(Whose::Id(id.to_owned()))
}

/// The params as the Bundle's self link repeats them.
fn flat(params: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    params.iter().map(|(k, v)| (k.clone(), v.join(","))).collect()
}

/// One page of a search: only the resources on the page are built.
fn page<'a, T, R: serde::Serialize>(
    state: &AppState,
    req: &HttpRequest,
    resource_type: &str,
    params: &BTreeMap<String, Vec<String>>,
    items: &'a [T],
    resource: impl Fn(&'a T) -> Vec<(String, R)>,
) -> Result<HttpResponse, ApiError> {
    let paging = Paging::parse(first(params, "_count"), first(params, "_offset"), strict_handling(req))?;
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let shown = items
        .iter()
        .skip(usize::try_from(paging.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.count).unwrap_or(0))
        .flat_map(resource)
        .collect();
    let bundle = searchset(&state.base_url, resource_type, &flat(params), &paging, total, shown);
    Ok(private(actix_web::http::StatusCode::OK, &bundle))
}

/// `start` as a slot search takes it: `ge`/`le` prefixes (or a bare day, for that day), with
/// `end=le...` as GP Connect sends the upper bound.
fn day_range(params: &BTreeMap<String, Vec<String>>) -> Result<DayRange, ApiError> {
    use super::search::{DatePrefix, parse_date_param};
    let mut from = None;
    let mut to = None;
    for (name, values) in params
        .iter()
        .filter(|(k, _)| k.as_str() == "start" || k.as_str() == "end")
    {
        for v in values {
            // Read as any date search value is; a year, a month or a dateTime stands for the
            // days it covers.
            let p = parse_date_param(name, v)?;
            let first = p.from.date();
            let last = (p.to - Duration::seconds(1)).date();
            match p.prefix {
                DatePrefix::Ge => from = Some(first),
                DatePrefix::Gt => from = Some(last + Duration::days(1)),
                DatePrefix::Le => to = Some(last),
                DatePrefix::Lt => to = Some(first - Duration::days(1)),
                DatePrefix::Eq => {
                    from = Some(first);
                    to = Some(last);
                }
                DatePrefix::Ne | DatePrefix::Sa | DatePrefix::Eb => {
                    return Err(
                        invalid(format!("{name} takes ge, gt, le, lt or eq: {name}=ge2026-01-31")).at(name.to_owned()),
                    );
                }
            }
        }
    }
    let from = from.ok_or_else(|| invalid("start=ge{date} is required: the first day to search").at("start"))?;
    let to =
        to.ok_or_else(|| invalid("start=le{date} (or end=le{date}) is required: the last day to search").at("start"))?;
    DayRange::new(from, to).map_err(|m| ApiError::new(ErrorCode::InvalidSearchParameter, m).at("start"))
}

#[derive(serde::Serialize)]
struct Display<'a> {
    display: &'a str,
}

#[derive(serde::Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Schedule<'a> {
    resource_type: &'static str,
    id: &'static str,
    actor: [Display<'a>; 2],
    service_type: [Text<'a>; 1],
}

#[derive(serde::Serialize)]
struct Reference {
    reference: &'static str,
}

/// A free slot with the schedule it is in (the practitioner, the location and the kind of
/// session, as the supplier reports them), contained in it: a slot search writes a page of
/// these, straight to the answer.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SlotResource<'a> {
    resource_type: &'static str,
    id: &'a str,
    contained: [Schedule<'a>; 1],
    schedule: Reference,
    service_type: [Text<'a>; 1],
    status: &'static str,
    start: UtcInstant,
    end: UtcInstant,
}

fn slot_resource(s: &Slot) -> SlotResource<'_> {
    SlotResource {
        resource_type: "Slot",
        id: &s.id,
        contained: [Schedule {
            resource_type: "Schedule",
            id: "schedule",
            actor: [
                Display {
                    display: &s.practitioner,
                },
                Display { display: &s.location },
            ],
            service_type: [Text { text: &s.session_type }],
        }],
        schedule: Reference { reference: "#schedule" },
        service_type: [Text { text: &s.session_type }],
        status: if s.free { "free" } else { "busy" },
        start: UtcInstant(s.start),
        end: UtcInstant(s.end),
    }
}

fn appointment_resource(d: &Desk, a: &Appointment) -> Value {
    let mut r = json!({
        "resourceType": "Appointment",
        "id": d.appointment_id(a),
        "status": match a.status {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::Cancelled => "cancelled",
        },
        "serviceType": [{"text": a.session_type}],
        "start": instant(a.start),
        "end": instant(a.end),
        "created": instant(a.booked_at),
        "slot": [{"reference": format!("Slot/{}", a.slot_id)}],
        "participant": [
            {"actor": {"reference": format!("Patient/{}", d.patient.id)}, "status": "accepted"},
            {"actor": {"display": a.practitioner}, "status": "accepted"},
            {"actor": {"display": a.location}, "status": "accepted"},
        ],
    });
    if let Some(reason) = &a.reason {
        r["reasonCode"] = json!([{"text": reason}]);
    }
    if let Some(reason) = &a.cancellation_reason {
        r["cancelationReason"] = json!({"text": reason});
    }
    r
}

fn plan_resource(d: &Desk, r: &RepeatMedication) -> Value {
    let mut m = json!({
        "resourceType": "MedicationRequest",
        "id": r.id,
        "status": "active",
        "intent": "plan",
        "courseOfTherapyType": {"coding": [{"system": COURSE_OF_THERAPY, "code": "continuous", "display": "Continuous long term therapy"}]},
        "medicationCodeableConcept": {"text": r.name},
        "subject": {"reference": format!("Patient/{}", d.patient.id)},
        "dosageInstruction": [{"text": r.dosage}],
        "note": [{"text": format!("Quantity: {}", r.quantity)}],
    });
    if let Some(review) = r.review_date {
        m["dispenseRequest"] = json!({"validityPeriod": {"end": review.to_string()}});
    }
    m
}

fn order_resources(d: &Desk, r: &PrescriptionRequest) -> Vec<(String, Value)> {
    let status = match r.status {
        PrescriptionStatus::Requested | PrescriptionStatus::Approved => "active",
        PrescriptionStatus::Rejected => "cancelled",
        PrescriptionStatus::Issued => "completed",
    };
    r.items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            let id = desk::order_item_id(r, n + 1);
            let mut m = json!({
                "resourceType": "MedicationRequest",
                "id": id,
                "extension": [{"url": STATUS_EXTENSION, "valueCode": r.status.as_str()}],
                "groupIdentifier": {"value": r.id},
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": {"text": item.name},
                "subject": {"reference": format!("Patient/{}", d.patient.id)},
                "authoredOn": instant(r.requested_at),
                "basedOn": [{"reference": format!("MedicationRequest/{}", item.repeat_id)}],
            });
            if let Some(message) = &r.message {
                m["note"] = json!([{"text": message}]);
            }
            (id, m)
        })
        .collect()
}

/// Free slots at the patient's practice between two days (at most 31), with the clinician,
/// location and session type the clinical system reports, paged.
#[utoipa::path(
    tag = "Appointments",
    params(
        ("patient" = Option<String>, Query, description = "Patient/{id}: the caller's own record (the default) or one they act for"),
        ("start" = String, Query, description = "ge{date} and le{date}: the first and last day to search (at most 31 days)"),
        ("end" = Option<String>, Query, description = "le{date}: the last day, as GP Connect sends it"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query, description = "Where the page starts"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of free Slots", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_SEARCH_PARAMETER: no range, a range the wrong way round or longer than 31 days", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED, PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT or an identity-assurance refusal", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Slot")]
#[tracing::instrument(skip_all)]
pub async fn search_slots(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::ReadAppointments, Target::Pending).await?;
    let params = query(&req, &["patient", "start", "end", "_count", "_offset"], &["start"])?;
    let range = day_range(&params)?;
    let who = whose(first(&params, "patient"), "patient")?;
    let (_, slots) = desk::slots(&state.core, &caller, who, range).await?;
    page(&state, &req, "Slot", &params, &slots, |s| {
        vec![(s.id.clone(), slot_resource(s))]
    })
}

/// The patient's appointments, upcoming and past, booked and cancelled, by start.
#[utoipa::path(
    tag = "Appointments",
    params(
        ("patient" = Option<String>, Query, description = "Patient/{id}: the caller's own record (the default) or one they act for"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query, description = "Where the page starts"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of Appointments", content_type = "application/fhir+json"),
        (status = 403, description = "SERVICE_NOT_GRANTED, PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT or an identity-assurance refusal", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Appointment")]
#[tracing::instrument(skip_all)]
pub async fn search_appointments(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::ReadAppointments, Target::Pending).await?;
    let params = query(&req, &["patient", "_count", "_offset"], &[])?;
    let who = whose(first(&params, "patient"), "patient")?;
    let (d, list) = desk::appointments(&state.core, &caller, who).await?;
    page(&state, &req, "Appointment", &params, &list, |a| {
        vec![(d.appointment_id(a), appointment_resource(&d, a))]
    })
}

fn resource_error(message: impl Into<String>, at: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidResource, message).at(at.to_owned())
}

/// The text of a reason: `text`, or the first coding's display.
fn reason_text(v: &Value) -> Option<&str> {
    v.get("text")
        .and_then(Value::as_str)
        .or_else(|| v.pointer("/coding/0/display").and_then(Value::as_str))
}

/// Books a free slot: an `Appointment` naming the slot (`slot[0]` = `Slot/{id}`), the patient as
/// a participant (`Patient/{id}`; absent, the caller's own record) and, where the practice asks
/// for one, a reason (`reasonCode[0].text`, or `description`). A retry with the same
/// `X-Request-ID` books once.
#[utoipa::path(
    tag = "Appointments",
    request_body(content = Object, content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "The Appointment booked", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_RESOURCE: no slot named, a reason too long", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED (appointments below manage), PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
        (status = 409, description = "SLOT_UNAVAILABLE: the slot does not exist or was booked meanwhile", body = OperationOutcome),
        (status = 422, description = "REASON_REQUIRED: the practice asks for a reason", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT: the booking may not have been made; retry with the same X-Request-ID", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Appointment")]
#[tracing::instrument(skip_all)]
pub async fn book_appointment(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::BookAppointment, Target::Pending).await?;
    let resource: Value = body.resource("Appointment")?;
    let slot = resource
        .pointer("/slot/0/reference")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Slot/"))
        .filter(|id| is_resource_id(id))
        .ok_or_else(|| {
            resource_error(
                "slot[0] must reference the free Slot to book: Slot/{id}",
                "Appointment.slot",
            )
        })?;
    let patient = resource
        .get("participant")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.pointer("/actor/reference").and_then(Value::as_str))
        .find(|r| r.starts_with("Patient/"));
    let who = whose(patient, "Appointment.participant").map_err(|_| {
        resource_error(
            "the patient participant must be Patient/{id}",
            "Appointment.participant",
        )
    })?;
    let raw_reason = resource
        .pointer("/reasonCode/0")
        .and_then(reason_text)
        .or_else(|| resource.get("description").and_then(Value::as_str));
    let reason = transactional::message(raw_reason).map_err(|m| resource_error(m, "Appointment.reasonCode"))?;
    let (d, booked) = desk::book(&state.core, &caller, who, slot.to_owned(), reason).await?;
    let id = d.appointment_id(&booked);
    let mut response = private(actix_web::http::StatusCode::CREATED, &appointment_resource(&d, &booked));
    if let Ok(location) = header::HeaderValue::from_str(&format!("{}/Appointment/{id}", state.base_url)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Cancels an appointment: the `Appointment` as read, with `status` `cancelled` and a
/// `cancelationReason` (`text`). Nothing else about an appointment can be changed online.
#[utoipa::path(
    tag = "Appointments",
    params(("id" = String, Path, description = "As the Appointment names it")),
    request_body(content = Object, content_type = "application/fhir+json"),
    responses(
        (status = 200, description = "The Appointment, cancelled", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_RESOURCE: a status other than cancelled, no reason", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED (appointments below manage), PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT", body = OperationOutcome),
        (status = 404, description = "No appointment of a patient the caller may act for has this id (the same for one that does not exist)", body = OperationOutcome),
        (status = 422, description = "CANCELLATION_NOT_ALLOWED: too close to the appointment under the practice's rules", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[put("/Appointment/{id}")]
#[tracing::instrument(skip_all)]
pub async fn cancel_appointment(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::CancelAppointment, Target::Pending).await?;
    let not_found = || ApiError::new(ErrorCode::ResourceNotFound, "Appointment not found");
    let (patient, appointment) = id.split_once('.').ok_or_else(not_found)?;
    if !is_resource_id(&id) || !is_resource_id(patient) || !is_resource_id(appointment) {
        return Err(not_found());
    }
    let resource: Value = body.resource("Appointment")?;
    if resource
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|body_id| body_id != id.as_str())
    {
        return Err(resource_error(
            "the Appointment's id must match the URL",
            "Appointment.id",
        ));
    }
    if resource.get("status").and_then(Value::as_str) != Some("cancelled") {
        return Err(resource_error(
            "only a cancellation can be made online: status must be cancelled",
            "Appointment.status",
        ));
    }
    let reason = transactional::message(resource.get("cancelationReason").and_then(reason_text))
        .map_err(|m| resource_error(m, "Appointment.cancelationReason"))?
        .ok_or_else(|| resource_error("cancelationReason.text is required", "Appointment.cancelationReason"))?;
    let (d, cancelled) = desk::cancel(
        &state.core,
        &caller,
        Whose::Id(patient.to_owned()),
        appointment.to_owned(),
        reason,
    )
    .await
    .map_err(|e| match ApiError::from(e) {
        // Not the patient's, or not there at all: the same answer.
        found if found.code == ErrorCode::ResourceNotFound => not_found(),
        other => other,
    })?;
    Ok(private(
        actix_web::http::StatusCode::OK,
        &appointment_resource(&d, &cancelled),
    ))
}

/// `MedicationRequest` searches: with `intent=plan`, the repeats the patient may request now;
/// with `intent=order`, the requests made and their status (`requested`, `approved`, `rejected`,
/// `issued`, in an extension; `status` as FHIR has it); without `intent`, the record's
/// medication (needs record access, as the other record searches).
#[utoipa::path(
    tag = "Prescriptions",
    params(
        ("patient" = Option<String>, Query, description = "Patient/{id}: the caller's own record or one they act for (required without intent)"),
        ("intent" = Option<String>, Query, description = "plan: requestable repeats; order: requests made; absent: the GP record's medication"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query, description = "Where the page starts"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of MedicationRequests", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_SEARCH_PARAMETER", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED, PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT or an identity-assurance refusal", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/MedicationRequest")]
#[tracing::instrument(skip_all)]
pub async fn search_medication_requests(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let intent = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "intent")
        .map(|(_, v)| v.into_owned());
    let Some(intent) = intent else {
        return super::record::search(&state, &caller, &req, "MedicationRequest").await;
    };
    access::authorize(&state.core, &caller, Action::ReadPrescriptions, Target::Pending).await?;
    let params = query(&req, &["patient", "intent", "_count", "_offset"], &[])?;
    let who = whose(first(&params, "patient"), "patient")?;
    match intent.as_str() {
        "plan" => {
            let (d, list) = desk::repeats(&state.core, &caller, who).await?;
            page(&state, &req, "MedicationRequest", &params, &list, |r| {
                vec![(r.id.clone(), plan_resource(&d, r))]
            })
        }
        "order" => {
            let (d, list) = desk::requests(&state.core, &caller, who).await?;
            // One MedicationRequest per item: the Bundle's total and `_count` count those, as
            // they count the resources of any search; `groupIdentifier` ties a request's
            // items together across pages.
            let items: Vec<(String, Value)> = list.iter().flat_map(|r| order_resources(&d, r)).collect();
            page(&state, &req, "MedicationRequest", &params, &items, |(id, resource)| {
                vec![(id.clone(), resource.clone())]
            })
        }
        _ => Err(invalid("intent is plan (repeats that may be requested) or order (requests made)").at("intent")),
    }
}

/// Requests repeats: a `MedicationRequest` with `intent` `order`, `basedOn` naming one or more
/// of the patient's requestable repeats (`MedicationRequest/{id}`, as the `intent=plan` search
/// gives them), `subject` the patient (absent: the caller's own record) and an optional message
/// to the practice in `note[0].text`. The answer is a `collection` Bundle of the request's items,
/// one `MedicationRequest` each, sharing a `groupIdentifier`. A retry with the same
/// `X-Request-ID` requests once.
#[utoipa::path(
    tag = "Prescriptions",
    request_body(content = Object, content_type = "application/fhir+json"),
    responses(
        (status = 201, description = "A collection Bundle of the items requested", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_RESOURCE: intent not order, no repeat named, more than 20, a message too long", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED (prescriptions below manage), PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
        (status = 422, description = "MEDICATION_NOT_REQUESTABLE: a medication named is not a current repeat of this patient's that may be requested online; nothing was requested", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT: the request may not have been made; retry with the same X-Request-ID", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/MedicationRequest")]
#[tracing::instrument(skip_all)]
pub async fn request_repeats(
    state: web::Data<AppState>,
    caller: Caller,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::RequestPrescription, Target::Pending).await?;
    let resource: Value = body.resource("MedicationRequest")?;
    if resource.get("intent").and_then(Value::as_str) != Some("order") {
        return Err(resource_error(
            "intent must be order: a request for repeats",
            "MedicationRequest.intent",
        ));
    }
    let mut repeats = Vec::new();
    for based_on in resource.get("basedOn").and_then(Value::as_array).into_iter().flatten() {
        let id = based_on
            .get("reference")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("MedicationRequest/"))
            .filter(|id| is_resource_id(id))
            .ok_or_else(|| {
                resource_error(
                    "each basedOn must reference a repeat: MedicationRequest/{id}",
                    "MedicationRequest.basedOn",
                )
            })?;
        if !repeats.iter().any(|r| r == id) {
            repeats.push(id.to_owned());
        }
    }
    let subject = resource.pointer("/subject/reference").and_then(Value::as_str);
    let who = whose(subject, "MedicationRequest.subject")
        .map_err(|_| resource_error("subject must be Patient/{id}", "MedicationRequest.subject"))?;
    let message = transactional::message(resource.pointer("/note/0/text").and_then(Value::as_str))
        .map_err(|m| resource_error(m, "MedicationRequest.note"))?;
    let (d, requested) = desk::request(&state.core, &caller, who, repeats, message).await?;
    let entries: Vec<Value> = order_resources(&d, &requested)
        .into_iter()
        .map(|(id, r)| json!({"fullUrl": format!("{}/MedicationRequest/{id}", state.base_url), "resource": r}))
        .collect();
    Ok(private(
        actix_web::http::StatusCode::CREATED,
        &json!({
            "resourceType": "Bundle",
            "type": "collection",
            "identifier": {"value": requested.id},
            "entry": entries,
        }),
    ))
}
