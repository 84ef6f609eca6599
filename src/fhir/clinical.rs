//! The GP record as FHIR R4 resources (UK Core profiles), from what the filter left visible.
//!
//! Ids are opaque: each is a keyed hash of the supplier's id for the entry, so they show neither
//! the supplier's numbering nor where something withheld would have been. References point only
//! at entries that are shown too (the filter has removed the others).
//!
//! A full record is hundreds of resources, so they are typed views that borrow from the entries
//! and are written straight to JSON: each entry is named once, and nothing is built only to be
//! serialised.

use std::collections::HashMap;
use std::fmt;

use serde::{Serialize, Serializer};

use super::FhirDate;
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

/// Writes a value through its `Display`, with no string built on the way.
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The id a resource of one type has for one entry: the entry's name, and for the plan a
/// medication entry is also served as, `plan-` before it (one entry, two resources).
#[derive(Clone, Copy)]
struct Id<'a> {
    plan: bool,
    name: &'a str,
}

impl fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.plan {
            f.write_str("plan-")?;
        }
        f.write_str(self.name)
    }
}

/// `{kind}/{id}`, or a full URL with a base before it.
#[derive(Clone, Copy)]
struct Path<'a> {
    base: Option<&'a str>,
    kind: &'a str,
    id: Id<'a>,
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(base) = self.base {
            write!(f, "{base}/")?;
        }
        write!(f, "{}/{}", self.kind, self.id)
    }
}

#[derive(Serialize)]
struct Reference<'a> {
    reference: Shown<Path<'a>>,
}

#[derive(Serialize)]
struct Profile {
    profile: [Shown<ProfileUrl>; 1],
}

struct ProfileUrl(&'static str);

impl fmt::Display for ProfileUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{UK_CORE}{}", self.0)
    }
}

fn profile(resource_type: &'static str) -> Profile {
    Profile {
        profile: [Shown(ProfileUrl(resource_type))],
    }
}

#[derive(Serialize)]
struct Coding<'a> {
    system: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

#[derive(Serialize)]
struct Concept<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    coding: Option<[Coding<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
}

fn coded<'a>(system: &'a str, code: &'a str) -> Concept<'a> {
    Concept {
        coding: Some([Coding {
            system,
            code,
            display: None,
        }]),
        text: None,
    }
}

fn coded_shown<'a>(system: &'a str, code: &'a str, display: &'a str) -> Concept<'a> {
    Concept {
        coding: Some([Coding {
            system,
            code,
            display: Some(display),
        }]),
        text: None,
    }
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct Reaction<'a> {
    manifestation: [Text<'a>; 1],
}

#[derive(Serialize)]
struct Evidence<'a> {
    detail: [Reference<'a>; 1],
}

#[derive(Serialize)]
struct Individual<'a> {
    individual: DisplayOnly<'a>,
}

#[derive(Serialize)]
struct DisplayOnly<'a> {
    display: &'a str,
}

#[derive(Serialize)]
struct When {
    start: FhirDate,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<FhirDate>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attachment<'a> {
    content_type: &'a str,
    url: Shown<BinaryUrl<'a>>,
    title: &'a str,
    creation: FhirDate,
}

#[derive(Serialize)]
struct Content<'a> {
    attachment: Attachment<'a>,
}

