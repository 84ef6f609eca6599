//! The one place access is decided: load the facts, ask the engine, put the decision on
//! record, and hand the caller what was loaded so nothing is looked up twice.

use serde_json::Value;

use super::binding::{Resolved, resolve_binding};
use super::{Caller, Core, Error, Result};
use crate::audit::{ActorSnapshot, AuditRecord, Outcome};
use crate::db::bindings::Binding;
use crate::db::reads::PatientContext;
use crate::db::{self, DbConnection, DbError};
use crate::domain::audit::AuditExport;
use crate::domain::entitlements::{self, Entitlements, PatientState};
use crate::domain::policy::{
    self, Action, ActorFacts, Decision, Facts, IdentityLink, PatientFacts, PersonFacts, PracticeFacts, ProxyFacts,
    Refusal, Relationship, RoleAssignment, RoleFacts, RolePart, StaffFacts, SystemFacts, TargetFacts, Verdict,
};
use crate::domain::provisioning::OutboxJob;
use crate::domain::proxy::{AccessRequest, ProxyReview, ProxyRole, RoleStatus};
use crate::domain::review::ReviewTask;
use crate::domain::{
    NhsNumber, OdsCode, OnlineAccount, PatientIdentifierSystem, PatientRecord, PracticeRecord, PracticeRef,
    ProofingLevel,
};
use crate::identity::Principal;

/// What a request is about.
#[derive(Debug, Clone)]
pub enum Target {
    /// Nothing in particular (the action names its patient in the body, or has none).
    None,
    /// Named by the request body, which is read only once the caller may go on.
    Pending,
    /// A patient record by id.
    Patient(String),
    /// The patient a Task is for.
    Task(String),
    /// A practice by id or ODS code.
    Practice(PracticeRef),
    /// The person's own record, through their identity binding.
    OwnRecord,
    /// A proxy role by id.
    ProxyRole(String),
    /// A patient record by NHS number (a proxy role names its patient so).
    PatientNhs(NhsNumber),
    /// A proxy access request by id.
    AccessRequest(String),
    /// A bulk export of a practice's audit trail by id.
    AuditExport(String),
}

impl Target {
    /// The resource a refusal is worded for (`Patient not found`).
    fn resource(&self) -> &'static str {
        match self {
            Self::Task(_) => "Task",
            Self::Practice(_) => "Organization",
            Self::ProxyRole(_) => "Consent",
            Self::AccessRequest(_) => "QuestionnaireResponse",
            Self::AuditExport(_) => "Export",
            _ => "Patient",
        }
    }
}

/// A Task is either a provisioning job or a record review.
#[derive(Debug, Clone)]
pub enum AnyTask {
    Job(OutboxJob),
    Review(ReviewTask),
    /// A practice's review of a proposed proxy role.
    ProxyReview(ProxyReview),
    /// A practice-wide job (applying the opt-in model).
    Bulk(crate::domain::record_access::BulkJob),
}

impl AnyTask {
    /// The patient the Task is about; a practice-wide job is about none.
    pub fn patient_id(&self) -> Option<&str> {
        match self {
            Self::Job(j) => Some(&j.patient_id),
            Self::Review(r) => Some(&r.patient_id),
            Self::ProxyReview(r) => Some(&r.patient_id),
            Self::Bulk(_) => None,
        }
    }
}

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
            db::run(&core.pool, move |c| load(c, &who, &target)).await?
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
fn home_practice(principal: &Principal) -> Option<String> {
    match principal {
        Principal::Staff(s) => match s.organisations().as_slice() {
            [only] => Some(only.as_str().to_owned()),
            _ => None,
        },
        _ => None,
    }
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

fn record(core: &Core, caller: &Caller, decision: &Decision, actor: &ActorFacts, loaded: &Loaded, hold: bool) {
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

/// How the loader finds a person's own record.
#[derive(Debug, Clone)]
pub(super) enum Who {
    Staff,
    System,
    /// A token's subject: bound to their record on first use (and followed when they move).
    Person {
        issuer: String,
        subject: String,
        nhs_number: NhsNumber,
        level: ProofingLevel,
    },
    /// A person named by NHS number (for `$explain-access`): looked up, never bound.
    Named {
        nhs_number: NhsNumber,
    },
}

impl Who {
    fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Staff(_) => Self::Staff,
            Principal::System(_) => Self::System,
            Principal::Patient(p) => Self::Person {
                issuer: p.issuer.clone(),
                subject: p.subject.clone(),
                nhs_number: p.nhs_number.clone(),
                level: p.proofing_level,
            },
        }
    }
}

