//! EMIS-like adapter (JSON).
//!
//! Creating an account takes three calls (`users/nhs`, the settings, `me/verifications` to read
//! the letter details back). Each carries the job's idempotency key: the supplier scopes replays
//! by (key, method, path), so a retried job replays the steps that already happened and carries
//! out the rest.

use std::time::Duration;

use chrono::NaiveDate;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::http::{body_within, http_client, scrub, transport_error, unreadable};
use super::{
    AccountCredentials, CreateAccount, LinkProxy, Reads, SupplierAdapter, SupplierError, emis_desk, emis_record,
};
use crate::domain::clinical::ClinicalRecord;
use crate::domain::transactional::{
    Appointment, Booking, Cancellation, DayRange, Order, PrescriptionRequest, RepeatMedication, Slot,
};
use crate::domain::{AccessSettings, RecordAccessLevel, ServiceLevel, Supplier};

pub struct EmisAdapter {
    http: reqwest::Client,
    base_url: String,
}

impl EmisAdapter {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http_client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Checks the details from a registration letter the way the supplier does when a patient
    /// links an app; returns the patient's NHS number.
    #[tracing::instrument(skip_all, fields(supplier = "emis"))]
    pub async fn verify_linkage(
        &self,
        idempotency_key: &str,
        account_id: &str,
        linkage_key: &str,
        ods_code: &str,
        surname: &str,
        birth_date: NaiveDate,
    ) -> Result<String, SupplierError> {
        let body = Application {
            surname,
            date_of_birth: birth_date,
            linkage_details: LinkageDetails {
                account_id,
                linkage_key,
                national_practice_code: ods_code,
            },
        };
        let reply: ApplicationReply = self
            .call(Method::POST, "/me/applications", idempotency_key, Some(&body), None)
            .await?
            .json()?;
        Ok(reply.nhs_number)
    }

    /// Creates the user and sets its access; the user's GUID. A user verified with NHS login
    /// gets no linkage details.
    async fn create_user(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
        nhs_login_verified: bool,
    ) -> Result<String, SupplierError> {
        let body = CreateUser {
            nhs_number: &request.patient_identifier,
            national_practice_code: &request.ods_code,
            email_address: request.email.as_deref(),
            surname: &request.family_name,
            date_of_birth: request.birth_date,
            nhs_login_verified,
        };
        let created: CreatedUser = self
            .call(Method::POST, "/users/nhs", idempotency_key, Some(&body), None)
            .await?
            .json()?;
        let guid = super::issued(created.access_identity_guid, "user GUID")?;
        self.set_access(idempotency_key, &guid, &request.access).await?;
        Ok(guid)
    }

    async fn read_credentials(&self, idempotency_key: &str, guid: &str) -> Result<AccountCredentials, SupplierError> {
        let reply: Verification = self
            .call::<()>(Method::POST, "/me/verifications", idempotency_key, None, Some(guid))
            .await?
            .json()?;
        AccountCredentials::from_reply(guid.to_owned(), reply.account_id, reply.linkage_key)
    }

    async fn call<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        idempotency_key: &str,
        body: Option<&B>,
        access_identity: Option<&str>,
    ) -> Result<Reply, SupplierError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("X-Request-ID", idempotency_key);
        if let Some(guid) = access_identity {
            request = request.header("X-Access-Identity-Guid", guid);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            Ok(Reply(body.to_vec()))
        } else {
            Err(error_from_response(status, &body))
        }
    }
}