/// `context`: a MedicationStatement's is its encounter; a DocumentReference's holds a list of
/// them.
#[derive(Serialize)]
#[serde(untagged)]
enum Context<'a> {
    Encounter(Reference<'a>),
    Document { encounter: [Reference<'a>; 1] },
}

/// `type`: an Encounter's is a list, a DocumentReference's one concept.
#[derive(Serialize)]
#[serde(untagged)]
enum Kind<'a> {
    List([Concept<'a>; 1]),
    One(Concept<'a>),
}

/// One clinical resource of any of the types the record is served as; only the fields of its
/// type are set.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClinicalResource<'a> {
    resource_type: &'static str,
    id: Shown<Id<'a>>,
    meta: Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clinical_status: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_status: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<[Concept<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    class: Option<Coding<'a>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<Kind<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    medication_codeable_concept: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vaccine_code: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<Reference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Reference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participant: Option<[Individual<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<When>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_period: Option<When>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date_time: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurrence_date_time: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_source: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_date: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    authored_on: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_asserted: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<FhirDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    course_of_therapy_type: Option<Concept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dosage_instruction: Option<[Text<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dosage: Option<[Text<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    based_on: Option<[Reference<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reaction: Option<[Reaction<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_string: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    performer: Option<[DisplayOnly<'a>; 1]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidence: Vec<Evidence<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reason_reference: Vec<Reference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<[Content<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encounter: Option<Reference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Context<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<[Text<'a>; 1]>,
}

impl<'a> ClinicalResource<'a> {
    fn new(resource_type: &'static str, id: Id<'a>) -> Self {
        Self {
            resource_type,
            id: Shown(id),
            meta: profile(resource_type),
            status: None,
            intent: None,
            clinical_status: None,
            verification_status: None,
            category: None,
            class: None,
            kind: None,
            code: None,
            medication_codeable_concept: None,
            vaccine_code: None,
            patient: None,
            subject: None,
            participant: None,
            period: None,
            effective_period: None,
            effective_date_time: None,
            occurrence_date_time: None,
            primary_source: None,
            recorded_date: None,
            authored_on: None,
            date_asserted: None,
            date: None,
            description: None,
            course_of_therapy_type: None,
            dosage_instruction: None,
            dosage: None,
            based_on: None,
            reaction: None,
            value_string: None,
            performer: None,
            evidence: Vec::new(),
            reason_reference: Vec::new(),
            content: None,
            encounter: None,
            context: None,
            note: None,
        }
    }
}

/// A document's content.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Binary<'a> {
    resource_type: &'static str,
    id: Shown<BinaryId<'a>>,
    content_type: &'a str,
    data: &'a str,
}

/// `{patient id}.{entry name}`: a Binary names its patient, so it can be read back (and
/// decided) without the gateway keeping anything.
#[derive(Clone, Copy)]
struct BinaryId<'a> {
    patient: &'a str,
    name: &'a str,
}

impl fmt::Display for BinaryId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.patient, self.name)
    }
}

#[derive(Serialize)]
struct ListItem<'a> {
    item: Reference<'a>,
}

/// The list of one area's entries shown: exactly what follows it in the Bundle.
#[derive(Serialize)]
struct List<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    id: &'a str,
    meta: Profile,
    status: &'static str,
    mode: &'static str,
    title: &'static str,
    code: Text<'static>,
    subject: Reference<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<ListItem<'a>>,
}

/// One visible entry with its name.
struct Named<'a> {
    entry: &'a Entry,
    name: String,
}

/// Builds resources for one patient's visible record: every entry is named once, and found by
/// its supplier id without a search.
pub struct Resources<'a> {
    patient_id: &'a str,
    visible: &'a Visible,
    named: HashMap<&'a str, Named<'a>>,
}

impl<'a> Resources<'a> {
    /// `name` names the patient's entries by their supplier ids.
    pub fn new(patient: &'a PatientRecord, visible: &'a Visible, name: &dyn Fn(&str) -> String) -> Self {
        let named = visible
            .entries
            .iter()
            .map(|e| {
                (
                    e.id.as_str(),
                    Named {
                        entry: e,
                        name: name(&e.id),
                    },
                )
            })
            .collect();
        Self {
            patient_id: &patient.id,
            visible,
            named,
        }
    }