/// Everything one decision needed, loaded in one trip to the database.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    identity: Option<IdentityLink>,
    own: Option<PatientRecord>,
    patient: Option<PatientRecord>,
    practice: Option<PracticeRecord>,
    account: Option<OnlineAccount>,
    task: Option<AnyTask>,
    binding: Option<Binding>,
    /// The role a target names, or the one a proxy acts through.
    role: Option<ProxyRole>,
    request: Option<AccessRequest>,
    export: Option<AuditExport>,
    /// The record-access codes on the target patient's record.
    codes: crate::domain::record_access::CodeSet,
    /// How the person asking takes part in `role` (when the target is a role).
    part: Option<RolePart>,
    /// The acting person's NHS number.
    person: Option<NhsNumber>,
    audit_patient: Option<String>,
    audit_practice: Option<String>,
}

pub(super) fn load(c: &mut DbConnection, who: &Who, target: &Target) -> std::result::Result<Loaded, DbError> {
    let mut l = Loaded::default();
    // The caller's own record with its context, when the binding's query brought it.
    let mut own_context = None;
    if let Who::Person { nhs_number, .. } = who {
        l.person = Some(nhs_number.clone());
    }
    match who {
        Who::Staff | Who::System => {}
        Who::Person {
            issuer,
            subject,
            nhs_number,
            level,
        } => match resolve_binding(c, issuer, subject, nhs_number, *level)? {
            Resolved::Mismatch => l.identity = Some(IdentityLink::Mismatch),
            Resolved::Unknown => l.identity = Some(IdentityLink::NoRecord),
            Resolved::Found(patient, binding, context) => {
                l.identity = Some(IdentityLink::Bound {
                    patient_id: patient.id.clone(),
                });
                l.own = Some(*patient);
                l.binding = Some(*binding);
                own_context = context.map(|c| *c);
            }
        },
        Who::Named { nhs_number } => {
            l.person = Some(nhs_number.clone());
            // Only a record that is the target itself counts: whether the person is registered
            // anywhere else is not the explaining practice's business, and is not told.
            let about = match target {
                Target::Patient(id) => Some(id.as_str()),
                _ => None,
            };
            match db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs_number.as_str())?
                .filter(|p| about == Some(p.id.as_str()))
            {
                Some(p) => {
                    l.identity = Some(IdentityLink::Bound {
                        patient_id: p.id.clone(),
                    });
                    l.own = Some(p);
                }
                None => l.identity = Some(IdentityLink::NoRecord),
            }
        }
    }
    let patient = match target {
        Target::None | Target::Pending => None,
        Target::Patient(id) => {
            l.audit_patient = Some(id.clone());
            Some(Fetch::Id(id.clone()))
        }
        Target::Task(id) => {
            l.task = match db::outbox::find(c, id)? {
                Some(j) => Some(AnyTask::Job(j)),
                None => match db::reviews::find(c, id)? {
                    Some(r) => Some(AnyTask::Review(r)),
                    None => match db::proxy_roles::find_review(c, id)? {
                        Some(r) => Some(AnyTask::ProxyReview(r)),
                        None => db::bulk_jobs::find(c, id)?.map(AnyTask::Bulk),
                    },
                },
            };
            match &l.task {
                Some(AnyTask::Bulk(j)) => {
                    l.practice = db::practices::find(c, &j.practice_id)?;
                    l.audit_practice = l.practice.as_ref().map(|p| p.ods_code.as_str().to_owned());
                    None
                }
                Some(t) => {
                    let patient_id = t.patient_id().unwrap_or_default().to_owned();
                    l.audit_patient = Some(patient_id.clone());
                    Some(Fetch::Id(patient_id))
                }
                None => None,
            }
        }
        Target::OwnRecord => {
            l.audit_patient = l.own.as_ref().map(|p| p.id.clone());
            l.own.as_ref().map(|p| Fetch::Id(p.id.clone()))
        }
        Target::PatientNhs(nhs) => Some(Fetch::Nhs(nhs.as_str().to_owned())),
        Target::AccessRequest(id) => {
            l.request = db::proxy_roles::find_request(c, id)?;
            match &l.request {
                Some(r) => {
                    l.part = Some(match &l.person {
                        Some(p) if p.as_str() == r.patient_nhs_number => RolePart::Patient,
                        Some(p) if p.as_str() == r.proxy_nhs_number => RolePart::Proxy,
                        _ => RolePart::None,
                    });
                    l.audit_patient = r.patient_id.clone();
                    r.patient_id.clone().map(Fetch::Id)
                }
                None => None,
            }
        }
        Target::ProxyRole(id) => {
            l.role = db::proxy_roles::find(c, id)?;
            match &l.role {
                Some(role) => {
                    l.part = Some(match &l.person {
                        Some(p) if *p == role.patient_nhs_number => RolePart::Patient,
                        Some(p) if *p == role.proxy_nhs_number => RolePart::Proxy,
                        _ => RolePart::None,
                    });
                    l.audit_patient = Some(role.patient_id.clone());
                    Some(Fetch::Id(role.patient_id.clone()))
                }
                None => None,
            }
        }
        Target::Practice(reference) => {
            l.place_practice(match reference {
                PracticeRef::Id(id) => db::practices::find(c, id)?,
                PracticeRef::Ods(ods) => db::practices::find_by_ods(c, ods)?,
            });
            None
        }
        Target::AuditExport(id) => {
            l.export = db::audit_exports::find(c, id)?;
            if let Some(ods) = l.export.as_ref().and_then(|e| OdsCode::parse(&e.practice).ok()) {
                l.place_practice(db::practices::find_by_ods(c, &ods)?);
            }
            None
        }
    };
    // The patient with their practice, account and codes, in one round trip.
    let patient = match patient {
        Some(Fetch::Id(id))
            if own_context
                .as_ref()
                .is_some_and(|o: &PatientContext| o.patient.id == id) =>
        {
            own_context
        }
        Some(Fetch::Id(id)) => db::reads::patient_context(c, &id)?,
        Some(Fetch::Nhs(nhs)) => db::reads::patient_context_by_nhs(c, &nhs)?,
        None => None,
    };
    l.place(patient);
    if let Some(p) = &l.patient {
        // A person asking about someone else's record may be their proxy: the role that counts
        // is an active one if there is one, else the most recent.
        if l.role.is_none()
            && let Some(person) = &l.person
            && l.own.as_ref().is_none_or(|own| own.id != p.id)
        {
            let mut roles = db::proxy_roles::for_pair(c, person, &p.id)?;
            roles.sort_by_key(|r| (r.status != RoleStatus::Active, std::cmp::Reverse(r.updated_at)));
            l.role = roles.into_iter().find(|r| r.status != RoleStatus::EnteredInError);
        }
    }
    Ok(l)
}

