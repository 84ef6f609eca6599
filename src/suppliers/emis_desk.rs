//! The EMIS-like appointments and repeat prescriptions on the wire (JSON, PascalCase): the
//! adapter reads these into the canonical types and the simulator writes them from them.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::domain::transactional::{
    Appointment, AppointmentStatus, PrescriptionRequest, PrescriptionStatus, RepeatMedication, RequestedItem, Slot,
};

/// A value the adapter does not recognise.
#[derive(Debug)]
pub struct Unreadable;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SlotWire {
    pub slot_id: String,
    #[serde(with = "super::wire_time::time")]
    pub start_time: NaiveDateTime,
    #[serde(with = "super::wire_time::time")]
    pub end_time: NaiveDateTime,
    pub clinician_name: String,
    pub location_name: String,
    pub session_type: String,
    /// `Available` or `Booked`.
    pub status: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SlotsReply {
    #[serde(default)]
    pub slots: Vec<SlotWire>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppointmentWire {
    pub appointment_id: String,
    pub slot_id: String,
    #[serde(with = "super::wire_time::time")]
    pub start_time: NaiveDateTime,
    #[serde(with = "super::wire_time::time")]
    pub end_time: NaiveDateTime,
    pub clinician_name: String,
    pub location_name: String,
    pub session_type: String,
    #[serde(default)]
    pub booking_reason: Option<String>,
    /// `Booked` or `Cancelled`.
    pub status: String,
    #[serde(default)]
    pub cancellation_reason: Option<String>,
    #[serde(with = "super::wire_time::time")]
    pub booked_on: NaiveDateTime,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AppointmentsReply {
    #[serde(default)]
    pub appointments: Vec<AppointmentWire>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BookRequest {
    pub slot_id: String,
    pub patient_nhs_number: String,
    pub national_practice_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelRequest {
    pub patient_nhs_number: String,
    pub national_practice_code: String,
    pub cancellation_reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CourseWire {
    pub medication_course_guid: String,
    pub name: String,
    pub dosage: String,
    pub quantity: String,
    #[serde(with = "super::wire_time::optional_day", default)]
    pub review_date: Option<NaiveDate>,
    pub is_issuable_online: bool,
    #[serde(with = "super::wire_time::optional_day", default)]
    pub last_issue_date: Option<NaiveDate>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoursesReply {
    #[serde(default)]
    pub courses: Vec<CourseWire>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestedCourse {
    pub medication_course_guid: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestWire {
    pub request_guid: String,
    #[serde(with = "super::wire_time::time")]
    pub date_requested: NaiveDateTime,
    /// `Requested`, `Approved`, `Rejected` or `Issued`.
    pub status: String,
    #[serde(default)]
    pub request_comment: Option<String>,
    pub medications: Vec<RequestedCourse>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestsReply {
    #[serde(default)]
    pub requests: Vec<RequestWire>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewRequest {
    pub patient_nhs_number: String,
    pub national_practice_code: String,
    pub medication_course_guids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_comment: Option<String>,
}

pub fn slot_to_wire(s: &Slot) -> SlotWire {
    SlotWire {
        slot_id: s.id.clone(),
        start_time: s.start,
        end_time: s.end,
        clinician_name: s.practitioner.clone(),
        location_name: s.location.clone(),
        session_type: s.session_type.clone(),
        status: if s.free { "Available" } else { "Booked" }.to_owned(),
    }
}

pub fn slot_from_wire(w: SlotWire) -> Result<Slot, Unreadable> {
    let free = match w.status.as_str() {
        "Available" => true,
        "Booked" => false,
        _ => return Err(Unreadable),
    };
    if w.end_time <= w.start_time {
        return Err(Unreadable);
    }
    Ok(Slot {
        id: w.slot_id,
        start: w.start_time,
        end: w.end_time,
        practitioner: w.clinician_name,
        location: w.location_name,
        session_type: w.session_type,
        free,
    })
}

pub fn appointment_to_wire(a: &Appointment) -> AppointmentWire {
    AppointmentWire {
        appointment_id: a.id.clone(),
        slot_id: a.slot_id.clone(),
        start_time: a.start,
        end_time: a.end,
        clinician_name: a.practitioner.clone(),
        location_name: a.location.clone(),
        session_type: a.session_type.clone(),
        booking_reason: a.reason.clone(),
        status: match a.status {
            AppointmentStatus::Booked => "Booked",
            AppointmentStatus::Cancelled => "Cancelled",
        }
        .to_owned(),
        cancellation_reason: a.cancellation_reason.clone(),
        booked_on: a.booked_at,
    }
}

pub fn appointment_from_wire(w: AppointmentWire) -> Result<Appointment, Unreadable> {
    let status = match w.status.as_str() {
        "Booked" => AppointmentStatus::Booked,
        "Cancelled" => AppointmentStatus::Cancelled,
        _ => return Err(Unreadable),
    };
    Ok(Appointment {
        id: w.appointment_id,
        slot_id: w.slot_id,
        start: w.start_time,
        end: w.end_time,
        practitioner: w.clinician_name,
        location: w.location_name,
        session_type: w.session_type,
        reason: w.booking_reason,
        status,
        cancellation_reason: w.cancellation_reason,
        booked_at: w.booked_on,
    })
}

pub fn course_to_wire(r: &RepeatMedication) -> CourseWire {
    CourseWire {
        medication_course_guid: r.id.clone(),
        name: r.name.clone(),
        dosage: r.dosage.clone(),
        quantity: r.quantity.clone(),
        review_date: r.review_date,
        is_issuable_online: r.issuable_online,
        last_issue_date: r.last_issued,
    }
}

pub fn course_from_wire(w: CourseWire) -> RepeatMedication {
    RepeatMedication {
        id: w.medication_course_guid,
        name: w.name,
        dosage: w.dosage,
        quantity: w.quantity,
        review_date: w.review_date,
        issuable_online: w.is_issuable_online,
        last_issued: w.last_issue_date,
    }
}

fn status_name(s: PrescriptionStatus) -> &'static str {
    match s {
        PrescriptionStatus::Requested => "Requested",
        PrescriptionStatus::Approved => "Approved",
        PrescriptionStatus::Rejected => "Rejected",
        PrescriptionStatus::Issued => "Issued",
    }
}

pub fn request_to_wire(r: &PrescriptionRequest) -> RequestWire {
    RequestWire {
        request_guid: r.id.clone(),
        date_requested: r.requested_at,
        status: status_name(r.status).to_owned(),
        request_comment: r.message.clone(),
        medications: r
            .items
            .iter()
            .map(|i| RequestedCourse {
                medication_course_guid: i.repeat_id.clone(),
                name: i.name.clone(),
            })
            .collect(),
    }
}

pub fn request_from_wire(w: RequestWire) -> Result<PrescriptionRequest, Unreadable> {
    let status = PrescriptionStatus::ALL
        .into_iter()
        .find(|s| status_name(*s) == w.status)
        .ok_or(Unreadable)?;
    Ok(PrescriptionRequest {
        id: w.request_guid,
        items: w
            .medications
            .into_iter()
            .map(|m| RequestedItem {
                repeat_id: m.medication_course_guid,
                name: m.name,
            })
            .collect(),
        message: w.request_comment,
        status,
        requested_at: w.date_requested,
    })
}
