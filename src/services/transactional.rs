//! Appointments and repeat prescriptions, for the patient and their proxies: each call decided
//! by the engine from what is in effect (the service at the level the call needs, for a proxy
//! the role's grant capped by the patient's own), then made synchronously to the patient's
//! clinical system. Nothing of the answers is stored by the gateway.

use std::time::Duration;

use super::access::{self, Target};
use super::{Caller, Core, Error, Reason, Result};
use crate::domain::entitlements::Via;
use crate::domain::policy::Action;
use crate::domain::text::is_resource_id;
use crate::domain::transactional::{
    self, Appointment, Booking, Cancellation, DayRange, Order, PrescriptionRequest, RepeatMedication, Slot,
};
use crate::domain::{PatientRecord, PracticeRecord};
use crate::suppliers::{Reads, SupplierAdapter, SupplierError};

/// Whose appointments or prescriptions: the caller's own, or a patient's by id.
#[derive(Debug, Clone)]
pub enum Whose {
    Own,
    Id(String),
}

/// A patient the caller may act for in this service, and the supplier that holds them.
pub struct Desk {
    pub patient: PatientRecord,
    pub practice: PracticeRecord,
    /// The proxy role the caller acts through, if they are not the patient.
    pub role: Option<String>,
    adapter: std::sync::Arc<dyn SupplierAdapter>,
    reads: Reads,
    /// Sent to the supplier: the client's request id, scoped to the caller, the patient and
    /// the action, so a retry of a lost answer is recognised and nobody else's id collides.
    key: String,
}

/// Decides the action for the caller on the patient, and finds the patient's supplier. A patient
/// the caller may not act for is refused like one that does not exist, before the supplier is
/// asked.
async fn open(core: &Core, caller: &Caller, action: Action, whose: Whose) -> Result<Desk> {
    let target = match whose {
        Whose::Own => Target::OwnRecord,
        Whose::Id(id) => Target::Patient(id),
    };
    let permit = access::authorize(core, caller, action, target).await?;
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    let role = match permit.entitlements.as_ref().map(|e| &e.via) {
        Some(Via::Role(id)) => Some(id.clone()),
        _ => None,
    };
    let adapter = core
        .suppliers
        .get(practice.supplier)
        .ok_or_else(|| Error::internal("no adapter for the practice's clinical system"))?;
    let reads = Reads {
        timeout: Duration::from_millis(core.settings.suppliers.read_timeout_ms),
        max_bytes: core.settings.suppliers.max_reply_bytes,
    };
    let request = caller.supplier_request_id(core);
    let key = core.secrets.opaque(
        "supplier-request",
        &format!(
            "{}\n{}\n{}\n{request}",
            caller.principal.caller_key(),
            patient.id,
            action.name()
        ),
    );
    Ok(Desk {
        patient,
        practice,
        role,
        adapter,
        reads,
        key,
    })
}

impl Desk {
    /// The id an appointment is served under: it names its patient, so a cancellation finds
    /// whose it is, and another patient's is not found, like one that does not exist.
    pub fn appointment_id(&self, a: &Appointment) -> String {
        format!("{}.{}", self.patient.id, a.id)
    }

    fn identifier(&self) -> String {
        self.patient.details.identifier.value().to_owned()
    }

    fn ods(&self) -> String {
        self.practice.ods_code.as_str().to_owned()
    }

    /// What the trail says was disclosed or done, and through which proxy role.
    fn note(&self, caller: &Caller, action: Action, what: String) {
        let through = self
            .role
            .as_ref()
            .map(|id| format!(" through proxy role {id}"))
            .unwrap_or_default();
        access::disclosure(caller, action, &self.patient, format!("{what}{through}"));
    }
}

/// A change sent to the supplier: one retry under the same key when the answer was lost, which
/// the supplier answers with what it did the first time rather than doing it again.
async fn once<T, F, Fut>(call: F) -> std::result::Result<T, SupplierError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, SupplierError>>,
{
    match call().await {
        Err(e) if e.is_retryable() => call().await,
        other => other,
    }
}