/// The commonest decisions' facts, read with the others waiting at the moment
/// (`ContextReader`): staff about one patient or their practice (a search), a person about
/// their own record through their token's binding. `None` for anything else, and for a person
/// whose binding is not in place yet: those are loaded on their own by [`load`].
async fn gathered(core: &Core, who: &Who, target: &Target) -> Result<Option<Loaded>> {
    Ok(match (who, target) {
        (Who::Staff | Who::System, Target::Patient(id)) => {
            Some(staff_patient(id, core.reader.patient_context(id).await?))
        }
        (Who::Staff | Who::System, Target::Practice(PracticeRef::Ods(ods))) => {
            let practice = core.reader.practice_by_ods(ods.as_str()).await?;
            let mut l = Loaded::default();
            l.place_practice(practice);
            Some(l)
        }
        (
            Who::Person {
                issuer,
                subject,
                nhs_number,
                ..
            },
            Target::OwnRecord | Target::Patient(_),
        ) => {
            let key = db::reads::BindingKey {
                issuer: issuer.clone(),
                subject: subject.clone(),
                nhs: nhs_number.as_str().to_owned(),
            };
            match core.reader.current_binding(key).await? {
                Some((binding, context))
                    if matches!(target, Target::Patient(id) if *id == context.patient.id)
                        || matches!(target, Target::OwnRecord) =>
                {
                    Some(own_record(nhs_number, binding, context))
                }
                _ => None,
            }
        }
        _ => None,
    })
}

