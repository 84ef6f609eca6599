use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::PatientRecord;

/// How much of their GP record a patient (or proxy) may see online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordAccessLevel {
    None,
    /// Summary information (allergies, medication, adverse reactions).
    Summary,
    /// Detailed coded record: every coded entry, without free text or documents.
    DetailedCoded,
    /// The detailed coded record and the practice's reviewed documents, without free text.
    Documents,
    /// Everything: documents and free text too.
    Full,
}

impl RecordAccessLevel {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "none" => Some(Self::None),
            "summary" => Some(Self::Summary),
            "detailed-coded" => Some(Self::DetailedCoded),
            "documents" => Some(Self::Documents),
            "full" => Some(Self::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Summary => "summary",
            Self::DetailedCoded => "detailed-coded",
            Self::Documents => "documents",
            Self::Full => "full",
        }
    }
}

/// Transactional online services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    pub appointments: bool,
    pub prescriptions: bool,
    pub messaging: bool,
}

/// Everything an online account may do: the canonical model every supplier adapter maps from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSettings {
    pub services: Services,
    pub record_level: RecordAccessLevel,
    /// For full record access: entries dated on or after this day are visible.
    pub record_from: Option<NaiveDate>,
}

impl AccessSettings {
    pub fn none() -> Self {
        Self {
            services: Services::default(),
            record_level: RecordAccessLevel::None,
            record_from: None,
        }
    }
}

/// One patient a person may act for, with what is in effect for them (`$my-access`).
#[derive(Debug, Clone)]
pub struct PatientAccess {
    pub patient: PatientRecord,
    /// `self`, or the proxy relationship.
    pub relationship: String,
    pub entitlements: super::entitlements::Entitlements,
    /// A record review (Task id) the practice has still to do before more access is on.
    pub pending_review: Option<String>,
}
