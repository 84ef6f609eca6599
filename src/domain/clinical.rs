//! The GP record as the gateway reads it from a supplier, and the one filter that decides what
//! of it a person may see online.
//!
//! The levels are those of GP Connect (Patient Facing): *summary* shows demographics,
//! medications and allergies; *detailed* (detailed coded) adds every coded entry: problems,
//! immunisations, filed test results, referrals and the coded content of consultations;
//! *documents* adds reviewed documents; *full* adds free text. Never shown at any level:
//! consultations still in draft, diary entries, unfiled test results, unreviewed documents, and
//! whatever the practice has marked not to share online, for the patient or for a clinical area
//! at the practice. With a `from` date (prospective access), entries above the summary are
//! shown only when recorded on or after it.
//!
//! What is withheld leaves no trace: the filtered record holds only what may be shown, with
//! references to anything withheld removed, so nothing downstream (a count, a total, an id, a
//! reference) can reveal it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{AccessSettings, RecordAccessLevel};

/// The parts of a record a caller can ask for (GP Connect's clinical areas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Allergies,
    Medications,
    Problems,
    Immunisations,
    Consultations,
    Investigations,
    Referrals,
    Documents,
    /// Diary entries: never shown online.
    Diary,
}

impl Area {
    pub const ALL: [Self; 9] = [
        Self::Allergies,
        Self::Medications,
        Self::Problems,
        Self::Immunisations,
        Self::Consultations,
        Self::Investigations,
        Self::Referrals,
        Self::Documents,
        Self::Diary,
    ];

    /// The areas a caller may ask for (the diary is never served).
    pub const SERVED: [Self; 8] = [
        Self::Allergies,
        Self::Medications,
        Self::Problems,
        Self::Immunisations,
        Self::Consultations,
        Self::Investigations,
        Self::Referrals,
        Self::Documents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Allergies => "allergies",
            Self::Medications => "medications",
            Self::Problems => "problems",
            Self::Immunisations => "immunisations",
            Self::Consultations => "consultations",
            Self::Investigations => "investigations",
            Self::Referrals => "referrals",
            Self::Documents => "documents",
            Self::Diary => "diary",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == raw)
    }

    /// The least record access that shows entries of this area.
    pub fn level(self) -> RecordAccessLevel {
        match self {
            Self::Allergies | Self::Medications => RecordAccessLevel::Summary,
            Self::Problems | Self::Immunisations | Self::Consultations | Self::Investigations | Self::Referrals => {
                RecordAccessLevel::DetailedCoded
            }
            Self::Documents => RecordAccessLevel::Documents,
            // Never shown; `Full` is the highest there is, and the filter refuses it anyway.
            Self::Diary => RecordAccessLevel::Full,
        }
    }
}

/// A code from a terminology (SNOMED CT, dm+d).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub system: String,
    pub code: String,
    pub display: String,
}

/// How a medication is prescribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prescription {
    Acute,
    Repeat,
}

/// What kind of thing an entry is, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Detail {
    Allergy {
        #[serde(default)]
        reaction: Option<String>,
        #[serde(default)]
        resolved: bool,
    },
    Medication {
        prescription: Prescription,
        dosage: String,
        #[serde(default)]
        quantity: Option<String>,
        #[serde(default)]
        ended: Option<NaiveDate>,
    },
    Problem {
        #[serde(default)]
        active: bool,
        #[serde(default)]
        major: bool,
    },
    Immunisation,
    /// A consultation: its coded entries are other entries that name it (`consultation`).
    Consultation {
        #[serde(default)]
        draft: bool,
        #[serde(default)]
        clinician: Option<String>,
    },
    TestResult {
        #[serde(default)]
        value: Option<String>,
        #[serde(default)]
        filed: bool,
    },
    Referral {
        #[serde(default)]
        to: Option<String>,
    },
    Document {
        title: String,
        #[serde(default)]
        reviewed: bool,
        content_type: String,
        /// Base64 of the document.
        #[serde(default)]
        content: String,
    },
    /// A free-text note (in a consultation, or on its own).
    Note,
    Diary,
}

