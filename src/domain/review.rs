//! Record reviews: a clinician checks a record for third-party and sensitive information before
//! historic record access is switched on.

use chrono::NaiveDateTime;

use super::AccessSettings;

#[derive(Debug, Clone)]
pub struct ReviewTask {
    pub id: String,
    pub account_id: String,
    pub patient_id: String,
    /// requested | completed | cancelled
    pub status: String,
    pub requested_access: AccessSettings,
    pub requested_by: String,
    pub completed_by: Option<String>,
    pub note: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ReviewTask {
    pub fn last_updated(&self) -> chrono::DateTime<chrono::Utc> {
        self.updated_at.and_utc()
    }
}

/// What staff decided about a record review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewDecision {
    /// The record was checked: the access asked for is switched on (through the outbox).
    Approve,
    /// Not switched on, for the reason given.
    Decline(String),
}
