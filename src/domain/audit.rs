//! What the audit trail records about each access decision or change.

use chrono::NaiveDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed (and, for requests refused later for other reasons, still allowed by the engine).
    Success,
    /// Refused by the access-decision engine or by authentication.
    Denied,
    /// No decision could be made (a dependency failed).
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Success, Self::Denied, Self::Error]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

/// One event as stored, with its place in its hash chain.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub recorded_at: NaiveDateTime,
    /// patient | staff | system | unauthenticated
    pub actor_kind: String,
    /// The caller key (`staff|issuer|subject`, ...) or `unknown`.
    pub actor: String,
    pub patient_id: Option<String>,
    /// ODS code of the practice the decision concerns.
    pub practice: Option<String>,
    pub action: String,
    pub outcome: String,
    /// The token's `vot` (patients).
    pub assurance: Option<String>,
    /// The engine rule that decided (or `authentication`, `request-replay`...).
    pub rule: Option<String>,
    /// The stable refusal or error code.
    pub code: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// Where a bulk export of a practice's audit trail has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportStatus {
    /// Queued or being written, by whichever instance holds its lease.
    InProgress,
    Completed,
    /// Stopped for good; `AuditExport::error` says why.
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::InProgress, Self::Completed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// The period an export covers: events recorded at or after `since` (from the start when
/// open) and before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportPeriod {
    pub since: Option<NaiveDateTime>,
    pub until: NaiveDateTime,
}

/// Why a period cannot be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("_since must be before _until")]
    WrongWayRound,
    #[error("_since is later than this request: nothing recorded then can be exported yet")]
    NotBegun,
}

impl ExportPeriod {
    /// `until` defaults to (and is never later than) `now`, the export's transaction time: what
    /// is recorded after the kick-off is for a later export.
    pub fn new(
        since: Option<NaiveDateTime>,
        until: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> Result<Self, PeriodError> {
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(PeriodError::WrongWayRound);
        }
        let until = until.map_or(now, |u| u.min(now));
        if since.is_some_and(|s| s >= until) {
            return Err(PeriodError::NotBegun);
        }
        Ok(Self { since, until })
    }
}

/// Where an export has got to: the last event written, in the order events are exported
/// (`recorded_at`, chain, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    pub recorded_at: NaiveDateTime,
    pub chain: String,
    pub seq: i64,
}

/// A bulk export of one practice's audit trail for a period (FHIR Bulk Data `$export`).
#[derive(Debug, Clone)]
pub struct AuditExport {
    pub id: String,
    /// ODS code of the practice.
    pub practice: String,
    /// The caller key of whoever asked.
    pub requested_by: String,
    /// The kick-off request's URL.
    pub request: String,
    pub period: ExportPeriod,
    /// When it was asked for: nothing recorded later is in it.
    pub transaction_time: NaiveDateTime,
    pub status: ExportStatus,
    pub cursor: Option<ExportCursor>,
    /// Events written so far.
    pub exported: i64,
    /// Files written so far.
    pub files: i64,
    pub error: Option<String>,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    /// After this the job and its files are gone.
    pub expires_at: NaiveDateTime,
}

/// One output file of an export: its number (from 1) and how many events it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub part: i64,
    pub events: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn a_period_ends_at_the_kick_off_at_the_latest_and_must_run_forwards() {
        let now = at("2026-12-07 12:00:00");
        let p = ExportPeriod::new(Some(at("2026-12-01 00:00:00")), None, now).unwrap();
        assert_eq!(p.until, now);
        let p = ExportPeriod::new(None, Some(at("2027-01-01 00:00:00")), now).unwrap();
        assert_eq!((p.since, p.until), (None, now));
        let p = ExportPeriod::new(None, Some(at("2026-12-02 00:00:00")), now).unwrap();
        assert_eq!(p.until, at("2026-12-02 00:00:00"));
        for (since, until) in [
            ("2026-12-02 00:00:00", "2026-12-01 00:00:00"),
            ("2026-12-01 00:00:00", "2026-12-01 00:00:00"),
        ] {
            assert_eq!(
                ExportPeriod::new(Some(at(since)), Some(at(until)), now),
                Err(PeriodError::WrongWayRound)
            );
        }
        assert_eq!(
            ExportPeriod::new(Some(at("2026-12-08 00:00:00")), None, now),
            Err(PeriodError::NotBegun)
        );
    }
}
