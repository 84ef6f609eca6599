//! The practices' front desk, as a supplier keeps it: appointment books, bookings, repeat
//! templates and the requests made against them, with the rules the practices set. Both
//! flavours share it and spell it in their own wire formats.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use rand::RngCore;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::refusal::Refusal;
use crate::domain::transactional::{
    Appointment, AppointmentStatus, Booking, Cancellation, DayRange, Order, PrescriptionRequest, PrescriptionStatus,
    RepeatMedication, RequestedItem, Slot,
};

/// How far ahead a practice's appointment book is open.
const BOOK_DAYS_AHEAD: i64 = 42;

/// What a practice decides about online appointments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentRules {
    /// A booking must say what it is for.
    pub reason_required: bool,
    /// An appointment can be cancelled online until this many minutes before it starts.
    pub cancellation_cutoff_minutes: i64,
}

impl Default for AppointmentRules {
    fn default() -> Self {
        Self {
            reason_required: false,
            cancellation_cutoff_minutes: 120,
        }
    }
}

/// One patient's appointment, kept with whose and where it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Booked {
    patient: String,
    ods_code: String,
    appointment: Appointment,
}

/// One patient's repeat request, kept with whose and where it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Requested {
    patient: String,
    ods_code: String,
    request: PrescriptionRequest,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    /// Each practice's slots by ODS code, opened day by day as time passes.
    books: HashMap<String, Vec<Slot>>,
    /// The last day each practice's book is open to.
    open_until: HashMap<String, NaiveDate>,
    rules: HashMap<String, AppointmentRules>,
    appointments: Vec<Booked>,
    /// Repeat templates by patient identifier.
    repeats: HashMap<String, Vec<RepeatMedication>>,
    requests: Vec<Requested>,
}

/// The sessions every practice runs on a weekday: (first start, last start, minutes, who,
/// where, what).
const SESSIONS: &[(u32, u32, i64, &str, &str, &str)] = &[
    (
        9 * 60,
        11 * 60 + 45,
        15,
        "Dr Anita Patel",
        "Consulting room 1",
        "GP appointment",
    ),
    (
        10 * 60,
        11 * 60,
        10,
        "Dr Chris Hughes",
        "By telephone",
        "Telephone consultation",
    ),
    (
        14 * 60,
        16 * 60 + 30,
        30,
        "Nurse Bola Okafor",
        "Treatment room 3",
        "Nurse clinic",
    ),
];

impl Desk {
    pub fn rules(&self, ods_code: &str) -> AppointmentRules {
        self.rules.get(ods_code).copied().unwrap_or_default()
    }

    pub fn set_rules(&mut self, ods_code: &str, rules: AppointmentRules) {
        self.rules.insert(ods_code.to_owned(), rules);
    }

    pub fn set_repeats(&mut self, patient: &str, repeats: Vec<RepeatMedication>) {
        self.repeats.insert(patient.to_owned(), repeats);
    }

    /// Moves a request on, as the practice does when it approves, rejects or issues it.
    pub fn set_request_status(&mut self, request_id: &str, status: PrescriptionStatus) -> Result<(), Refusal> {
        let found = self
            .requests
            .iter_mut()
            .find(|r| r.request.id == request_id)
            .ok_or(Refusal::NoSuchItem)?;
        found.request.status = status;
        Ok(())
    }