/// What a person's decision about their own record needs when their token's binding is in
/// place: the same as [`load`] gives, from the binding and context read with others'.
fn own_record(person: &NhsNumber, binding: Binding, context: PatientContext) -> Loaded {
    let mut l = Loaded {
        person: Some(person.clone()),
        identity: Some(IdentityLink::Bound {
            patient_id: context.patient.id.clone(),
        }),
        own: Some(context.patient.clone()),
        binding: Some(binding),
        audit_patient: Some(context.patient.id.clone()),
        ..Loaded::default()
    };
    l.place(Some(context));
    l
}

/// What a staff or system decision about the patient with this id needs: the same as [`load`]
/// gives for them, from a context read with other requests' (`ContextReader`).
fn staff_patient(id: &str, context: Option<PatientContext>) -> Loaded {
    let mut l = Loaded {
        audit_patient: Some(id.to_owned()),
        ..Loaded::default()
    };
    l.place(context);
    l
}

/// How the target patient is to be looked up.
enum Fetch {
    Id(String),
    Nhs(String),
}

impl Loaded {
    /// The target practice.
    fn place_practice(&mut self, practice: Option<PracticeRecord>) {
        self.audit_practice = practice.as_ref().map(|p| p.ods_code.as_str().to_owned());
        self.practice = practice;
    }

    /// The target patient with their practice, account and codes.
    fn place(&mut self, context: Option<PatientContext>) {
        if let Some(ctx) = context {
            self.practice = Some(ctx.practice);
            self.account = ctx.account;
            self.codes = ctx.codes;
            self.audit_practice = Some(ctx.patient.practice_ods.as_str().to_owned());
            if self.audit_patient.is_none() {
                self.audit_patient = Some(ctx.patient.id.clone());
            }
            self.patient = Some(ctx.patient);
        }
    }

    /// The role a proxy acts through for this request, if that is how they reach the patient.
    fn acting_role(&self) -> Option<&ProxyRole> {
        match (&self.role, &self.patient, &self.person) {
            (Some(role), Some(_), Some(person)) if role.proxy_nhs_number == *person && self.part.is_none() => {
                Some(role)
            }
            _ => None,
        }
    }

    /// What the gateway holds about the target patient, for the entitlements model.
    fn state<'a>(&'a self, patient: &'a PatientRecord) -> Option<PatientState<'a>> {
        Some(PatientState {
            patient,
            practice: self.practice.as_ref()?,
            account: self.account.as_ref(),
            codes: &self.codes,
        })
    }

