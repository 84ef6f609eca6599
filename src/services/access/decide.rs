//! Deciding and concluding: the facts loaded (or gathered), the engine asked, the decision put
//! on the trail, and the caller handed a permit with what was loaded.

use super::facts::{Loaded, Who, gathered, load};
use super::target::{AnyTask, Target};
use super::trail::record;
use crate::db;
use crate::db::bindings::Binding;
use crate::domain::audit::AuditExport;
use crate::domain::entitlements::Entitlements;
use crate::domain::policy::{
    self, Action, ActorFacts, Decision, Facts, IdentityLink, PersonFacts, StaffFacts, SystemFacts, TargetFacts, Verdict,
};
use crate::domain::proxy::{AccessRequest, ProxyRole};
use crate::domain::{OnlineAccount, PatientRecord, PracticeRecord};
use crate::identity::Principal;
use crate::services::{Caller, Core, Error, Result};

/// An allowed request, with what was loaded to decide it.
#[derive(Debug)]
pub struct Permit {
    pub decision: Decision,
    pub patient: Option<PatientRecord>,
    pub practice: Option<PracticeRecord>,
    /// The patient's online account, if they have one.
    pub account: Option<OnlineAccount>,
    pub task: Option<AnyTask>,
    pub binding: Option<Binding>,
    /// The proxy role the request is about, or the one a proxy acts through.
    pub role: Option<ProxyRole>,
    pub request: Option<AccessRequest>,
    /// The bulk export of the audit trail the request is about.
    pub export: Option<AuditExport>,
    /// The record-access codes on the target patient's record.
    pub codes: crate::domain::record_access::CodeSet,
    /// What is in effect for the person acting on the target patient, as the decision saw it.
    pub entitlements: Option<Entitlements>,
    _decided: Decided,
}

/// Only the engine makes permits: a handler cannot build one to skip the decision.
#[derive(Debug)]
struct Decided;

impl Permit {
    fn bare(decision: Decision) -> Self {
        Self {
            decision,
            patient: None,
            practice: None,
            account: None,
            task: None,
            binding: None,
            role: None,
            request: None,
            export: None,
            codes: Default::default(),
            entitlements: None,
            _decided: Decided,
        }
    }

    /// The patient the permit is for; services only ask for it where the target is a patient.
    pub fn patient(&self) -> Result<&PatientRecord> {
        self.patient
            .as_ref()
            .ok_or_else(|| Error::internal("permit without a patient"))
    }

    pub fn practice(&self) -> Result<&PracticeRecord> {
        self.practice
            .as_ref()
            .ok_or_else(|| Error::internal("permit without a practice"))
    }
}

/// The caller as the engine sees them, before anything is looked up.
pub fn actor_facts(principal: &Principal) -> ActorFacts {
    match principal {
        Principal::Staff(s) => ActorFacts::Staff(StaffFacts { roles: s.roles.clone() }),
        Principal::System(s) => ActorFacts::System(SystemFacts {
            client_id: s.client_id.clone(),
            scopes: s.scopes.clone(),
        }),
        Principal::Patient(p) => ActorFacts::Person(PersonFacts {
            nhs_number: p.nhs_number.clone(),
            proofing_level: p.proofing_level,
            vot: p.vot.clone(),
            identity: IdentityLink::Unknown,
            delegated_for: p.delegated_for.as_ref().map(|d| d.nhs_number.clone()),
        }),
    }
}