    /// Opens the practice's book up to [`BOOK_DAYS_AHEAD`] days from `now`. The slots are the
    /// same for a practice and a day whenever they are opened, with some already taken by
    /// patients who booked by telephone.
    pub fn open_book(&mut self, ods_code: &str, now: NaiveDateTime) {
        let last = now.date() + Duration::days(BOOK_DAYS_AHEAD);
        let from = self
            .open_until
            .get(ods_code)
            .map_or(now.date(), |d| *d + Duration::days(1));
        if from > last {
            return;
        }
        let book = self.books.entry(ods_code.to_owned()).or_default();
        let mut day = from;
        while day <= last {
            if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                for (s, (first, final_start, minutes, who, room, kind)) in SESSIONS.iter().enumerate() {
                    let mut at = *first;
                    while at <= *final_start {
                        let start = day.and_hms_opt(at / 60, at % 60, 0).unwrap_or_default();
                        let id = format!("{ods_code}-{}-{s}", start.format("%Y%m%d%H%M"));
                        // Roughly one slot in three is taken already.
                        let taken = id
                            .bytes()
                            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                            % 3
                            == 0;
                        book.push(Slot {
                            id,
                            start,
                            end: start + Duration::minutes(*minutes),
                            practitioner: (*who).to_owned(),
                            location: (*room).to_owned(),
                            session_type: (*kind).to_owned(),
                            free: !taken,
                        });
                        at += u32::try_from(*minutes).unwrap_or(15);
                    }
                }
            }
            day += Duration::days(1);
        }
        self.open_until.insert(ods_code.to_owned(), last);
    }

    /// The free slots at the practice in the range that have not started yet.
    pub fn slots(&self, ods_code: &str, range: DayRange, now: NaiveDateTime) -> Vec<Slot> {
        let mut slots: Vec<Slot> = self
            .books
            .get(ods_code)
            .map(|book| {
                book.iter()
                    .filter(|s| s.free && s.start > now && range.contains(s.start))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        slots.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        slots
    }

    pub fn appointments(&self, patient: &str, ods_code: &str) -> Vec<Appointment> {
        let mut list: Vec<Appointment> = self
            .appointments
            .iter()
            .filter(|b| b.patient == patient && b.ods_code == ods_code)
            .map(|b| b.appointment.clone())
            .collect();
        list.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
        list
    }

    pub fn book(&mut self, booking: &Booking, rng: &mut StdRng, now: NaiveDateTime) -> Result<Appointment, Refusal> {
        self.open_book(&booking.ods_code, now);
        let rules = self.rules(&booking.ods_code);
        let slot = self
            .books
            .get_mut(&booking.ods_code)
            .and_then(|book| book.iter_mut().find(|s| s.id == booking.slot_id))
            .ok_or(Refusal::NoSuchItem)?;
        if !slot.free || slot.start <= now {
            return Err(Refusal::SlotTaken);
        }
        let reason = booking.reason.clone().filter(|r| !r.trim().is_empty());
        if rules.reason_required && reason.is_none() {
            return Err(Refusal::ReasonRequired);
        }
        slot.free = false;
        let appointment = Appointment {
            id: format!("{:016x}", rng.next_u64()),
            slot_id: slot.id.clone(),
            start: slot.start,
            end: slot.end,
            practitioner: slot.practitioner.clone(),
            location: slot.location.clone(),
            session_type: slot.session_type.clone(),
            reason,
            status: AppointmentStatus::Booked,
            cancellation_reason: None,
            booked_at: now,
        };
        self.appointments.push(Booked {
            patient: booking.patient_identifier.clone(),
            ods_code: booking.ods_code.clone(),
            appointment: appointment.clone(),
        });
        Ok(appointment)
    }

    /// Cancels the patient's appointment and frees its slot. One already cancelled is answered
    /// as it is; another patient's is no such appointment.
    pub fn cancel(&mut self, c: &Cancellation, now: NaiveDateTime) -> Result<Appointment, Refusal> {
        let rules = self.rules(&c.ods_code);
        let booked = self
            .appointments
            .iter_mut()
            .find(|b| {
                b.appointment.id == c.appointment_id && b.patient == c.patient_identifier && b.ods_code == c.ods_code
            })
            .ok_or(Refusal::NoSuchItem)?;
        if booked.appointment.status == AppointmentStatus::Cancelled {
            return Ok(booked.appointment.clone());
        }
        if booked.appointment.start - now < Duration::minutes(rules.cancellation_cutoff_minutes) {
            return Err(Refusal::TooLateToCancel);
        }
        booked.appointment.status = AppointmentStatus::Cancelled;
        booked.appointment.cancellation_reason = Some(c.reason.clone());
        let appointment = booked.appointment.clone();
        if let Some(slot) = self
            .books
            .get_mut(&c.ods_code)
            .and_then(|book| book.iter_mut().find(|s| s.id == appointment.slot_id))
        {
            slot.free = true;
        }
        Ok(appointment)
    }

    pub fn repeats(&self, patient: &str) -> Vec<RepeatMedication> {
        self.repeats.get(patient).cloned().unwrap_or_default()
    }

    pub fn requests(&self, patient: &str, ods_code: &str) -> Vec<PrescriptionRequest> {
        let mut list: Vec<PrescriptionRequest> = self
            .requests
            .iter()
            .filter(|r| r.patient == patient && r.ods_code == ods_code)
            .map(|r| r.request.clone())
            .collect();
        list.sort_by(|a, b| (b.requested_at, &b.id).cmp(&(a.requested_at, &a.id)));
        list
    }

    /// Requests repeats: every one must be the patient's and requestable today, or nothing is
    /// requested.
    pub fn request(
        &mut self,
        order: &Order,
        rng: &mut StdRng,
        now: NaiveDateTime,
    ) -> Result<PrescriptionRequest, Refusal> {
        if order.repeat_ids.is_empty() {
            return Err(Refusal::NotRequestable);
        }
        let theirs = self.repeats.get(&order.patient_identifier).cloned().unwrap_or_default();
        let mut items = Vec::new();
        for id in &order.repeat_ids {
            let repeat = theirs
                .iter()
                .find(|r| &r.id == id && r.requestable(now.date()))
                .ok_or(Refusal::NotRequestable)?;
            if !items.iter().any(|i: &RequestedItem| &i.repeat_id == id) {
                items.push(RequestedItem {
                    repeat_id: repeat.id.clone(),
                    name: repeat.name.clone(),
                });
            }
        }
        let request = PrescriptionRequest {
            id: format!("{:016x}", rng.next_u64()),
            items,
            message: order.message.clone(),
            status: PrescriptionStatus::Requested,
            requested_at: now,
        };
        self.requests.push(Requested {
            patient: order.patient_identifier.clone(),
            ods_code: order.ods_code.clone(),
            request: request.clone(),
        });
        Ok(request)
    }
}
