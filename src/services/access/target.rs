//! What a request is about: the target a decision names, as the handler knows it.

use crate::domain::provisioning::OutboxJob;
use crate::domain::proxy::ProxyReview;
use crate::domain::review::ReviewTask;
use crate::domain::{NhsNumber, PracticeRef};

/// What a request is about.
#[derive(Debug, Clone)]
pub enum Target {
    /// Nothing in particular (the action names its patient in the body, or has none).
    None,
    /// Named by the request body, which is read only once the caller may go on.
    Pending,
    /// A patient record by id.
    Patient(String),
    /// The patient a Task is for.
    Task(String),
    /// A practice by id or ODS code.
    Practice(PracticeRef),
    /// The person's own record, through their identity binding.
    OwnRecord,
    /// A proxy role by id.
    ProxyRole(String),
    /// A patient record by NHS number (a proxy role names its patient so).
    PatientNhs(NhsNumber),
    /// A proxy access request by id.
    AccessRequest(String),
    /// A bulk export of a practice's audit trail by id.
    AuditExport(String),
}

impl Target {
    /// The resource a refusal is worded for (`Patient not found`).
    pub(super) fn resource(&self) -> &'static str {
        match self {
            Self::Task(_) => "Task",
            Self::Practice(_) => "Organization",
            Self::ProxyRole(_) => "Consent",
            Self::AccessRequest(_) => "QuestionnaireResponse",
            Self::AuditExport(_) => "Export",
            _ => "Patient",
        }
    }
}

/// A Task is either a provisioning job or a record review.
#[derive(Debug, Clone)]
pub enum AnyTask {
    Job(OutboxJob),
    Review(ReviewTask),
    /// A practice's review of a proposed proxy role.
    ProxyReview(ProxyReview),
    /// A practice-wide job (applying the opt-in model).
    Bulk(crate::domain::record_access::BulkJob),
}

impl AnyTask {
    /// The patient the Task is about; a practice-wide job is about none.
    pub fn patient_id(&self) -> Option<&str> {
        match self {
            Self::Job(j) => Some(&j.patient_id),
            Self::Review(r) => Some(&r.patient_id),
            Self::ProxyReview(r) => Some(&r.patient_id),
            Self::Bulk(_) => None,
        }
    }
}