    /// The engine's view of what was loaded.
    fn facts(&self, actor: ActorFacts, target: &Target, today: chrono::NaiveDate) -> (ActorFacts, TargetFacts) {
        let actor = match actor {
            ActorFacts::Person(mut p) => {
                p.identity = self.identity.clone().unwrap_or(IdentityLink::Unknown);
                ActorFacts::Person(p)
            }
            other => other,
        };
        let person = matches!(actor, ActorFacts::Person(_));
        let practice_facts = |ods: &OdsCode| PracticeFacts {
            ods: ods.clone(),
            online_services_enabled: self.practice.as_ref().is_some_and(|pr| pr.settings.enabled),
        };
        let patient_facts = |p: &PatientRecord| -> Box<PatientFacts> {
            let relationship = match (&self.own, person, self.acting_role(), self.state(p)) {
                (_, false, _, _) => Relationship::NotApplicable,
                (Some(own), true, _, Some(state)) if own.id == p.id => {
                    Relationship::Own(Box::new(entitlements::own(&state, today)))
                }
                (_, true, Some(role), Some(state)) => Relationship::Proxy(Box::new(ProxyFacts {
                    role_id: role.id.clone(),
                    relationship: role
                        .relationships
                        .first()
                        .map_or_else(|| role.legal_basis.code().to_owned(), |r| r.code.clone()),
                    entitlements: entitlements::proxy(&state, role, today),
                })),
                _ => Relationship::Unrelated,
            };
            Box::new(PatientFacts {
                nhs_number: p.details.identifier.nhs_number(),
                practice: practice_facts(&p.practice_ods),
                birth_date: p.details.birth_date,
                relationship,
            })
        };
        let facts = match target {
            Target::None => TargetFacts::None,
            Target::Pending => TargetFacts::Pending,
            Target::Practice(_) => TargetFacts::Practice(self.practice.as_ref().map(|p| practice_facts(&p.ods_code))),
            Target::OwnRecord => TargetFacts::OwnRecord(self.patient.as_ref().map(patient_facts)),
            // An export of another practice is answered exactly like one that does not exist.
            Target::AuditExport(_) => {
                TargetFacts::PracticeJob(self.practice.as_ref().map(|p| practice_facts(&p.ods_code)))
            }
            Target::Task(_) if matches!(self.task, Some(AnyTask::Bulk(_))) => {
                TargetFacts::PracticeJob(self.practice.as_ref().map(|p| practice_facts(&p.ods_code)))
            }
            Target::Patient(_) | Target::Task(_) | Target::PatientNhs(_) => {
                TargetFacts::Patient(self.patient.as_ref().map(patient_facts))
            }
            Target::ProxyRole(_) => TargetFacts::ProxyRole(match (&self.part, &self.role, &self.patient) {
                (Some(part), Some(role), Some(p)) => Some(Box::new(RoleFacts {
                    practice: Some(practice_facts(&p.practice_ods)),
                    patient_nhs_number: role.patient_nhs_number.clone(),
                    established: matches!(role.status, RoleStatus::Active | RoleStatus::Inactive),
                    part: *part,
                })),
                _ => None,
            }),
            // An access request is its submitter's own, whether or not it names a patient the
            // gateway knows: they see it the same way in both cases.
            Target::AccessRequest(_) => TargetFacts::ProxyRole(match (&self.part, &self.request) {
                (Some(part), Some(request)) => NhsNumber::parse(&request.patient_nhs_number).ok().map(|nhs| {
                    Box::new(RoleFacts {
                        practice: self.patient.as_ref().map(|p| practice_facts(&p.practice_ods)),
                        patient_nhs_number: nhs,
                        established: *part == RolePart::Proxy,
                        part: *part,
                    })
                }),
                _ => None,
            }),
        };
        (actor, facts)
    }

    /// What is in effect for the person acting, as the decision saw it.
    fn entitlements(&self, facts: &TargetFacts) -> Option<Entitlements> {
        let patient = match facts {
            TargetFacts::Patient(Some(p)) | TargetFacts::OwnRecord(Some(p)) => p,
            _ => return None,
        };
        match &patient.relationship {
            Relationship::Own(e) => Some((**e).clone()),
            Relationship::Proxy(p) => Some(p.entitlements.clone()),
            Relationship::Unrelated | Relationship::NotApplicable => None,
        }
    }
}

/// Who `$explain-access` explains a decision for.
#[derive(Debug, Clone)]
pub enum Subject {
    /// The caller themself.
    Caller,
    /// A person, by NHS number, with the vector of trust their token would carry.
    Person { nhs_number: NhsNumber, vot: Option<String> },
    /// A caller as the audit trail names them (`staff|issuer|subject`, ...), with the facts
    /// last seen for them.
    CallerKey(String),
}

