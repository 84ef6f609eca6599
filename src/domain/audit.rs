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
