//! The TPP-like appointments and repeat prescriptions on the wire (XML messages on the one
//! endpoint): the adapter reads these into the canonical types and the simulator writes them
//! from them. Times are attributes; statuses are the supplier's own codes.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::domain::transactional::{
    Appointment, AppointmentStatus, PrescriptionRequest, PrescriptionStatus, RepeatMedication, RequestedItem, Slot,
};

/// A value the adapter does not recognise.
#[derive(Debug)]
pub struct Unreadable;

/// `ListSlots`: the free slots at a unit between two days.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSlots {
    pub unit_id: String,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SlotX {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "@start")]
    pub start: NaiveDateTime,
    #[serde(rename = "@end")]
    pub end: NaiveDateTime,
    /// `1` free, `0` taken.
    #[serde(rename = "@available")]
    pub available: u8,
    #[serde(rename = "Clinician")]
    pub clinician: String,
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "SessionName")]
    pub session_name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListSlotsReply {
    #[serde(rename = "Slot", default)]
    pub slot: Vec<SlotX>,
}

/// `ListAppointments`, `ListRepeatMedication` and `ListMedicationRequests`: one patient at a unit.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PatientAtUnit {
    pub patient_id: String,
    pub unit_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AppointmentX {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "@slot")]
    pub slot: String,
    #[serde(rename = "@start")]
    pub start: NaiveDateTime,
    #[serde(rename = "@end")]
    pub end: NaiveDateTime,
    /// `B` booked, `X` cancelled.
    #[serde(rename = "@status")]
    pub status: String,
    #[serde(rename = "@booked")]
    pub booked: NaiveDateTime,
    #[serde(rename = "Clinician")]
    pub clinician: String,
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "SessionName")]
    pub session_name: String,
    #[serde(rename = "Reason", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(rename = "CancellationReason", default, skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListAppointmentsReply {
    #[serde(rename = "Appointment", default)]
    pub appointment: Vec<AppointmentX>,
}

