//! The EMIS-like wire format: JSON with PascalCase keys, errors as HTTP status plus a code.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, Utc};
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::world::{LetterDetails, NewAccount, NewProxyLink, Refusal, World};
use super::{Reply, Simulator, request_id};
use crate::domain::transactional::{Booking, Cancellation, DayRange, Order};
use crate::domain::{AccessSettings, RecordAccessLevel, ServiceLevel, Services};
use crate::suppliers::emis_desk;

pub(super) const MINIMUM_AGE: u32 = 16;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/users/nhs", web::post().to(create_user))
        .route("/users/{guid}/settings", web::put().to(put_settings))
        .route("/users/{guid}/linkage-key", web::post().to(reset_linkage_key))
        .route("/users/{guid}/status", web::put().to(put_status))
        .route("/proxies", web::post().to(create_proxy))
        .route("/proxies/{guid}/settings", web::put().to(put_proxy_settings))
        .route("/proxies/{guid}/revocation", web::post().to(revoke_proxy))
        .route("/me/verifications", web::post().to(verifications))
        .route("/me/applications", web::post().to(applications))
        .route("/records/{nhs}", web::get().to(record))
        .route("/appointments/slots", web::get().to(slots))
        .route("/appointments", web::get().to(appointments))
        .route("/appointments", web::post().to(book))
        .route("/appointments/{id}/cancellation", web::post().to(cancel))
        .route("/prescriptions/courses", web::get().to(courses))
        .route("/prescriptions/requests", web::get().to(prescription_requests))
        .route("/prescriptions/requests", web::post().to(request_repeats));
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordQuery {
    national_practice_code: String,
}

