//! TPP-like adapter (XML).
//!
//! One endpoint; the message type travels in a `type` header and the body's root element has the
//! same name. Every message but `CreateSession` needs a session id (`suid`), which is created on
//! first use, shared by all calls and renewed once when the supplier says it has expired.

use std::time::Duration;

use chrono::NaiveDate;
use quick_xml::events::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::http::{body_within, http_client, scrub, transport_error, unreadable};
use super::{
    AccountCredentials, CreateAccount, LinkProxy, Reads, SupplierAdapter, SupplierError, tpp_desk, tpp_record,
};
use crate::domain::clinical::ClinicalRecord;
use crate::domain::transactional::{
    Appointment, Booking, Cancellation, DayRange, Order, PrescriptionRequest, RepeatMedication, Slot,
};
use crate::domain::{AccessSettings, RecordAccessLevel, ServiceLevel, Services, Supplier};

/// `ServiceAccess` bits.
pub const FULL_RECORD: u32 = 1;
pub const APPOINTMENTS: u32 = 2;
pub const MEDICATION: u32 = 4;
pub const SUMMARY_RECORD: u32 = 64;
pub const DETAILED_CODED_RECORD: u32 = 128;
pub const MESSAGING: u32 = 512;
pub const DOCUMENTS: u32 = 1024;
/// Booking and cancelling appointments, on top of seeing them (`APPOINTMENTS`).
pub const BOOK_APPOINTMENTS: u32 = 2048;
/// Requesting repeat medication, on top of seeing it (`MEDICATION`).
pub const REQUEST_MEDICATION: u32 = 4096;

const APPLICATION_NAME: &str = "gp-online-gateway";
const SESSION_INVALID: &str = "3";

/// Each record level includes the ones below it, as the supplier expects.
pub fn service_access_flags(access: &AccessSettings) -> u32 {
    let record = match access.record_level {
        RecordAccessLevel::None => 0,
        RecordAccessLevel::Summary => SUMMARY_RECORD,
        RecordAccessLevel::DetailedCoded => SUMMARY_RECORD | DETAILED_CODED_RECORD,
        RecordAccessLevel::Documents => SUMMARY_RECORD | DETAILED_CODED_RECORD | DOCUMENTS,
        RecordAccessLevel::Full => SUMMARY_RECORD | DETAILED_CODED_RECORD | DOCUMENTS | FULL_RECORD,
    };
    let service = |enabled: bool, flag: u32| if enabled { flag } else { 0 };
    let level = |level: ServiceLevel, view: u32, manage: u32| match level {
        ServiceLevel::None => 0,
        ServiceLevel::View => view,
        ServiceLevel::Manage => view | manage,
    };
    record
        | level(access.services.appointments, APPOINTMENTS, BOOK_APPOINTMENTS)
        | level(access.services.prescriptions, MEDICATION, REQUEST_MEDICATION)
        | service(access.services.messaging, MESSAGING)
}

fn level_from(flags: u32, view: u32, manage: u32) -> ServiceLevel {
    if flags & view == 0 {
        ServiceLevel::None
    } else if flags & manage == 0 {
        ServiceLevel::View
    } else {
        ServiceLevel::Manage
    }
}

/// The highest record bit decides the level; the date only means something for full access.
pub fn access_from_flags(flags: u32, record_from: Option<NaiveDate>) -> AccessSettings {
    let record_level = if flags & FULL_RECORD != 0 {
        RecordAccessLevel::Full
    } else if flags & DOCUMENTS != 0 {
        RecordAccessLevel::Documents
    } else if flags & DETAILED_CODED_RECORD != 0 {
        RecordAccessLevel::DetailedCoded
    } else if flags & SUMMARY_RECORD != 0 {
        RecordAccessLevel::Summary
    } else {
        RecordAccessLevel::None
    };
    AccessSettings {
        services: Services {
            appointments: level_from(flags, APPOINTMENTS, BOOK_APPOINTMENTS),
            prescriptions: level_from(flags, MEDICATION, REQUEST_MEDICATION),
            messaging: flags & MESSAGING != 0,
        },
        record_level,
        record_from: record_from.filter(|_| record_level == RecordAccessLevel::Full),
    }
}

