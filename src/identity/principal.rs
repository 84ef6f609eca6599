use serde::Deserialize;

use crate::config::IssuerKind;
use crate::domain::policy::RoleAssignment;
use crate::domain::{NhsNumber, OdsCode, ProofingLevel};

#[derive(Debug, Clone)]
pub struct StaffPrincipal {
    pub issuer: String,
    pub subject: String,
    /// Each role the staff member holds, at the organisation where they hold it.
    pub roles: Vec<RoleAssignment>,
}

impl StaffPrincipal {
    /// Practices the staff member holds any role at, without repeats.
    pub fn organisations(&self) -> Vec<OdsCode> {
        let mut out: Vec<OdsCode> = self.roles.iter().map(|r| r.organisation.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
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
    /// A delegated token: `subject` and `nhs_number` are the proxy's (from `act`), and this is
    /// the patient the token was issued for (its own `sub` and `nhs_number`).
    pub delegated_for: Option<Delegation>,
}

/// The patient a delegated token acts for.
#[derive(Debug, Clone)]
pub struct Delegation {
    pub subject: String,
    pub nhs_number: NhsNumber,
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
    /// How records (registrations, roles, Tasks) name who did something: a member of staff by
    /// their subject, anyone else by their caller key.
    pub fn recorded_as(&self) -> String {
        match self {
            Self::Staff(s) => s.subject.clone(),
            other => other.caller_key(),
        }
    }

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