/// One entry of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The supplier's id for it.
    pub id: String,
    /// The day it was recorded; prospective access is judged by it.
    pub recorded: NaiveDate,
    #[serde(default)]
    pub code: Option<Code>,
    /// Free text: shown only with full access.
    #[serde(default)]
    pub text: Option<String>,
    /// The consultation it was recorded in, if any (the consultation's id).
    #[serde(default)]
    pub consultation: Option<String>,
    /// Entries it refers to (a result's problem, a referral's problem).
    #[serde(default)]
    pub related: Vec<String>,
    /// Marked by the practice not to be shown online (third-party or harmful information).
    #[serde(default)]
    pub not_for_online: bool,
    /// The clinical area the practice may restrict as a whole (`sexual-health`, ...).
    #[serde(default)]
    pub sensitivity: Option<String>,
    pub detail: Detail,
}

impl Entry {
    /// The clinical area the entry belongs to, by what it is.
    pub fn area(&self) -> Area {
        match self.detail {
            Detail::Allergy { .. } => Area::Allergies,
            Detail::Medication { .. } => Area::Medications,
            Detail::Problem { .. } => Area::Problems,
            Detail::Immunisation => Area::Immunisations,
            Detail::Consultation { .. } | Detail::Note => Area::Consultations,
            Detail::TestResult { .. } => Area::Investigations,
            Detail::Referral { .. } => Area::Referrals,
            Detail::Document { .. } => Area::Documents,
            Detail::Diary => Area::Diary,
        }
    }
}

/// A patient's record as a supplier holds it, with the practice's restrictions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicalRecord {
    pub entries: Vec<Entry>,
    /// Clinical areas the practice does not share online for anyone.
    #[serde(default)]
    pub restricted: BTreeSet<String>,
}

/// What a caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The areas, with the period each is limited to (inclusive days).
    pub areas: BTreeMap<Area, Period>,
    /// Allergies: include resolved ones.
    pub resolved_allergies: bool,
    /// Problems: only active (`Some(true)`) or inactive ones.
    pub active_problems: Option<bool>,
    /// Consultations: only the most recent so many.
    pub recent_consultations: Option<usize>,
}

impl Query {
    /// Everything the caller may see.
    pub fn everything() -> Self {
        Self {
            areas: Area::SERVED.into_iter().map(|a| (a, Period::default())).collect(),
            resolved_allergies: true,
            active_problems: None,
            recent_consultations: None,
        }
    }

    pub fn only(area: Area) -> Self {
        Self {
            areas: BTreeMap::from([(area, Period::default())]),
            resolved_allergies: true,
            active_problems: None,
            recent_consultations: None,
        }
    }
}

/// Days an area is limited to, each end optional and inclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl Period {
    /// A period whose start is after its end is refused.
    pub fn new(start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<Self, &'static str> {
        match (start, end) {
            (Some(s), Some(e)) if s > e => Err("the period's start is after its end"),
            _ => Ok(Self { start, end }),
        }
    }

    fn holds(&self, day: NaiveDate) -> bool {
        self.start.is_none_or(|s| day >= s) && self.end.is_none_or(|e| day <= e)
    }
}

/// What a person may see of a record, in the record's order: only entries that may be shown,
/// each with free text only under full access and references only to entries shown too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visible {
    pub entries: Vec<Entry>,
    /// The areas asked for that the access shows at all.
    pub areas: Vec<Area>,
}

impl Visible {
    pub fn count(&self, area: Area) -> usize {
        self.entries.iter().filter(|e| e.area() == area).count()
    }

    pub fn in_area(&self, area: Area) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.area() == area)
    }
}

