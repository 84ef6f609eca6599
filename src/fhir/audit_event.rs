use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Coding, GATEWAY_FHIR_BASE, Identifier, Reference, instant};
use crate::domain::audit::AuditEntry;
use crate::domain::policy::{Action, Verb};

/// FHIR R4 `AuditEvent` for one access decision or change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[schema(value_type = String, example = "AuditEvent")]
    pub resource_type: String,
    pub id: String,
    #[serde(rename = "type")]
    pub type_: Coding,
    pub subtype: Vec<Coding>,
    /// C | R | U | D | E
    pub action: String,
    pub recorded: String,
    /// 0 success, 4 refused, 8 failed
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    pub agent: Vec<AuditAgent>,
    pub source: AuditSource,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<AuditEntity>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditAgent {
    #[serde(rename = "type")]
    pub type_: super::CodeableConcept,
    pub who: Reference,
    pub requestor: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditSource {
    pub observer: Reference,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEntity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<Reference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<AuditEntityDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntityDetail {
    #[serde(rename = "type")]
    pub type_: String,
    pub value_string: String,
}

/// FHIR's C/R/U/E for an action code; codes that are not engine actions (refused
/// authentications on an unknown endpoint) are executions.
fn action_code(action: &str) -> &'static str {
    match Action::parse(action).map(Action::verb) {
        Some(Verb::Create) => "C",
        Some(Verb::Read) => "R",
        Some(Verb::Update) => "U",
        Some(Verb::Execute) | None => "E",
    }
}

impl AuditEvent {
    pub fn from_entry(e: &AuditEntry) -> Self {
        let mut detail = vec![AuditEntityDetail {
            type_: "chain".into(),
            value_string: format!("{}#{}", e.chain, e.seq),
        }];
        if let Some(a) = &e.assurance {
            detail.push(AuditEntityDetail {
                type_: "vot".into(),
                value_string: a.clone(),
            });
        }
        for (name, value) in [
            ("requestId", &e.request_id),
            ("practice", &e.practice),
            ("rule", &e.rule),
            ("code", &e.code),
        ] {
            if let Some(v) = value {
                detail.push(AuditEntityDetail {
                    type_: name.into(),
                    value_string: v.clone(),
                });
            }
        }
        Self {
            resource_type: "AuditEvent".into(),
            id: e.id.clone(),
            type_: Coding {
                system: Some("http://terminology.hl7.org/CodeSystem/audit-event-type".into()),
                code: Some("rest".into()),
                display: Some("RESTful Operation".into()),
            },
            subtype: vec![Coding {
                system: Some(format!("{GATEWAY_FHIR_BASE}/CodeSystem/audit-action")),
                code: Some(e.action.clone()),
                display: None,
            }],
            action: action_code(&e.action).into(),
            recorded: instant(e.recorded_at.and_utc()),
            outcome: match e.outcome.as_str() {
                "success" => "0",
                "denied" => "4",
                _ => "8",
            }
            .into(),
            outcome_desc: e.reason.clone(),
            agent: vec![AuditAgent {
                type_: super::CodeableConcept {
                    coding: vec![],
                    text: Some(e.actor_kind.clone()),
                },
                who: Reference {
                    identifier: Some(Identifier {
                        use_: None,
                        system: Some(format!("{GATEWAY_FHIR_BASE}/Id/caller")),
                        value: Some(e.actor.clone()),
                    }),
                    ..Default::default()
                },
                requestor: true,
            }],
            source: AuditSource {
                observer: Reference {
                    display: Some("gp-online-gateway".into()),
                    ..Default::default()
                },
            },
            entity: vec![AuditEntity {
                what: e.patient_id.as_ref().map(|p| Reference {
                    reference: Some(format!("Patient/{p}")),
                    ..Default::default()
                }),
                detail,
            }],
        }
    }
}
