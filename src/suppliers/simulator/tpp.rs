//! The TPP-like wire format: XML on one endpoint, the message type in a `type` header, a session
//! id in a `suid` header, numeric error codes in an `<Error>` body.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDate, Utc};
use rand::RngCore;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::world::{Account, LetterDetails, NewAccount, NewProxyLink, Refusal, World};
use super::{Reply, Simulator, request_id};
use crate::domain::transactional::{Booking, Cancellation, DayRange, Order};
use crate::suppliers::tpp::access_from_flags;
use crate::suppliers::tpp_desk;

pub(super) const MINIMUM_AGE: u32 = 11;

const INVALID_REQUEST: u32 = 1;
const SESSION_INVALID: u32 = 3;

pub(super) fn routes(config: &mut web::ServiceConfig) {
    config.route("/tpp", web::post().to(message));
}

pub(super) fn unavailable() -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        5,
        "The service is temporarily unavailable",
    )
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody<'a> {
    error_code: u32,
    user_friendly_message: &'a str,
}

fn error(status: StatusCode, code: u32, message: &str) -> Reply {
    let body = ErrorBody {
        error_code: code,
        user_friendly_message: message,
    };
    Reply::xml(status, to_xml("Error", &body))
}

/// Business refusals come back with HTTP 200, as the supplier does.
fn refused(refusal: Refusal) -> Reply {
    let (code, message) = match refusal {
        Refusal::UnderMinimumAge => (8, "The patient is under the minimum age for online services"),
        Refusal::AccountExists => (2005, "An online account already exists for this patient"),
        Refusal::PatientNotFound => (2006, "The patient is not registered at this organisation"),
        Refusal::PracticeNotEnabled => (2007, "Online services are not enabled at this organisation"),
        Refusal::Archived => (2008, "The patient's record is archived"),
        Refusal::InvalidDetails => (2009, "The details do not match"),
        Refusal::NoSuchAccount => (2004, "No such online user"),
        Refusal::AccountDisabled => (2010, "The online account is disabled"),
        Refusal::ProxyLinkExists => (2011, "The proxy is already linked to this patient"),
        Refusal::ProxyIsPatient => (2012, "A patient cannot be their own proxy"),
        Refusal::NoSuchProxyLink => (2013, "No such proxy link"),
        Refusal::ProxyBeyondPatient => (2014, "Proxy access cannot exceed the patient's own"),
        Refusal::SlotTaken => (2020, "The slot is no longer available"),
        Refusal::NoSuchItem => (2021, "No such slot, appointment or repeat"),
        Refusal::TooLateToCancel => (2022, "The appointment is too soon to cancel online"),
        Refusal::ReasonRequired => (2023, "The unit asks for a reason when booking"),
        Refusal::NotRequestable => (2024, "The medication cannot be requested online"),
    };
    error(StatusCode::OK, code, message)
}

fn invalid_request(message: &str) -> Reply {
    error(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
}

fn to_xml(root: &str, body: &impl Serialize) -> String {
    quick_xml::se::to_string_with_root(root, body).unwrap_or_default()
}

fn reply(root: &str, body: &impl Serialize) -> Reply {
    Reply::xml(StatusCode::OK, to_xml(root, body))
}

fn empty_reply(root: &str) -> Reply {
    Reply::xml(StatusCode::OK, format!("<{root}/>"))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|xml| quick_xml::de::from_str(xml).ok())
        .ok_or_else(|| invalid_request("The message is not valid"))
}

