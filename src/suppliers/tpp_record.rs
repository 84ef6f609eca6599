//! The TPP-like patient record on the wire (XML, the `PatientRecord` message's reply): the
//! practice's restrictions, then one `Item` per entry with its flags as attributes and what only
//! its type has as `Attribute` name/value pairs. The adapter reads it into the canonical
//! record; the simulator writes it from one.

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::clinical::{ClinicalRecord, Code, Detail, Entry, Prescription};

/// The `PatientRecord` request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PatientRecord {
    pub patient_id: String,
    pub unit_id: String,
}

/// The `PatientRecordReply` body.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PatientRecordReply {
    #[serde(default)]
    pub restriction: Vec<String>,
    #[serde(default)]
    pub item: Vec<Item>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "@type")]
    pub kind: String,
    #[serde(rename = "@date")]
    pub date: NaiveDate,
    /// `true` when the practice marked it not to be shown online.
    #[serde(rename = "@withheld")]
    pub withheld: bool,
    #[serde(rename = "@area", default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    #[serde(rename = "Code", default, skip_serializing_if = "Option::is_none")]
    pub code: Option<ItemCode>,
    #[serde(rename = "Text", default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(rename = "Consultation", default, skip_serializing_if = "Option::is_none")]
    pub consultation: Option<String>,
    #[serde(rename = "Link", default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<String>,
    #[serde(rename = "Attribute", default, skip_serializing_if = "Vec::is_empty")]
    pub attribute: Vec<Attribute>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ItemCode {
    #[serde(rename = "@system")]
    pub system: String,
    #[serde(rename = "@code")]
    pub code: String,
    #[serde(rename = "@display")]
    pub display: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@value")]
    pub value: String,
}

/// The wire shape of a canonical record (the simulator's answer).
pub fn to_wire(record: &ClinicalRecord) -> PatientRecordReply {
    PatientRecordReply {
        restriction: record.restricted.iter().cloned().collect(),
        item: record.entries.iter().map(item).collect(),
    }
}

fn item(e: &Entry) -> Item {
    let mut attrs: Vec<(&str, String)> = vec![];
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let kind = match &e.detail {
        Detail::Allergy { reaction, resolved } => {
            attrs.extend(reaction.clone().map(|r| ("Reaction", r)));
            attrs.push(("Resolved", flag(*resolved)));
            "Allergy"
        }
        Detail::Medication {
            prescription,
            dosage,
            quantity,
            ended,
        } => {
            attrs.push((
                "Issue",
                match prescription {
                    Prescription::Acute => "Acute",
                    Prescription::Repeat => "Repeat",
                }
                .to_owned(),
            ));
            attrs.push(("Dose", dosage.clone()));
            attrs.extend(quantity.clone().map(|q| ("Quantity", q)));
            attrs.extend(ended.map(|d| ("Ended", d.to_string())));
            "Medication"
        }
        Detail::Problem { active, major } => {
            attrs.push(("Active", flag(*active)));
            attrs.push(("Major", flag(*major)));
            "Problem"
        }
        Detail::Immunisation => "Vaccination",
        Detail::Consultation { draft, clinician } => {
            attrs.push(("Draft", flag(*draft)));
            attrs.extend(clinician.clone().map(|c| ("Clinician", c)));
            "Event"
        }
        Detail::TestResult { value, filed } => {
            attrs.extend(value.clone().map(|v| ("Value", v)));
            attrs.push(("Filed", flag(*filed)));
            "TestResult"
        }
        Detail::Referral { to } => {
            attrs.extend(to.clone().map(|t| ("To", t)));
            "Referral"
        }
        Detail::Document {
            title,
            reviewed,
            content_type,
            content,
        } => {
            attrs.push(("Title", title.clone()));
            attrs.push(("Reviewed", flag(*reviewed)));
            attrs.push(("ContentType", content_type.clone()));
            attrs.push(("Content", content.clone()));
            "Letter"
        }
        Detail::Note => "Narrative",
        Detail::Diary => "Reminder",
    };
    Item {
        id: e.id.clone(),
        kind: kind.to_owned(),
        date: e.recorded,
        withheld: e.not_for_online,
        area: e.sensitivity.clone(),
        code: e.code.as_ref().map(|c| ItemCode {
            system: c.system.clone(),
            code: c.code.clone(),
            display: c.display.clone(),
        }),
        text: e.text.clone(),
        consultation: e.consultation.clone(),
        link: e.related.clone(),
        attribute: attrs
            .into_iter()
            .map(|(name, value)| Attribute {
                name: name.to_owned(),
                value,
            })
            .collect(),
    }
}

/// The canonical record from the wire. An unknown item type or a missing attribute its type
/// needs makes the reply unreadable; missing flags mean the cautious thing.
pub fn from_wire(reply: PatientRecordReply) -> Result<ClinicalRecord, String> {
    let entries = reply
        .item
        .into_iter()
        .map(|i| {
            let attrs: HashMap<&str, &str> = i
                .attribute
                .iter()
                .map(|a| (a.name.as_str(), a.value.as_str()))
                .collect();
            let text = |name: &str| attrs.get(name).map(|v| (*v).to_owned());
            let flag = |name: &str, missing: bool| attrs.get(name).map_or(missing, |v| *v == "1");
            let needed = |name: &str| text(name).ok_or_else(|| format!("a {} item has no {name}", i.kind));
            let detail = match i.kind.as_str() {
                "Allergy" => Detail::Allergy {
                    reaction: text("Reaction"),
                    resolved: flag("Resolved", false),
                },
                "Medication" => Detail::Medication {
                    prescription: match needed("Issue")?.as_str() {
                        "Acute" => Prescription::Acute,
                        "Repeat" => Prescription::Repeat,
                        other => return Err(format!("a medication's Issue is {other}")),
                    },
                    dosage: needed("Dose")?,
                    quantity: text("Quantity"),
                    ended: text("Ended")
                        .map(|d| d.parse().map_err(|_| "a medication's Ended is not a date".to_owned()))
                        .transpose()?,
                },
                "Problem" => Detail::Problem {
                    active: flag("Active", false),
                    major: flag("Major", false),
                },
                "Vaccination" => Detail::Immunisation,
                "Event" => Detail::Consultation {
                    draft: flag("Draft", true),
                    clinician: text("Clinician"),
                },
                "TestResult" => Detail::TestResult {
                    value: text("Value"),
                    filed: flag("Filed", false),
                },
                "Referral" => Detail::Referral { to: text("To") },
                "Letter" => Detail::Document {
                    title: needed("Title")?,
                    reviewed: flag("Reviewed", false),
                    content_type: needed("ContentType")?,
                    content: text("Content").unwrap_or_default(),
                },
                "Narrative" => Detail::Note,
                "Reminder" => Detail::Diary,
                other => return Err(format!("an item of unknown type {other}")),
            };
            Ok(Entry {
                id: i.id.clone(),
                recorded: i.date,
                code: i.code.as_ref().map(|c| Code {
                    system: c.system.clone(),
                    code: c.code.clone(),
                    display: c.display.clone(),
                }),
                text: i.text.clone(),
                consultation: i.consultation.clone(),
                related: i.link.clone(),
                not_for_online: i.withheld,
                sensitivity: i.area.clone(),
                detail,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(ClinicalRecord {
        entries,
        restricted: reply.restriction.into_iter().collect(),
    })
}
