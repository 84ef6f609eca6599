//! The EMIS-like medical record on the wire (JSON): one list of events, each with its type, its
//! confidentiality policy and what only its type has. The adapter reads it into the canonical
//! record; the simulator writes it from one.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::clinical::{ClinicalRecord, Code, Detail, Entry, Prescription};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordReply {
    pub medical_record: MedicalRecord,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MedicalRecord {
    /// Clinical areas the practice does not share online.
    #[serde(default)]
    pub sensitive_areas: Vec<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub event_guid: String,
    pub event_type: EventType,
    #[serde(with = "super::wire_time::day")]
    pub effective_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<EventCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultation_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked_event_guids: Vec<String>,
    pub confidentiality: Confidentiality,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prescription_type: Option<PrescriptionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dosage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    #[serde(
        with = "super::wire_time::optional_day",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub end_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_status: Option<ProblemStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significance: Option<Significance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinician: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Allergy,
    Medication,
    Problem,
    Immunisation,
    Consultation,
    TestResult,
    Referral,
    Attachment,
    Comment,
    Diary,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventCode {
    pub scheme: String,
    pub value: String,
    pub term: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Confidentiality {
    /// The practice marked the event not to be shown online.
    pub withheld_online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_area: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum PrescriptionType {
    Acute,
    Repeat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum ProblemStatus {
    Active,
    Past,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Significance {
    Major,
    Minor,
}

/// The wire shape of a canonical record (the simulator's answer).
pub fn to_wire(record: &ClinicalRecord) -> RecordReply {
    RecordReply {
        medical_record: MedicalRecord {
            sensitive_areas: record.restricted.iter().cloned().collect(),
            events: record.entries.iter().map(event).collect(),
        },
    }
}

fn event(e: &Entry) -> Event {
    let mut out = Event {
        event_guid: e.id.clone(),
        event_type: EventType::Comment,
        effective_date: e.recorded,
        code: e.code.as_ref().map(|c| EventCode {
            scheme: c.system.clone(),
            value: c.code.clone(),
            term: c.display.clone(),
        }),
        free_text: e.text.clone(),
        consultation_guid: e.consultation.clone(),
        linked_event_guids: e.related.clone(),
        confidentiality: Confidentiality {
            withheld_online: e.not_for_online,
            clinical_area: e.sensitivity.clone(),
        },
        reaction: None,
        resolved: None,
        prescription_type: None,
        dosage: None,
        quantity: None,
        end_date: None,
        problem_status: None,
        significance: None,
        draft: None,
        clinician: None,
        value: None,
        filed: None,
        referred_to: None,
        title: None,
        reviewed: None,
        mime_type: None,
        content: None,
    };
    match &e.detail {
        Detail::Allergy { reaction, resolved } => {
            out.event_type = EventType::Allergy;
            out.reaction = reaction.clone();
            out.resolved = Some(*resolved);
        }
        Detail::Medication {
            prescription,
            dosage,
            quantity,
            ended,
        } => {
            out.event_type = EventType::Medication;
            out.prescription_type = Some(match prescription {
                Prescription::Acute => PrescriptionType::Acute,
                Prescription::Repeat => PrescriptionType::Repeat,
            });
            out.dosage = Some(dosage.clone());
            out.quantity = quantity.clone();
            out.end_date = *ended;
        }
        Detail::Problem { active, major } => {
            out.event_type = EventType::Problem;
            out.problem_status = Some(if *active {
                ProblemStatus::Active
            } else {
                ProblemStatus::Past
            });
            out.significance = Some(if *major {
                Significance::Major
            } else {
                Significance::Minor
            });
        }
        Detail::Immunisation => out.event_type = EventType::Immunisation,
        Detail::Consultation { draft, clinician } => {
            out.event_type = EventType::Consultation;
            out.draft = Some(*draft);
            out.clinician = clinician.clone();
        }
        Detail::TestResult { value, filed } => {
            out.event_type = EventType::TestResult;
            out.value = value.clone();
            out.filed = Some(*filed);
        }
        Detail::Referral { to } => {
            out.event_type = EventType::Referral;
            out.referred_to = to.clone();
        }
        Detail::Document {
            title,
            reviewed,
            content_type,
            content,
        } => {
            out.event_type = EventType::Attachment;
            out.title = Some(title.clone());
            out.reviewed = Some(*reviewed);
            out.mime_type = Some(content_type.clone());
            out.content = Some(content.clone());
        }
        Detail::Note => out.event_type = EventType::Comment,
        Detail::Diary => out.event_type = EventType::Diary,
    }
    out
}

/// The canonical record from the wire. A field a type needs that is missing makes the reply
/// unreadable (the caller treats it as malformed); flags that are missing mean the cautious
/// thing (not filed, not reviewed, a draft is not assumed finished).
pub fn from_wire(reply: RecordReply) -> Result<ClinicalRecord, String> {
    let record = reply.medical_record;
    let entries = record
        .events
        .into_iter()
        .map(|e| {
            let detail = match e.event_type {
                EventType::Allergy => Detail::Allergy {
                    reaction: e.reaction,
                    resolved: e.resolved.unwrap_or(false),
                },
                EventType::Medication => Detail::Medication {
                    prescription: match e.prescription_type.ok_or("a medication has no PrescriptionType")? {
                        PrescriptionType::Acute => Prescription::Acute,
                        PrescriptionType::Repeat => Prescription::Repeat,
                    },
                    dosage: e.dosage.ok_or("a medication has no Dosage")?,
                    quantity: e.quantity,
                    ended: e.end_date,
                },
                EventType::Problem => Detail::Problem {
                    active: matches!(e.problem_status, Some(ProblemStatus::Active)),
                    major: matches!(e.significance, Some(Significance::Major)),
                },
                EventType::Immunisation => Detail::Immunisation,
                EventType::Consultation => Detail::Consultation {
                    draft: e.draft.unwrap_or(true),
                    clinician: e.clinician,
                },
                EventType::TestResult => Detail::TestResult {
                    value: e.value,
                    filed: e.filed.unwrap_or(false),
                },
                EventType::Referral => Detail::Referral { to: e.referred_to },
                EventType::Attachment => Detail::Document {
                    title: e.title.ok_or("an attachment has no Title")?,
                    reviewed: e.reviewed.unwrap_or(false),
                    content_type: e.mime_type.ok_or("an attachment has no MimeType")?,
                    content: e.content.unwrap_or_default(),
                },
                EventType::Comment => Detail::Note,
                EventType::Diary => Detail::Diary,
            };
            Ok(Entry {
                id: e.event_guid,
                recorded: e.effective_date,
                code: e.code.map(|c| Code {
                    system: c.scheme,
                    code: c.value,
                    display: c.term,
                }),
                text: e.free_text,
                consultation: e.consultation_guid,
                related: e.linked_event_guids,
                not_for_online: e.confidentiality.withheld_online,
                sensitivity: e.confidentiality.clinical_area,
                detail,
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok(ClinicalRecord {
        entries,
        restricted: record.sensitive_areas.into_iter().collect(),
    })
}