/// Optional elements may be left out or sent empty.
fn optional(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn optional_date(value: Option<String>) -> Result<Option<NaiveDate>, Reply> {
    optional(value)
        .map(|raw| raw.parse().map_err(|_| invalid_request("A date element is not a date")))
        .transpose()
}

fn header(request: &HttpRequest, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

async fn message(simulator: web::Data<Simulator>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let message_type = header(&request, "type").unwrap_or_default();
    if message_type == "CreateSession" {
        // Not remembered: renewing an expired session reuses the job's X-Request-ID, and a replay
        // would hand back the expired session.
        return simulator
            .serve(None, |_| None, |world, rng| create_session(world, rng, &body))
            .await;
    }
    let suid = header(&request, "suid");
    let session = |world: &World| {
        let open = suid.as_deref().is_some_and(|suid| world.sessions.contains(suid));
        (!open).then(|| error(StatusCode::OK, SESSION_INVALID, "The session is not valid"))
    };
    if message_type == "PatientRecord" {
        // A read: nothing to replay, and nothing kept per request.
        return simulator
            .serve_read(session, |world| patient_record(world, &body))
            .await;
    }
    if message_type == "ListSlots"
        && let Ok(list) = parse::<tpp_desk::ListSlots>(&body)
    {
        let mut state = simulator.lock();
        if let Ok(unit) = state.world.enabled_practice(&list.unit_id) {
            state.world.desk.open_book(&unit, now());
        }
    }
    if matches!(
        message_type.as_str(),
        "ListSlots" | "ListAppointments" | "ListRepeatMedication" | "ListMedicationRequests"
    ) {
        return simulator
            .serve_read(session, |world| desk_read(world, &message_type, &body))
            .await;
    }
    let scope = request_id(&request).map(|id| format!("{id}\n{message_type}"));
    let minimum_age = simulator.minimum_age();
    simulator
        .serve(scope, session, |world, rng| {
            let outcome = match message_type.as_str() {
                "LinkAccount" => link_account(world, rng, &body, minimum_age),
                "LinkNhsLoginAccount" => link_nhs_login_account(world, rng, &body, minimum_age),
                "SetServiceAccess" => set_service_access(world, &body),
                "ResetPassphrase" => reset_passphrase(world, rng, &body),
                "SetAccountStatus" => set_account_status(world, &body),
                "VerifyLinkage" => verify_linkage(world, &body),
                "LinkProxy" => link_proxy(world, rng, &body),
                "SetProxyAccess" => set_proxy_access(world, &body),
                "RevokeProxy" => revoke_proxy(world, &body),
                "BookAppointment" => book_appointment(world, rng, &body),
                "CancelAppointment" => cancel_appointment(world, &body),
                "RequestMedication" => request_medication(world, rng, &body),
                _ => Err(invalid_request("Unknown message type")),
            };
            outcome.unwrap_or_else(|refusal| refusal)
        })
        .await
}

fn now() -> chrono::NaiveDateTime {
    Utc::now().naive_utc()
}

/// The front desk's reads: slots, appointments, repeats and requests.
fn desk_read(world: &World, message_type: &str, body: &[u8]) -> Reply {
    if message_type == "ListSlots" {
        let list: tpp_desk::ListSlots = match parse(body) {
            Ok(l) => l,
            Err(reply) => return reply,
        };
        let Ok(range) = DayRange::new(list.start_date, list.end_date) else {
            return invalid_request("The date range is not valid");
        };
        return match world.enabled_practice(&list.unit_id) {
            Ok(unit) => reply(
                "ListSlotsReply",
                &tpp_desk::ListSlotsReply {
                    slot: world
                        .desk
                        .slots(&unit, range, now())
                        .iter()
                        .map(tpp_desk::slot_to_wire)
                        .collect(),
                },
            ),
            Err(refusal) => refused(refusal),
        };
    }
    let at: tpp_desk::PatientAtUnit = match parse(body) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let (patient, unit) = match world.registered(&at.patient_id, &at.unit_id) {
        Ok(found) => found,
        Err(refusal) => return refused(refusal),
    };
    match message_type {
        "ListAppointments" => reply(
            "ListAppointmentsReply",
            &tpp_desk::ListAppointmentsReply {
                appointment: world
                    .desk
                    .appointments(&patient, &unit)
                    .iter()
                    .map(tpp_desk::appointment_to_wire)
                    .collect(),
            },
        ),
        "ListRepeatMedication" => reply(
            "ListRepeatMedicationReply",
            &tpp_desk::ListRepeatMedicationReply {
                repeat: world
                    .desk
                    .repeats(&patient)
                    .iter()
                    .map(tpp_desk::repeat_to_wire)
                    .collect(),
            },
        ),
        _ => reply(
            "ListMedicationRequestsReply",
            &tpp_desk::ListMedicationRequestsReply {
                request: world
                    .desk
                    .requests(&patient, &unit)
                    .iter()
                    .map(tpp_desk::request_to_wire)
                    .collect(),
            },
        ),
    }
}

fn book_appointment(world: &mut World, rng: &mut StdRng, body: &[u8]) -> Result<Reply, Reply> {
    let wire: tpp_desk::BookAppointment = parse(body)?;
    let (patient, unit) = world.registered(&wire.patient_id, &wire.unit_id).map_err(refused)?;
    let booking = Booking {
        patient_identifier: patient,
        ods_code: unit,
        slot_id: wire.slot_id,
        reason: wire.reason,
    };
    let appointment = world.desk.book(&booking, rng, now()).map_err(refused)?;
    Ok(reply(
        "BookAppointmentReply",
        &tpp_desk::AppointmentReply {
            appointment: tpp_desk::appointment_to_wire(&appointment),
        },
    ))
}

fn cancel_appointment(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let wire: tpp_desk::CancelAppointment = parse(body)?;
    let (patient, unit) = world.registered(&wire.patient_id, &wire.unit_id).map_err(refused)?;
    let cancellation = Cancellation {
        patient_identifier: patient,
        ods_code: unit,
        appointment_id: wire.appointment_id,
        reason: wire.reason,
    };
    let appointment = world.desk.cancel(&cancellation, now()).map_err(refused)?;
    Ok(reply(
        "CancelAppointmentReply",
        &tpp_desk::AppointmentReply {
            appointment: tpp_desk::appointment_to_wire(&appointment),
        },
    ))
}

fn request_medication(world: &mut World, rng: &mut StdRng, body: &[u8]) -> Result<Reply, Reply> {
    let wire: tpp_desk::RequestMedication = parse(body)?;
    let (patient, unit) = world.registered(&wire.patient_id, &wire.unit_id).map_err(refused)?;
    let order = Order {
        patient_identifier: patient,
        ods_code: unit,
        repeat_ids: wire.repeat_id,
        message: wire.message,
    };
    let request = world.desk.request(&order, rng, now()).map_err(refused)?;
    Ok(reply(
        "RequestMedicationReply",
        &tpp_desk::RequestMedicationReply {
            request: tpp_desk::request_to_wire(&request),
        },
    ))
}

/// The patient's record at the unit (practice), every item with its flags.
fn patient_record(world: &World, body: &[u8]) -> Reply {
    let request: crate::suppliers::tpp_record::PatientRecord = match parse(body) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    match world.record(&request.patient_id, &request.unit_id) {
        Ok(record) => reply("PatientRecordReply", &crate::suppliers::tpp_record::to_wire(&record)),
        Err(refusal) => refused(refusal),
    }
}

fn random_hex(rng: &mut StdRng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSession {
    application: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSessionReply {
    suid: String,
}

fn create_session(world: &mut World, rng: &mut StdRng, body: &[u8]) -> Reply {
    match parse::<CreateSession>(body) {
        Ok(session) if !session.application.trim().is_empty() => {
            let suid = random_hex(rng);
            world.sessions.insert(suid.clone());
            reply("CreateSessionReply", &CreateSessionReply { suid })
        }
        Ok(_) => invalid_request("Application is required"),
        Err(reply) => reply,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkAccount {
    patient_identifier: String,
    organisation_code: String,
    surname: String,
    date_of_birth: NaiveDate,
    service_access: u32,
    record_access_from: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkAccountReply<'a> {
    online_user_id: &'a str,
    account_id: &'a str,
    passphrase: &'a str,
}

/// Makes the account a `LinkAccount`-shaped message asks for.
fn new_account<'w>(
    world: &'w mut World,
    rng: &mut StdRng,
    body: &[u8],
    minimum_age: u32,
) -> Result<&'w Account, Reply> {
    let message: LinkAccount = parse(body)?;
    let record_from = optional_date(message.record_access_from)?;
    let new = NewAccount {
        patient_identifier: message.patient_identifier,
        ods_code: message.organisation_code,
        surname: message.surname,
        birth_date: message.date_of_birth,
        access: access_from_flags(message.service_access, record_from),
    };
    let online_user_id = random_hex(rng).to_uppercase();
    let today = Utc::now().date_naive();
    world
        .create_account(new, online_user_id, minimum_age, today, rng)
        .map_err(refused)
}

fn link_account(world: &mut World, rng: &mut StdRng, body: &[u8], minimum_age: u32) -> Result<Reply, Reply> {
    let account = new_account(world, rng, body, minimum_age)?;
    Ok(reply(
        "LinkAccountReply",
        &LinkAccountReply {
            online_user_id: &account.supplier_ref,
            account_id: &account.account_id,
            passphrase: &account.linkage_key,
        },
    ))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkNhsLoginAccountReply<'a> {
    online_user_id: &'a str,
}

/// A patient verified by NHS login: the account is made without a passphrase to hand out.
fn link_nhs_login_account(world: &mut World, rng: &mut StdRng, body: &[u8], minimum_age: u32) -> Result<Reply, Reply> {
    let account = new_account(world, rng, body, minimum_age)?;
    Ok(reply(
        "LinkNhsLoginAccountReply",
        &LinkNhsLoginAccountReply {
            online_user_id: &account.supplier_ref,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetServiceAccess {
    online_user_id: String,
    service_access: u32,
    record_access_from: Option<String>,
}

fn set_service_access(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let message: SetServiceAccess = parse(body)?;
    let record_from = optional_date(message.record_access_from)?;
    world
        .set_access(
            &message.online_user_id,
            access_from_flags(message.service_access, record_from),
        )
        .map_err(refused)?;
    Ok(empty_reply("SetServiceAccessReply"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResetPassphrase {
    online_user_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResetPassphraseReply<'a> {
    account_id: &'a str,
    passphrase: &'a str,
}

fn reset_passphrase(world: &mut World, rng: &mut StdRng, body: &[u8]) -> Result<Reply, Reply> {
    let message: ResetPassphrase = parse(body)?;
    let account = world.reset_linkage_key(&message.online_user_id, rng).map_err(refused)?;
    Ok(reply(
        "ResetPassphraseReply",
        &ResetPassphraseReply {
            account_id: &account.account_id,
            passphrase: &account.linkage_key,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetAccountStatus {
    online_user_id: String,
    enabled: bool,
    reason: Option<String>,
}

fn set_account_status(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let message: SetAccountStatus = parse(body)?;
    world
        .set_enabled(&message.online_user_id, message.enabled, optional(message.reason))
        .map_err(refused)?;
    Ok(empty_reply("SetAccountStatusReply"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyLinkage {
    account_id: String,
    passphrase: String,
    organisation_code: String,
    surname: String,
    date_of_birth: NaiveDate,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyLinkageReply<'a> {
    patient_identifier: &'a str,
}

fn verify_linkage(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let message: VerifyLinkage = parse(body)?;
    let letter = LetterDetails {
        account_id: &message.account_id,
        linkage_key: &message.passphrase,
        ods_code: &message.organisation_code,
        surname: &message.surname,
        birth_date: message.date_of_birth,
    };
    let account = world.verify(&letter).map_err(refused)?;
    Ok(reply(
        "VerifyLinkageReply",
        &VerifyLinkageReply {
            patient_identifier: &account.patient_identifier,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkProxy {
    patient_identifier: String,
    proxy_identifier: String,
    organisation_code: String,
    relationship_type: String,
    service_access: u32,
    record_access_from: Option<String>,
    end_date: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkProxyReply<'a> {
    proxy_link_id: &'a str,
}

fn link_proxy(world: &mut World, rng: &mut StdRng, body: &[u8]) -> Result<Reply, Reply> {
    let message: LinkProxy = parse(body)?;
    let record_from = optional_date(message.record_access_from)?;
    let end_date = optional_date(message.end_date)?;
    let new = NewProxyLink {
        patient_identifier: message.patient_identifier,
        proxy_identifier: message.proxy_identifier,
        ods_code: message.organisation_code,
        relationship: message.relationship_type,
        access: access_from_flags(message.service_access, record_from),
        end_date,
    };
    let link = world.link_proxy(new, random_hex(rng).to_uppercase()).map_err(refused)?;
    Ok(reply(
        "LinkProxyReply",
        &LinkProxyReply {
            proxy_link_id: &link.link_ref,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetProxyAccess {
    proxy_link_id: String,
    service_access: u32,
    record_access_from: Option<String>,
}

fn set_proxy_access(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let message: SetProxyAccess = parse(body)?;
    let record_from = optional_date(message.record_access_from)?;
    world
        .set_proxy_access(
            &message.proxy_link_id,
            access_from_flags(message.service_access, record_from),
        )
        .map_err(refused)?;
    Ok(empty_reply("SetProxyAccessReply"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RevokeProxy {
    proxy_link_id: String,
    reason: Option<String>,
}

fn revoke_proxy(world: &mut World, body: &[u8]) -> Result<Reply, Reply> {
    let message: RevokeProxy = parse(body)?;
    world
        .revoke_proxy(&message.proxy_link_id, optional(message.reason))
        .map_err(refused)?;
    Ok(empty_reply("RevokeProxyReply"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_elements_may_be_left_out_or_empty() {
        let head = "<SetServiceAccess><OnlineUserId>U1</OnlineUserId><ServiceAccess>70</ServiceAccess>";
        for xml in [
            format!("{head}</SetServiceAccess>"),
            format!("{head}<RecordAccessFrom/></SetServiceAccess>"),
            format!("{head}<RecordAccessFrom> </RecordAccessFrom></SetServiceAccess>"),
        ] {
            let parsed: SetServiceAccess = parse(xml.as_bytes()).ok().unwrap();
            assert_eq!(parsed.service_access, 70);
            assert_eq!(optional_date(parsed.record_access_from).ok().unwrap(), None, "{xml}");
        }
        let dated = format!("{head}<RecordAccessFrom>2024-04-01</RecordAccessFrom></SetServiceAccess>");
        let parsed: SetServiceAccess = parse(dated.as_bytes()).ok().unwrap();
        assert_eq!(
            optional_date(parsed.record_access_from).ok().unwrap(),
            NaiveDate::from_ymd_opt(2024, 4, 1)
        );
    }
}