pub struct TppAdapter {
    http: reqwest::Client,
    endpoint: String,
    /// Held while a session is being created, so concurrent first calls open only one.
    session: Mutex<Option<String>>,
}

impl TppAdapter {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http_client(timeout)?,
            endpoint: format!("{}/tpp", base_url.trim_end_matches('/')),
            session: Mutex::new(None),
        })
    }

    /// Checks the details from a registration letter the way the supplier does when a patient
    /// links an app; returns the patient's identifier (NHS number).
    #[tracing::instrument(skip_all, fields(supplier = "tpp"))]
    pub async fn verify_linkage(
        &self,
        idempotency_key: &str,
        account_id: &str,
        linkage_key: &str,
        ods_code: &str,
        surname: &str,
        birth_date: NaiveDate,
    ) -> Result<String, SupplierError> {
        let message = VerifyLinkage {
            account_id,
            passphrase: linkage_key,
            organisation_code: ods_code,
            surname,
            date_of_birth: birth_date,
        };
        let reply: VerifyLinkageReply = self.exchange(idempotency_key, "VerifyLinkage", &message).await?;
        Ok(reply.patient_identifier)
    }

    /// Sends one message in the current session, renewing the session once if it has expired.
    async fn exchange<M: Serialize, R: DeserializeOwned>(
        &self,
        idempotency_key: &str,
        message_type: &str,
        message: &M,
    ) -> Result<R, SupplierError> {
        self.exchange_within(idempotency_key, message_type, message, None).await
    }

    /// [`Self::exchange`], with a read's own time limit and largest answer.
    async fn exchange_within<M: Serialize, R: DeserializeOwned>(
        &self,
        idempotency_key: &str,
        message_type: &str,
        message: &M,
        reads: Option<Reads>,
    ) -> Result<R, SupplierError> {
        let body = to_xml(message_type, message)?;
        let suid = self.session(idempotency_key).await?;
        let reply = match self
            .post(idempotency_key, message_type, Some(&suid), body.clone(), reads)
            .await
        {
            Err(Failure::SessionInvalid) => {
                self.forget_session(&suid).await;
                let suid = self.session(idempotency_key).await?;
                self.post(idempotency_key, message_type, Some(&suid), body, reads).await
            }
            other => other,
        };
        match reply {
            Ok(xml) => from_xml(message_type, &xml),
            Err(Failure::SessionInvalid) => Err(SupplierError::Unavailable(
                "the supplier refused a freshly created session".to_owned(),
            )),
            Err(Failure::Supplier(error)) => Err(error),
        }
    }

    async fn session(&self, idempotency_key: &str) -> Result<String, SupplierError> {
        let mut cached = self.session.lock().await;
        if let Some(suid) = cached.as_ref() {
            return Ok(suid.clone());
        }
        let message = CreateSession {
            application: APPLICATION_NAME,
        };
        let body = to_xml("CreateSession", &message)?;
        let reply = match self.post(idempotency_key, "CreateSession", None, body, None).await {
            Ok(xml) => from_xml::<CreateSessionReply>("CreateSession", &xml)?,
            Err(Failure::SessionInvalid) => {
                return Err(SupplierError::Unavailable(
                    "the supplier refused to open a session".to_owned(),
                ));
            }
            Err(Failure::Supplier(error)) => return Err(error),
        };
        *cached = Some(reply.suid.clone());
        Ok(reply.suid)
    }

    /// Another call may already have replaced the stale session; keep the newer one.
    async fn forget_session(&self, stale: &str) {
        let mut cached = self.session.lock().await;
        if cached.as_deref() == Some(stale) {
            *cached = None;
        }
    }

    async fn post(
        &self,
        idempotency_key: &str,
        message_type: &str,
        suid: Option<&str>,
        body: String,
        reads: Option<Reads>,
    ) -> Result<String, Failure> {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("X-Request-ID", idempotency_key)
            .header("type", message_type)
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(body);
        if let Some(suid) = suid {
            request = request.header("suid", suid);
        }
        if let Some(reads) = reads {
            request = request.timeout(reads.timeout);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = match reads {
            Some(reads) => String::from_utf8(body_within(response, reads.max_bytes).await?)
                .map_err(|_| Failure::Supplier(unreadable("reply")))?,
            None => response.text().await?,
        };
        let retryable_status = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
        if let Some(error) = parse_error(&text) {
            if error.code == SESSION_INVALID {
                return Err(Failure::SessionInvalid);
            }
            return Err(Failure::Supplier(match map_error(&error.code, &error.message) {
                // An unclassified code on a 5xx is still the supplier saying "try again".
                SupplierError::Rejected { .. } if retryable_status => {
                    SupplierError::Unavailable(format!("HTTP {} (error {})", status.as_u16(), error.code))
                }
                mapped => mapped,
            }));
        }
        if retryable_status {
            return Err(Failure::Supplier(SupplierError::Unavailable(format!(
                "HTTP {}",
                status.as_u16()
            ))));
        }
        if !status.is_success() {
            return Err(Failure::Supplier(SupplierError::Rejected {
                code: status.as_u16().to_string(),
                message: "the supplier refused the request without an error body".to_owned(),
            }));
        }
        Ok(text)
    }
}

