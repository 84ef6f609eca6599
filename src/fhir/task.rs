use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CodeableConcept, Coding, GATEWAY_FHIR_BASE, Meta, Reference, instant};
use crate::domain::JobStatus;
use crate::domain::provisioning::OutboxJob;
use crate::domain::proxy::ProxyReview;
use crate::domain::record_access::BulkJob;
use crate::domain::review::ReviewTask;

pub fn task_type_system() -> String {
    format!("{GATEWAY_FHIR_BASE}/CodeSystem/task-type")
}

/// FHIR `Task`: provisioning jobs at a supplier and record reviews, with attempts and the last error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[schema(value_type = String, example = "Task")]
    pub resource_type: String,
    pub id: String,
    pub meta: Meta,
    /// requested | in-progress | completed | failed | cancelled
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_status: Option<CodeableConcept>,
    pub intent: String,
    pub code: CodeableConcept,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the Task is about, when it is not the patient (the proxy role under review).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focus: Option<Reference>,
    #[serde(rename = "for")]
    pub for_: Reference,
    pub authored_on: String,
    pub last_modified: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<TaskParameter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<TaskParameter>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskParameter {
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_integer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date_time: Option<String>,
}

fn text(t: &str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![],
        text: Some(t.into()),
    }
}

fn code(c: &str, display: &str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: Some(task_type_system()),
            code: Some(c.into()),
            display: Some(display.into()),
        }],
        text: None,
    }
}

impl Task {
    pub fn from_job(job: &OutboxJob) -> Self {
        let (status, business) = match job.status {
            JobStatus::Queued if job.attempts == 0 => ("requested", "waiting for a worker".to_owned()),
            JobStatus::Queued => (
                "requested",
                format!("retry scheduled for {}", instant(job.next_attempt_at.and_utc())),
            ),
            JobStatus::InProgress => ("in-progress", "calling the supplier".to_owned()),
            JobStatus::Completed => ("completed", "confirmed by the supplier".to_owned()),
            JobStatus::Failed => (
                "failed",
                "needs attention: retry with $retry once the cause is fixed".to_owned(),
            ),
        };
        let mut input = vec![
            TaskParameter {
                type_: text("attempts"),
                value_integer: Some(i64::from(job.attempts)),
                value_string: None,
                value_date_time: None,
            },
            TaskParameter {
                type_: text("maxAttempts"),
                value_integer: Some(i64::from(job.max_attempts)),
                value_string: None,
                value_date_time: None,
            },
            TaskParameter {
                type_: text("supplier"),
                value_integer: None,
                value_string: Some(job.supplier.clone()),
                value_date_time: None,
            },
        ];
        if job.status == JobStatus::Queued {
            input.push(TaskParameter {
                type_: text("nextAttemptAt"),
                value_integer: None,
                value_string: None,
                value_date_time: Some(instant(job.next_attempt_at.and_utc())),
            });
        }
        Self {
            resource_type: "Task".into(),
            id: job.id.clone(),
            meta: Meta {
                version_id: None,
                last_updated: Some(instant(job.last_updated())),
                profile: vec![],
            },
            status: status.into(),
            business_status: Some(text(&business)),
            intent: "order".into(),
            code: code(job.kind.as_str(), job.kind.display()),
            description: None,
            focus: job.role_id.as_ref().map(|r| Reference {
                reference: Some(format!("Consent/{r}")),
                ..Default::default()
            }),
            for_: Reference {
                reference: Some(format!("Patient/{}", job.patient_id)),
                ..Default::default()
            },
            authored_on: instant(job.created_at.and_utc()),
            last_modified: instant(job.last_updated()),
            input,
            output: job
                .last_error
                .iter()
                .map(|e| TaskParameter {
                    type_: text("lastError"),
                    value_integer: None,
                    value_string: Some(e.clone()),
                    value_date_time: None,
                })
                .collect(),
        }
    }

