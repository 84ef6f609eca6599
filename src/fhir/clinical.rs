//! The GP record as FHIR R4 resources (UK Core profiles), from what the filter left visible.
//!
//! Ids are opaque: each is a keyed hash of the supplier's id for the entry, so they show neither
//! the supplier's numbering nor where something withheld would have been. References point only
//! at entries that are shown too (the filter has removed the others).

use serde_json::{Map, Value, json};

use super::organization::Organization;
use super::patient::Patient;
use crate::domain::clinical::{Area, Detail, Entry, Prescription, Visible};
use crate::domain::{PatientRecord, PracticeRecord};

const SNOMED: &str = "http://snomed.info/sct";
const UK_CORE: &str = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-";

/// The resource types an entry is served as, in the order they are given.
pub fn types_of(entry: &Entry) -> &'static [&'static str] {
    match entry.detail {
        Detail::Allergy { .. } => &["AllergyIntolerance"],
        Detail::Medication { .. } => &["MedicationStatement", "MedicationRequest"],
        Detail::Problem { .. } => &["Condition"],
        Detail::Immunisation => &["Immunization"],
        Detail::Consultation { .. } => &["Encounter"],
        Detail::Note | Detail::TestResult { .. } => &["Observation"],
        Detail::Referral { .. } => &["ServiceRequest"],
        Detail::Document { .. } => &["DocumentReference"],
        Detail::Diary => &[],
    }
}

/// Builds resources for one patient's visible record; `opaque` names an entry by its
/// supplier id.
pub struct Resources<'a> {
    pub patient: &'a PatientRecord,
    pub opaque: &'a dyn Fn(&str) -> String,
}