/// Why an entry may never be shown, whatever the access.
fn never(entry: &Entry, record: &ClinicalRecord) -> bool {
    entry.not_for_online
        || entry.area() == Area::Diary
        || entry
            .sensitivity
            .as_ref()
            .is_some_and(|s| record.restricted.contains(s))
        || match &entry.detail {
            Detail::Consultation { draft, .. } => *draft,
            Detail::TestResult { filed, .. } => !*filed,
            Detail::Document { reviewed, .. } => !*reviewed,
            _ => false,
        }
}

/// The one filter: what of `record` the access in effect shows for `query`, on `today`.
pub fn visible(record: &ClinicalRecord, access: &AccessSettings, query: &Query) -> Visible {
    let level = access.record_level;
    let shows = |area: Area| level != RecordAccessLevel::None && area.level() <= level && area != Area::Diary;
    // Entries above the summary are prospective from the `from` date, when there is one.
    let in_time = |e: &Entry| {
        e.area().level() <= RecordAccessLevel::Summary || access.record_from.is_none_or(|from| e.recorded >= from)
    };
    let mut allowed: BTreeSet<&str> = BTreeSet::new();
    // Consultations first: an entry recorded in a consultation that may not be shown (a draft,
    // a withheld one) goes with it.
    let withheld_consultations: BTreeSet<&str> = record
        .entries
        .iter()
        .filter(|e| matches!(e.detail, Detail::Consultation { .. }) && (never(e, record) || !in_time(e)))
        .map(|e| e.id.as_str())
        .collect();
    for e in &record.entries {
        let asked = query.areas.get(&e.area()).is_some_and(|p| p.holds(e.recorded));
        let in_withheld = e
            .consultation
            .as_deref()
            .is_some_and(|c| withheld_consultations.contains(c));
        let note_needs_full = matches!(e.detail, Detail::Note) && level < RecordAccessLevel::Full;
        let filtered_out = match &e.detail {
            Detail::Allergy { resolved, .. } => *resolved && !query.resolved_allergies,
            Detail::Problem { active, .. } => query.active_problems.is_some_and(|want| want != *active),
            _ => false,
        };
        if asked
            && shows(e.area())
            && in_time(e)
            && !never(e, record)
            && !in_withheld
            && !note_needs_full
            && !filtered_out
        {
            allowed.insert(e.id.as_str());
        }
    }
    if let Some(n) = query.recent_consultations {
        let mut consultations: Vec<&Entry> = record
            .entries
            .iter()
            .filter(|e| allowed.contains(e.id.as_str()) && matches!(e.detail, Detail::Consultation { .. }))
            .collect();
        consultations.sort_by(|a, b| b.recorded.cmp(&a.recorded).then_with(|| b.id.cmp(&a.id)));
        for old in consultations.into_iter().skip(n) {
            allowed.remove(old.id.as_str());
        }
        // Entries of consultations no longer shown go with them.
        let kept: BTreeSet<&str> = allowed.clone();
        allowed.retain(|id| {
            record
                .entries
                .iter()
                .find(|e| e.id == *id)
                .and_then(|e| e.consultation.as_deref())
                .is_none_or(|c| kept.contains(c) || !is_consultation(record, c))
        });
    }
    let entries = record
        .entries
        .iter()
        .filter(|e| allowed.contains(e.id.as_str()))
        .map(|e| Entry {
            text: e.text.clone().filter(|_| level >= RecordAccessLevel::Full),
            consultation: e.consultation.clone().filter(|c| allowed.contains(c.as_str())),
            related: e
                .related
                .iter()
                .filter(|r| allowed.contains(r.as_str()))
                .cloned()
                .collect(),
            ..e.clone()
        })
        .collect();
    Visible {
        entries,
        areas: query.areas.keys().copied().filter(|a| shows(*a)).collect(),
    }
}

