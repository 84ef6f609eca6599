//! One request's audit events: recorded where the decision is made, and waited for before the
//! request changes anything or its answer leaves.

use std::sync::{Arc, Mutex, PoisonError};

use super::{AuditFailure, AuditLog, AuditRecord, Receipt};

#[derive(Default)]
struct State {
    recorded: bool,
    /// Recorded but not yet queued: the operation itself finds the patient it concerns.
    held: Option<AuditRecord>,
    pending: Vec<Receipt>,
}

/// Shared by the audit middleware (which creates it for each request) and the services (which
/// record the decision into it).
#[derive(Clone, Default)]
pub struct Trail(Arc<Mutex<State>>);

impl Trail {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an event for this request.
    pub fn record(&self, log: &AuditLog, record: AuditRecord) {
        let receipt = log.submit(record);
        let mut state = self.state();
        state.recorded = true;
        state.pending.push(receipt);
    }

    /// Records an event that the operation completes (with the patient it finds) before it is
    /// queued. It is queued at the latest when the request's trail is committed.
    pub fn hold(&self, record: AuditRecord) {
        let mut state = self.state();
        state.recorded = true;
        state.held = Some(record);
    }

    /// Completes the held event.
    pub fn amend(&self, f: impl FnOnce(&mut AuditRecord)) {
        if let Some(r) = self.state().held.as_mut() {
            f(r);
        }
    }

    /// Whether anything was recorded for this request.
    pub fn has_record(&self) -> bool {
        self.state().recorded
    }

    /// Waits until every event recorded so far is committed.
    pub async fn commit(&self, log: &AuditLog) -> Result<(), AuditFailure> {
        let held = self.state().held.take();
        if let Some(record) = held {
            let receipt = log.submit(record);
            self.state().pending.push(receipt);
        }
        let pending = std::mem::take(&mut self.state().pending);
        for receipt in pending {
            log.confirm(receipt).await?;
        }
        Ok(())
    }
}