impl Resources<'_> {
    fn subject(&self) -> Value {
        json!({"reference": format!("Patient/{}", self.patient.id)})
    }

    /// The id a resource of `resource_type` has for the entry with this supplier id.
    pub fn id(&self, resource_type: &str, entry_id: &str) -> String {
        let opaque = (self.opaque)(entry_id);
        match resource_type {
            // One entry, two resources: the statement and the plan keep apart.
            "MedicationRequest" => format!("plan-{opaque}"),
            _ => opaque,
        }
    }

    /// The Binary that holds a document's content: it names its patient, so it can be read
    /// back (and decided) without the gateway keeping anything.
    pub fn binary_id(&self, entry_id: &str) -> String {
        format!("{}.{}", self.patient.id, (self.opaque)(entry_id))
    }

    fn reference(&self, target: &Entry) -> Value {
        let kind = types_of(target).first().copied().unwrap_or("Basic");
        json!({"reference": format!("{kind}/{}", self.id(kind, &target.id))})
    }

    /// One entry as the resource of `resource_type` (one of [`types_of`] for it).
    pub fn resource(&self, entry: &Entry, resource_type: &str, visible: &Visible) -> Value {
        let find = |id: &str| visible.entries.iter().find(|e| e.id == id);
        let mut r = Map::new();
        r.insert("resourceType".into(), json!(resource_type));
        r.insert("id".into(), json!(self.id(resource_type, &entry.id)));
        r.insert("meta".into(), json!({"profile": [format!("{UK_CORE}{resource_type}")]}));
        let code = concept(entry);
        let note = entry.text.as_ref().map(|t| json!([{"text": t}]));
        let encounter = entry.consultation.as_deref().and_then(find).map(|c| self.reference(c));
        let date = super::date(entry.recorded);
        match (&entry.detail, resource_type) {
            (Detail::Allergy { reaction, resolved }, _) => {
                r.insert(
                    "clinicalStatus".into(),
                    coded(
                        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        if *resolved { "resolved" } else { "active" },
                    ),
                );
                r.insert(
                    "verificationStatus".into(),
                    coded(
                        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "confirmed",
                    ),
                );
                r.insert("code".into(), code);
                r.insert("patient".into(), self.subject());
                r.insert("recordedDate".into(), json!(date));
                if let Some(reaction) = reaction {
                    r.insert("reaction".into(), json!([{"manifestation": [{"text": reaction}]}]));
                }
            }
            (
                Detail::Medication {
                    prescription,
                    dosage,
                    ended,
                    ..
                },
                "MedicationRequest",
            ) => {
                r.insert(
                    "status".into(),
                    json!(if ended.is_some() { "completed" } else { "active" }),
                );
                r.insert("intent".into(), json!("plan"));
                r.insert("medicationCodeableConcept".into(), code);
                r.insert("subject".into(), self.subject());
                r.insert("authoredOn".into(), json!(date));
                r.insert(
                    "courseOfTherapyType".into(),
                    coded(
                        "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                        match prescription {
                            Prescription::Acute => "acute",
                            Prescription::Repeat => "continuous",
                        },
                    ),
                );
                r.insert("dosageInstruction".into(), json!([{"text": dosage}]));
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
            }
            (Detail::Medication { dosage, ended, .. }, _) => {
                r.insert(
                    "status".into(),
                    json!(if ended.is_some() { "completed" } else { "active" }),
                );
                r.insert("medicationCodeableConcept".into(), code);
                r.insert("subject".into(), self.subject());
                let mut period = json!({"start": date});
                if let Some(end) = ended {
                    period["end"] = json!(super::date(*end));
                }
                r.insert("effectivePeriod".into(), period);
                r.insert("dateAsserted".into(), json!(date));
                r.insert(
                    "basedOn".into(),
                    json!([{"reference": format!("MedicationRequest/{}", self.id("MedicationRequest", &entry.id))}]),
                );
                r.insert("dosage".into(), json!([{"text": dosage}]));
                if let Some(e) = encounter {
                    r.insert("context".into(), e);
                }
            }
            (Detail::Problem { active, .. }, _) => {
                r.insert(
                    "clinicalStatus".into(),
                    coded(
                        "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        if *active { "active" } else { "inactive" },
                    ),
                );
                r.insert(
                    "verificationStatus".into(),
                    coded(
                        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "confirmed",
                    ),
                );
                r.insert(
                    "category".into(),
                    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}]}]),
                );
                r.insert("code".into(), code);
                r.insert("subject".into(), self.subject());
                r.insert("recordedDate".into(), json!(date));
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
                let evidence: Vec<Value> = entry
                    .related
                    .iter()
                    .filter_map(|id| find(id))
                    .map(|t| json!({"detail": [self.reference(t)]}))
                    .collect();
                if !evidence.is_empty() {
                    r.insert("evidence".into(), json!(evidence));
                }
            }
            (Detail::Immunisation, _) => {
                r.insert("status".into(), json!("completed"));
                r.insert("vaccineCode".into(), code);
                r.insert("patient".into(), self.subject());
                r.insert("occurrenceDateTime".into(), json!(date));
                r.insert("primarySource".into(), json!(true));
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
            }
            (Detail::Consultation { clinician, .. }, _) => {
                r.insert("status".into(), json!("finished"));
                r.insert(
                    "class".into(),
                    json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"}),
                );
                if entry.code.is_some() {
                    r.insert("type".into(), json!([code]));
                }
                r.insert("subject".into(), self.subject());
                if let Some(c) = clinician {
                    r.insert("participant".into(), json!([{"individual": {"display": c}}]));
                }
                r.insert("period".into(), json!({"start": date}));
            }
            (Detail::TestResult { value, .. }, _) => {
                r.insert("status".into(), json!("final"));
                r.insert(
                    "category".into(),
                    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}]}]),
                );
                r.insert("code".into(), code);
                r.insert("subject".into(), self.subject());
                r.insert("effectiveDateTime".into(), json!(date));
                if let Some(v) = value {
                    r.insert("valueString".into(), json!(v));
                }
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
            }
            (Detail::Note, _) => {
                r.insert("status".into(), json!("final"));
                r.insert(
                    "code".into(),
                    json!({"coding": [{"system": SNOMED, "code": "371531000", "display": "Report of clinical encounter"}], "text": "Consultation note"}),
                );
                r.insert("subject".into(), self.subject());
                r.insert("effectiveDateTime".into(), json!(date));
                // The note is the free text itself: only full access shows it, and the filter
                // leaves a note out below that.
                if let Some(t) = &entry.text {
                    r.insert("valueString".into(), json!(t));
                }
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
            }
            (Detail::Referral { to }, _) => {
                r.insert("status".into(), json!("active"));
                r.insert("intent".into(), json!("order"));
                r.insert("code".into(), code);
                r.insert("subject".into(), self.subject());
                r.insert("authoredOn".into(), json!(date));
                if let Some(to) = to {
                    r.insert("performer".into(), json!([{"display": to}]));
                }
                let reasons: Vec<Value> = entry
                    .related
                    .iter()
                    .filter_map(|id| find(id))
                    .map(|t| self.reference(t))
                    .collect();
                if !reasons.is_empty() {
                    r.insert("reasonReference".into(), json!(reasons));
                }
                if let Some(e) = encounter {
                    r.insert("encounter".into(), e);
                }
            }
            (
                Detail::Document {
                    title, content_type, ..
                },
                _,
            ) => {
                r.insert("status".into(), json!("current"));
                if entry.code.is_some() {
                    r.insert("type".into(), code);
                }
                r.insert("subject".into(), self.subject());
                r.insert("date".into(), json!(format!("{date}T00:00:00Z")));
                r.insert("description".into(), json!(title));
                r.insert(
                    "content".into(),
                    json!([{"attachment": {
                        "contentType": content_type,
                        "url": format!("Binary/{}", self.binary_id(&entry.id)),
                        "title": title,
                        "creation": date,
                    }}]),
                );
                if let Some(e) = encounter {
                    r.insert("context".into(), json!({"encounter": [e]}));
                }
            }
            (Detail::Diary, _) => {}
        }
        if let Some(n) = note
            && !matches!(entry.detail, Detail::Note)
        {
            r.insert("note".into(), n);
        }
        Value::Object(r)
    }

    /// A document's content as a Binary.
    pub fn binary(&self, entry: &Entry) -> Option<Value> {
        match &entry.detail {
            Detail::Document {
                content_type, content, ..
            } => Some(json!({
                "resourceType": "Binary",
                "id": self.binary_id(&entry.id),
                "contentType": content_type,
                "data": content,
            })),
            _ => None,
        }
    }

    /// The list of one area's entries shown: exactly what follows it in the Bundle.
    fn list(&self, area: Area, visible: &Visible) -> Value {
        let entry: Vec<Value> = visible
            .in_area(area)
            .filter_map(|e| {
                let kind = types_of(e).first()?;
                Some(json!({"item": {"reference": format!("{kind}/{}", self.id(kind, &e.id))}}))
            })
            .collect();
        let mut list = json!({
            "resourceType": "List",
            "id": (self.opaque)(&format!("list:{}", area.name())),
            "meta": {"profile": [format!("{UK_CORE}List")]},
            "status": "current",
            "mode": "snapshot",
            "title": title(area),
            "code": {"text": title(area)},
            "subject": self.subject(),
        });
        if !entry.is_empty() {
            list["entry"] = json!(entry);
        }
        list
    }
}