#[async_trait::async_trait]
impl SupplierAdapter for TppAdapter {
    fn supplier(&self) -> Supplier {
        Supplier::Tpp
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %request.ods_code))]
    async fn create_account(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
    ) -> Result<AccountCredentials, SupplierError> {
        let message = LinkAccount::from(request);
        let reply: LinkAccountReply = self.exchange(idempotency_key, "LinkAccount", &message).await?;
        AccountCredentials::from_reply(reply.online_user_id, reply.account_id, reply.passphrase)
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp"))]
    async fn register_nhs_login(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
    ) -> Result<String, SupplierError> {
        let message = LinkAccount::from(request);
        let reply: LinkNhsLoginAccountReply = self.exchange(idempotency_key, "LinkNhsLoginAccount", &message).await?;
        super::issued(reply.online_user_id, "online user id")
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", supplier_ref = %supplier_ref))]
    async fn set_access(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError> {
        let message = SetServiceAccess {
            online_user_id: supplier_ref,
            service_access: service_access_flags(access),
            record_access_from: full_record_from(access),
        };
        let _: Empty = self.exchange(idempotency_key, "SetServiceAccess", &message).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", supplier_ref = %supplier_ref))]
    async fn reset_linkage_key(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
    ) -> Result<AccountCredentials, SupplierError> {
        let message = ResetPassphrase {
            online_user_id: supplier_ref,
        };
        let reply: ResetPassphraseReply = self.exchange(idempotency_key, "ResetPassphrase", &message).await?;
        AccountCredentials::from_reply(supplier_ref.to_owned(), reply.account_id, reply.passphrase)
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", supplier_ref = %supplier_ref, enabled = enabled))]
    async fn set_account_enabled(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), SupplierError> {
        let message = SetAccountStatus {
            online_user_id: supplier_ref,
            enabled,
            reason,
        };
        let _: Empty = self.exchange(idempotency_key, "SetAccountStatus", &message).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %request.ods_code))]
    async fn link_proxy(&self, idempotency_key: &str, request: &LinkProxy) -> Result<String, SupplierError> {
        let message = LinkProxyMessage {
            patient_identifier: &request.patient_identifier,
            proxy_identifier: &request.proxy_nhs_number,
            organisation_code: &request.ods_code,
            relationship_type: &request.relationship,
            service_access: service_access_flags(&request.access),
            record_access_from: full_record_from(&request.access),
            end_date: request.end_date,
        };
        let reply: LinkProxyReply = self.exchange(idempotency_key, "LinkProxy", &message).await?;
        super::issued(reply.proxy_link_id, "proxy link id")
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", link = %link_ref))]
    async fn set_proxy_access(
        &self,
        idempotency_key: &str,
        link_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError> {
        let message = SetProxyAccess {
            proxy_link_id: link_ref,
            service_access: service_access_flags(access),
            record_access_from: full_record_from(access),
        };
        let _: Empty = self.exchange(idempotency_key, "SetProxyAccess", &message).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", link = %link_ref))]
    async fn revoke_proxy(&self, idempotency_key: &str, link_ref: &str, reason: &str) -> Result<(), SupplierError> {
        let message = RevokeProxy {
            proxy_link_id: link_ref,
            reason,
        };
        let _: Empty = self.exchange(idempotency_key, "RevokeProxy", &message).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %ods_code))]
    async fn record(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<ClinicalRecord, SupplierError> {
        let message = tpp_record::PatientRecord {
            patient_id: patient_identifier.to_owned(),
            unit_id: ods_code.to_owned(),
        };
        let reply: tpp_record::PatientRecordReply = self
            .exchange_within(request_id, "PatientRecord", &message, Some(reads))
            .await?;
        tpp_record::from_wire(reply).map_err(|_| unreadable("patient record"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %ods_code))]
    async fn slots(
        &self,
        request_id: &str,
        ods_code: &str,
        range: DayRange,
        reads: Reads,
    ) -> Result<Vec<Slot>, SupplierError> {
        let message = tpp_desk::ListSlots {
            unit_id: ods_code.to_owned(),
            start_date: range.from,
            end_date: range.to,
        };
        let reply: tpp_desk::ListSlotsReply = self
            .exchange_within(request_id, "ListSlots", &message, Some(reads))
            .await?;
        reply
            .slot
            .into_iter()
            .map(|w| tpp_desk::slot_from_wire(w).map_err(|_| unreadable("slots")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %ods_code))]
    async fn appointments(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<Appointment>, SupplierError> {
        let message = at_unit(patient_identifier, ods_code);
        let reply: tpp_desk::ListAppointmentsReply = self
            .exchange_within(request_id, "ListAppointments", &message, Some(reads))
            .await?;
        reply
            .appointment
            .into_iter()
            .map(|w| tpp_desk::appointment_from_wire(w).map_err(|_| unreadable("appointments")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %booking.ods_code))]
    async fn book(&self, idempotency_key: &str, booking: &Booking, reads: Reads) -> Result<Appointment, SupplierError> {
        let message = tpp_desk::BookAppointment {
            patient_id: booking.patient_identifier.clone(),
            unit_id: booking.ods_code.clone(),
            slot_id: booking.slot_id.clone(),
            reason: booking.reason.clone(),
        };
        let reply: tpp_desk::AppointmentReply = self
            .exchange_within(idempotency_key, "BookAppointment", &message, Some(reads))
            .await?;
        tpp_desk::appointment_from_wire(reply.appointment).map_err(|_| unreadable("booking"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %cancellation.ods_code))]
    async fn cancel(
        &self,
        idempotency_key: &str,
        cancellation: &Cancellation,
        reads: Reads,
    ) -> Result<Appointment, SupplierError> {
        let message = tpp_desk::CancelAppointment {
            patient_id: cancellation.patient_identifier.clone(),
            unit_id: cancellation.ods_code.clone(),
            appointment_id: cancellation.appointment_id.clone(),
            reason: cancellation.reason.clone(),
        };
        let reply: tpp_desk::AppointmentReply = self
            .exchange_within(idempotency_key, "CancelAppointment", &message, Some(reads))
            .await?;
        tpp_desk::appointment_from_wire(reply.appointment).map_err(|_| unreadable("cancellation"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %ods_code))]
    async fn repeats(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<RepeatMedication>, SupplierError> {
        let message = at_unit(patient_identifier, ods_code);
        let reply: tpp_desk::ListRepeatMedicationReply = self
            .exchange_within(request_id, "ListRepeatMedication", &message, Some(reads))
            .await?;
        reply
            .repeat
            .into_iter()
            .map(|w| tpp_desk::repeat_from_wire(w).map_err(|_| unreadable("repeat medication")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %ods_code))]
    async fn prescription_requests(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<PrescriptionRequest>, SupplierError> {
        let message = at_unit(patient_identifier, ods_code);
        let reply: tpp_desk::ListMedicationRequestsReply = self
            .exchange_within(request_id, "ListMedicationRequests", &message, Some(reads))
            .await?;
        reply
            .request
            .into_iter()
            .map(|w| tpp_desk::request_from_wire(w).map_err(|_| unreadable("medication requests")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "tpp", ods_code = %order.ods_code))]
    async fn request_repeats(
        &self,
        idempotency_key: &str,
        order: &Order,
        reads: Reads,
    ) -> Result<PrescriptionRequest, SupplierError> {
        let message = tpp_desk::RequestMedication {
            patient_id: order.patient_identifier.clone(),
            unit_id: order.ods_code.clone(),
            repeat_id: order.repeat_ids.clone(),
            message: order.message.clone(),
        };
        let reply: tpp_desk::RequestMedicationReply = self
            .exchange_within(idempotency_key, "RequestMedication", &message, Some(reads))
            .await?;
        tpp_desk::request_from_wire(reply.request).map_err(|_| unreadable("medication request"))
    }
}

fn at_unit(patient_identifier: &str, ods_code: &str) -> tpp_desk::PatientAtUnit {
    tpp_desk::PatientAtUnit {
        patient_id: patient_identifier.to_owned(),
        unit_id: ods_code.to_owned(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkProxyMessage<'a> {
    patient_identifier: &'a str,
    proxy_identifier: &'a str,
    organisation_code: &'a str,
    relationship_type: &'a str,
    service_access: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_access_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_date: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkProxyReply {
    proxy_link_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SetProxyAccess<'a> {
    proxy_link_id: &'a str,
    service_access: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_access_from: Option<NaiveDate>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RevokeProxy<'a> {
    proxy_link_id: &'a str,
    reason: &'a str,
}

enum Failure {
    SessionInvalid,
    Supplier(SupplierError),
}

impl From<SupplierError> for Failure {
    fn from(error: SupplierError) -> Self {
        Self::Supplier(error)
    }
}

/// Transport failures come out of `?` in `post`.
impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        Self::Supplier(transport_error(error))
    }
}

fn full_record_from(access: &AccessSettings) -> Option<NaiveDate> {
    access
        .record_from
        .filter(|_| access.record_level == RecordAccessLevel::Full)
}

fn map_error(code: &str, message: &str) -> SupplierError {
    match code {
        "8" => SupplierError::UnderMinimumAge,
        "2005" => SupplierError::Conflict,
        "2006" => SupplierError::PatientNotFound,
        "2007" => SupplierError::PracticeNotEnabled,
        "2008" => SupplierError::Archived,
        "2009" => SupplierError::InvalidDetails,
        "2011" => SupplierError::ProxyExists,
        "2012" | "2014" => SupplierError::ProxyRefused,
        "2020" => SupplierError::SlotUnavailable,
        "2021" => SupplierError::ItemNotFound,
        "2022" => SupplierError::TooLateToCancel,
        "2023" => SupplierError::ReasonRequired,
        "2024" => SupplierError::NotRequestable,
        "5" => SupplierError::Unavailable("the supplier's service is unavailable".to_owned()),
        "6" => SupplierError::Unavailable("the supplier timed out".to_owned()),
        // Only reached when a renewed session is refused too.
        SESSION_INVALID => SupplierError::Unavailable("the supplier refused the session".to_owned()),
        _ => SupplierError::Rejected {
            code: code.to_owned(),
            message: scrub(message),
        },
    }
}

fn to_xml<M: Serialize>(message_type: &str, message: &M) -> Result<String, SupplierError> {
    quick_xml::se::to_string_with_root(message_type, message).map_err(|_| SupplierError::Rejected {
        code: "INVALID_REQUEST".to_owned(),
        message: format!("the {message_type} message could not be written"),
    })
}

/// Replies are named after the message (`LinkAccount` -> `LinkAccountReply`); anything else is
/// not an answer to what was asked.
fn from_xml<R: DeserializeOwned>(message_type: &str, xml: &str) -> Result<R, SupplierError> {
    let invalid = || SupplierError::Rejected {
        code: "INVALID_REPLY".to_owned(),
        message: format!("the supplier's reply to {message_type} could not be read"),
    };
    if root_element(xml).as_deref() != Some(&format!("{message_type}Reply")) {
        return Err(invalid());
    }
    quick_xml::de::from_str(xml).map_err(|_| invalid())
}

fn root_element(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(Event::Start(element) | Event::Empty(element)) => {
                return String::from_utf8(element.name().as_ref().to_vec()).ok();
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

struct ErrorReply {
    code: String,
    message: String,
}

fn parse_error(xml: &str) -> Option<ErrorReply> {
    if root_element(xml).as_deref() != Some("Error") {
        return None;
    }
    let error: ErrorBody = quick_xml::de::from_str(xml).ok()?;
    Some(ErrorReply {
        // A code is matched against known ones and kept on the Task: letters, digits and _ only.
        code: error
            .error_code
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(32)
            .collect(),
        message: error.user_friendly_message.unwrap_or_default(),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    error_code: String,
    user_friendly_message: Option<String>,
}

/// For replies that carry nothing but their name.
#[derive(Deserialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSession<'a> {
    application: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSessionReply {
    suid: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkAccount<'a> {
    patient_identifier: &'a str,
    organisation_code: &'a str,
    surname: &'a str,
    date_of_birth: NaiveDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    service_access: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_access_from: Option<NaiveDate>,
}

impl<'a> From<&'a CreateAccount> for LinkAccount<'a> {
    fn from(request: &'a CreateAccount) -> Self {
        LinkAccount {
            patient_identifier: &request.patient_identifier,
            organisation_code: &request.ods_code,
            surname: &request.family_name,
            date_of_birth: request.birth_date,
            email: request.email.as_deref(),
            service_access: service_access_flags(&request.access),
            record_access_from: full_record_from(&request.access),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkNhsLoginAccountReply {
    online_user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkAccountReply {
    online_user_id: String,
    account_id: String,
    passphrase: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SetServiceAccess<'a> {
    online_user_id: &'a str,
    service_access: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_access_from: Option<NaiveDate>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ResetPassphrase<'a> {
    online_user_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResetPassphraseReply {
    account_id: String,
    passphrase: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SetAccountStatus<'a> {
    online_user_id: &'a str,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyLinkage<'a> {
    account_id: &'a str,
    passphrase: &'a str,
    organisation_code: &'a str,
    surname: &'a str,
    date_of_birth: NaiveDate,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyLinkageReply {
    patient_identifier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(
        appointments: bool,
        prescriptions: bool,
        messaging: bool,
        record_level: RecordAccessLevel,
    ) -> AccessSettings {
        AccessSettings {
            services: Services {
                appointments: ServiceLevel::from_bool(appointments),
                prescriptions: ServiceLevel::from_bool(prescriptions),
                messaging,
            },
            record_level,
            record_from: None,
        }
    }

    #[test]
    fn seeing_a_service_and_acting_in_it_are_two_bits() {
        for (appointments, prescriptions) in [
            (ServiceLevel::None, ServiceLevel::View),
            (ServiceLevel::View, ServiceLevel::Manage),
            (ServiceLevel::Manage, ServiceLevel::None),
        ] {
            let mut a = access(false, false, false, RecordAccessLevel::None);
            a.services.appointments = appointments;
            a.services.prescriptions = prescriptions;
            let flags = service_access_flags(&a);
            assert_eq!(access_from_flags(flags, None), a, "{flags}");
        }
        let mut view = access(false, false, false, RecordAccessLevel::None);
        view.services.appointments = ServiceLevel::View;
        assert_eq!(service_access_flags(&view), APPOINTMENTS);
    }

    #[test]
    fn record_levels_include_the_levels_below() {
        let flags = |level| service_access_flags(&access(false, false, false, level));
        assert_eq!(flags(RecordAccessLevel::None), 0);
        assert_eq!(flags(RecordAccessLevel::Summary), 64);
        assert_eq!(flags(RecordAccessLevel::DetailedCoded), 64 | 128);
        assert_eq!(flags(RecordAccessLevel::Documents), 64 | 128 | 1024);
        assert_eq!(flags(RecordAccessLevel::Full), 64 | 128 | 1024 | 1);
    }

    #[test]
    fn services_have_their_own_bits() {
        let flags = |a, p, m| service_access_flags(&access(a, p, m, RecordAccessLevel::None));
        // A service switched on whole is seen and acted in: two bits each.
        assert_eq!(flags(true, false, false), 2 | 2048);
        assert_eq!(flags(false, true, false), 4 | 4096);
        assert_eq!(flags(false, false, true), 512);
        assert_eq!(flags(true, true, true), 2 | 2048 | 4 | 4096 | 512);
        assert_eq!(
            service_access_flags(&access(true, true, true, RecordAccessLevel::Full)),
            1 | 2 | 4 | 64 | 128 | 512 | 1024 | 2048 | 4096
        );
    }

    #[test]
    fn every_combination_survives_the_round_trip() {
        let from = NaiveDate::from_ymd_opt(2023, 11, 1);
        for level in [
            RecordAccessLevel::None,
            RecordAccessLevel::Summary,
            RecordAccessLevel::DetailedCoded,
            RecordAccessLevel::Documents,
            RecordAccessLevel::Full,
        ] {
            for bits in 0..8u8 {
                let mut settings = access(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, level);
                settings.record_from = from.filter(|_| level == RecordAccessLevel::Full);
                let flags = service_access_flags(&settings);
                assert_eq!(
                    access_from_flags(flags, full_record_from(&settings)),
                    settings,
                    "{flags}"
                );
            }
        }
    }

    #[test]
    fn the_highest_record_bit_decides_and_the_date_only_counts_for_full_access() {
        let from = NaiveDate::from_ymd_opt(2023, 11, 1);
        assert_eq!(
            access_from_flags(FULL_RECORD, from).record_level,
            RecordAccessLevel::Full
        );
        assert_eq!(access_from_flags(FULL_RECORD, from).record_from, from);
        let coded = access_from_flags(DETAILED_CODED_RECORD, from);
        assert_eq!(coded.record_level, RecordAccessLevel::DetailedCoded);
        assert_eq!(coded.record_from, None);
        assert_eq!(
            access_from_flags(SUMMARY_RECORD | APPOINTMENTS | BOOK_APPOINTMENTS, None),
            {
                let mut expected = access(true, false, false, RecordAccessLevel::Summary);
                expected.record_from = None;
                expected
            }
        );
    }

    #[test]
    fn every_documented_error_code_maps_to_its_own_error() {
        let table = [
            ("8", SupplierError::UnderMinimumAge),
            ("2005", SupplierError::Conflict),
            ("2006", SupplierError::PatientNotFound),
            ("2007", SupplierError::PracticeNotEnabled),
            ("2008", SupplierError::Archived),
            ("2009", SupplierError::InvalidDetails),
            ("2011", SupplierError::ProxyExists),
            ("2012", SupplierError::ProxyRefused),
            ("2014", SupplierError::ProxyRefused),
        ];
        for (code, expected) in table {
            assert_eq!(map_error(code, "m"), expected, "{code}");
        }
        for code in ["3", "5", "6"] {
            assert!(map_error(code, "m").is_retryable(), "{code}");
        }
        assert_eq!(
            map_error("2004", "no such user"),
            SupplierError::Rejected {
                code: "2004".into(),
                message: "no such user".into()
            }
        );
    }

    #[test]
    fn error_bodies_are_recognised_by_their_root_element() {
        let error = parse_error(
            "<?xml version=\"1.0\"?><Error><ErrorCode> 2005 </ErrorCode>\
             <UserFriendlyMessage>An account already exists</UserFriendlyMessage></Error>",
        )
        .unwrap();
        assert_eq!(error.code, "2005");
        assert_eq!(error.message, "An account already exists");
        assert!(parse_error("<Error><ErrorCode>8</ErrorCode></Error>").is_some());
        assert!(parse_error("<LinkAccountReply><ErrorCode>8</ErrorCode></LinkAccountReply>").is_none());
        assert!(parse_error("Service Unavailable").is_none());
    }

    #[test]
    fn messages_are_written_with_the_type_as_root_and_optional_elements_left_out() {
        let message = LinkAccount {
            patient_identifier: "9434765919",
            organisation_code: "A12345",
            surname: "O'Brien & Sons",
            date_of_birth: NaiveDate::from_ymd_opt(1980, 2, 29).unwrap(),
            email: None,
            service_access: 70,
            record_access_from: None,
        };
        assert_eq!(
            to_xml("LinkAccount", &message).unwrap(),
            "<LinkAccount><PatientIdentifier>9434765919</PatientIdentifier>\
             <OrganisationCode>A12345</OrganisationCode><Surname>O'Brien &amp; Sons</Surname>\
             <DateOfBirth>1980-02-29</DateOfBirth><ServiceAccess>70</ServiceAccess></LinkAccount>"
        );
    }

    #[test]
    fn replies_must_answer_the_message_that_was_sent() {
        let reply: LinkAccountReply = from_xml(
            "LinkAccount",
            "<LinkAccountReply><OnlineUserId>u</OnlineUserId><AccountId>a</AccountId>\
             <Passphrase>p</Passphrase></LinkAccountReply>",
        )
        .unwrap();
        assert_eq!((reply.online_user_id.as_str(), reply.passphrase.as_str()), ("u", "p"));
        assert!(from_xml::<Empty>("SetServiceAccess", "<SetServiceAccessReply/>").is_ok());
        assert!(from_xml::<Empty>("SetServiceAccess", "<SetAccountStatusReply/>").is_err());
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct SentLinkAccount {
        surname: String,
        email: Option<String>,
    }

    proptest::proptest! {
        #[test]
        fn any_reply_is_read_without_panicking(xml in "(<[A-Za-z]{1,8}( [a-z]=\"[^\"]{0,4}\")?/?>|</[A-Za-z]{1,8}>|[^<]{0,8}|&[a-z#0-9]{0,5};?|<!\\[CDATA\\[|<\\?xml){0,12}") {
            let _ = parse_error(&xml);
            let _ = from_xml::<ErrorBody>("LinkAccount", &xml);
            let _ = root_element(&xml);
        }

        #[test]
        fn names_and_addresses_reach_the_supplier_unchanged(
            surname in "[\\x20-\\x7e\\u{a0}-\\u{1fff}]{1,40}",
            email in "[a-z0-9.&<>'\"]{1,20}@[a-z]{1,10}\\.nhs\\.uk",
        ) {
            let message = LinkAccount {
                patient_identifier: "9434765919",
                organisation_code: "B82005",
                surname: &surname,
                date_of_birth: NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
                email: Some(&email),
                service_access: 7,
                record_access_from: None,
            };
            let xml = to_xml("LinkAccount", &message).unwrap();
            let sent: SentLinkAccount = quick_xml::de::from_str(&xml).unwrap();
            proptest::prop_assert_eq!(sent.surname.trim(), surname.trim());
            proptest::prop_assert_eq!(sent.email.as_deref(), Some(email.as_str()));
        }
    }
}