fn is_consultation(record: &ClinicalRecord, id: &str) -> bool {
    record
        .entries
        .iter()
        .any(|e| e.id == id && matches!(e.detail, Detail::Consultation { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Services;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn access(level: RecordAccessLevel, from: Option<NaiveDate>) -> AccessSettings {
        AccessSettings {
            services: Services::default(),
            record_level: level,
            record_from: from,
        }
    }

    fn e(id: &str, recorded: NaiveDate, detail: Detail) -> Entry {
        Entry {
            id: id.into(),
            recorded,
            code: None,
            text: Some(format!("text of {id}")),
            consultation: None,
            related: vec![],
            not_for_online: false,
            sensitivity: None,
            detail,
        }
    }

    fn record() -> ClinicalRecord {
        let mut entries = vec![
            e(
                "allergy",
                day(2010, 1, 1),
                Detail::Allergy {
                    reaction: None,
                    resolved: false,
                },
            ),
            e(
                "old-allergy",
                day(2009, 1, 1),
                Detail::Allergy {
                    reaction: None,
                    resolved: true,
                },
            ),
            e(
                "med",
                day(2015, 1, 1),
                Detail::Medication {
                    prescription: Prescription::Repeat,
                    dosage: "daily".into(),
                    quantity: None,
                    ended: None,
                },
            ),
            e(
                "old-problem",
                day(2015, 1, 1),
                Detail::Problem {
                    active: true,
                    major: true,
                },
            ),
            e(
                "new-problem",
                day(2024, 6, 1),
                Detail::Problem {
                    active: false,
                    major: false,
                },
            ),
            e(
                "cons",
                day(2024, 6, 1),
                Detail::Consultation {
                    draft: false,
                    clinician: None,
                },
            ),
            e("note", day(2024, 6, 1), Detail::Note),
            e(
                "draft",
                day(2024, 7, 1),
                Detail::Consultation {
                    draft: true,
                    clinician: None,
                },
            ),
            e("in-draft", day(2024, 7, 1), Detail::Immunisation),
            e(
                "result",
                day(2024, 6, 2),
                Detail::TestResult {
                    value: None,
                    filed: true,
                },
            ),
            e(
                "unfiled",
                day(2024, 6, 3),
                Detail::TestResult {
                    value: None,
                    filed: false,
                },
            ),
            e("referral", day(2024, 6, 1), Detail::Referral { to: None }),
            e(
                "doc",
                day(2024, 6, 5),
                Detail::Document {
                    title: "Letter".into(),
                    reviewed: true,
                    content_type: "text/plain".into(),
                    content: String::new(),
                },
            ),
            e(
                "unreviewed",
                day(2024, 6, 6),
                Detail::Document {
                    title: "Letter".into(),
                    reviewed: false,
                    content_type: "text/plain".into(),
                    content: String::new(),
                },
            ),
            e("diary", day(2024, 6, 7), Detail::Diary),
            e("redacted", day(2024, 6, 8), Detail::Immunisation),
            e(
                "restricted",
                day(2024, 6, 9),
                Detail::Problem {
                    active: true,
                    major: false,
                },
            ),
        ];
        let find = |entries: &mut Vec<Entry>, id: &str| entries.iter().position(|x| x.id == id).unwrap();
        let i = find(&mut entries, "note");
        entries[i].consultation = Some("cons".into());
        let i = find(&mut entries, "in-draft");
        entries[i].consultation = Some("draft".into());
        let i = find(&mut entries, "referral");
        entries[i].related = vec!["old-problem".into(), "redacted".into(), "new-problem".into()];
        entries[i].consultation = Some("cons".into());
        let i = find(&mut entries, "redacted");
        entries[i].not_for_online = true;
        let i = find(&mut entries, "restricted");
        entries[i].sensitivity = Some("sexual-health".into());
        ClinicalRecord {
            entries,
            restricted: ["sexual-health".to_owned()].into(),
        }
    }

    fn ids(v: &Visible) -> Vec<&str> {
        v.entries.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn each_level_shows_its_areas_and_nothing_never_shown() {
        let r = record();
        let q = Query::everything();
        assert!(ids(&visible(&r, &access(RecordAccessLevel::None, None), &q)).is_empty());
        assert_eq!(
            ids(&visible(&r, &access(RecordAccessLevel::Summary, None), &q)),
            ["allergy", "old-allergy", "med"]
        );
        assert_eq!(
            ids(&visible(&r, &access(RecordAccessLevel::DetailedCoded, None), &q)),
            [
                "allergy",
                "old-allergy",
                "med",
                "old-problem",
                "new-problem",
                "cons",
                "result",
                "referral"
            ],
            "coded entries, no notes, documents or anything never shown"
        );
        assert_eq!(
            ids(&visible(&r, &access(RecordAccessLevel::Documents, None), &q)),
            [
                "allergy",
                "old-allergy",
                "med",
                "old-problem",
                "new-problem",
                "cons",
                "result",
                "referral",
                "doc"
            ]
        );
        let full = visible(&r, &access(RecordAccessLevel::Full, None), &q);
        assert_eq!(
            ids(&full),
            [
                "allergy",
                "old-allergy",
                "med",
                "old-problem",
                "new-problem",
                "cons",
                "note",
                "result",
                "referral",
                "doc"
            ]
        );
        assert!(
            full.entries.iter().all(|e| e.text.is_some()),
            "free text with full access"
        );
        let coded = visible(&r, &access(RecordAccessLevel::DetailedCoded, None), &q);
        assert!(
            coded.entries.iter().all(|e| e.text.is_none()),
            "no free text below full"
        );
    }

    #[test]
    fn prospective_access_shows_entries_above_the_summary_from_its_date() {
        let r = record();
        let v = visible(
            &r,
            &access(RecordAccessLevel::Full, Some(day(2024, 1, 1))),
            &Query::everything(),
        );
        assert_eq!(
            ids(&v),
            [
                "allergy",
                "old-allergy",
                "med",
                "new-problem",
                "cons",
                "note",
                "result",
                "referral",
                "doc"
            ],
            "the summary whatever its date; the rest from the access date"
        );
    }

    #[test]
    fn what_is_withheld_leaves_no_reference_behind() {
        let r = record();
        let v = visible(
            &r,
            &access(RecordAccessLevel::Full, Some(day(2024, 1, 1))),
            &Query::everything(),
        );
        let referral = v.entries.iter().find(|e| e.id == "referral").unwrap();
        assert_eq!(
            referral.related,
            ["new-problem"],
            "the redacted and the too-old are not named"
        );
        assert_eq!(referral.consultation.as_deref(), Some("cons"));
        // A consultation outside the query takes its place out of the entries that name it.
        let only_referrals = visible(
            &r,
            &access(RecordAccessLevel::Full, None),
            &Query::only(Area::Referrals),
        );
        assert_eq!(ids(&only_referrals), ["referral"]);
        assert_eq!(only_referrals.entries[0].consultation, None);
        assert!(only_referrals.entries[0].related.is_empty());
    }

    #[test]
    fn queries_narrow_by_area_period_status_and_number() {
        let r = record();
        let full = access(RecordAccessLevel::Full, None);
        let mut q = Query::only(Area::Allergies);
        q.resolved_allergies = false;
        assert_eq!(ids(&visible(&r, &full, &q)), ["allergy"]);
        let mut q = Query::only(Area::Problems);
        q.active_problems = Some(false);
        assert_eq!(ids(&visible(&r, &full, &q)), ["new-problem"]);
        let mut q = Query::only(Area::Investigations);
        q.areas
            .insert(Area::Investigations, Period::new(Some(day(2024, 6, 3)), None).unwrap());
        assert!(ids(&visible(&r, &full, &q)).is_empty());
        assert!(Period::new(Some(day(2025, 1, 1)), Some(day(2024, 1, 1))).is_err());
        let mut q = Query::everything();
        q.recent_consultations = Some(0);
        let v = visible(&r, &full, &q);
        assert!(
            !ids(&v).contains(&"cons") && !ids(&v).contains(&"note"),
            "{:?}",
            ids(&v)
        );
    }
}
