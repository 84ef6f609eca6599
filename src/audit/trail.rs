//! One request's audit events: recorded where the decision is made, and committed before the
//! request changes anything (for changes) or before its answer leaves (for everything).

use std::sync::{Arc, Mutex, PoisonError};

use super::{AuditFailure, AuditLog, AuditRecord, Outcome, Receipt};

#[derive(Default)]
struct State {
    recorded: bool,
    /// Decisions not yet queued: completed when the request's result is known.
    held: Vec<AuditRecord>,
    /// A decision that allowed the request and was committed before it acted.
    committed_allowed: Option<AuditRecord>,
    pending: Vec<Receipt>,
    /// The patient a change will make, named by its decision before it is made.
    intended_patient: Option<String>,
}

/// Shared by the audit middleware (which creates it for each request) and the services (which
/// record the decision into it).
#[derive(Clone, Default)]
pub struct Trail(Arc<Mutex<State>>);

impl Trail {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event now (a decision that must be on record before the request acts).
    pub fn record(&self, log: &AuditLog, record: AuditRecord) {
        let allowed = (record.outcome == Outcome::Success).then(|| record.clone());
        let receipt = log.submit(record);
        let mut state = self.state();
        state.recorded = true;
        if allowed.is_some() {
            state.committed_allowed = allowed;
        }
        state.pending.push(receipt);
    }

    /// Keeps the decision until the request's result is known; it is queued when the trail is
    /// committed, at the latest as the answer leaves.
    pub fn hold(&self, record: AuditRecord) {
        let mut state = self.state();
        state.recorded = true;
        state.held.push(record);
    }

    /// Says which patient the change about to be decided will make (a new record's id), so
    /// that its decision, committed before the change, names them.
    pub fn will_make(&self, patient_id: &str) {
        self.state().intended_patient = Some(patient_id.to_owned());
    }

    /// The patient a change will make, if the service said so.
    pub fn intended_patient(&self) -> Option<String> {
        self.state().intended_patient.clone()
    }

    /// After a change whose decision was committed before it was made: the patient the change
    /// turned out to be about, put on record in a second event when the decision did not
    /// already name them. Committed with the trail.
    pub fn found_patient(&self, log: &AuditLog, patient_id: &str, practice: &str) {
        if !self.state().held.is_empty() {
            self.name_patient(patient_id, practice);
            return;
        }
        let mut state = self.state();
        let Some(allowed) = &state.committed_allowed else {
            return;
        };
        if allowed.patient_id.as_deref() == Some(patient_id) {
            return;
        }
        let mut found = allowed.clone();
        found.patient_id = Some(patient_id.to_owned());
        found.practice = Some(practice.to_owned());
        found.reason = Some("the change allowed by the decision before it was made concerned this patient".into());
        found.snapshot = None;
        let receipt = log.submit(found.clone());
        state.pending.push(receipt);
        state.committed_allowed = Some(found);
    }

    /// Names the patient an operation found on the held decisions that name none yet.
    pub fn name_patient(&self, patient_id: &str, practice: &str) {
        for r in self.state().held.iter_mut().filter(|r| r.patient_id.is_none()) {
            r.patient_id = Some(patient_id.to_owned());
            r.practice = Some(practice.to_owned());
        }
    }

    /// Whether a decision already recorded for this request names the patient.
    pub fn names(&self, patient_id: &str) -> bool {
        let state = self.state();
        state
            .held
            .iter()
            .chain(state.committed_allowed.iter())
            .any(|r| r.patient_id.as_deref() == Some(patient_id))
    }

    /// Whether anything was recorded for this request.
    pub fn has_record(&self) -> bool {
        self.state().recorded
    }

    /// The request failed after its decision allowed it: the held decision says so, and a
    /// decision already committed is followed by an event that says the request failed.
    pub fn failed(&self, log: &AuditLog, outcome: Outcome, code: Option<&str>) {
        let mut state = self.state();
        if !state.held.is_empty() {
            for held in state.held.iter_mut().filter(|h| h.outcome == Outcome::Success) {
                held.reason = Some(format!(
                    "allowed by {}, then the request failed",
                    held.rule.as_deref().unwrap_or("the engine")
                ));
                held.outcome = outcome;
                held.code = code.map(str::to_owned);
            }
            return;
        }
        if let Some(mut follow_up) = state.committed_allowed.take() {
            follow_up.outcome = outcome;
            follow_up.rule = Some("request".into());
            follow_up.code = code.map(str::to_owned);
            follow_up.reason = Some("the request failed after it was allowed".into());
            follow_up.snapshot = None;
            let receipt = log.submit(follow_up);
            state.pending.push(receipt);
        }
    }

    /// Waits until every event recorded so far is committed.
    pub async fn commit(&self, log: &AuditLog) -> Result<(), AuditFailure> {
        let held = std::mem::take(&mut self.state().held);
        for record in held {
            let allowed = (record.outcome == Outcome::Success).then(|| record.clone());
            let receipt = log.submit(record);
            let mut state = self.state();
            state.pending.push(receipt);
            if allowed.is_some() {
                state.committed_allowed = allowed;
            }
        }
        let pending = std::mem::take(&mut self.state().pending);
        for receipt in pending {
            log.confirm(receipt).await?;
        }
        Ok(())
    }
}