/// Decides whether `caller` may do `action` to `target`, records the decision in the request's
/// audit trail, and returns what was loaded. A refusal is an `Error::Refused`; for a target the
/// caller may not see it is the same as for one that does not exist.
///
/// Rules about the caller alone are applied before anything is looked up. For a change, the
/// decision is committed to the audit trail before this returns; for a read, before the answer
/// leaves (the audit middleware waits for it).
pub async fn authorize(core: &Core, caller: &Caller, action: Action, target: Target) -> Result<Permit> {
    let actor = actor_facts(&caller.principal);
    let today = core.clock.today();
    let resource = target.resource();
    let decide = |actor: ActorFacts, target: TargetFacts| {
        policy::decide(
            &core.policy,
            &Facts {
                action,
                actor,
                target,
                today,
            },
        )
    };
    if let Target::None = target {
        let decision = decide(actor.clone(), TargetFacts::None);
        return Box::pin(settle(core, caller, decision, &actor, Loaded::default(), resource)).await;
    }
    let first = decide(actor.clone(), TargetFacts::Pending);
    if !first.is_allowed() || matches!(target, Target::Pending) {
        if first.is_allowed() {
            // Provisional: the caller may go on to name the target; nothing is recorded yet.
            return Ok(Permit::bare(first));
        }
        return Box::pin(settle(core, caller, first, &actor, Loaded::default(), resource)).await;
    }
    // A delegated token acts for its patient: "my record" is theirs, reached through the role.
    let target = match (&target, &caller.principal) {
        (Target::OwnRecord, Principal::Patient(p)) if p.delegated_for.is_some() => Target::PatientNhs(
            p.delegated_for
                .as_ref()
                .map(|d| d.nhs_number.clone())
                .unwrap_or_else(|| p.nhs_number.clone()),
        ),
        _ => target,
    };
    let who = Who::of(&caller.principal);
    // The reads' and the settling's futures are large (kilobytes, with what they load); boxed,
    // this future stays small, and each layer above it moves a pointer rather than copying them.
    let gathered = Box::pin(gathered(core, &who, &target)).await?;
    let loaded = match gathered {
        Some(loaded) => loaded,
        None => {
            let target = target.clone();
            {
                let now = core.clock.now();
                db::run(&core.pool, move |c| load(c, &who, &target, now)).await?
            }
        }
    };
    let (actor, facts) = loaded.facts(actor, &target, today);
    let in_effect = loaded.entitlements(&facts);
    let decision = decide(actor.clone(), facts);
    if decision.is_allowed()
        && let Some(role) = loaded.acting_role()
        && role.last_used_at.is_none_or(|t| t.date() < today)
    {
        // Roles unused for five years end: note the use, once a day, off the request's path.
        let (pool, id, now) = (core.pool.clone(), role.id.clone(), core.clock.now());
        tokio::spawn(async move {
            if let Err(e) = db::run(&pool, move |c| db::proxy_roles::touch(c, &id, now)).await {
                tracing::warn!(error = %e, "could not note a proxy role's use");
            }
        });
    }
    let mut permit = Box::pin(settle(core, caller, decision, &actor, loaded, resource)).await?;
    permit.entitlements = in_effect;
    Ok(permit)
}

/// Records the decision and turns it into the caller's answer.
async fn settle(
    core: &Core,
    caller: &Caller,
    decision: Decision,
    actor: &ActorFacts,
    loaded: Loaded,
    resource: &'static str,
) -> Result<Permit> {
    // A change is on record before it is made, on every path: one that finds its patient by
    // being carried out names them in a second event afterwards ([`conclude`]). Anything else
    // is held until its result is known (a read that then fails says so) and committed before
    // the answer leaves.
    let commit_now = decision.action.changes_state();
    record(
        core,
        caller,
        &decision,
        actor,
        &loaded,
        !commit_now && decision.is_allowed(),
    );
    if let Verdict::Refused(refusal) = &decision.verdict {
        return Err(Error::Refused {
            refusal: refusal.clone(),
            resource,
            detail: decision.reason().to_owned(),
        });
    }
    if commit_now {
        caller
            .trail
            .commit(&core.audit)
            .await
            .map_err(|_| Error::AuditUnavailable)?;
    }
    Ok(Permit {
        decision,
        patient: loaded.patient,
        practice: loaded.practice,
        account: loaded.account,
        task: loaded.task,
        binding: loaded.binding,
        role: loaded.role,
        request: loaded.request,
        export: loaded.export,
        codes: loaded.codes,
        entitlements: None,
        _decided: Decided,
    })
}

/// For an action that finds its patient: puts the patient it found on record beside the
/// decision (committed before the action was carried out) and commits it. Called right after
/// the action is carried out.
pub async fn conclude(core: &Core, caller: &Caller, patient: Option<&PatientRecord>) -> Result<()> {
    // Without a patient the operation failed: a follow-up event says so as the answer leaves.
    let Some(p) = patient else {
        return Ok(());
    };
    caller.trail.found_patient(&core.audit, &p.id, p.practice_ods.as_str());
    caller
        .trail
        .commit(&core.audit)
        .await
        .map_err(|_| Error::AuditUnavailable)
}