/// The free slots at the patient's practice in the days given.
pub async fn slots(core: &Core, caller: &Caller, whose: Whose, range: DayRange) -> Result<(Desk, Vec<Slot>)> {
    let desk = open(core, caller, Action::ReadAppointments, whose).await?;
    let slots = desk
        .adapter
        .slots(&desk.key, &desk.ods(), range, desk.reads)
        .await
        .map_err(|e| supplier_error(&e))?;
    let slots: Vec<Slot> = slots.into_iter().filter(|s| s.free && is_resource_id(&s.id)).collect();
    desk.note(
        caller,
        Action::ReadAppointments,
        format!("{} free slots listed from {} to {}", slots.len(), range.from, range.to),
    );
    Ok((desk, slots))
}

/// The patient's appointments, past and upcoming, booked and cancelled.
pub async fn appointments(core: &Core, caller: &Caller, whose: Whose) -> Result<(Desk, Vec<Appointment>)> {
    let desk = open(core, caller, Action::ReadAppointments, whose).await?;
    let list = desk
        .adapter
        .appointments(&desk.key, &desk.identifier(), &desk.ods(), desk.reads)
        .await
        .map_err(|e| supplier_error(&e))?;
    // Only what can be served, and so cancelled, under its id.
    let list: Vec<Appointment> = list
        .into_iter()
        .filter(|a| is_resource_id(&desk.appointment_id(a)))
        .collect();
    desk.note(
        caller,
        Action::ReadAppointments,
        format!("{} appointments listed", list.len()),
    );
    Ok((desk, list))
}

/// Books a free slot for the patient.
pub async fn book(
    core: &Core,
    caller: &Caller,
    whose: Whose,
    slot_id: String,
    reason: Option<String>,
) -> Result<(Desk, Appointment)> {
    let desk = open(core, caller, Action::BookAppointment, whose).await?;
    let booking = Booking {
        patient_identifier: desk.identifier(),
        ods_code: desk.ods(),
        slot_id,
        reason,
    };
    let booked = once(|| desk.adapter.book(&desk.key, &booking, desk.reads))
        .await
        .map_err(|e| match e {
            // A slot that does not exist is refused like one that is taken.
            SupplierError::ItemNotFound => supplier_error(&SupplierError::SlotUnavailable),
            other => supplier_error(&other),
        })?;
    desk.note(
        caller,
        Action::BookAppointment,
        format!("appointment {} booked for {}", booked.id, booked.start),
    );
    Ok((desk, booked))
}

/// Cancels one of the patient's appointments. One that is not theirs is not found, exactly like
/// one that does not exist.
pub async fn cancel(
    core: &Core,
    caller: &Caller,
    whose: Whose,
    appointment_id: String,
    reason: String,
) -> Result<(Desk, Appointment)> {
    let desk = open(core, caller, Action::CancelAppointment, whose).await?;
    let cancellation = Cancellation {
        patient_identifier: desk.identifier(),
        ods_code: desk.ods(),
        appointment_id,
        reason,
    };
    let cancelled = once(|| desk.adapter.cancel(&desk.key, &cancellation, desk.reads))
        .await
        .map_err(|e| supplier_error(&e))?;
    desk.note(
        caller,
        Action::CancelAppointment,
        format!("appointment {} cancelled", cancelled.id),
    );
    Ok((desk, cancelled))
}

/// The repeats the patient may request now: those past their review date or not issuable
/// online are left out, as the supplier says.
pub async fn repeats(core: &Core, caller: &Caller, whose: Whose) -> Result<(Desk, Vec<RepeatMedication>)> {
    let desk = open(core, caller, Action::ReadPrescriptions, whose).await?;
    let today = core.clock.today();
    let list = desk
        .adapter
        .repeats(&desk.key, &desk.identifier(), &desk.ods(), desk.reads)
        .await
        .map_err(|e| supplier_error(&e))?;
    let list: Vec<RepeatMedication> = list
        .into_iter()
        .filter(|r| r.requestable(today) && is_resource_id(&r.id))
        .collect();
    desk.note(
        caller,
        Action::ReadPrescriptions,
        format!("{} requestable repeats listed", list.len()),
    );
    Ok((desk, list))
}

