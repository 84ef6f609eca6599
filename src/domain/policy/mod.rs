//! The access-decision engine: one pure function from facts to a decision, with the trace of
//! every rule it consulted. Services load the facts, ask here, act on the answer and hand the
//! decision to the audit trail; nothing else decides who may do what.
//!
//! Rules that depend only on the caller come first, so a caller who may never do something is
//! refused before anything about the target is known. A target the caller may not see is
//! refused exactly like one that does not exist.

mod action;
mod decision;
mod facts;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeSet;

pub use action::Service;
pub use action::{Action, PatientRequirement, Permission, Requirement, Verb};
pub use decision::{Decision, Refusal, Rule, Step, StepResult, Verdict};
pub use facts::{
    ActorFacts, Facts, IdentityLink, PatientFacts, PersonFacts, Policy, PracticeFacts, ProxyFacts, Relationship,
    RoleAssignment, RoleFacts, RolePart, StaffFacts, SystemFacts, TargetFacts,
};

use crate::domain::entitlements::{Entitlements, Standing};
use crate::domain::{AccountStatus, OdsCode, ServiceLevel};

/// Decides one request.
pub fn decide(policy: &Policy, facts: &Facts) -> Decision {
    let mut t = Trace::new(facts);
    let requirement = facts.action.requirement();
    let outcome = match &facts.actor {
        ActorFacts::Staff(staff) => staff_rules(policy, facts, requirement, staff, &mut t),
        ActorFacts::Person(person) => person_rules(policy, facts, requirement, person, &mut t),
        ActorFacts::System(system) => system_rules(requirement, facts, system, &mut t),
    };
    t.finish(outcome)
}

/// The practices at which a staff member's roles grant one of `needed`: the scope of a search
/// that is not about one practice (the audit trail across the caller's practices).
pub fn practices_granting(policy: &Policy, actor: &ActorFacts, needed: &[Permission]) -> Vec<OdsCode> {
    let ActorFacts::Staff(staff) = actor else {
        return vec![];
    };
    let mut out: Vec<OdsCode> = staff
        .roles
        .iter()
        .map(|r| r.organisation.clone())
        .filter(|ods| grants_any(&granted(policy, staff, Some(ods)), needed))
        .collect();
    out.sort();
    out.dedup();
    out
}

type Outcome = Result<(), (Rule, Refusal)>;

struct Trace {
    action: Action,
    steps: Vec<Step>,
    provisional: bool,
}

impl Trace {
    fn new(facts: &Facts) -> Self {
        Self {
            action: facts.action,
            steps: Vec::new(),
            provisional: matches!(facts.target, TargetFacts::Pending),
        }
    }

    fn pass(&mut self, rule: Rule, detail: impl Into<Cow<'static, str>>) {
        self.steps.push(Step {
            rule,
            result: StepResult::Passed,
            detail: detail.into(),
        });
    }

