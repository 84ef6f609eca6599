//! The admin API, the same JSON on both flavours and never subject to faults: set faults, shape
//! the supplier's world, inspect what the gateway did to it. Linkage keys never leave it.

use actix_web::{HttpRequest, HttpResponse, error, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use std::collections::BTreeSet;

use super::world::PatientStatus;
use super::{Simulator, State};
use crate::domain::clinical::ClinicalRecord;
use crate::domain::transactional::{PrescriptionStatus, RepeatMedication};
use crate::domain::{RecordAccessLevel, ServiceLevel, Services};

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(web::JsonConfig::default().error_handler(bad_json))
        .route("/faults", web::get().to(get_faults))
        .route("/faults", web::put().to(put_faults))
        .route("/practices/{ods}", web::put().to(put_practice))
        .route("/practices/{ods}/restrictions", web::put().to(put_restrictions))
        .route("/patients/{identifier}", web::put().to(put_patient))
        .route("/records/{identifier}", web::put().to(put_record))
        .route("/records/{identifier}", web::get().to(get_record))
        .route(
            "/practices/{ods}/appointment-rules",
            web::put().to(put_appointment_rules),
        )
        .route("/repeats/{identifier}", web::put().to(put_repeats))
        .route("/repeats/{identifier}", web::get().to(get_repeats))
        .route("/prescription-requests/{id}", web::put().to(put_prescription_request))
        .route("/accounts", web::get().to(list_accounts))
        .route("/proxies", web::get().to(list_proxies))
        .route("/stats", web::get().to(get_stats))
        .route("/reset", web::post().to(reset))
        .route("/expire-sessions", web::post().to(expire_sessions));
}

fn bad_json(err: error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let response = HttpResponse::BadRequest().json(json!({ "error": err.to_string() }));
    error::InternalError::from_response(err, response).into()
}

/// Omitted fields stay as they are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsUpdate {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    drop_response_rate: Option<f64>,
    down: Option<bool>,
    malformed_rate: Option<f64>,
}

async fn get_faults(simulator: web::Data<Simulator>) -> HttpResponse {
    HttpResponse::Ok().json(&simulator.lock().faults)
}

async fn put_faults(simulator: web::Data<Simulator>, update: web::Json<FaultsUpdate>) -> HttpResponse {
    let is_rate = |rate: Option<f64>| rate.is_none_or(|r| (0.0..=1.0).contains(&r));
    if !is_rate(update.error_rate) || !is_rate(update.drop_response_rate) || !is_rate(update.malformed_rate) {
        return HttpResponse::BadRequest().json(json!({ "error": "rates must be between 0 and 1" }));
    }
    let mut state = simulator.lock();
    let faults = &mut state.faults;
    if let Some(latency_ms) = update.latency_ms {
        faults.latency_ms = latency_ms;
    }
    if let Some(error_rate) = update.error_rate {
        faults.error_rate = error_rate;
    }
    if let Some(drop_response_rate) = update.drop_response_rate {
        faults.drop_response_rate = drop_response_rate;
    }
    if let Some(down) = update.down {
        faults.down = down;
    }
    if let Some(malformed_rate) = update.malformed_rate {
        faults.malformed_rate = malformed_rate;
    }
    HttpResponse::Ok().json(&*faults)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PracticeUpdate {
    enabled: bool,
}

async fn put_practice(
    simulator: web::Data<Simulator>,
    ods_code: web::Path<String>,
    update: web::Json<PracticeUpdate>,
) -> HttpResponse {
    simulator.lock().world.set_practice_enabled(&ods_code, update.enabled);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientUpdate {
    status: PatientStatus,
}

/// The clinical areas the practice does not share online (replaces the list).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restrictions {
    areas: BTreeSet<String>,
}

async fn put_restrictions(
    simulator: web::Data<Simulator>,
    ods_code: web::Path<String>,
    update: web::Json<Restrictions>,
) -> HttpResponse {
    simulator
        .lock()
        .world
        .set_restrictions(&ods_code, update.into_inner().areas);
    HttpResponse::NoContent().finish()
}

/// A patient's record, in the gateway's canonical terms (replaces what was there).
async fn put_record(
    simulator: web::Data<Simulator>,
    identifier: web::Path<String>,
    record: web::Json<ClinicalRecord>,
) -> HttpResponse {
    let record = record.into_inner();
    let mut ids = BTreeSet::new();
    if let Some(e) = record.entries.iter().find(|e| !ids.insert(e.id.as_str())) {
        return HttpResponse::BadRequest().json(json!({ "error": format!("entry id {} is used twice", e.id) }));
    }
    simulator.lock().world.set_record(&identifier, record);
    HttpResponse::NoContent().finish()
}

async fn get_record(simulator: web::Data<Simulator>, identifier: web::Path<String>) -> HttpResponse {
    match simulator.lock().world.stored_record(&identifier) {
        Some(record) => HttpResponse::Ok().json(record),
        None => HttpResponse::NotFound().json(json!({ "error": "no record is held for this patient" })),
    }
}

/// A practice's rules for online appointments: `{"reasonRequired": bool,
/// "cancellationCutoffMinutes": n}`.
async fn put_appointment_rules(
    simulator: web::Data<Simulator>,
    ods_code: web::Path<String>,
    rules: web::Json<super::desk::AppointmentRules>,
) -> HttpResponse {
    let ods_code = super::world::normalise_ods(&ods_code);
    simulator.lock().world.desk.set_rules(&ods_code, rules.into_inner());
    simulator.changed.store(true, std::sync::atomic::Ordering::Release);
    HttpResponse::NoContent().finish()
}

/// A patient's repeat medication templates (replaces what was there).
async fn put_repeats(
    simulator: web::Data<Simulator>,
    identifier: web::Path<String>,
    repeats: web::Json<Vec<RepeatMedication>>,
) -> HttpResponse {
    let repeats = repeats.into_inner();
    let mut ids = BTreeSet::new();
    if let Some(r) = repeats.iter().find(|r| !ids.insert(r.id.as_str())) {
        return HttpResponse::BadRequest().json(json!({ "error": format!("repeat id {} is used twice", r.id) }));
    }
    let patient = super::world::normalise_identifier(&identifier);
    simulator.lock().world.desk.set_repeats(&patient, repeats);
    simulator.changed.store(true, std::sync::atomic::Ordering::Release);
    HttpResponse::NoContent().finish()
}

async fn get_repeats(simulator: web::Data<Simulator>, identifier: web::Path<String>) -> HttpResponse {
    let patient = super::world::normalise_identifier(&identifier);
    HttpResponse::Ok().json(simulator.lock().world.desk.repeats(&patient))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestStatus {
    status: String,
}

/// Moves a repeat request on as the practice would: `{"status": "approved" | "rejected" |
/// "issued" | "requested"}`.
async fn put_prescription_request(
    simulator: web::Data<Simulator>,
    id: web::Path<String>,
    update: web::Json<RequestStatus>,
) -> HttpResponse {
    let Some(status) = PrescriptionStatus::parse(&update.status) else {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "status is requested, approved, rejected or issued" }));
    };
    match simulator.lock().world.desk.set_request_status(&id, status) {
        Ok(()) => {
            simulator.changed.store(true, std::sync::atomic::Ordering::Release);
            HttpResponse::NoContent().finish()
        }
        Err(_) => HttpResponse::NotFound().json(json!({ "error": "no such request" })),
    }
}