fn title(area: Area) -> &'static str {
    match area {
        Area::Allergies => "Allergies and adverse reactions",
        Area::Medications => "Medications and medical devices",
        Area::Problems => "Problems",
        Area::Immunisations => "Immunisations",
        Area::Consultations => "Consultations",
        Area::Investigations => "Investigations and results",
        Area::Referrals => "Outbound referrals",
        Area::Documents => "Documents",
        Area::Diary => "Diary",
    }
}

fn coded(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// The entry's code as a CodeableConcept; an entry without one is named by its kind.
fn concept(entry: &Entry) -> Value {
    match &entry.code {
        Some(c) => {
            json!({"coding": [{"system": system_uri(&c.system), "code": c.code, "display": c.display}], "text": c.display})
        }
        None => json!({"text": match &entry.detail {
            Detail::Document { title, .. } => title.as_str(),
            Detail::Medication { .. } => "Medication",
            Detail::Immunisation => "Vaccination",
            Detail::Consultation { .. } => "Consultation",
            Detail::Referral { .. } => "Referral",
            _ => "Clinical entry",
        }}),
    }
}

/// Suppliers name SNOMED CT and dm+d by short names; FHIR by URI.
fn system_uri(system: &str) -> &str {
    match system {
        "SNOMED" | "snomed" | "SCT" => SNOMED,
        "DMD" | "dm+d" | "dmd" => "https://dmd.nhs.uk",
        other => other,
    }
}

/// `$gpc.getstructuredrecord`: a `collection` Bundle with the patient, their practice, a List
/// for each area shown, and every entry shown. Nothing in it refers to anything left out.
pub fn structured_record(
    base_url: &str,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    visible: &Visible,
    opaque: &dyn Fn(&str) -> String,
) -> Value {
    let r = Resources { patient, opaque };
    let full_url = |kind: &str, id: &str| format!("{base_url}/{kind}/{id}");
    let mut entries = vec![
        json!({"fullUrl": full_url("Patient", &patient.id), "resource": Patient::from_record(patient)}),
        json!({"fullUrl": full_url("Organization", &practice.id), "resource": Organization::from_record(practice)}),
    ];
    for area in &visible.areas {
        let list = r.list(*area, visible);
        let id = list["id"].as_str().unwrap_or_default().to_owned();
        entries.push(json!({"fullUrl": full_url("List", &id), "resource": list}));
    }
    for e in &visible.entries {
        for kind in types_of(e) {
            let resource = r.resource(e, kind, visible);
            entries.push(json!({"fullUrl": full_url(kind, &r.id(kind, &e.id)), "resource": resource}));
        }
    }
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [format!("{UK_CORE}Bundle")]},
        "type": "collection",
        "entry": entries,
    })
}