/// `BookAppointment`; its reply is one `Appointment`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BookAppointment {
    pub patient_id: String,
    pub unit_id: String,
    pub slot_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `CancelAppointment`; its reply is one `Appointment`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelAppointment {
    pub patient_id: String,
    pub unit_id: String,
    pub appointment_id: String,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AppointmentReply {
    #[serde(rename = "Appointment")]
    pub appointment: AppointmentX,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RepeatX {
    #[serde(rename = "@id")]
    pub id: String,
    /// `1` when the unit lets it be requested online.
    #[serde(rename = "@online")]
    pub online: u8,
    #[serde(rename = "@reviewDate", default, skip_serializing_if = "Option::is_none")]
    pub review_date: Option<NaiveDate>,
    #[serde(rename = "@lastIssued", default, skip_serializing_if = "Option::is_none")]
    pub last_issued: Option<NaiveDate>,
    #[serde(rename = "Drug")]
    pub drug: String,
    #[serde(rename = "Dose")]
    pub dose: String,
    #[serde(rename = "Quantity")]
    pub quantity: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListRepeatMedicationReply {
    #[serde(rename = "Repeat", default)]
    pub repeat: Vec<RepeatX>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestedX {
    #[serde(rename = "@repeat")]
    pub repeat: String,
    #[serde(rename = "$text")]
    pub drug: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MedicationRequestX {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "@requested")]
    pub requested: NaiveDateTime,
    /// `Pending`, `Authorised`, `Refused` or `Issued`.
    #[serde(rename = "@status")]
    pub status: String,
    #[serde(rename = "Message", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "Drug", default)]
    pub drug: Vec<RequestedX>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ListMedicationRequestsReply {
    #[serde(rename = "Request", default)]
    pub request: Vec<MedicationRequestX>,
}

/// `RequestMedication`; its reply is one `Request`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestMedication {
    pub patient_id: String,
    pub unit_id: String,
    #[serde(rename = "RepeatId", default)]
    pub repeat_id: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RequestMedicationReply {
    #[serde(rename = "Request")]
    pub request: MedicationRequestX,
}

pub fn slot_to_wire(s: &Slot) -> SlotX {
    SlotX {
        id: s.id.clone(),
        start: s.start,
        end: s.end,
        available: u8::from(s.free),
        clinician: s.practitioner.clone(),
        location: s.location.clone(),
        session_name: s.session_type.clone(),
    }
}

pub fn slot_from_wire(w: SlotX) -> Result<Slot, Unreadable> {
    if w.available > 1 || w.end <= w.start {
        return Err(Unreadable);
    }
    Ok(Slot {
        id: w.id,
        start: w.start,
        end: w.end,
        practitioner: w.clinician,
        location: w.location,
        session_type: w.session_name,
        free: w.available == 1,
    })
}

pub fn appointment_to_wire(a: &Appointment) -> AppointmentX {
    AppointmentX {
        id: a.id.clone(),
        slot: a.slot_id.clone(),
        start: a.start,
        end: a.end,
        status: match a.status {
            AppointmentStatus::Booked => "B",
            AppointmentStatus::Cancelled => "X",
        }
        .to_owned(),
        booked: a.booked_at,
        clinician: a.practitioner.clone(),
        location: a.location.clone(),
        session_name: a.session_type.clone(),
        reason: a.reason.clone(),
        cancellation_reason: a.cancellation_reason.clone(),
    }
}

pub fn appointment_from_wire(w: AppointmentX) -> Result<Appointment, Unreadable> {
    let status = match w.status.as_str() {
        "B" => AppointmentStatus::Booked,
        "X" => AppointmentStatus::Cancelled,
        _ => return Err(Unreadable),
    };
    Ok(Appointment {
        id: w.id,
        slot_id: w.slot,
        start: w.start,
        end: w.end,
        practitioner: w.clinician,
        location: w.location,
        session_type: w.session_name,
        reason: w.reason,
        status,
        cancellation_reason: w.cancellation_reason,
        booked_at: w.booked,
    })
}

pub fn repeat_to_wire(r: &RepeatMedication) -> RepeatX {
    RepeatX {
        id: r.id.clone(),
        online: u8::from(r.issuable_online),
        review_date: r.review_date,
        last_issued: r.last_issued,
        drug: r.name.clone(),
        dose: r.dosage.clone(),
        quantity: r.quantity.clone(),
    }
}

pub fn repeat_from_wire(w: RepeatX) -> Result<RepeatMedication, Unreadable> {
    if w.online > 1 {
        return Err(Unreadable);
    }
    Ok(RepeatMedication {
        id: w.id,
        name: w.drug,
        dosage: w.dose,
        quantity: w.quantity,
        review_date: w.review_date,
        issuable_online: w.online == 1,
        last_issued: w.last_issued,
    })
}

fn status_code(s: PrescriptionStatus) -> &'static str {
    match s {
        PrescriptionStatus::Requested => "Pending",
        PrescriptionStatus::Approved => "Authorised",
        PrescriptionStatus::Rejected => "Refused",
        PrescriptionStatus::Issued => "Issued",
    }
}

pub fn request_to_wire(r: &PrescriptionRequest) -> MedicationRequestX {
    MedicationRequestX {
        id: r.id.clone(),
        requested: r.requested_at,
        status: status_code(r.status).to_owned(),
        message: r.message.clone(),
        drug: r
            .items
            .iter()
            .map(|i| RequestedX {
                repeat: i.repeat_id.clone(),
                drug: i.name.clone(),
            })
            .collect(),
    }
}

pub fn request_from_wire(w: MedicationRequestX) -> Result<PrescriptionRequest, Unreadable> {
    let status = PrescriptionStatus::ALL
        .into_iter()
        .find(|s| status_code(*s) == w.status)
        .ok_or(Unreadable)?;
    Ok(PrescriptionRequest {
        id: w.id,
        items: w
            .drug
            .into_iter()
            .map(|d| RequestedItem {
                repeat_id: d.repeat,
                name: d.drug,
            })
            .collect(),
        message: w.message,
        status,
        requested_at: w.requested,
    })
}