    fn subject(&self) -> Reference<'a> {
        Reference {
            reference: Shown(Path {
                base: None,
                kind: "Patient",
                id: Id {
                    plan: false,
                    name: self.patient_id,
                },
            }),
        }
    }

    fn name(&self, entry: &Entry) -> &str {
        self.named.get(entry.id.as_str()).map_or("", |n| n.name.as_str())
    }

    fn id_of(&self, resource_type: &str, entry: &Entry) -> Id<'_> {
        Id {
            plan: resource_type == "MedicationRequest",
            name: self.name(entry),
        }
    }

    /// The id a resource of `resource_type` has for this entry.
    pub fn id(&self, resource_type: &str, entry: &Entry) -> String {
        self.id_of(resource_type, entry).to_string()
    }

    /// The entry of the visible record with this name, if any.
    pub fn named(&self, name: &str) -> Option<&'a Entry> {
        self.named.values().find(|n| n.name == name).map(|n| n.entry)
    }

    /// A visible entry, by its supplier id.
    fn find(&self, id: &str) -> Option<&Named<'a>> {
        self.named.get(id)
    }

    fn reference_to<'s>(&'s self, target: &'s Named<'a>) -> Reference<'s> {
        let kind = types_of(target.entry).first().copied().unwrap_or("Basic");
        Reference {
            reference: Shown(Path {
                base: None,
                kind,
                id: Id {
                    plan: kind == "MedicationRequest",
                    name: &target.name,
                },
            }),
        }
    }

    fn binary_id(&self, entry: &Entry) -> BinaryId<'_> {
        BinaryId {
            patient: self.patient_id,
            name: self.name(entry),
        }
    }

    /// One entry as the resource of `resource_type` (one of [`types_of`] for it).
    pub fn resource(&self, entry: &'a Entry, resource_type: &'static str) -> ClinicalResource<'_> {
        let mut r = ClinicalResource::new(resource_type, self.id_of(resource_type, entry));
        let code = || concept(entry);
        let encounter = || {
            entry
                .consultation
                .as_deref()
                .and_then(|c| self.find(c))
                .map(|c| self.reference_to(c))
        };
        let date = FhirDate::of(entry.recorded);
        match (&entry.detail, resource_type) {
            (Detail::Allergy { reaction, resolved }, _) => {
                r.clinical_status = Some(coded(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    if *resolved { "resolved" } else { "active" },
                ));
                r.verification_status = Some(coded(
                    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "confirmed",
                ));
                r.code = Some(code());
                r.patient = Some(self.subject());
                r.recorded_date = Some(date);
                r.reaction = reaction.as_deref().map(|text| {
                    [Reaction {
                        manifestation: [Text { text }],
                    }]
                });
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
                r.status = Some(if ended.is_some() { "completed" } else { "active" });
                r.intent = Some("plan");
                r.medication_codeable_concept = Some(code());
                r.subject = Some(self.subject());
                r.authored_on = Some(date);
                r.course_of_therapy_type = Some(coded(
                    "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                    match prescription {
                        Prescription::Acute => "acute",
                        Prescription::Repeat => "continuous",
                    },
                ));
                r.dosage_instruction = Some([Text { text: dosage }]);
                r.encounter = encounter();
            }
            (Detail::Medication { dosage, ended, .. }, _) => {
                r.status = Some(if ended.is_some() { "completed" } else { "active" });
                r.medication_codeable_concept = Some(code());
                r.subject = Some(self.subject());
                r.effective_period = Some(When {
                    start: date,
                    end: ended.map(FhirDate::of),
                });
                r.date_asserted = Some(date);
                r.based_on = Some([Reference {
                    reference: Shown(Path {
                        base: None,
                        kind: "MedicationRequest",
                        id: self.id_of("MedicationRequest", entry),
                    }),
                }]);
                r.dosage = Some([Text { text: dosage }]);
                r.context = encounter().map(Context::Encounter);
            }
            (Detail::Problem { active, .. }, _) => {
                r.clinical_status = Some(coded(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    if *active { "active" } else { "inactive" },
                ));
                r.verification_status = Some(coded(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "confirmed",
                ));
                r.category = Some([coded_shown(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                    "Problem List Item",
                )]);
                r.code = Some(code());
                r.subject = Some(self.subject());
                r.recorded_date = Some(date);
                r.encounter = encounter();
                r.evidence = entry
                    .related
                    .iter()
                    .filter_map(|id| self.find(id))
                    .map(|t| Evidence {
                        detail: [self.reference_to(t)],
                    })
                    .collect();
            }
            (Detail::Immunisation, _) => {
                r.status = Some("completed");
                r.vaccine_code = Some(code());
                r.patient = Some(self.subject());
                r.occurrence_date_time = Some(date);
                r.primary_source = Some(true);
                r.encounter = encounter();
            }
            (Detail::Consultation { clinician, .. }, _) => {
                r.status = Some("finished");
                r.class = Some(Coding {
                    system: "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    code: "AMB",
                    display: Some("ambulatory"),
                });
                if entry.code.is_some() {
                    r.kind = Some(Kind::List([code()]));
                }
                r.subject = Some(self.subject());
                r.participant = clinician.as_deref().map(|display| {
                    [Individual {
                        individual: DisplayOnly { display },
                    }]
                });
                r.period = Some(When { start: date, end: None });
            }
            (Detail::TestResult { value, .. }, _) => {
                r.status = Some("final");
                r.category = Some([coded_shown(
                    "http://terminology.hl7.org/CodeSystem/observation-category",
                    "laboratory",
                    "Laboratory",
                )]);
                r.code = Some(code());
                r.subject = Some(self.subject());
                r.effective_date_time = Some(date);
                r.value_string = value.as_deref();
                r.encounter = encounter();
            }
            (Detail::Note, _) => {
                r.status = Some("final");
                r.code = Some(Concept {
                    text: Some("Consultation note"),
                    ..coded_shown(SNOMED, "371531000", "Report of clinical encounter")
                });
                r.subject = Some(self.subject());
                r.effective_date_time = Some(date);
                // The note is the free text itself: only full access shows it, and the filter
                // leaves a note out below that.
                r.value_string = entry.text.as_deref();
                r.encounter = encounter();
            }
            (Detail::Referral { to }, _) => {
                r.status = Some("active");
                r.intent = Some("order");
                r.code = Some(code());
                r.subject = Some(self.subject());
                r.authored_on = Some(date);
                r.performer = to.as_deref().map(|display| [DisplayOnly { display }]);
                r.reason_reference = entry
                    .related
                    .iter()
                    .filter_map(|id| self.find(id))
                    .map(|t| self.reference_to(t))
                    .collect();
                r.encounter = encounter();
            }
            (
                Detail::Document {
                    title, content_type, ..
                },
                _,
            ) => {
                r.status = Some("current");
                if entry.code.is_some() {
                    r.kind = Some(Kind::One(code()));
                }
                r.subject = Some(self.subject());
                r.date = Some(FhirDate::at_midnight(entry.recorded));
                r.description = Some(title);
                r.content = Some([Content {
                    attachment: Attachment {
                        content_type,
                        url: Shown(BinaryUrl(self.binary_id(entry))),
                        title,
                        creation: date,
                    },
                }]);
                r.context = encounter().map(|e| Context::Document { encounter: [e] });
            }
            (Detail::Diary, _) => {}
        }
        if !matches!(entry.detail, Detail::Note) {
            r.note = entry.text.as_deref().map(|text| [Text { text }]);
        }
        r
    }

    /// A document's content as a Binary.
    pub fn binary(&self, entry: &'a Entry) -> Option<Binary<'_>> {
        match &entry.detail {
            Detail::Document {
                content_type, content, ..
            } => Some(Binary {
                resource_type: "Binary",
                id: Shown(self.binary_id(entry)),
                content_type,
                data: content,
            }),
            _ => None,
        }
    }

    /// The entries of one area shown, as the List's items.
    fn list_items(&self, area: Area) -> Vec<ListItem<'_>> {
        self.visible
            .in_area(area)
            .filter_map(|e| {
                let kind = types_of(e).first()?;
                Some(ListItem {
                    item: Reference {
                        reference: Shown(Path {
                            base: None,
                            kind,
                            id: self.id_of(kind, e),
                        }),
                    },
                })
            })
            .collect()
    }
}

