//! What the engine decides from: who is asking, about whom, and the practice's rules. Services
//! load these; the engine never looks anything up itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::{Action, Permission};
use crate::domain::entitlements::Entitlements;
use crate::domain::{AssurancePolicy, NhsNumber, OdsCode, ProofingLevel};

/// The configured rules the engine applies: which roles grant which permissions, and the
/// identity assurance patient tokens need.
#[derive(Debug, Clone)]
pub struct Policy {
    /// CIS2-like role codes (`R8000`, or the full `S8000:G8000:R8000`) and what each grants.
    pub staff_roles: BTreeMap<String, BTreeSet<Permission>>,
    /// Vectors of trust accepted from patient tokens.
    pub accepted_vot: BTreeSet<String>,
    /// Minimum proofing level per use; never below the use's floor.
    pub minimum_assurance: BTreeMap<AssurancePolicy, ProofingLevel>,
}

impl Policy {
    /// What one role code grants. A full CIS2 code (`S8000:G8000:R8000`) matches a table entry
    /// for itself or for its role part (`R8000`).
    pub fn permissions_of(&self, role: &str) -> BTreeSet<Permission> {
        let short = role.rsplit(':').next().unwrap_or(role);
        let mut out = BTreeSet::new();
        for key in [role, short] {
            if let Some(p) = self.staff_roles.get(key) {
                out.extend(p.iter().copied());
            }
        }
        out
    }

    pub fn minimum(&self, policy: AssurancePolicy) -> ProofingLevel {
        self.minimum_assurance
            .get(&policy)
            .copied()
            .unwrap_or(policy.floor())
            .max(policy.floor())
    }
}

/// One decision's inputs.
#[derive(Debug, Clone)]
pub struct Facts {
    pub action: Action,
    pub actor: ActorFacts,
    pub target: TargetFacts,
    /// Ages and dates are worked out against this day (an injectable clock upstream).
    pub today: NaiveDate,
}

#[derive(Debug, Clone)]
pub enum ActorFacts {
    /// Practice staff (CIS2-like token).
    Staff(StaffFacts),
    /// A person with an NHS login-like token: a patient acting for themself or for others.
    Person(PersonFacts),
    /// A system client (identity provider, supplier system).
    System(SystemFacts),
}

impl ActorFacts {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Staff(_) => "staff",
            Self::Person(_) => "patient",
            Self::System(_) => "system",
        }
    }
}

/// A role held at one organisation (`nhsid_nrbac_roles[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    pub organisation: OdsCode,
    pub role: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StaffFacts {
    pub roles: Vec<RoleAssignment>,
}

#[derive(Debug, Clone)]
pub struct PersonFacts {
    pub nhs_number: NhsNumber,
    pub proofing_level: ProofingLevel,
    pub vot: Option<String>,
    pub identity: IdentityLink,
    /// A delegated token (`act` is this person, `sub` the patient) covers this patient only.
    pub delegated_for: Option<NhsNumber>,
}

/// How the token's subject relates to practice records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityLink {
    /// Bound to the practice record with this id.
    Bound { patient_id: String },
    /// No practice record holds the token's NHS number.
    NoRecord,
    /// The subject is already bound to a different NHS number.
    Mismatch,
    /// Not looked up (the decision did not get that far, or it does not matter).
    Unknown,
}

#[derive(Debug, Clone)]
pub struct SystemFacts {
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum TargetFacts {
    /// The action is about no patient or practice (or names it in a body checked later).
    None,
    /// Not known yet: the request body names it. Only actor rules are applied.
    Pending,
    /// A practice; `None` when no practice has the id.
    Practice(Option<PracticeFacts>),
    /// A practice-wide job, seen only by that practice; `None` when the practice is unknown.
    PracticeJob(Option<PracticeFacts>),
    /// A patient named by the caller; `None` when no record has the id.
    Patient(Option<Box<PatientFacts>>),
    /// The person's own record, found through their identity; `None` when there is none.
    OwnRecord(Option<Box<PatientFacts>>),
    /// A proxy role; `None` when no role has the id.
    ProxyRole(Option<Box<RoleFacts>>),
}

/// A proxy role as a target: where it belongs and how the person asking takes part in it.
#[derive(Debug, Clone)]
pub struct RoleFacts {
    /// The patient's current practice; `None` for an access request naming no patient the
    /// gateway knows (which no practice sees).
    pub practice: Option<PracticeFacts>,
    /// The role's patient.
    pub patient_nhs_number: NhsNumber,
    /// Whether the role has been in force (active, or inactive after it was): until then its
    /// proxy is a requester, who learns nothing about the patient from it.
    pub established: bool,
    pub part: RolePart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolePart {
    /// The person asking is the role's patient.
    Patient,
    /// The person asking is the role's proxy.
    Proxy,
    /// Not a party (or not a person).
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeFacts {
    pub ods: OdsCode,
    pub online_services_enabled: bool,
}

#[derive(Debug, Clone)]
pub struct PatientFacts {
    pub nhs_number: Option<NhsNumber>,
    pub practice: PracticeFacts,
    pub birth_date: NaiveDate,
    /// How the person acting relates to this patient (only for person actors), with what is in
    /// effect for them through it.
    pub relationship: Relationship,
}

impl PatientFacts {
    /// Whole years of age on `today`.
    pub fn age_on(&self, today: NaiveDate) -> u32 {
        today.years_since(self.birth_date).unwrap_or(0)
    }
}

/// A proxy role as the engine sees it when its proxy acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyFacts {
    pub role_id: String,
    pub relationship: String,
    /// What is in effect through the role today (its standing says whether it is in force).
    pub entitlements: Entitlements,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relationship {
    /// The patient is the person themself, with what their own account gives them now.
    Own(Box<Entitlements>),
    /// The person has a proxy role for this patient.
    Proxy(Box<ProxyFacts>),
    /// The person has no relationship with this patient that the gateway knows of.
    Unrelated,
    /// Not a person acting (staff and systems are decided on their roles and scopes).
    NotApplicable,
}