#[async_trait::async_trait]
impl SupplierAdapter for EmisAdapter {
    fn supplier(&self) -> Supplier {
        Supplier::Emis
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %request.ods_code))]
    async fn create_account(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
    ) -> Result<AccountCredentials, SupplierError> {
        let guid = self.create_user(idempotency_key, request, false).await?;
        self.read_credentials(idempotency_key, &guid).await
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis"))]
    async fn register_nhs_login(
        &self,
        idempotency_key: &str,
        request: &CreateAccount,
    ) -> Result<String, SupplierError> {
        self.create_user(idempotency_key, request, true).await
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", supplier_ref = %supplier_ref))]
    async fn set_access(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError> {
        let path = format!("/users/{}/settings", path_segment(supplier_ref)?);
        self.call(
            Method::PUT,
            &path,
            idempotency_key,
            Some(&UserSettings::from(access)),
            None,
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", supplier_ref = %supplier_ref))]
    async fn reset_linkage_key(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
    ) -> Result<AccountCredentials, SupplierError> {
        let path = format!("/users/{}/linkage-key", path_segment(supplier_ref)?);
        let reply: Verification = self
            .call::<()>(Method::POST, &path, idempotency_key, None, None)
            .await?
            .json()?;
        AccountCredentials::from_reply(supplier_ref.to_owned(), reply.account_id, reply.linkage_key)
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", supplier_ref = %supplier_ref, enabled = enabled))]
    async fn set_account_enabled(
        &self,
        idempotency_key: &str,
        supplier_ref: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<(), SupplierError> {
        let path = format!("/users/{}/status", path_segment(supplier_ref)?);
        let body = UserStatus { enabled, reason };
        self.call(Method::PUT, &path, idempotency_key, Some(&body), None)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %request.ods_code))]
    async fn link_proxy(&self, idempotency_key: &str, request: &LinkProxy) -> Result<String, SupplierError> {
        let settings = UserSettings::from(&request.access);
        let body = CreateProxy {
            patient_nhs_number: &request.patient_identifier,
            proxy_nhs_number: &request.proxy_nhs_number,
            national_practice_code: &request.ods_code,
            relationship_type: &request.relationship,
            effective_services: settings.effective_services,
            record_access_scheme: settings.record_access_scheme,
            full_record_from: settings.full_record_from,
            end_date: request.end_date,
        };
        let created: CreatedProxy = self
            .call(Method::POST, "/proxies", idempotency_key, Some(&body), None)
            .await?
            .json()?;
        super::issued(created.proxy_access_guid, "proxy GUID")
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", link = %link_ref))]
    async fn set_proxy_access(
        &self,
        idempotency_key: &str,
        link_ref: &str,
        access: &AccessSettings,
    ) -> Result<(), SupplierError> {
        let path = format!("/proxies/{}/settings", path_segment(link_ref)?);
        self.call(
            Method::PUT,
            &path,
            idempotency_key,
            Some(&UserSettings::from(access)),
            None,
        )
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", link = %link_ref))]
    async fn revoke_proxy(&self, idempotency_key: &str, link_ref: &str, reason: &str) -> Result<(), SupplierError> {
        let path = format!("/proxies/{}/revocation", path_segment(link_ref)?);
        self.call(Method::POST, &path, idempotency_key, Some(&Revocation { reason }), None)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %ods_code))]
    async fn record(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<ClinicalRecord, SupplierError> {
        let practice: String = url::form_urlencoded::byte_serialize(ods_code.as_bytes()).collect();
        let url = format!(
            "{}/records/{}?NationalPracticeCode={practice}",
            self.base_url,
            path_segment(patient_identifier)?
        );
        let response = self
            .http
            .get(url)
            .header("X-Request-ID", request_id)
            .timeout(reads.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = body_within(response, reads.max_bytes).await?;
        if !status.is_success() {
            return Err(error_from_response(status, &body));
        }
        let reply: emis_record::RecordReply =
            serde_json::from_slice(&body).map_err(|_| unreadable("medical record"))?;
        emis_record::from_wire(reply).map_err(|_| unreadable("medical record"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %ods_code))]
    async fn slots(
        &self,
        request_id: &str,
        ods_code: &str,
        range: DayRange,
        reads: Reads,
    ) -> Result<Vec<Slot>, SupplierError> {
        let path = format!(
            "/appointments/slots?NationalPracticeCode={}&From={}&To={}",
            query_value(ods_code),
            range.from,
            range.to
        );
        let reply: emis_desk::SlotsReply = self
            .desk::<(), _>(Method::GET, &path, request_id, None, reads, "slots")
            .await?;
        reply
            .slots
            .into_iter()
            .map(|w| emis_desk::slot_from_wire(w).map_err(|_| unreadable("slots")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %ods_code))]
    async fn appointments(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<Appointment>, SupplierError> {
        let path = format!("/appointments?{}", patient_query(patient_identifier, ods_code));
        let reply: emis_desk::AppointmentsReply = self
            .desk::<(), _>(Method::GET, &path, request_id, None, reads, "appointments")
            .await?;
        reply
            .appointments
            .into_iter()
            .map(|w| emis_desk::appointment_from_wire(w).map_err(|_| unreadable("appointments")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %booking.ods_code))]
    async fn book(&self, idempotency_key: &str, booking: &Booking, reads: Reads) -> Result<Appointment, SupplierError> {
        let body = emis_desk::BookRequest {
            slot_id: booking.slot_id.clone(),
            patient_nhs_number: booking.patient_identifier.clone(),
            national_practice_code: booking.ods_code.clone(),
            booking_reason: booking.reason.clone(),
        };
        let reply: emis_desk::AppointmentWire = self
            .desk(
                Method::POST,
                "/appointments",
                idempotency_key,
                Some(&body),
                reads,
                "booking",
            )
            .await?;
        emis_desk::appointment_from_wire(reply).map_err(|_| unreadable("booking"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %cancellation.ods_code))]
    async fn cancel(
        &self,
        idempotency_key: &str,
        cancellation: &Cancellation,
        reads: Reads,
    ) -> Result<Appointment, SupplierError> {
        let path = format!(
            "/appointments/{}/cancellation",
            path_segment(&cancellation.appointment_id)?
        );
        let body = emis_desk::CancelRequest {
            patient_nhs_number: cancellation.patient_identifier.clone(),
            national_practice_code: cancellation.ods_code.clone(),
            cancellation_reason: cancellation.reason.clone(),
        };
        let reply: emis_desk::AppointmentWire = self
            .desk(Method::POST, &path, idempotency_key, Some(&body), reads, "cancellation")
            .await?;
        emis_desk::appointment_from_wire(reply).map_err(|_| unreadable("cancellation"))
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %ods_code))]
    async fn repeats(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<RepeatMedication>, SupplierError> {
        let path = format!("/prescriptions/courses?{}", patient_query(patient_identifier, ods_code));
        let reply: emis_desk::CoursesReply = self
            .desk::<(), _>(Method::GET, &path, request_id, None, reads, "medication courses")
            .await?;
        Ok(reply.courses.into_iter().map(emis_desk::course_from_wire).collect())
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %ods_code))]
    async fn prescription_requests(
        &self,
        request_id: &str,
        patient_identifier: &str,
        ods_code: &str,
        reads: Reads,
    ) -> Result<Vec<PrescriptionRequest>, SupplierError> {
        let path = format!(
            "/prescriptions/requests?{}",
            patient_query(patient_identifier, ods_code)
        );
        let reply: emis_desk::RequestsReply = self
            .desk::<(), _>(Method::GET, &path, request_id, None, reads, "prescription requests")
            .await?;
        reply
            .requests
            .into_iter()
            .map(|w| emis_desk::request_from_wire(w).map_err(|_| unreadable("prescription requests")))
            .collect()
    }

    #[tracing::instrument(skip_all, fields(supplier = "emis", ods_code = %order.ods_code))]
    async fn request_repeats(
        &self,
        idempotency_key: &str,
        order: &Order,
        reads: Reads,
    ) -> Result<PrescriptionRequest, SupplierError> {
        let body = emis_desk::NewRequest {
            patient_nhs_number: order.patient_identifier.clone(),
            national_practice_code: order.ods_code.clone(),
            medication_course_guids: order.repeat_ids.clone(),
            request_comment: order.message.clone(),
        };
        let reply: emis_desk::RequestWire = self
            .desk(
                Method::POST,
                "/prescriptions/requests",
                idempotency_key,
                Some(&body),
                reads,
                "prescription request",
            )
            .await?;
        emis_desk::request_from_wire(reply).map_err(|_| unreadable("prescription request"))
    }
}

fn query_value(raw: &str) -> String {
    url::form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

fn patient_query(patient_identifier: &str, ods_code: &str) -> String {
    format!(
        "NhsNumber={}&NationalPracticeCode={}",
        query_value(patient_identifier),
        query_value(ods_code)
    )
}

impl EmisAdapter {
    /// One appointments or prescriptions call, made on a patient's request: its own time limit
    /// and largest answer, the key sent as `X-Request-ID`.
    async fn desk<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&B>,
        reads: Reads,
        what: &str,
    ) -> Result<R, SupplierError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("X-Request-ID", key)
            .timeout(reads.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = body_within(response, reads.max_bytes).await?;
        if !status.is_success() {
            return Err(error_from_response(status, &body));
        }
        serde_json::from_slice(&body).map_err(|_| unreadable(what))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateProxy<'a> {
    patient_nhs_number: &'a str,
    proxy_nhs_number: &'a str,
    national_practice_code: &'a str,
    relationship_type: &'a str,
    effective_services: EffectiveServices,
    record_access_scheme: RecordAccessScheme,
    full_record_from: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedProxy {
    proxy_access_guid: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Revocation<'a> {
    reason: &'a str,
}

/// A successful response body, not yet decoded.
struct Reply(Vec<u8>);

impl Reply {
    fn json<T: DeserializeOwned>(self) -> Result<T, SupplierError> {
        serde_json::from_slice(&self.0).map_err(|_| SupplierError::Rejected {
            code: "INVALID_REPLY".to_owned(),
            message: "the supplier's reply could not be read".to_owned(),
        })
    }
}

/// A supplier reference goes into the path: refuse anything that could change the path rather
/// than escape it, since the supplier only ever issues GUIDs.
fn path_segment(supplier_ref: &str) -> Result<&str, SupplierError> {
    if !supplier_ref.is_empty() && supplier_ref.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(supplier_ref)
    } else {
        Err(SupplierError::Rejected {
            code: "INVALID_SUPPLIER_REF".to_owned(),
            message: "the supplier reference is not an EMIS access identity GUID".to_owned(),
        })
    }
}

fn error_from_response(status: StatusCode, body: &[u8]) -> SupplierError {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return SupplierError::Unavailable(format!("HTTP {}", status.as_u16()));
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => map_error(&error_key(status, error.code), &error.message),
        Err(_) => SupplierError::Rejected {
            code: status.as_u16().to_string(),
            message: "the supplier refused the request without an error body".to_owned(),
        },
    }
}

/// EMIS-like error keys are the HTTP status followed by the four-digit code: 409 + 1110.
fn error_key(status: StatusCode, code: u32) -> String {
    format!("{}{code:04}", status.as_u16())
}

fn map_error(key: &str, message: &str) -> SupplierError {
    match key {
        "4091110" => SupplierError::Conflict,
        "4041551" => SupplierError::PatientNotFound,
        "4101552" => SupplierError::Archived,
        "4001553" => SupplierError::UnderMinimumAge,
        "4001105" => SupplierError::InvalidDetails,
        "4031030" => SupplierError::PracticeNotEnabled,
        "4091111" => SupplierError::ProxyExists,
        "4001561" | "4001562" => SupplierError::ProxyRefused,
        "4091201" => SupplierError::SlotUnavailable,
        "4041202" => SupplierError::ItemNotFound,
        "4001203" => SupplierError::TooLateToCancel,
        "4001204" => SupplierError::ReasonRequired,
        "4001205" => SupplierError::NotRequestable,
        _ => SupplierError::Rejected {
            code: key.to_owned(),
            message: scrub(message),
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUser<'a> {
    nhs_number: &'a str,
    national_practice_code: &'a str,
    email_address: Option<&'a str>,
    surname: &'a str,
    date_of_birth: NaiveDate,
    /// The patient proved who they are with NHS login: no linkage details are issued.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    nhs_login_verified: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedUser {
    access_identity_guid: String,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserSettings {
    effective_services: EffectiveServices,
    record_access_scheme: RecordAccessScheme,
    full_record_from: Option<NaiveDate>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EffectiveServices {
    /// Seeing appointments; booking and cancelling is a second switch on top.
    appointments_enabled: bool,
    appointment_booking_enabled: bool,
    /// Seeing repeat medication; requesting it is a second switch on top.
    prescribing_enabled: bool,
    repeat_requests_enabled: bool,
    messaging_enabled: bool,
    documents_enabled: bool,
}

#[derive(Debug, PartialEq, Serialize)]
enum RecordAccessScheme {
    None,
    CoreSummaryCareRecord,
    DetailedCodedCareRecord,
    FullCareRecord,
}

/// Documents are a switch on top of the record scheme: the documents level is the detailed coded
/// record with documents; full access is the full care record (free text too), from a date.
impl From<&AccessSettings> for UserSettings {
    fn from(access: &AccessSettings) -> Self {
        let (scheme, documents, from) = match access.record_level {
            RecordAccessLevel::None => (RecordAccessScheme::None, false, None),
            RecordAccessLevel::Summary => (RecordAccessScheme::CoreSummaryCareRecord, false, None),
            RecordAccessLevel::DetailedCoded => (RecordAccessScheme::DetailedCodedCareRecord, false, None),
            RecordAccessLevel::Documents => (RecordAccessScheme::DetailedCodedCareRecord, true, None),
            RecordAccessLevel::Full => (RecordAccessScheme::FullCareRecord, true, access.record_from),
        };
        Self {
            effective_services: EffectiveServices {
                appointments_enabled: access.services.appointments.is_on(),
                appointment_booking_enabled: access.services.appointments == ServiceLevel::Manage,
                prescribing_enabled: access.services.prescriptions.is_on(),
                repeat_requests_enabled: access.services.prescriptions == ServiceLevel::Manage,
                messaging_enabled: access.services.messaging,
                documents_enabled: documents,
            },
            record_access_scheme: scheme,
            full_record_from: from,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Verification {
    account_id: String,
    linkage_key: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserStatus<'a> {
    enabled: bool,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Application<'a> {
    surname: &'a str,
    date_of_birth: NaiveDate,
    linkage_details: LinkageDetails<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkageDetails<'a> {
    account_id: &'a str,
    linkage_key: &'a str,
    national_practice_code: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApplicationReply {
    nhs_number: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: u32,
    #[serde(default)]
    message: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Services;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn error(code: u16, body: serde_json::Value) -> SupplierError {
        error_from_response(status(code), body.to_string().as_bytes())
    }

    #[test]
    fn every_documented_error_key_maps_to_its_own_error() {
        let table = [
            (409, 1110, SupplierError::Conflict),
            (404, 1551, SupplierError::PatientNotFound),
            (410, 1552, SupplierError::Archived),
            (400, 1553, SupplierError::UnderMinimumAge),
            (400, 1105, SupplierError::InvalidDetails),
            (403, 1030, SupplierError::PracticeNotEnabled),
            (409, 1111, SupplierError::ProxyExists),
            (400, 1561, SupplierError::ProxyRefused),
            (400, 1562, SupplierError::ProxyRefused),
        ];
        for (http, code, expected) in table {
            assert_eq!(
                error(http, json!({"Code": code, "Message": "m"})),
                expected,
                "{http}{code}"
            );
        }
    }

    #[test]
    fn the_same_code_under_another_status_is_not_the_same_error() {
        assert_eq!(
            error(400, json!({"Code": 1110, "Message": "m"})),
            SupplierError::Rejected {
                code: "4001110".into(),
                message: "m".into()
            }
        );
    }

    #[test]
    fn unknown_and_unclassified_codes_are_rejections() {
        assert_eq!(
            error(400, json!({"Code": 1101, "Message": "An email address is required"})),
            SupplierError::Rejected {
                code: "4001101".into(),
                message: "An email address is required".into()
            }
        );
        assert_eq!(
            error(404, json!({"Code": 1404, "Message": "no such user"})),
            SupplierError::Rejected {
                code: "4041404".into(),
                message: "no such user".into()
            }
        );
        assert_eq!(
            error_from_response(status(400), b"<html>"),
            SupplierError::Rejected {
                code: "400".into(),
                message: "the supplier refused the request without an error body".into()
            }
        );
    }

    #[test]
    fn codes_shorter_than_four_digits_are_zero_padded() {
        assert_eq!(error_key(status(400), 12), "4000012");
    }

    #[test]
    fn server_errors_and_throttling_are_retryable_whatever_the_body() {
        for http in [500, 502, 503, 504, 429] {
            let err = error(http, json!({"Code": 1110, "Message": "m"}));
            assert!(err.is_retryable(), "{http}: {err:?}");
        }
        assert!(error_from_response(status(503), b"").is_retryable());
    }

    #[test]
    fn record_levels_map_to_schemes() {
        let from = NaiveDate::from_ymd_opt(2024, 4, 1);
        let services = Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::None,
            messaging: true,
        };
        let settings = |record_level| {
            UserSettings::from(&AccessSettings {
                services,
                record_level,
                record_from: from,
            })
        };

        let none = settings(RecordAccessLevel::None);
        assert_eq!(none.record_access_scheme, RecordAccessScheme::None);
        assert_eq!(none.full_record_from, None);
        assert_eq!(
            settings(RecordAccessLevel::Summary).record_access_scheme,
            RecordAccessScheme::CoreSummaryCareRecord
        );
        let coded = settings(RecordAccessLevel::DetailedCoded);
        assert_eq!(coded.record_access_scheme, RecordAccessScheme::DetailedCodedCareRecord);
        assert!(!coded.effective_services.documents_enabled);
        assert_eq!(coded.full_record_from, None);

        let documents = settings(RecordAccessLevel::Documents);
        assert_eq!(
            documents.record_access_scheme,
            RecordAccessScheme::DetailedCodedCareRecord
        );
        assert!(documents.effective_services.documents_enabled);
        assert_eq!(documents.full_record_from, None);

        let full = settings(RecordAccessLevel::Full);
        assert_eq!(full.record_access_scheme, RecordAccessScheme::FullCareRecord);
        assert!(full.effective_services.documents_enabled);
        assert_eq!(full.full_record_from, from);
    }

    #[test]
    fn settings_serialise_in_the_wire_shape() {
        let access = AccessSettings {
            services: Services {
                appointments: crate::domain::ServiceLevel::Manage,
                prescriptions: crate::domain::ServiceLevel::Manage,
                messaging: false,
            },
            record_level: RecordAccessLevel::Full,
            record_from: NaiveDate::from_ymd_opt(2024, 4, 1),
        };
        assert_eq!(
            serde_json::to_value(UserSettings::from(&access)).unwrap(),
            json!({
                "EffectiveServices": {
                    "AppointmentsEnabled": true,
                    "AppointmentBookingEnabled": true,
                    "PrescribingEnabled": true,
                    "RepeatRequestsEnabled": true,
                    "MessagingEnabled": false,
                    "DocumentsEnabled": true
                },
                "RecordAccessScheme": "FullCareRecord",
                "FullRecordFrom": "2024-04-01"
            })
        );
    }

    #[test]
    fn supplier_refs_that_would_change_the_path_are_refused() {
        assert!(path_segment("8c2b6a0e-2f6e-4c1e-9d7a-0d4c1f9e8b11").is_ok());
        for bad in ["", "../admin", "a/b", "a?b", "a%2F"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