async fn put_patient(
    simulator: web::Data<Simulator>,
    identifier: web::Path<String>,
    update: web::Json<PatientUpdate>,
) -> HttpResponse {
    simulator.lock().world.set_patient_status(&identifier, update.status);
    HttpResponse::NoContent().finish()
}

/// Services as the listing shows them: on or off as before levels, and each level beside.
#[derive(Serialize)]
struct ServicesView {
    appointments: bool,
    prescriptions: bool,
    messaging: bool,
    appointments_level: ServiceLevel,
    prescriptions_level: ServiceLevel,
}

impl ServicesView {
    fn of(s: &Services) -> Self {
        Self {
            appointments: s.appointments.is_on(),
            prescriptions: s.prescriptions.is_on(),
            messaging: s.messaging,
            appointments_level: s.appointments,
            prescriptions_level: s.prescriptions,
        }
    }
}

#[derive(Serialize)]
struct AccountView<'a> {
    supplier_ref: &'a str,
    account_id: &'a str,
    patient_identifier: &'a str,
    ods_code: &'a str,
    enabled: bool,
    reason: Option<&'a str>,
    services: ServicesView,
    record_level: RecordAccessLevel,
    record_from: Option<NaiveDate>,
    linkage_key_resets: u32,
}

async fn list_accounts(simulator: web::Data<Simulator>) -> HttpResponse {
    let state = simulator.lock();
    let accounts: Vec<AccountView<'_>> = state
        .world
        .accounts()
        .iter()
        .map(|account| AccountView {
            supplier_ref: &account.supplier_ref,
            account_id: &account.account_id,
            patient_identifier: &account.patient_identifier,
            ods_code: &account.ods_code,
            enabled: account.enabled,
            reason: account.reason.as_deref(),
            services: ServicesView::of(&account.access.services),
            record_level: account.access.record_level,
            record_from: account.access.record_from,
            linkage_key_resets: account.linkage_key_resets,
        })
        .collect();
    HttpResponse::Ok().json(accounts)
}

#[derive(Serialize)]
struct ProxyView<'a> {
    link_ref: &'a str,
    patient_identifier: &'a str,
    proxy_identifier: &'a str,
    ods_code: &'a str,
    relationship: &'a str,
    services: ServicesView,
    record_level: RecordAccessLevel,
    end_date: Option<NaiveDate>,
    revoked: bool,
    reason: Option<&'a str>,
}

async fn list_proxies(simulator: web::Data<Simulator>) -> HttpResponse {
    let state = simulator.lock();
    let proxies: Vec<ProxyView<'_>> = state
        .world
        .proxies()
        .iter()
        .map(|p| ProxyView {
            link_ref: &p.link_ref,
            patient_identifier: &p.patient_identifier,
            proxy_identifier: &p.proxy_identifier,
            ods_code: &p.ods_code,
            relationship: &p.relationship,
            services: ServicesView::of(&p.access.services),
            record_level: p.access.record_level,
            end_date: p.end_date,
            revoked: p.revoked,
            reason: p.reason.as_deref(),
        })
        .collect();
    HttpResponse::Ok().json(proxies)
}

async fn get_stats(simulator: web::Data<Simulator>) -> HttpResponse {
    HttpResponse::Ok().json(&simulator.lock().stats)
}

async fn reset(simulator: web::Data<Simulator>) -> HttpResponse {
    *simulator.lock() = State::new();
    HttpResponse::NoContent().finish()
}

/// Ends every TPP-like session, as the supplier does after idling; nothing to end on the
/// EMIS-like flavour.
async fn expire_sessions(simulator: web::Data<Simulator>) -> HttpResponse {
    simulator.lock().world.sessions.clear();
    HttpResponse::NoContent().finish()
}