    /// A practice-wide job, with its progress and what it did so far.
    pub fn from_bulk(job: &BulkJob) -> Self {
        let percent = if job.total > 0 {
            (job.processed * 100 / job.total).min(100)
        } else if job.status == "completed" {
            100
        } else {
            0
        };
        let int = |name: &str, v: i64| TaskParameter {
            type_: text(name),
            value_integer: Some(v),
            value_string: None,
            value_date_time: None,
        };
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut output = vec![
            int("percentDone", percent),
            int("processed", job.processed),
            int("total", job.total),
            int("coded", count(job.counts.coded)),
            int("alreadyCoded", count(job.counts.already_coded)),
            int("revoked", count(job.counts.revoked)),
        ];
        output.extend(job.counts.revoked_accounts.iter().map(|a| TaskParameter {
            type_: text("revokedAccount"),
            value_integer: None,
            value_string: Some(a.clone()),
            value_date_time: None,
        }));
        Self {
            resource_type: "Task".into(),
            id: job.id.clone(),
            meta: Meta {
                version_id: None,
                last_updated: Some(instant(job.updated_at.and_utc())),
                profile: vec![],
            },
            status: match job.status.as_str() {
                "queued" => "requested".into(),
                other => other.into(),
            },
            business_status: Some(text(&format!("{percent}% done"))),
            intent: "order".into(),
            code: code(&job.kind, "Move the practice to opt-in record access"),
            description: Some(format!(
                "Patients of 16 or over (and those turning 16 within {} days) without record access get 1364731000000104; accounts given record access automatically are told to give none until the patient opts in.",
                job.params.turning_sixteen_within_days
            )),
            focus: None,
            for_: Reference {
                reference: Some(format!("Organization/{}", job.practice_id)),
                ..Default::default()
            },
            authored_on: instant(job.created_at.and_utc()),
            last_modified: instant(job.updated_at.and_utc()),
            input: vec![int(
                "turningSixteenWithinDays",
                i64::from(job.params.turning_sixteen_within_days),
            )],
            output,
        }
    }

    pub fn from_proxy_review(review: &ProxyReview) -> Self {
        Self {
            resource_type: "Task".into(),
            id: review.id.clone(),
            meta: Meta {
                version_id: None,
                last_updated: Some(instant(review.updated_at.and_utc())),
                profile: vec![],
            },
            status: review.status.clone(),
            business_status: None,
            intent: "order".into(),
            code: code("proxy-review", "Review a request for proxy access"),
            description: Some(format!(
                "A request for proxy access is waiting for the practice. Check the evidence of the relationship and the legal basis, consider coercion and safeguarding, then decide with PATCH Consent/{} (active with the practice as grantor, or rejected with a reason).",
                review.role_id
            )),
            focus: Some(Reference {
                reference: Some(format!("Consent/{}", review.role_id)),
                ..Default::default()
            }),
            for_: Reference {
                reference: Some(format!("Patient/{}", review.patient_id)),
                ..Default::default()
            },
            authored_on: instant(review.created_at.and_utc()),
            last_modified: instant(review.updated_at.and_utc()),
            input: vec![],
            output: review
                .note
                .iter()
                .map(|n| TaskParameter {
                    type_: text("note"),
                    value_integer: None,
                    value_string: Some(n.clone()),
                    value_date_time: None,
                })
                .collect(),
        }
    }

    pub fn from_review(review: &ReviewTask) -> Self {
        let from = review
            .requested_access
            .record_from
            .map(crate::fhir::date)
            .unwrap_or_default();
        Self {
            resource_type: "Task".into(),
            id: review.id.clone(),
            meta: Meta {
                version_id: None,
                last_updated: Some(instant(review.last_updated())),
                profile: vec![],
            },
            status: review.status.clone(),
            business_status: None,
            intent: "order".into(),
            code: code(
                "record-review",
                "Review the record before historic access is switched on",
            ),
            description: Some(format!(
                "Review the record for third-party and sensitive information before full record access from {from} is switched on. Until then the patient sees entries from the registration date onwards; tell them why access to older entries takes longer."
            )),
            focus: None,
            for_: Reference {
                reference: Some(format!("Patient/{}", review.patient_id)),
                ..Default::default()
            },
            authored_on: instant(review.created_at.and_utc()),
            last_modified: instant(review.last_updated()),
            input: vec![],
            output: review
                .note
                .iter()
                .map(|n| TaskParameter {
                    type_: text("note"),
                    value_integer: None,
                    value_string: Some(n.clone()),
                    value_date_time: None,
                })
                .collect(),
        }
    }
}