/// The patient's repeat requests and where the practice has got to with each.
pub async fn requests(core: &Core, caller: &Caller, whose: Whose) -> Result<(Desk, Vec<PrescriptionRequest>)> {
    let desk = open(core, caller, Action::ReadPrescriptions, whose).await?;
    let list = desk
        .adapter
        .prescription_requests(&desk.key, &desk.identifier(), &desk.ods(), desk.reads)
        .await
        .map_err(|e| supplier_error(&e))?;
    let list: Vec<PrescriptionRequest> = list
        .into_iter()
        .filter(|r| is_resource_id(&order_item_id(r, r.items.len())))
        .collect();
    desk.note(
        caller,
        Action::ReadPrescriptions,
        format!("{} repeat requests listed", list.len()),
    );
    Ok((desk, list))
}

/// Requests one or more of the patient's repeats, with an optional message to the practice.
pub async fn request(
    core: &Core,
    caller: &Caller,
    whose: Whose,
    repeat_ids: Vec<String>,
    message: Option<String>,
) -> Result<(Desk, PrescriptionRequest)> {
    // Decided first: a patient the caller may not act for is not found, whatever the order says.
    let desk = open(core, caller, Action::RequestPrescription, whose).await?;
    if repeat_ids.is_empty() {
        return Err(Error::rejected(
            Reason::InvalidResource,
            "basedOn must name at least one repeat to request",
        )
        .at("MedicationRequest.basedOn"));
    }
    if repeat_ids.len() > transactional::MAX_ITEMS_PER_ORDER {
        return Err(Error::rejected(
            Reason::InvalidRequest,
            format!(
                "at most {} repeats may be requested at once",
                transactional::MAX_ITEMS_PER_ORDER
            ),
        )
        .at("MedicationRequest.basedOn"));
    }
    let order = Order {
        patient_identifier: desk.identifier(),
        ods_code: desk.ods(),
        repeat_ids,
        message,
    };
    let requested = once(|| desk.adapter.request_repeats(&desk.key, &order, desk.reads))
        .await
        .map_err(|e| match e {
            // A medication the supplier does not know is not a current repeat of the patient's.
            SupplierError::ItemNotFound => supplier_error(&SupplierError::NotRequestable),
            other => supplier_error(&other),
        })?;
    desk.note(
        caller,
        Action::RequestPrescription,
        format!(
            "repeat request {} made for {} items",
            requested.id,
            requested.items.len()
        ),
    );
    Ok((desk, requested))
}

/// The supplier's refusals the caller can act on keep their meaning; failures are 502 or 504.
fn supplier_error(e: &SupplierError) -> Error {
    match e {
        SupplierError::SlotUnavailable => Error::rejected(
            Reason::SlotUnavailable,
            "the slot is no longer free; search again and choose another",
        )
        .at("Appointment.slot"),
        SupplierError::ItemNotFound => Error::NotFound {
            resource: "Appointment",
            message: "no such slot or appointment for this patient".to_owned(),
        },
        SupplierError::TooLateToCancel => Error::rejected(
            Reason::CancellationNotAllowed,
            "the practice does not let this appointment be cancelled online any more; telephone the practice",
        ),
        SupplierError::ReasonRequired => Error::rejected(
            Reason::ReasonRequired,
            "the practice asks what the appointment is for: give a reason",
        )
        .at("Appointment.reasonCode"),
        SupplierError::NotRequestable => Error::rejected(
            Reason::NotRequestable,
            "a medication named is not a current repeat this patient may request online",
        )
        .at("MedicationRequest.basedOn"),
        SupplierError::PatientNotFound | SupplierError::Archived => Error::not_found("Patient"),
        SupplierError::PracticeNotEnabled => Error::rejected(
            Reason::PracticeNotEnabled,
            "the practice's clinical system does not offer this service online",
        ),
        other => Error::from_supplier(other),
    }
}

/// The id of the `n`th item (from 1) of a prescription request, as it is served.
pub fn order_item_id(r: &PrescriptionRequest, n: usize) -> String {
    format!("{}-{n}", r.id)
}
