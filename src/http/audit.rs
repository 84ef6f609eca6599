//! Recording access decisions from the HTTP layer, where the caller, the request id and the
//! outcome all meet.

use actix_web::{HttpMessage, HttpRequest};

use super::middleware::RequestIds;
use crate::audit::{AuditRecord, Outcome};
use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

pub fn actor(principal: Option<&Principal>) -> (String, String, Option<String>) {
    match principal {
        None => ("unauthenticated".into(), "unknown".into(), None),
        Some(p @ Principal::Patient(pp)) => (
            "patient".into(),
            p.caller_key(),
            Some(pp.vot.clone().unwrap_or_else(|| pp.proofing_level.as_str().to_owned())),
        ),
        Some(p @ Principal::Staff(_)) => ("staff".into(), p.caller_key(), None),
        Some(p @ Principal::System(_)) => ("system".into(), p.caller_key(), None),
    }
}

/// Records the decision `result` stands for, then hands the result back unchanged.
pub async fn audited<T>(
    state: &AppState,
    req: &HttpRequest,
    principal: Option<&Principal>,
    action: &str,
    patient_id: Option<&str>,
    result: Result<T, ApiError>,
) -> Result<T, ApiError> {
    let (outcome, reason) = match &result {
        Ok(_) => (Outcome::Success, None),
        Err(e) if e.code.status().is_server_error() => (Outcome::Error, Some(e.code.as_str().to_owned())),
        Err(e) => (Outcome::Denied, Some(format!("{}: {}", e.code.as_str(), e.message))),
    };
    record(state, req, principal, action, patient_id, outcome, reason).await;
    result
}

pub async fn record(
    state: &AppState,
    req: &HttpRequest,
    principal: Option<&Principal>,
    action: &str,
    patient_id: Option<&str>,
    outcome: Outcome,
    reason: Option<String>,
) {
    let (actor_kind, actor, assurance) = actor(principal);
    let request_id = req.extensions().get::<RequestIds>().map(|r| r.request_id.clone());
    state
        .audit
        .record(AuditRecord {
            actor_kind,
            actor,
            patient_id: patient_id.map(str::to_owned),
            action: action.to_owned(),
            outcome,
            assurance,
            reason,
            request_id,
        })
        .await;
}
