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

/// How far a transactional service goes (GP Connect Patient Facing User Permissions): `view`
/// lists, `manage` also books, cancels or requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceLevel {
    #[default]
    None,
    View,
    Manage,
}

impl ServiceLevel {
    pub const ALL: [Self; 3] = [Self::None, Self::View, Self::Manage];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::View => "view",
            Self::Manage => "manage",
        }
    }

    /// A service switched on or off as a whole (before levels, and where a caller still says
    /// it so): on is everything.
    pub fn from_bool(on: bool) -> Self {
        if on { Self::Manage } else { Self::None }
    }

    /// Whether the service is on at all.
    pub fn is_on(self) -> bool {
        self != Self::None
    }
}

/// Stored access written before services had levels says `true` or `false`.
impl<'de> Deserialize<'de> for ServiceLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Level(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(on) => Ok(Self::from_bool(on)),
            Raw::Level(l) => {
                Self::parse(&l).ok_or_else(|| serde::de::Error::custom(format!("{l} is not none, view or manage")))
            }
        }
    }
}

/// Transactional online services.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    pub appointments: ServiceLevel,
    pub prescriptions: ServiceLevel,
    pub messaging: bool,
}

impl Services {
    /// Everything each of `self` and `other` gives: the lower level of each service.
    pub fn meet(&self, other: &Self) -> Self {
        Self {
            appointments: self.appointments.min(other.appointments),
            prescriptions: self.prescriptions.min(other.prescriptions),
            messaging: self.messaging && other.messaging,
        }
    }

    /// Whether `self` gives nothing that `other` does not.
    pub fn within(&self, other: &Self) -> bool {
        self.appointments <= other.appointments
            && self.prescriptions <= other.prescriptions
            && (!self.messaging || other.messaging)
    }
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
    /// The patient's own online account (for a proxy's entry, theirs, not the role's).
    pub account: super::entitlements::Standing,
    /// A record review (Task id) the practice has still to do before more access is on.
    pub pending_review: Option<String>,
}
