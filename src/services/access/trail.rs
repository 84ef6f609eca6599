//! What goes on the audit trail for a decision and for what an answer discloses.

use crate::audit::{ActorSnapshot, AuditRecord, Outcome};
use crate::domain::PatientRecord;
use crate::domain::policy::{Action, ActorFacts, Decision, Verdict};
use crate::identity::Principal;
use crate::services::{Caller, Core};

use super::facts::Loaded;

/// The caller's identity as the audit trail names it: kind, key and assurance.
pub fn audit_actor(principal: Option<&Principal>) -> (String, String, Option<String>) {
    match principal {
        None => ("unauthenticated".into(), "unknown".into(), None),
        Some(p @ Principal::Patient(pp)) => (
            "patient".into(),
            p.caller_key(),
            Some(pp.vot.clone().unwrap_or_else(|| pp.proofing_level.as_str().to_owned())),
        ),
        Some(p @ Principal::Staff(_)) => ("staff".into(), p.caller_key(), None),
        Some(p @ Principal::System(_)) => ("system".into(), p.caller_key(), None),
    }
}

/// The practice an event about no practice or patient belongs to when a member of staff acts:
/// theirs, when they hold roles at one practice only. Other events about no practice (refused
/// authentications, a person's own searches) belong to the service operator.
pub fn home_practice(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Staff(s) => match s.organisations().as_slice() {
            [only] => Some(only.as_str().to_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// What was refused before any decision could be asked for, and why: a token that did not
/// verify, a request that was not understood, a console form without its CSRF token. It
/// names no patient (nothing was looked up); `practice` is whose trail it belongs to, if
/// anyone's but the service operator's.
pub struct Refused<'a> {
    pub principal: Option<&'a Principal>,
    pub action: &'a str,
    pub outcome: Outcome,
    pub rule: &'a str,
    pub code: Option<&'a str>,
    pub reason: Option<String>,
    pub practice: Option<String>,
    pub request_id: Option<String>,
}

impl Refused<'_> {
    pub fn record(self) -> AuditRecord {
        let (actor_kind, actor, assurance) = audit_actor(self.principal);
        AuditRecord {
            actor_kind,
            actor,
            assurance,
            patient_id: None,
            practice: self.practice,
            action: self.action.to_owned(),
            outcome: self.outcome,
            rule: Some(self.rule.to_owned()),
            code: self.code.map(str::to_owned),
            reason: self.reason,
            request_id: self.request_id,
            snapshot: None,
        }
    }
}

/// Puts on each patient's trail that their details were in this request's answer (a search
/// result, an `_include`, an entry of `$my-access`): one event per patient, held until the
/// answer leaves and committed before it does, like the request's own decision. A patient
/// the request's decision already names is not repeated.
pub fn disclosed<'a>(caller: &Caller, action: Action, patients: impl IntoIterator<Item = &'a PatientRecord>) {
    let mut seen = std::collections::BTreeSet::new();
    for p in patients {
        if !seen.insert(p.id.as_str()) || caller.trail.names(&p.id) {
            continue;
        }
        disclosure(caller, action, p, "the patient's details are in the answer".to_owned());
    }
}

/// Puts on the patient's trail what of their record this request's answer discloses: `what`
/// says how much of which areas, and through which proxy role; never the content.
pub fn disclosure(caller: &Caller, action: Action, patient: &PatientRecord, what: String) {
    let (actor_kind, actor, assurance) = audit_actor(Some(&caller.principal));
    caller.trail.hold(AuditRecord {
        actor_kind,
        actor,
        assurance,
        patient_id: Some(patient.id.clone()),
        practice: Some(patient.practice_ods.as_str().to_owned()),
        action: action.name().to_owned(),
        outcome: Outcome::Success,
        rule: Some("disclosure".to_owned()),
        code: None,
        reason: Some(what),
        request_id: caller.request_id.clone(),
        snapshot: None,
    });
}

pub(super) fn record(
    core: &Core,
    caller: &Caller,
    decision: &Decision,
    actor: &ActorFacts,
    loaded: &Loaded,
    hold: bool,
) {
    let (actor_kind, actor_key, assurance) = audit_actor(Some(&caller.principal));
    let (outcome, code) = match &decision.verdict {
        Verdict::Allowed => (Outcome::Success, None),
        Verdict::Refused(r) => (Outcome::Denied, Some(r.code().to_owned())),
    };
    let event = AuditRecord {
        actor_kind,
        actor: actor_key,
        assurance,
        patient_id: loaded.audit_patient.clone().or_else(|| {
            (decision.is_allowed())
                .then(|| caller.trail.intended_patient())
                .flatten()
        }),
        practice: loaded
            .audit_practice
            .clone()
            .or_else(|| home_practice(&caller.principal)),
        action: decision.action.name().to_owned(),
        outcome,
        rule: Some(decision.rule.name().to_owned()),
        code,
        reason: Some(decision.reason().to_owned()).filter(|r| !r.is_empty()),
        request_id: caller.request_id.clone(),
        snapshot: Some(snapshot_of(&caller.principal, actor)),
    };
    if hold {
        caller.trail.hold(event);
    } else {
        caller.trail.record(&core.audit, event);
    }
}

/// The caller's facts as JSON, kept so `$explain-access` can replay a decision for them
/// (`actor_from_snapshot` reads them back). Written straight from the facts, without building
/// a JSON tree first: it is made for every decision.
fn snapshot_of(principal: &Principal, actor: &ActorFacts) -> ActorSnapshot {
    #[derive(serde::Serialize)]
    struct Role<'a> {
        organisation: &'a str,
        role: &'a Option<String>,
    }
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Facts<'a> {
        Staff {
            roles: Vec<Role<'a>>,
        },
        #[serde(rename_all = "camelCase")]
        System {
            client_id: &'a str,
            scopes: &'a [String],
        },
        #[serde(rename_all = "camelCase")]
        Person {
            issuer: &'a str,
            subject: &'a str,
            nhs_number: &'a str,
            proofing_level: &'a str,
            vot: &'a Option<String>,
        },
        None {},
    }
    let facts = match (principal, actor) {
        (Principal::Staff(_), ActorFacts::Staff(s)) => Facts::Staff {
            roles: s
                .roles
                .iter()
                .map(|r| Role {
                    organisation: r.organisation.as_str(),
                    role: &r.role,
                })
                .collect(),
        },
        (Principal::System(_), ActorFacts::System(s)) => Facts::System {
            client_id: &s.client_id,
            scopes: &s.scopes,
        },
        (Principal::Patient(p), ActorFacts::Person(person)) => Facts::Person {
            issuer: &p.issuer,
            subject: &p.subject,
            nhs_number: person.nhs_number.as_str(),
            proofing_level: person.proofing_level.as_str(),
            vot: &person.vot,
        },
        _ => Facts::None {},
    };
    ActorSnapshot {
        kind: actor.kind().to_owned(),
        facts: serde_json::to_string(&facts).unwrap_or_else(|_| "{}".to_owned()),
    }
}