/// `Binary/{patient}.{name}`: where a DocumentReference's content is read.
struct BinaryUrl<'a>(BinaryId<'a>);

impl fmt::Display for BinaryUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary/{}", self.0)
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

/// The entry's code as a CodeableConcept; an entry without one is named by its kind.
fn concept(entry: &Entry) -> Concept<'_> {
    match &entry.code {
        Some(c) => Concept {
            coding: Some([Coding {
                system: system_uri(&c.system),
                code: &c.code,
                display: Some(&c.display),
            }]),
            text: Some(&c.display),
        },
        None => Concept {
            coding: None,
            text: Some(match &entry.detail {
                Detail::Document { title, .. } => title.as_str(),
                Detail::Medication { .. } => "Medication",
                Detail::Immunisation => "Vaccination",
                Detail::Consultation { .. } => "Consultation",
                Detail::Referral { .. } => "Referral",
                _ => "Clinical entry",
            }),
        },
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

#[derive(Serialize)]
#[serde(untagged)]
enum AnyResource<'a> {
    Patient(Box<Patient>),
    Organization(Box<Organization>),
    List(List<'a>),
    Clinical(Box<ClinicalResource<'a>>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CollectionEntry<'a> {
    full_url: Shown<Path<'a>>,
    resource: AnyResource<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Collection<'a> {
    resource_type: &'static str,
    meta: Profile,
    #[serde(rename = "type")]
    kind: &'static str,
    entry: Vec<CollectionEntry<'a>>,
}

/// `$gpc.getstructuredrecord`: a `collection` Bundle with the patient, their practice, a List
/// for each area shown, and every entry shown, as JSON. Nothing in it refers to anything left
/// out. `name` names the patient's entries, as it does for the searches.
pub fn structured_record(
    base_url: &str,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    visible: &Visible,
    name: &dyn Fn(&str) -> String,
) -> Vec<u8> {
    let r = Resources::new(patient, visible, name);
    fn plain(name: &str) -> Id<'_> {
        Id { plan: false, name }
    }
    let full_url = |kind, id| {
        Shown(Path {
            base: Some(base_url),
            kind,
            id,
        })
    };
    let list_names: Vec<(Area, String)> = visible
        .areas
        .iter()
        .map(|a| (*a, name(&format!("list:{}", a.name()))))
        .collect();
    let mut entry = Vec::with_capacity(2 + list_names.len() + visible.entries.len() * 2);
    entry.push(CollectionEntry {
        full_url: full_url("Patient", plain(&patient.id)),
        resource: AnyResource::Patient(Box::new(Patient::from_record(patient))),
    });
    entry.push(CollectionEntry {
        full_url: full_url("Organization", plain(&practice.id)),
        resource: AnyResource::Organization(Box::new(Organization::from_record(practice))),
    });
    for (area, name) in &list_names {
        let title = title(*area);
        entry.push(CollectionEntry {
            full_url: full_url("List", plain(name)),
            resource: AnyResource::List(List {
                resource_type: "List",
                id: name,
                meta: profile("List"),
                status: "current",
                mode: "snapshot",
                title,
                code: Text { text: title },
                subject: r.subject(),
                entry: r.list_items(*area),
            }),
        });
    }
    for e in &visible.entries {
        for kind in types_of(e) {
            entry.push(CollectionEntry {
                full_url: full_url(kind, r.id_of(kind, e)),
                resource: AnyResource::Clinical(Box::new(r.resource(e, kind))),
            });
        }
    }
    let bundle = Collection {
        resource_type: "Bundle",
        meta: profile("Bundle"),
        kind: "collection",
        entry,
    };
    serde_json::to_vec(&bundle).unwrap_or_default()
}
