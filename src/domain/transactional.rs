//! Transactional services, as the clinical systems hold them: appointment slots and bookings,
//! repeat medication templates and the requests made against them. The adapters read the
//! suppliers' wire formats into these types and the simulators keep them; the gateway stores
//! none of it.

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// The longest date range a slot search covers, in days.
pub const MAX_SLOT_RANGE_DAYS: i64 = 31;
/// The most repeats one request may ask for.
pub const MAX_ITEMS_PER_ORDER: usize = 20;
/// The longest message to the practice a request or a booking reason may carry.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// A bookable period with a clinician, as the practice's appointment book has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub id: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub practitioner: String,
    pub location: String,
    /// The kind of session ("GP appointment", "Nurse clinic", "Telephone consultation").
    pub session_type: String,
    /// Whether it can still be booked.
    pub free: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppointmentStatus {
    Booked,
    Cancelled,
}

/// An appointment booked in a slot for a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    pub slot_id: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub practitioner: String,
    pub location: String,
    pub session_type: String,
    pub reason: Option<String>,
    pub status: AppointmentStatus,
    pub cancellation_reason: Option<String>,
    pub booked_at: NaiveDateTime,
}

/// A booking as the gateway asks for it.
#[derive(Debug, Clone)]
pub struct Booking {
    pub patient_identifier: String,
    pub ods_code: String,
    pub slot_id: String,
    pub reason: Option<String>,
}

/// A cancellation as the gateway asks for it.
#[derive(Debug, Clone)]
pub struct Cancellation {
    pub patient_identifier: String,
    pub ods_code: String,
    pub appointment_id: String,
    pub reason: String,
}

/// A repeat medication template, with what the clinical system says about requesting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepeatMedication {
    pub id: String,
    pub name: String,
    pub dosage: String,
    pub quantity: String,
    /// After this day the repeat must be reviewed by a clinician before it is issued again.
    pub review_date: Option<NaiveDate>,
    /// Whether the practice lets it be requested online at all.
    pub issuable_online: bool,
    pub last_issued: Option<NaiveDate>,
}

impl RepeatMedication {
    /// Whether a patient may request it today: issuable online and not past its review date.
    pub fn requestable(&self, today: NaiveDate) -> bool {
        self.issuable_online && self.review_date.is_none_or(|review| review >= today)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrescriptionStatus {
    Requested,
    Approved,
    Rejected,
    Issued,
}

impl PrescriptionStatus {
    pub const ALL: [Self; 4] = [Self::Requested, Self::Approved, Self::Rejected, Self::Issued];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Issued => "issued",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(raw))
    }
}

/// One medication of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestedItem {
    pub repeat_id: String,
    pub name: String,
}

/// A request for one or more repeats, and where the practice has got to with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrescriptionRequest {
    pub id: String,
    pub items: Vec<RequestedItem>,
    pub message: Option<String>,
    pub status: PrescriptionStatus,
    pub requested_at: NaiveDateTime,
}

/// A request as the gateway asks for it.
#[derive(Debug, Clone)]
pub struct Order {
    pub patient_identifier: String,
    pub ods_code: String,
    pub repeat_ids: Vec<String>,
    pub message: Option<String>,
}

/// A day range for a slot search, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    /// The range, refused when it runs backwards or covers more than [`MAX_SLOT_RANGE_DAYS`].
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, &'static str> {
        if to < from {
            return Err("the range ends before it starts");
        }
        if (to - from).num_days() >= MAX_SLOT_RANGE_DAYS {
            return Err("the range covers more than 31 days");
        }
        Ok(Self { from, to })
    }

    pub fn contains(&self, at: NaiveDateTime) -> bool {
        (self.from..=self.to).contains(&at.date())
    }
}

/// A message or reason as the practice will read it: trimmed, empty as none, refused when too
/// long or carrying control characters.
pub fn message(raw: Option<&str>) -> Result<Option<String>, &'static str> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err("the message is longer than 500 characters");
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err("the message contains control characters");
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    #[test]
    fn a_repeat_past_its_review_date_or_not_issuable_online_cannot_be_requested() {
        let mut repeat = RepeatMedication {
            id: "r1".into(),
            name: "Salbutamol".into(),
            dosage: "2 puffs".into(),
            quantity: "1 inhaler".into(),
            review_date: Some(day(10)),
            issuable_online: true,
            last_issued: None,
        };
        assert!(repeat.requestable(day(10)));
        assert!(!repeat.requestable(day(11)));
        repeat.review_date = None;
        assert!(repeat.requestable(day(11)));
        repeat.issuable_online = false;
        assert!(!repeat.requestable(day(1)));
    }

    #[test]
    fn a_slot_search_runs_forwards_over_at_most_a_month() {
        assert!(DayRange::new(day(1), day(31)).is_ok());
        assert!(DayRange::new(day(2), day(1)).is_err());
        assert!(DayRange::new(day(1), NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()).is_err());
        let range = DayRange::new(day(3), day(3)).unwrap();
        assert!(range.contains(day(3).and_hms_opt(23, 59, 0).unwrap()));
        assert!(!range.contains(day(4).and_hms_opt(0, 0, 0).unwrap()));
    }

    #[test]
    fn messages_are_trimmed_bounded_and_printable() {
        assert_eq!(message(Some("  ")).unwrap(), None);
        assert_eq!(message(Some(" please ")).unwrap().as_deref(), Some("please"));
        assert!(message(Some(&"x".repeat(501))).is_err());
        assert!(message(Some("a\u{7}b")).is_err());
        assert!(message(Some("line one\nline two")).is_ok());
    }
}