/// The engine's decision for `subject` doing `action` to a patient, with its full trace. The
/// explaining caller must be staff of the patient's practice (or allowed to audit there).
pub async fn explain(
    core: &Core,
    caller: &Caller,
    patient_id: &str,
    subject: Subject,
    action: Action,
) -> Result<Decision> {
    authorize(
        core,
        caller,
        Action::ExplainAccess,
        Target::Patient(patient_id.to_owned()),
    )
    .await?;
    let (actor, who) = match subject {
        Subject::Caller => (actor_facts(&caller.principal), Who::of(&caller.principal)),
        Subject::Person { nhs_number, vot } => {
            let vot = vot.unwrap_or_else(|| "P9.Cp.Cd".to_owned());
            let level = crate::domain::vot_level(&vot).ok_or_else(|| {
                Error::rejected(
                    super::Reason::InvalidRequest,
                    "vot must be a vector of trust such as P9.Cp.Cd",
                )
                .at("vot")
            })?;
            (
                ActorFacts::Person(PersonFacts {
                    nhs_number: nhs_number.clone(),
                    proofing_level: level,
                    vot: Some(vot),
                    identity: IdentityLink::Unknown,
                    delegated_for: None,
                }),
                Who::Named { nhs_number },
            )
        }
        Subject::CallerKey(key) => {
            let found = {
                let key = key.clone();
                db::run(&core.pool, move |c| crate::audit::snapshot(c, &key)).await?
            };
            let snapshot = found.ok_or_else(|| {
                Error::rejected(
                    super::Reason::InvalidRequest,
                    "the gateway has not seen a caller with this key",
                )
                .at("actor")
            })?;
            actor_from_snapshot(&snapshot)
                .ok_or_else(|| Error::internal("a stored actor snapshot could not be read"))?
        }
    };
    let target = Target::Patient(patient_id.to_owned());
    let loaded = {
        let (who, target) = (
            match &who {
                // An explanation never binds anyone: look the person up by NHS number instead.
                Who::Person { nhs_number, .. } => Who::Named {
                    nhs_number: nhs_number.clone(),
                },
                other => other.clone(),
            },
            target.clone(),
        );
        db::run(&core.pool, move |c| load(c, &who, &target)).await?
    };
    let (actor, facts) = loaded.facts(actor, &target, core.clock.today());
    Ok(policy::decide(
        &core.policy,
        &Facts {
            action,
            actor,
            target: facts,
            today: core.clock.today(),
        },
    ))
}

fn actor_from_snapshot(s: &ActorSnapshot) -> Option<(ActorFacts, Who)> {
    let v: Value = serde_json::from_str(&s.facts).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match s.kind.as_str() {
        "staff" => {
            let roles = v
                .get("roles")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some(RoleAssignment {
                        organisation: OdsCode::parse(r.get("organisation")?.as_str()?).ok()?,
                        role: r.get("role").and_then(Value::as_str).map(str::to_owned),
                    })
                })
                .collect();
            Some((ActorFacts::Staff(StaffFacts { roles }), Who::Staff))
        }
        "system" => Some((
            ActorFacts::System(SystemFacts {
                client_id: text("clientId")?,
                scopes: v
                    .get("scopes")?
                    .as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            }),
            Who::System,
        )),
        "patient" => {
            let nhs_number = NhsNumber::parse(&text("nhsNumber")?).ok()?;
            let level = ProofingLevel::parse(&text("proofingLevel")?)?;
            Some((
                ActorFacts::Person(PersonFacts {
                    nhs_number: nhs_number.clone(),
                    proofing_level: level,
                    vot: text("vot"),
                    identity: IdentityLink::Unknown,
                    delegated_for: None,
                }),
                Who::Named { nhs_number },
            ))
        }
        _ => None,
    }
}

/// Whether a refusal answers like a missing resource.
pub fn hides_target(refusal: &Refusal) -> bool {
    *refusal == Refusal::NotVisible
}
