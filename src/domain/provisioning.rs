//! Provisioning jobs: what the gateway asks a supplier to do, and how far it has got.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    CreateAccount,
    SetAccess,
    ResetLinkageKey,
    SetAccountStatus,
    LinkProxy,
    SetProxyAccess,
    RevokeProxy,
}

impl JobKind {
    pub const ALL: [Self; 7] = [
        Self::CreateAccount,
        Self::SetAccess,
        Self::ResetLinkageKey,
        Self::SetAccountStatus,
        Self::LinkProxy,
        Self::SetProxyAccess,
        Self::RevokeProxy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateAccount => "create-online-account",
            Self::SetAccess => "set-online-access",
            Self::ResetLinkageKey => "reset-linkage-key",
            Self::SetAccountStatus => "set-account-status",
            Self::LinkProxy => "link-proxy",
            Self::SetProxyAccess => "set-proxy-access",
            Self::RevokeProxy => "revoke-proxy",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::CreateAccount => "Create the online account at the supplier",
            Self::SetAccess => "Change online access at the supplier",
            Self::ResetLinkageKey => "Issue a new linkage key at the supplier",
            Self::SetAccountStatus => "Disable or re-enable the online account at the supplier",
            Self::LinkProxy => "Link the proxy to the patient's record at the supplier",
            Self::SetProxyAccess => "Change what the proxy may do at the supplier",
            Self::RevokeProxy => "End the proxy's access at the supplier",
        }
    }
}

/// What a provisioning job is about; jobs about one subject run in order.
#[derive(Debug, Clone, Copy)]
pub enum JobSubject<'a> {
    Account(&'a str),
    Role(&'a str),
}

#[derive(Debug, Clone)]
pub struct OutboxJob {
    pub id: String,
    pub kind: JobKind,
    /// The online account the job changes, or
    pub account_id: Option<String>,
    /// the proxy role it links, changes or revokes.
    pub role_id: Option<String>,
    pub patient_id: String,
    pub supplier: String,
    pub payload: serde_json::Value,
    /// Sent as X-Request-ID on every attempt.
    pub idempotency_key: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: chrono::NaiveDateTime,
    pub claimed_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

impl OutboxJob {
    pub fn new(
        kind: JobKind,
        subject: JobSubject<'_>,
        patient_id: &str,
        supplier: &str,
        payload: serde_json::Value,
        max_attempts: i32,
        now: chrono::NaiveDateTime,
    ) -> Self {
        Self {
            // Time-ordered: a patient's jobs run in the order their ids sort (see the outbox).
            id: uuid::Uuid::now_v7().to_string(),
            kind,
            account_id: match subject {
                JobSubject::Account(a) => Some(a.to_owned()),
                JobSubject::Role(_) => None,
            },
            role_id: match subject {
                JobSubject::Role(r) => Some(r.to_owned()),
                JobSubject::Account(_) => None,
            },
            patient_id: patient_id.to_owned(),
            supplier: supplier.to_owned(),
            payload,
            idempotency_key: uuid::Uuid::new_v4().to_string(),
            status: JobStatus::Queued,
            attempts: 0,
            max_attempts,
            next_attempt_at: now,
            claimed_by: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn last_updated(&self) -> chrono::DateTime<chrono::Utc> {
        self.updated_at.and_utc()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
    /// Refused by the supplier, or dead-lettered after the retry limit. Can be retried by staff.
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::InProgress, Self::Completed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Exponential backoff with jitter: the delay before attempt `attempt + 1`, in milliseconds.
/// `jitter` is a number in [0, 1) supplied by the caller so the rule stays pure and testable;
/// the delay lies between half and all of the capped exponential value.
pub fn backoff_millis(attempt: u32, base_ms: u64, cap_ms: u64, jitter: f64) -> u64 {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
    let capped = exp.min(cap_ms);
    let half = capped / 2;
    half + (jitter.clamp(0.0, 1.0) * (capped - half) as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered() {
        assert_eq!(backoff_millis(1, 1000, 60_000, 0.0), 500);
        assert_eq!(backoff_millis(1, 1000, 60_000, 0.999), 999);
        assert_eq!(backoff_millis(2, 1000, 60_000, 0.0), 1000);
        assert_eq!(backoff_millis(3, 1000, 60_000, 0.0), 2000);
        assert_eq!(backoff_millis(20, 1000, 60_000, 0.0), 30_000);
        assert!(backoff_millis(64, 1000, 60_000, 1.0) <= 60_000);
    }
}