/// The patient's medical record at the practice, every event with its confidentiality policy.
async fn record(
    simulator: web::Data<Simulator>,
    nhs: web::Path<String>,
    query: web::Query<RecordQuery>,
) -> HttpResponse {
    simulator
        .serve_read(
            |_| None,
            |world| match world.record(&nhs, &query.national_practice_code) {
                Ok(record) => Reply::json(StatusCode::OK, &crate::suppliers::emis_record::to_wire(&record)),
                Err(refusal) => refused(refusal),
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SlotQuery {
    national_practice_code: String,
    from: NaiveDate,
    to: NaiveDate,
}

fn now() -> chrono::NaiveDateTime {
    Utc::now().naive_utc()
}

/// The practice's free slots between two days.
async fn slots(simulator: web::Data<Simulator>, query: Option<web::Query<SlotQuery>>) -> HttpResponse {
    let Some(query) = query else {
        return error(StatusCode::BAD_REQUEST, 1100, "The request is not valid").to_response();
    };
    let Ok(range) = DayRange::new(query.from, query.to) else {
        return error(StatusCode::BAD_REQUEST, 1100, "The date range is not valid").to_response();
    };
    let now = now();
    {
        let mut state = simulator.lock();
        if let Ok(ods) = state.world.enabled_practice(&query.national_practice_code) {
            state.world.desk.open_book(&ods, now);
        }
    }
    simulator
        .serve_read(
            |_| None,
            |world| match world.enabled_practice(&query.national_practice_code) {
                Ok(ods) => {
                    let slots = world
                        .desk
                        .slots(&ods, range, now)
                        .iter()
                        .map(emis_desk::slot_to_wire)
                        .collect();
                    Reply::json(StatusCode::OK, &emis_desk::SlotsReply { slots })
                }
                Err(refusal) => refused(refusal),
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PatientQuery {
    nhs_number: String,
    national_practice_code: String,
}

/// A read about one patient at a practice: refused as the supplier refuses (practice not
/// enabled, patient unknown or archived), else `answer` with the patient's identifier and
/// practice as the supplier files them.
async fn patient_read(
    simulator: web::Data<Simulator>,
    query: Option<web::Query<PatientQuery>>,
    answer: impl FnOnce(&World, &str, &str) -> Reply,
) -> HttpResponse {
    let Some(query) = query else {
        return error(StatusCode::BAD_REQUEST, 1100, "The request is not valid").to_response();
    };
    simulator
        .serve_read(
            |_| None,
            |world| match world.registered(&query.nhs_number, &query.national_practice_code) {
                Ok((patient, ods)) => answer(world, &patient, &ods),
                Err(refusal) => refused(refusal),
            },
        )
        .await
}

async fn appointments(simulator: web::Data<Simulator>, query: Option<web::Query<PatientQuery>>) -> HttpResponse {
    patient_read(simulator, query, |world, patient, ods| {
        let appointments = world
            .desk
            .appointments(patient, ods)
            .iter()
            .map(emis_desk::appointment_to_wire)
            .collect();
        Reply::json(StatusCode::OK, &emis_desk::AppointmentsReply { appointments })
    })
    .await
}

async fn book(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, rng| {
                let wire: emis_desk::BookRequest = match parse(&body) {
                    Ok(b) => b,
                    Err(reply) => return reply,
                };
                let (patient, ods) = match world.registered(&wire.patient_nhs_number, &wire.national_practice_code) {
                    Ok(found) => found,
                    Err(refusal) => return refused(refusal),
                };
                let booking = Booking {
                    patient_identifier: patient,
                    ods_code: ods,
                    slot_id: wire.slot_id,
                    reason: wire.booking_reason,
                };
                match world.desk.book(&booking, rng, now()) {
                    Ok(a) => Reply::json(StatusCode::CREATED, &emis_desk::appointment_to_wire(&a)),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

async fn cancel(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let wire: emis_desk::CancelRequest = match parse(&body) {
                    Ok(b) => b,
                    Err(reply) => return reply,
                };
                let (patient, ods) = match world.registered(&wire.patient_nhs_number, &wire.national_practice_code) {
                    Ok(found) => found,
                    Err(refusal) => return refused(refusal),
                };
                let cancellation = Cancellation {
                    patient_identifier: patient,
                    ods_code: ods,
                    appointment_id: id.into_inner(),
                    reason: wire.cancellation_reason,
                };
                match world.desk.cancel(&cancellation, now()) {
                    Ok(a) => Reply::json(StatusCode::OK, &emis_desk::appointment_to_wire(&a)),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

async fn courses(simulator: web::Data<Simulator>, query: Option<web::Query<PatientQuery>>) -> HttpResponse {
    patient_read(simulator, query, |world, patient, _| {
        let courses = world
            .desk
            .repeats(patient)
            .iter()
            .map(emis_desk::course_to_wire)
            .collect();
        Reply::json(StatusCode::OK, &emis_desk::CoursesReply { courses })
    })
    .await
}

async fn prescription_requests(
    simulator: web::Data<Simulator>,
    query: Option<web::Query<PatientQuery>>,
) -> HttpResponse {
    patient_read(simulator, query, |world, patient, ods| {
        let requests = world
            .desk
            .requests(patient, ods)
            .iter()
            .map(emis_desk::request_to_wire)
            .collect();
        Reply::json(StatusCode::OK, &emis_desk::RequestsReply { requests })
    })
    .await
}

async fn request_repeats(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, rng| {
                let wire: emis_desk::NewRequest = match parse(&body) {
                    Ok(b) => b,
                    Err(reply) => return reply,
                };
                let (patient, ods) = match world.registered(&wire.patient_nhs_number, &wire.national_practice_code) {
                    Ok(found) => found,
                    Err(refusal) => return refused(refusal),
                };
                let order = Order {
                    patient_identifier: patient,
                    ods_code: ods,
                    repeat_ids: wire.medication_course_guids,
                    message: wire.request_comment,
                };
                match world.desk.request(&order, rng, now()) {
                    Ok(r) => Reply::json(StatusCode::CREATED, &emis_desk::request_to_wire(&r)),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

pub(super) fn unavailable() -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        1500,
        "The service is temporarily unavailable",
    )
}

fn error(status: StatusCode, code: u32, message: &str) -> Reply {
    Reply::json(status, &json!({ "Code": code, "Message": message }))
}

fn refused(refusal: Refusal) -> Reply {
    let (status, code, message) = match refusal {
        Refusal::PracticeNotEnabled => (
            StatusCode::FORBIDDEN,
            1030,
            "Patient facing services are not enabled at this practice",
        ),
        Refusal::PatientNotFound => (
            StatusCode::NOT_FOUND,
            1551,
            "The patient is not registered at this practice",
        ),
        Refusal::Archived => (StatusCode::GONE, 1552, "The patient's record is archived"),
        Refusal::UnderMinimumAge => (
            StatusCode::BAD_REQUEST,
            1553,
            "The patient is under the minimum age for online services",
        ),
        Refusal::AccountExists => (StatusCode::CONFLICT, 1110, "An account already exists for this patient"),
        Refusal::InvalidDetails => (StatusCode::BAD_REQUEST, 1105, "The linkage details are not valid"),
        Refusal::AccountDisabled => (StatusCode::FORBIDDEN, 1032, "The account is disabled"),
        Refusal::NoSuchAccount => (StatusCode::NOT_FOUND, 1404, "No such user"),
        Refusal::ProxyLinkExists => (
            StatusCode::CONFLICT,
            1111,
            "The proxy is already linked to this patient",
        ),
        Refusal::ProxyIsPatient => (StatusCode::BAD_REQUEST, 1561, "A patient cannot be their own proxy"),
        Refusal::ProxyBeyondPatient => (
            StatusCode::BAD_REQUEST,
            1562,
            "Proxy record access cannot exceed the patient's own",
        ),
        Refusal::NoSuchProxyLink => (StatusCode::NOT_FOUND, 1405, "No such proxy link"),
        Refusal::SlotTaken => (StatusCode::CONFLICT, 1201, "The slot is no longer available"),
        Refusal::NoSuchItem => (
            StatusCode::NOT_FOUND,
            1202,
            "No such slot, appointment or medication course",
        ),
        Refusal::TooLateToCancel => (
            StatusCode::BAD_REQUEST,
            1203,
            "The appointment is too soon to be cancelled online",
        ),
        Refusal::ReasonRequired => (StatusCode::BAD_REQUEST, 1204, "A booking reason is required"),
        Refusal::NotRequestable => (
            StatusCode::BAD_REQUEST,
            1205,
            "The medication course cannot be requested online",
        ),
    };
    error(status, code, message)
}

/// Idempotency is scoped by (X-Request-ID, method, path), so one key can cover every step of a
/// multi-step operation.
fn scope(request: &HttpRequest) -> Option<String> {
    request_id(request).map(|id| format!("{id}\n{}\n{}", request.method(), request.path()))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|_| error(StatusCode::BAD_REQUEST, 1100, "The request is not valid"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUser {
    nhs_number: String,
    national_practice_code: String,
    email_address: Option<String>,
    surname: String,
    date_of_birth: NaiveDate,
    #[serde(default)]
    nhs_login_verified: bool,
}

async fn create_user(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let minimum_age = simulator.minimum_age();
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, rng| {
                let user: CreateUser = match parse(&body) {
                    Ok(user) => user,
                    Err(reply) => return reply,
                };
                // NHS login holds a verified email address; staff registrations must give one.
                if !user.nhs_login_verified && user.email_address.is_none_or(|email| email.trim().is_empty()) {
                    return error(StatusCode::BAD_REQUEST, 1101, "An email address is required");
                }
                let new = NewAccount {
                    patient_identifier: user.nhs_number,
                    ods_code: user.national_practice_code,
                    surname: user.surname,
                    birth_date: user.date_of_birth,
                    access: AccessSettings::none(),
                };
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes);
                let guid = uuid::Builder::from_random_bytes(bytes).into_uuid();
                let today = Utc::now().date_naive();
                match world.create_account(new, guid.to_string(), minimum_age, today, rng) {
                    Ok(account) => Reply::json(
                        StatusCode::CREATED,
                        &json!({ "AccessIdentityGuid": account.supplier_ref }),
                    ),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserSettings {
    effective_services: EffectiveServices,
    record_access_scheme: RecordAccessScheme,
    full_record_from: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EffectiveServices {
    appointments_enabled: bool,
    #[serde(default)]
    appointment_booking_enabled: bool,
    prescribing_enabled: bool,
    #[serde(default)]
    repeat_requests_enabled: bool,
    messaging_enabled: bool,
    documents_enabled: bool,
}

#[derive(Deserialize)]
enum RecordAccessScheme {
    None,
    CoreSummaryCareRecord,
    DetailedCodedCareRecord,
    FullCareRecord,
}

/// Seeing a service, and acting in it on top.
fn level(enabled: bool, acting: bool) -> ServiceLevel {
    match (enabled, acting) {
        (true, true) => ServiceLevel::Manage,
        (true, false) => ServiceLevel::View,
        (false, _) => ServiceLevel::None,
    }
}

/// The supplier's reading of its settings in the canonical terms the admin listing uses:
/// documents on top of the detailed coded record is the documents level; the full care record
/// is full access.
impl From<UserSettings> for AccessSettings {
    fn from(settings: UserSettings) -> Self {
        let services = &settings.effective_services;
        let record_level = match settings.record_access_scheme {
            RecordAccessScheme::None => RecordAccessLevel::None,
            RecordAccessScheme::CoreSummaryCareRecord => RecordAccessLevel::Summary,
            RecordAccessScheme::DetailedCodedCareRecord if services.documents_enabled => RecordAccessLevel::Documents,
            RecordAccessScheme::DetailedCodedCareRecord => RecordAccessLevel::DetailedCoded,
            RecordAccessScheme::FullCareRecord => RecordAccessLevel::Full,
        };
        AccessSettings {
            services: Services {
                appointments: level(services.appointments_enabled, services.appointment_booking_enabled),
                prescriptions: level(services.prescribing_enabled, services.repeat_requests_enabled),
                messaging: services.messaging_enabled,
            },
            record_level,
            record_from: settings
                .full_record_from
                .filter(|_| record_level == RecordAccessLevel::Full),
        }
    }
}

async fn put_settings(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    guid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let settings: UserSettings = match parse(&body) {
                    Ok(settings) => settings,
                    Err(reply) => return reply,
                };
                match world.set_access(&guid, settings.into()) {
                    Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials<'a> {
    account_id: &'a str,
    linkage_key: &'a str,
}

async fn reset_linkage_key(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    guid: web::Path<String>,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, rng| match world.reset_linkage_key(&guid, rng) {
                Ok(account) => Reply::json(
                    StatusCode::OK,
                    &Credentials {
                        account_id: &account.account_id,
                        linkage_key: &account.linkage_key,
                    },
                ),
                Err(refusal) => refused(refusal),
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserStatus {
    enabled: bool,
    reason: Option<String>,
}

async fn put_status(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    guid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let status: UserStatus = match parse(&body) {
                    Ok(status) => status,
                    Err(reply) => return reply,
                };
                match world.set_enabled(&guid, status.enabled, status.reason) {
                    Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

/// Reads back the letter details of the account named by `X-Access-Identity-Guid`.
async fn verifications(simulator: web::Data<Simulator>, request: HttpRequest) -> HttpResponse {
    let guid = request
        .headers()
        .get("X-Access-Identity-Guid")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let Some(guid) = guid else {
                    return error(StatusCode::BAD_REQUEST, 1100, "X-Access-Identity-Guid is required");
                };
                match world.account(&guid) {
                    Ok(account) => Reply::json(
                        StatusCode::OK,
                        &Credentials {
                            account_id: &account.account_id,
                            linkage_key: &account.linkage_key,
                        },
                    ),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateProxy {
    patient_nhs_number: String,
    proxy_nhs_number: String,
    national_practice_code: String,
    relationship_type: String,
    effective_services: EffectiveServices,
    record_access_scheme: RecordAccessScheme,
    full_record_from: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
}

async fn create_proxy(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, rng| {
                let proxy: CreateProxy = match parse(&body) {
                    Ok(p) => p,
                    Err(reply) => return reply,
                };
                let access = AccessSettings::from(UserSettings {
                    effective_services: proxy.effective_services,
                    record_access_scheme: proxy.record_access_scheme,
                    full_record_from: proxy.full_record_from,
                });
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes);
                let guid = uuid::Builder::from_random_bytes(bytes).into_uuid().to_string();
                let new = NewProxyLink {
                    patient_identifier: proxy.patient_nhs_number,
                    proxy_identifier: proxy.proxy_nhs_number,
                    ods_code: proxy.national_practice_code,
                    relationship: proxy.relationship_type,
                    access,
                    end_date: proxy.end_date,
                };
                match world.link_proxy(new, guid) {
                    Ok(link) => Reply::json(StatusCode::CREATED, &json!({ "ProxyAccessGuid": link.link_ref })),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

async fn put_proxy_settings(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    guid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let settings: UserSettings = match parse(&body) {
                    Ok(settings) => settings,
                    Err(reply) => return reply,
                };
                match world.set_proxy_access(&guid, settings.into()) {
                    Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Revocation {
    reason: Option<String>,
}

async fn revoke_proxy(
    simulator: web::Data<Simulator>,
    request: HttpRequest,
    guid: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let revocation: Revocation = match parse(&body) {
                    Ok(r) => r,
                    Err(reply) => return reply,
                };
                match world.revoke_proxy(&guid, revocation.reason) {
                    Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Application {
    surname: String,
    date_of_birth: NaiveDate,
    linkage_details: LinkageDetails,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkageDetails {
    account_id: String,
    linkage_key: String,
    national_practice_code: String,
}

/// A patient linking an app with the details from their letter.
async fn applications(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    simulator
        .serve(
            scope(&request),
            |_| None,
            |world, _| {
                let application: Application = match parse(&body) {
                    Ok(application) => application,
                    Err(reply) => return reply,
                };
                let letter = LetterDetails {
                    account_id: &application.linkage_details.account_id,
                    linkage_key: &application.linkage_details.linkage_key,
                    ods_code: &application.linkage_details.national_practice_code,
                    surname: &application.surname,
                    birth_date: application.date_of_birth,
                };
                match world.verify(&letter) {
                    Ok(account) => Reply::json(StatusCode::OK, &json!({ "NhsNumber": account.patient_identifier })),
                    Err(refusal) => refused(refusal),
                }
            },
        )
        .await
}
