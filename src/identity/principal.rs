use serde::Deserialize;

use crate::config::IssuerKind;
use crate::domain::{NhsNumber, OdsCode};

/// NHS login identity proofing levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProofingLevel {
    P0,
    P5,
    P9,
}

impl ProofingLevel {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "P0" => Some(Self::P0),
            "P5" => Some(Self::P5),
            "P9" => Some(Self::P9),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::P0 => "P0",
            Self::P5 => "P5",
            Self::P9 => "P9",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StaffPrincipal {
    pub issuer: String,
    pub subject: String,
    /// Practices the staff member holds a role at.
    pub organisations: Vec<OdsCode>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SystemPrincipal {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PatientPrincipal {
    pub issuer: String,
    pub subject: String,
    pub nhs_number: NhsNumber,
    pub proofing_level: ProofingLevel,
    pub vot: Option<String>,
    pub gp_ods_code: Option<OdsCode>,
    pub birthdate: Option<chrono::NaiveDate>,
    pub family_name: Option<String>,
}

/// Endpoint policies with the lowest identity proofing level each may ever accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssurancePolicy {
    /// Anything clinical, transactional or provisioning: the patient record itself.
    PatientRecord,
    /// Which patients the caller may act for and with which services: identifiable, not clinical.
    MyAccess,
}

impl AssurancePolicy {
    pub const ALL: [Self; 2] = [Self::PatientRecord, Self::MyAccess];

    pub fn name(self) -> &'static str {
        match self {
            Self::PatientRecord => "patient-record",
            Self::MyAccess => "my-access",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn floor(self) -> ProofingLevel {
        match self {
            Self::PatientRecord => ProofingLevel::P9,
            Self::MyAccess => ProofingLevel::P5,
        }
    }

    pub fn why(self) -> &'static str {
        match self {
            Self::PatientRecord => "clinical, transactional and provisioning use needs P9",
            Self::MyAccess => "patient-identifiable information is never shown at P0",
        }
    }
}

/// `P9.Cp.Cd`: a proofing level followed by one or more credential components.
pub fn vot_is_well_formed(vot: &str) -> bool {
    let mut parts = vot.split('.');
    matches!(parts.next(), Some("P0" | "P5" | "P9"))
        && parts.clone().count() >= 1
        && parts.all(|c| c.len() == 2 && c.starts_with('C') && c.chars().nth(1).is_some_and(|x| x.is_ascii_lowercase()))
}

/// Who is calling, established from a verified token.
#[derive(Debug, Clone)]
pub enum Principal {
    Staff(StaffPrincipal),
    System(SystemPrincipal),
    Patient(PatientPrincipal),
}

impl Principal {
    pub fn kind(&self) -> IssuerKind {
        match self {
            Self::Staff(_) => IssuerKind::Staff,
            Self::System(_) => IssuerKind::System,
            Self::Patient(_) => IssuerKind::Patient,
        }
    }

    /// A stable key for the caller (issuer and subject), used to scope request-id replay and
    /// rate limits. Contains no NHS number.
    pub fn caller_key(&self) -> String {
        match self {
            Self::Staff(s) => format!("staff|{}|{}", s.issuer, s.subject),
            Self::System(s) => format!("system|{}|{}", s.issuer, s.client_id),
            Self::Patient(p) => format!("patient|{}|{}", p.issuer, p.subject),
        }
    }
}

/// A CIS2-like role assignment: `nhsid_nrbac_roles` entries.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct NrbacRole {
    pub org_code: String,
    #[serde(default)]
    pub role_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct GpRegistrationDetails {
    pub gp_ods_code: Option<String>,
}