    fn skip(&mut self, rule: Rule, detail: impl Into<Cow<'static, str>>) {
        self.steps.push(Step {
            rule,
            result: StepResult::NotApplicable,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, rule: Rule, refusal: Refusal, detail: impl Into<Cow<'static, str>>) -> Outcome {
        self.steps.push(Step {
            rule,
            result: StepResult::Failed,
            detail: detail.into(),
        });
        Err((rule, refusal))
    }

    fn finish(self, outcome: Outcome) -> Decision {
        let (verdict, rule) = match outcome {
            Ok(()) => (
                Verdict::Allowed,
                self.steps
                    .iter()
                    .rev()
                    .find(|s| s.result == StepResult::Passed)
                    .map_or(Rule::ActorKind, |s| s.rule),
            ),
            Err((rule, refusal)) => (Verdict::Refused(refusal), rule),
        };
        Decision {
            action: self.action,
            verdict,
            rule,
            trace: self.steps,
            provisional: self.provisional,
        }
    }
}

fn names(permissions: &[Permission]) -> String {
    permissions.iter().map(|p| p.name()).collect::<Vec<_>>().join(" or ")
}

/// Permissions the staff member's roles grant at one practice (or anywhere, with `None`).
fn granted(policy: &Policy, staff: &StaffFacts, at: Option<&OdsCode>) -> BTreeSet<Permission> {
    staff
        .roles
        .iter()
        .filter(|r| at.is_none_or(|ods| &r.organisation == ods))
        .filter_map(|r| r.role.as_deref())
        .flat_map(|role| policy.permissions_of(role))
        .collect()
}

fn grants_any(granted: &BTreeSet<Permission>, needed: &[Permission]) -> bool {
    needed.is_empty() || needed.iter().any(|p| granted.contains(p))
}

fn role_list(staff: &StaffFacts, at: Option<&OdsCode>) -> String {
    let roles: Vec<String> = staff
        .roles
        .iter()
        .filter(|r| at.is_none_or(|ods| &r.organisation == ods))
        .map(|r| format!("{} at {}", r.role.as_deref().unwrap_or("no role code"), r.organisation))
        .collect();
    if roles.is_empty() {
        "no role".to_owned()
    } else {
        roles.join(", ")
    }
}

fn staff_rules(policy: &Policy, facts: &Facts, req: Requirement, staff: &StaffFacts, t: &mut Trace) -> Outcome {
    let action = facts.action;
    let Some(needed) = req.staff else {
        return t.fail(
            Rule::ActorKind,
            Refusal::ActorKind,
            format!("staff may not {}", action.description()),
        );
    };
    t.pass(Rule::ActorKind, "staff may ask for this");
    if needed.is_empty() {
        t.pass(Rule::StaffRole, "open to every staff member");
    } else if grants_any(&granted(policy, staff, None), needed) {
        t.pass(
            Rule::StaffRole,
            format!("a role grants {} ({})", names(needed), role_list(staff, None)),
        );
    } else {
        return t.fail(
            Rule::StaffRole,
            Refusal::RoleNotPermitted,
            format!("no role grants {} ({})", names(needed), role_list(staff, None)),
        );
    }

    let at_practice = |ods: &OdsCode, t: &mut Trace, not_member: Refusal| -> Outcome {
        if !staff.roles.iter().any(|r| &r.organisation == ods) {
            return t.fail(
                Rule::StaffPractice,
                not_member,
                format!("the staff member holds no role at {ods}"),
            );
        }
        t.pass(Rule::StaffPractice, format!("the staff member holds a role at {ods}"));
        if grants_any(&granted(policy, staff, Some(ods)), needed) {
            t.pass(
                Rule::StaffPracticeRole,
                format!("a role at {ods} grants {}", names(needed)),
            );
            Ok(())
        } else {
            t.fail(
                Rule::StaffPracticeRole,
                Refusal::RoleNotPermitted,
                format!(
                    "no role at {ods} grants {} ({})",
                    names(needed),
                    role_list(staff, Some(ods))
                ),
            )
        }
    };

    match &facts.target {
        TargetFacts::None => Ok(()),
        TargetFacts::Pending => {
            t.skip(
                Rule::StaffPractice,
                "the target is named in the request body, checked next",
            );
            Ok(())
        }
        TargetFacts::OwnRecord(_) => t.fail(
            Rule::ActorKind,
            Refusal::ActorKind,
            "staff have no record of their own here",
        ),
        TargetFacts::Practice(None) => t.fail(Rule::TargetExists, Refusal::NotVisible, "no such practice"),
        TargetFacts::Practice(Some(p)) if needed.is_empty() => {
            t.pass(Rule::TargetExists, format!("practice {} exists", p.ods));
            Ok(())
        }
        TargetFacts::Practice(Some(p)) => {
            t.pass(Rule::TargetExists, format!("practice {} exists", p.ods));
            at_practice(&p.ods, t, Refusal::OutsideOwnPractice)
        }
        TargetFacts::PracticeJob(None) => t.fail(Rule::TargetExists, Refusal::NotVisible, "no such practice"),
        // A job of another practice is answered exactly like one that does not exist.
        TargetFacts::PracticeJob(Some(p)) => at_practice(&p.ods, t, Refusal::NotVisible),
        TargetFacts::Patient(None) => t.fail(
            Rule::StaffPractice,
            Refusal::NotVisible,
            "no patient record has this id",
        ),
        // A patient of another practice is answered exactly like one that does not exist.
        TargetFacts::Patient(Some(p)) => at_practice(&p.practice.ods, t, Refusal::NotVisible),
        TargetFacts::ProxyRole(None) => t.fail(Rule::StaffPractice, Refusal::NotVisible, "no proxy role has this id"),
        TargetFacts::ProxyRole(Some(r)) => match &r.practice {
            Some(p) => at_practice(&p.ods, t, Refusal::NotVisible),
            None => t.fail(
                Rule::StaffPractice,
                Refusal::NotVisible,
                "the request names no patient at a practice the gateway serves",
            ),
        },
    }
}

fn system_rules(req: Requirement, facts: &Facts, system: &SystemFacts, t: &mut Trace) -> Outcome {
    match req.system {
        None => t.fail(
            Rule::ActorKind,
            Refusal::ActorKind,
            "system clients may not ask for this",
        ),
        Some("") => {
            t.pass(Rule::ActorKind, "system clients may ask for this");
            t.pass(Rule::SystemScope, "open to every system client");
            target_exists(&facts.target, t)
        }
        Some(scope) => {
            t.pass(Rule::ActorKind, "system clients may ask for this");
            if system.scopes.iter().any(|s| s == scope) {
                t.pass(Rule::SystemScope, format!("client {} holds {scope}", system.client_id));
                target_exists(&facts.target, t)
            } else {
                t.fail(
                    Rule::SystemScope,
                    Refusal::ScopeMissing,
                    format!("client {} does not hold the {scope} scope", system.client_id),
                )
            }
        }
    }
}

fn person_rules(policy: &Policy, facts: &Facts, req: Requirement, person: &PersonFacts, t: &mut Trace) -> Outcome {
    let action = facts.action;
    let Some(requirement) = req.patient else {
        return t.fail(
            Rule::ActorKind,
            Refusal::ActorKind,
            format!("patients may not {}", action.description()),
        );
    };
    t.pass(Rule::ActorKind, "patients may ask for this");
    match person.vot.as_deref() {
        Some(vot) if policy.accepted_vot.contains(vot) => {
            t.pass(Rule::PatientVot, format!("vector of trust {vot} is accepted"));
        }
        Some(vot) => {
            return t.fail(
                Rule::PatientVot,
                Refusal::InsufficientAssurance,
                format!("vector of trust {vot} is not accepted"),
            );
        }
        None => {
            return t.fail(
                Rule::PatientVot,
                Refusal::InsufficientAssurance,
                "the token carries no vector of trust",
            );
        }
    }
    let needs_account = match requirement {
        PatientRequirement::Open => {
            t.skip(Rule::PatientAssurance, "directory information: any proofing level");
            return target_exists(&facts.target, t);
        }
        PatientRequirement::Assured { policy: use_, account } => {
            let minimum = policy.minimum(use_);
            if person.proofing_level < minimum {
                return t.fail(
                    Rule::PatientAssurance,
                    Refusal::InsufficientAssurance,
                    format!(
                        "{} needs identity proofing level {} or higher; the token has {}",
                        use_.name(),
                        minimum.as_str(),
                        person.proofing_level.as_str()
                    ),
                );
            }
            t.pass(
                Rule::PatientAssurance,
                format!(
                    "proofing level {} meets {} for {}",
                    person.proofing_level.as_str(),
                    minimum.as_str(),
                    use_.name()
                ),
            );
            account
        }
    };
    match &person.identity {
        IdentityLink::Mismatch => {
            return t.fail(
                Rule::PatientIdentity,
                Refusal::IdentityMismatch,
                "the identity is already bound to a different NHS number",
            );
        }
        IdentityLink::Unknown if matches!(facts.target, TargetFacts::Pending | TargetFacts::None) => {
            t.skip(Rule::PatientIdentity, "not looked up yet");
        }
        IdentityLink::Unknown => t.skip(Rule::PatientIdentity, "the identity's binding was not looked up"),
        IdentityLink::NoRecord => t.pass(Rule::PatientIdentity, "no practice record holds the token's NHS number"),
        IdentityLink::Bound { .. } => t.pass(Rule::PatientIdentity, "bound to the practice record"),
    }

    if let Some(delegated) = &person.delegated_for {
        if action.acts_as_the_person() {
            return t.fail(
                Rule::Delegation,
                Refusal::ActorKind,
                format!(
                    "a delegated token acts for its patient only; to {} the person signs in as themself",
                    action.description()
                ),
            );
        }
        let about = match &facts.target {
            TargetFacts::Patient(Some(p)) => p.nhs_number.as_ref(),
            TargetFacts::ProxyRole(Some(r)) => Some(&r.patient_nhs_number),
            _ => None,
        };
        match about {
            Some(target) if target != delegated => {
                return t.fail(
                    Rule::Delegation,
                    Refusal::NotVisible,
                    "the delegated token acts for another patient",
                );
            }
            Some(_) => t.pass(Rule::Delegation, "the delegated token acts for this patient"),
            None => {}
        }
    }

    let patient = match &facts.target {
        TargetFacts::None | TargetFacts::Pending => return Ok(()),
        TargetFacts::Practice(_) | TargetFacts::PracticeJob(_) => return target_exists(&facts.target, t),
        TargetFacts::ProxyRole(role) => return role_party(role.as_deref(), t),
        TargetFacts::OwnRecord(None) => {
            t.pass(
                Rule::PatientRelationship,
                "the caller has no practice record here: there is nothing to show",
            );
            return Ok(());
        }
        TargetFacts::OwnRecord(Some(p)) => p,
        TargetFacts::Patient(None) => {
            return t.fail(
                Rule::PatientRelationship,
                Refusal::NotVisible,
                "no patient the caller may act for has this id",
            );
        }
        TargetFacts::Patient(Some(p)) => p,
    };
    let own = match &patient.relationship {
        Relationship::Own(own) => {
            t.pass(Rule::PatientRelationship, "the caller's own record");
            own
        }
        Relationship::Proxy(role) => return proxy_rules(facts, role, t),
        Relationship::Unrelated | Relationship::NotApplicable => {
            return t.fail(
                Rule::PatientRelationship,
                Refusal::NotVisible,
                "no patient the caller may act for has this id",
            );
        }
    };
    if !needs_account {
        t.skip(Rule::PatientAccount, "an online account is not needed for this");
        return Ok(());
    }
    account_rule(patient, own, t)?;
    match facts.action.service() {
        Some(service) => service_rule(service, facts.action.service_level(), own, "the online account", t),
        None => Ok(()),
    }
}

/// A person and a proxy role: they see it if they are its patient, or its proxy once the role
/// has been in force. Until then the proxy is only a requester, and a role they asked for says
/// nothing to them about the patient it names.
fn role_party(role: Option<&RoleFacts>, t: &mut Trace) -> Outcome {
    match role.map(|r| (r.part, r.established)) {
        Some((RolePart::Patient, _)) => {
            t.pass(Rule::PatientRelationship, "the caller is the role's patient");
            Ok(())
        }
        Some((RolePart::Proxy, true)) => {
            t.pass(Rule::PatientRelationship, "the caller is the role's proxy");
            Ok(())
        }
        Some((RolePart::Proxy, false)) => t.fail(
            Rule::PatientRelationship,
            Refusal::NotVisible,
            "the role has not been in force: until the practice makes it active, its proxy sees nothing of it",
        ),
        _ => t.fail(
            Rule::PatientRelationship,
            Refusal::NotVisible,
            "no proxy role the caller is a party to has this id",
        ),
    }
}

/// A proxy acting for a patient: through a role in force, for what it grants in effect.
fn proxy_rules(facts: &Facts, role: &ProxyFacts, t: &mut Trace) -> Outcome {
    t.pass(
        Rule::PatientRelationship,
        format!(
            "the caller is a proxy ({}) under role {}",
            role.relationship, role.role_id
        ),
    );
    if facts.action.patient_only() {
        return t.fail(
            Rule::PatientRelationship,
            Refusal::ActorKind,
            format!("only the patient themself may {}", facts.action.description()),
        );
    }
    let e = &role.entitlements;
    if !e.standing.is_active() {
        return t.fail(
            Rule::ProxyRole,
            Refusal::ProxyRoleNotActive,
            e.summary().unwrap_or("the proxy role is not in force").to_owned(),
        );
    }
    t.pass(Rule::ProxyRole, format!("proxy role {} is active", role.role_id));
    match facts.action.service() {
        Some(service) => service_rule(service, facts.action.service_level(), e, "the proxy role", t),
        None => Ok(()),
    }
}

/// Callers who are not decided by practice membership still learn nothing from a target that
/// does not exist: it is refused the same way for every kind of caller, never passed on.
fn target_exists(target: &TargetFacts, t: &mut Trace) -> Outcome {
    let missing = match target {
        TargetFacts::Practice(None) | TargetFacts::PracticeJob(None) => "no such practice",
        TargetFacts::Patient(None) => "no patient record has this id",
        TargetFacts::ProxyRole(None) => "no proxy role has this id",
        TargetFacts::Practice(Some(p)) | TargetFacts::PracticeJob(Some(p)) => {
            t.pass(Rule::TargetExists, format!("practice {} exists", p.ods));
            return Ok(());
        }
        TargetFacts::Patient(Some(_)) | TargetFacts::ProxyRole(Some(_)) => {
            t.pass(Rule::TargetExists, "the target exists");
            return Ok(());
        }
        TargetFacts::None | TargetFacts::Pending | TargetFacts::OwnRecord(_) => return Ok(()),
    };
    t.fail(Rule::TargetExists, Refusal::NotVisible, missing)
}

/// The service in effect through the account or role; the reasons it is what it is go on the
/// trace.
fn service_rule(service: Service, needed: ServiceLevel, e: &Entitlements, what: &str, t: &mut Trace) -> Outcome {
    for why in e.reasons.iter().skip(1) {
        t.pass(Rule::InEffect, why.clone());
    }
    let has = service.level_in(&e.access);
    if has >= needed && has.is_on() {
        t.pass(
            Rule::Service,
            format!("{what} gives {} now ({})", service.name(), has.as_str()),
        );
        Ok(())
    } else if has.is_on() {
        t.fail(
            Rule::Service,
            Refusal::ServiceNotGranted,
            format!(
                "{what} gives {} to {} only; this needs {}",
                service.name(),
                has.as_str(),
                needed.as_str()
            ),
        )
    } else {
        t.fail(
            Rule::Service,
            Refusal::ServiceNotGranted,
            format!("{what} does not give {} now", service.name()),
        )
    }
}

fn account_rule(patient: &PatientFacts, own: &Entitlements, t: &mut Trace) -> Outcome {
    let why = || own.summary().unwrap_or("no online account").to_owned();
    match &own.standing {
        Standing::Active => {
            t.pass(
                Rule::PatientAccount,
                format!("active online account at {}", patient.practice.ods),
            );
            Ok(())
        }
        Standing::Account(AccountStatus::Disabled) => t.fail(Rule::PatientAccount, Refusal::AccountDisabled, why()),
        Standing::Deceased => t.fail(Rule::PatientAccount, Refusal::PatientDeceased, why()),
        _ => t.fail(Rule::PatientAccount, Refusal::NoActiveAccount, why()),
    }
}
