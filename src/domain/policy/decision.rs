//! What the engine answers: allowed, or refused with a stable code, and every rule it consulted.

use std::borrow::Cow;

use super::Action;

/// The rules the engine consults, by stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// The kind of caller (staff, patient, system) may ask for this action at all.
    ActorKind,
    /// A staff role grants the permission the action needs (at some practice).
    StaffRole,
    /// The target belongs to a practice where the staff member holds a role.
    StaffPractice,
    /// A role at the target's practice grants the permission the action needs.
    StaffPracticeRole,
    /// The system client holds the scope the action needs.
    SystemScope,
    /// The patient token's vector of trust is an accepted profile.
    PatientVot,
    /// The patient token's proofing level is high enough for this use.
    PatientAssurance,
    /// The token's subject is not bound to a different NHS number.
    PatientIdentity,
    /// The person may act for the target patient.
    PatientRelationship,
    /// The patient has an active online account at their current practice.
    PatientAccount,
    /// The proxy role is active today.
    ProxyRole,
    /// Why what is in effect is what it is (the entitlements model's reasons).
    InEffect,
    /// The account or proxy role gives the service the action uses, in effect now.
    Service,
    /// A delegated token acts for its own patient only.
    Delegation,
    /// The target exists (for targets whose existence is public, such as practices).
    TargetExists,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Self::ActorKind => "actor-kind",
            Self::StaffRole => "staff-role",
            Self::StaffPractice => "staff-practice",
            Self::StaffPracticeRole => "staff-practice-role",
            Self::SystemScope => "system-scope",
            Self::PatientVot => "patient-vot",
            Self::PatientAssurance => "patient-assurance",
            Self::PatientIdentity => "patient-identity",
            Self::PatientRelationship => "patient-relationship",
            Self::PatientAccount => "patient-account",
            Self::ProxyRole => "proxy-role",
            Self::InEffect => "in-effect",
            Self::Service => "service",
            Self::Delegation => "delegation",
            Self::TargetExists => "target-exists",
        }
    }
}

/// Why access was refused. Each has a stable code; callers see that code in the
/// `OperationOutcome` (except `NotVisible`, which answers exactly like a missing resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// This kind of caller may never do this.
    ActorKind,
    /// No role the staff member holds grants the permission.
    RoleNotPermitted,
    /// The system client lacks the scope.
    ScopeMissing,
    /// The vector of trust is not accepted, or the proofing level is too low.
    InsufficientAssurance,
    /// The subject is bound to a different NHS number.
    IdentityMismatch,
    /// The target does not exist, or the caller may not know that it does: one answer for both.
    NotVisible,
    /// A practice-level action outside the staff member's own practices.
    OutsideOwnPractice,
    /// The patient has no usable online account.
    NoActiveAccount,
    /// The online account is disabled by the practice.
    AccountDisabled,
    /// The patient has died: online access has ended for good.
    PatientDeceased,
    /// The proxy role is proposed, inactive or lapsed.
    ProxyRoleNotActive,
    /// The account or proxy role does not grant the service.
    ServiceNotGranted,
}

impl Refusal {
    /// The stable code (the `OperationOutcome` code, and what `$explain-access` reports).
    pub fn code(&self) -> &'static str {
        match self {
            Self::ActorKind => "ACCESS_DENIED",
            Self::RoleNotPermitted => "ROLE_NOT_PERMITTED",
            Self::ScopeMissing => "INSUFFICIENT_SCOPE",
            Self::InsufficientAssurance => "INSUFFICIENT_IDENTITY_ASSURANCE",
            Self::IdentityMismatch => "IDENTITY_MISMATCH",
            Self::NotVisible => "RESOURCE_NOT_FOUND",
            Self::OutsideOwnPractice => "OUTSIDE_OWN_PRACTICE",
            Self::NoActiveAccount => "NO_ACTIVE_ONLINE_ACCOUNT",
            Self::AccountDisabled => "ONLINE_ACCOUNT_DISABLED",
            Self::PatientDeceased => "PATIENT_DECEASED",
            Self::ProxyRoleNotActive => "PROXY_ROLE_NOT_ACTIVE",
            Self::ServiceNotGranted => "SERVICE_NOT_GRANTED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepResult {
    Passed,
    Failed,
    /// The rule does not apply to this caller or target.
    NotApplicable,
}

impl StepResult {
    pub fn name(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::NotApplicable => "not-applicable",
        }
    }
}

/// One rule consulted, with what it found. `detail` is written for the practice: it never
/// holds a token, a linkage key or an NHS number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub rule: Rule,
    pub result: StepResult,
    /// Most rules say something fixed; only those naming a role, a practice or a level format.
    pub detail: Cow<'static, str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub verdict: Verdict,
    /// The rule that decided: the one that refused, or the last one consulted when allowed.
    pub rule: Rule,
    pub trace: Vec<Step>,
    /// Decided on the caller alone, with the target still to come (see `TargetFacts::Pending`).
    pub provisional: bool,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allowed
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.verdict {
            Verdict::Refused(r) => Some(r),
            Verdict::Allowed => None,
        }
    }

    /// The detail of the deciding rule.
    pub fn reason(&self) -> &str {
        self.trace
            .iter()
            .rev()
            .find(|s| s.rule == self.rule && s.result != StepResult::NotApplicable)
            .map_or("", |s| &s.detail)
    }
}
