//! Proxy access: access requests, proxy roles and their lifecycle, what they grant, the
//! relationships they stand for, and forwarding links to the patient's clinical system.
//!
//! Who may see and change a role is decided by the engine; the rules about what a role may be
//! (lifecycle, reasons, legal basis, ages) live in `domain::proxy`.

use chrono::{NaiveDate, NaiveDateTime};
use rand::Rng;

use super::access::{self, Permit, Target};
use super::jobs::{self, JobPayload};
use super::{Caller, Core, Error, Result};
use crate::config::SupplierSettings;
use crate::db::{self, DbConnection, DbError};
use crate::domain::entitlements::{self, PatientState};
use crate::domain::policy::{self, Action, ActorFacts, Facts, PracticeFacts, RoleFacts, RolePart, TargetFacts};
use crate::domain::proxy::{
    AccessRequest, AccessRequestForm, Changer, Problem, ProxyGrants, ProxyReview, ProxyRole, REQUEST_REPEAT_DAYS,
    ReasonRecord, RoleChange, RoleRequest, RoleStatus, StatusReason,
};
use crate::domain::{
    AccessSettings, JobSubject, NhsNumber, OdsCode, PatientAccess, PatientIdentifierSystem, PatientRecord,
    PracticeRecord,
};
use crate::identity::Principal;

fn problem(p: Problem) -> Error {
    Error::Proxy(p)
}

/// The short code an applicant quotes: ten letters and digits without look-alikes.
fn reference_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A role that is still a relationship: proposed, active or inactive.
fn is_live(role: &ProxyRole) -> bool {
    matches!(role.status, RoleStatus::Proposed | RoleStatus::Active)
}

fn find_patient(c: &mut DbConnection, nhs: &NhsNumber) -> std::result::Result<Option<PatientRecord>, DbError> {
    db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs.as_str())
}

/// The supplier jobs a change to a role needs: link it when it becomes active, revoke it when
/// it stops being active, and send what it gives when that changes while it is active. What
/// the supplier is sent is what is in effect through the role (never beyond the patient's own
/// access); `after` keeps what was sent.
fn jobs_for(before: &ProxyRole, after: &mut ProxyRole, state: &PatientState<'_>, today: NaiveDate) -> Vec<JobPayload> {
    let was_active = before.status == RoleStatus::Active;
    let is_active = after.status == RoleStatus::Active;
    if is_active && !was_active {
        let access = entitlements::link_for_supplier(state, after, today);
        after.sent_access = Some(access.clone());
        vec![link_payload(after, state, access)]
    } else if was_active && !is_active {
        after.sent_access = None;
        vec![JobPayload::RevokeProxy {
            reason: after.reason.reason.code().to_owned(),
        }]
    } else if is_active {
        resend(after, state, today).into_iter().collect()
    } else {
        vec![]
    }
}

/// The change to an active link the supplier needs, if what is in effect through the role is
/// not what it was last told.
fn resend(role: &mut ProxyRole, state: &PatientState<'_>, today: NaiveDate) -> Option<JobPayload> {
    let access = entitlements::link_for_supplier(state, role, today);
    if role.sent_access.as_ref() == Some(&access) {
        return None;
    }
    role.sent_access = Some(access.clone());
    Some(JobPayload::SetProxyAccess { access })
}

fn link_payload(role: &ProxyRole, state: &PatientState<'_>, access: AccessSettings) -> JobPayload {
    JobPayload::LinkProxy {
        patient_identifier: state.patient.details.identifier.value().to_owned(),
        proxy_nhs_number: role.proxy_nhs_number.as_str().to_owned(),
        ods_code: state.practice.ods_code.as_str().to_owned(),
        relationship: role
            .relationships
            .first()
            .map_or_else(|| "Personal".to_owned(), |r| r.code.clone()),
        access,
        end_date: role.period_end.map(|e| e.date()),
    }
}

fn enqueue(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    role: &ProxyRole,
    state: &PatientState<'_>,
    jobs: Vec<JobPayload>,
) -> std::result::Result<(), DbError> {
    for payload in jobs {
        let job = jobs::job(
            settings,
            JobSubject::Role(&role.id),
            &state.patient.id,
            state.practice.supplier,
            &payload,
        );
        db::outbox::enqueue(c, &job)?;
    }
    Ok(())
}

/// Links a role stored as active at the patient's clinical system, through the outbox (a role
/// made active outside [`update`], such as seed data). In the caller's transaction.
pub fn enqueue_link(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    role: &mut ProxyRole,
    today: NaiveDate,
) -> std::result::Result<(), DbError> {
    let Some(ctx) = db::reads::patient_context(c, &role.patient_id)? else {
        return Ok(());
    };
    let state = ctx.state();
    let unlinked = ProxyRole {
        status: RoleStatus::Proposed,
        ..role.clone()
    };
    let jobs = jobs_for(&unlinked, role, &state, today);
    if !db::proxy_roles::save(c, role)? {
        return Err(DbError::Query("a proxy role changed while it was linked".into()));
    }
    enqueue(c, settings, role, &state, jobs)
}

/// Whether `a` gives nothing that `b` does not: no service `b` leaves off, no more of the record,
/// no earlier history.
fn gives_no_more(a: &AccessSettings, b: &AccessSettings) -> bool {
    let services = a.services.within(&b.services);
    let history = match (a.record_level, a.record_from, b.record_from) {
        (crate::domain::RecordAccessLevel::Full, Some(x), Some(y)) => x >= y,
        _ => true,
    };
    services && a.record_level <= b.record_level && history
}

/// Which re-sent links a pass of [`sync_links`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Only links that now give less: sent before the patient's own access is lowered, so the
    /// supplier never holds a proxy with more than the patient.
    Lowered,
    /// Every link whose effect changed.
    All,
}

/// Tells the patient's clinical system again what each of their active proxy links gives,
/// where that changed with the patient's own access (a change staff made, a code, the model, a
/// birthday, a confirmation from the supplier). In the caller's transaction, as it reads the
/// patient now; the outbox runs a patient's jobs in the order they were made. Returns how many
/// links were sent.
pub fn sync_links(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    patient_id: &str,
    today: NaiveDate,
    pass: Links,
) -> std::result::Result<usize, DbError> {
    let mut roles: Vec<ProxyRole> = db::proxy_roles::for_patient(c, patient_id)?
        .into_iter()
        .filter(|r| r.status == RoleStatus::Active)
        .collect();
    if roles.is_empty() {
        return Ok(0);
    }
    let Some(ctx) = db::reads::patient_context(c, patient_id)? else {
        return Ok(0);
    };
    let state = ctx.state();
    let mut sent = 0;
    for role in &mut roles {
        // A role that lapsed or whose patient moved is ended by the transitions or the event,
        // which revoke its link; only links in force are re-sent here.
        if !entitlements::proxy(&state, role, today).standing.is_active() {
            continue;
        }
        if pass == Links::Lowered
            && role
                .sent_access
                .as_ref()
                .is_none_or(|sent| !gives_no_more(&entitlements::link_for_supplier(&state, role, today), sent))
        {
            continue;
        }
        let Some(job) = resend(role, &state, today) else {
            continue;
        };
        if !db::proxy_roles::save(c, role)? {
            return Err(DbError::Query("a proxy role changed while its link was re-sent".into()));
        }
        enqueue(c, settings, role, &state, vec![job])?;
        sent += 1;
    }
    Ok(sent)
}

/// The practice attests, by making a role active, that coercion and safeguarding were
/// considered: the gateway records who did so and when.
fn attest(role: &mut ProxyRole, by: &str, now: NaiveDateTime) {
    role.assessment.coercion_considered = true;
    role.assessment.safeguarding_considered = true;
    role.assessment.attested_by = Some(by.to_owned());
    role.assessment.attested_at = Some(now);
}

/// `POST /QuestionnaireResponse`: a person asks for proxy access (or a patient nominates a
/// proxy). When the named patient is registered at a practice the gateway serves (and alive),
/// it makes a proposed role and a review Task there.
///
/// The requester learns nothing about the patient they name: the answer is the same whether or
/// not the NHS number is registered anywhere, and the proposed role stays out of their sight
/// until the practice makes it active. What is refused is refused for the request itself (its
/// form, a repeat, too many requests), never for what the gateway holds about the patient.
pub async fn submit_request(
    core: &Core,
    caller: &Caller,
    form: AccessRequestForm,
    body: String,
) -> Result<AccessRequest> {
    let Principal::Patient(me) = &caller.principal else {
        return Err(Error::internal("an access request from a caller who is not a person"));
    };
    let refused = |p: Problem| async move {
        access::conclude(core, caller, None).await?;
        Err(problem(p))
    };
    if me.nhs_number != form.source_nhs_number {
        return refused(Problem::Forbidden(
            "the access request's source must be the person signed in".into(),
        ))
        .await;
    }
    if form.proxy_nhs_number == form.patient_nhs_number {
        return refused(Problem::BadRequest(
            "a person cannot ask for proxy access to their own record".into(),
        ))
        .await;
    }
    let now = core.clock.now();
    let submitted_by = caller.principal.caller_key();
    let per_day = i64::from(core.settings.identity.access_requests_per_day);
    let outcome = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            if db::proxy_roles::requests_submitted_since(c, &submitted_by, now - chrono::Duration::hours(24))?
                >= per_day
            {
                return Ok(Err(Problem::Throttled(format!(
                    "no more than {per_day} proxy access requests can be made in 24 hours"
                ))));
            }
            // A repeat, as VRS has it: a role between the two is proposed or active (the
            // requester is a party to it, so it tells them nothing about a stranger), or the same pair was asked for within the repeat window, whatever
            // became of it (which the requester cannot see). For a number no practice here
            // holds there is never a role, so the answer depends on the requester's own
            // requests alone.
            let live = db::proxy_roles::search(c, Some(&form.proxy_nhs_number), Some(&form.patient_nhs_number))?
                .iter()
                .any(is_live);
            let since = now - chrono::Duration::days(REQUEST_REPEAT_DAYS);
            if live
                || db::proxy_roles::request_for_pair_since(c, &form.proxy_nhs_number, &form.patient_nhs_number, since)?
            {
                return Ok(Err(Problem::DuplicateRelationship));
            }
            let proposal = RoleRequest {
                status: RoleStatus::Proposed,
                reason: ReasonRecord {
                    reason: StatusReason::ApplicationSubmitted,
                    text: None,
                },
                patient_nhs_number: form.patient_nhs_number.clone(),
                proxy_nhs_number: form.proxy_nhs_number.clone(),
                legal_basis: form.legal_basis,
                relationships: form.relationships.clone(),
                grantor: None,
                date_time: form.authored,
                period_start: None,
                period_end: None,
                grants: Some(form.requested.clone()),
                assessment: Some(crate::domain::proxy::Assessment {
                    child_consent: form.child_consent.clone(),
                    note: form.record_requested.then(|| "record access was asked for".to_owned()),
                    ..Default::default()
                }),
            };
            // Checked before the patient is looked up: what is wrong with a request does not
            // depend on whom it names.
            let mut role = match ProxyRole::create(uuid::Uuid::new_v4().to_string(), proposal, "", "", now.date(), now)
            {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            role.period_start = None;
            let mut request = AccessRequest {
                id: uuid::Uuid::new_v4().to_string(),
                reference: reference_code(),
                proxy_nhs_number: form.proxy_nhs_number.as_str().to_owned(),
                patient_nhs_number: form.patient_nhs_number.as_str().to_owned(),
                patient_id: None,
                role_id: None,
                body,
                submitted_by,
                created_at: now,
            };
            // A patient who has died gets no new role; one the gateway does not know has no
            // practice to review it. Either way the request is kept, and answered alike.
            let patient = find_patient(c, &form.patient_nhs_number)?.filter(|p| p.deceased_on.is_none());
            if let Some(patient) = &patient {
                request.patient_id = Some(patient.id.clone());
                role.patient_id = patient.id.clone();
                role.practice_id = patient.practice_id.clone();
                role.access_request_id = Some(request.id.clone());
                request.role_id = Some(role.id.clone());
                db::proxy_roles::insert(c, &role)?;
                db::proxy_roles::insert_review(
                    c,
                    &ProxyReview::requested(uuid::Uuid::new_v4().to_string(), &role, now),
                )?;
            }
            db::proxy_roles::insert_request(c, &request)?;
            Ok(Ok((request, patient)))
        })
    })
    .await?;
    match outcome {
        Ok((request, patient)) => {
            // Audited against the patient it names, when there is one.
            access::conclude(core, caller, patient.as_ref()).await?;
            Ok(request)
        }
        Err(p) => refused(p).await,
    }
}

/// `GET /QuestionnaireResponse/{id}`.
pub fn request(permit: &Permit) -> Result<AccessRequest> {
    permit
        .request
        .clone()
        .ok_or_else(|| problem(Problem::AccessRequestNotFound))
}

/// Whether the engine lets the caller see one role among search results.
fn visible(core: &Core, caller: &Caller, action: Action, role: &ProxyRole, patient: Option<&PatientRecord>) -> bool {
    let actor = access::actor_facts(&caller.principal);
    let part = match &caller.principal {
        Principal::Patient(p) if p.nhs_number == role.patient_nhs_number => RolePart::Patient,
        Principal::Patient(p) if p.nhs_number == role.proxy_nhs_number => RolePart::Proxy,
        _ => RolePart::None,
    };
    let target = TargetFacts::ProxyRole(patient.map(|p| {
        Box::new(RoleFacts {
            practice: Some(PracticeFacts {
                ods: p.practice_ods.clone(),
                online_services_enabled: true,
            }),
            patient_nhs_number: role.patient_nhs_number.clone(),
            established: matches!(role.status, RoleStatus::Active | RoleStatus::Inactive),
            part,
        })
    }));
    let actor = match actor {
        ActorFacts::Person(mut p) => {
            p.identity = policy::IdentityLink::Unknown;
            ActorFacts::Person(p)
        }
        other => other,
    };
    policy::decide(
        &core.policy,
        &Facts {
            action,
            actor,
            target,
            today: core.clock.today(),
        },
    )
    .is_allowed()
}

/// A role as searches and reads return it: with its patient's record and, where the gateway
/// holds one at the same practice, the proxy's own record.
#[derive(Debug, Clone)]
pub struct RoleView {
    pub role: ProxyRole,
    pub patient: Option<PatientRecord>,
    pub proxy: Option<PatientRecord>,
}

fn proxy_record(c: &mut DbConnection, role: &ProxyRole) -> std::result::Result<Option<PatientRecord>, DbError> {
    Ok(find_patient(c, &role.proxy_nhs_number)?.filter(|p| p.practice_id == role.practice_id))
}

/// The role as it stands today: an active role that has lapsed (end date, review age, 16,
/// unused for five years) or whose patient moved practice or died is shown inactive with the
/// reason, whether or not the change has been stored yet.
fn as_of_today(
    mut role: ProxyRole,
    patient: Option<&PatientRecord>,
    review_age: u8,
    today: chrono::NaiveDate,
) -> ProxyRole {
    if let Some(reason) = patient.and_then(|p| crate::domain::proxy::ended_today(&role, p, review_age, today)) {
        role.end(reason);
    }
    role
}

fn review_age(c: &mut DbConnection, role: &ProxyRole) -> std::result::Result<u8, DbError> {
    Ok(db::practices::find(c, &role.practice_id)?.map_or(13, |p| p.settings.proxy_review_age))
}

async fn search_roles(
    core: &Core,
    caller: &Caller,
    action: Action,
    proxy: Option<NhsNumber>,
    patient: Option<NhsNumber>,
) -> Result<Vec<RoleView>> {
    access::authorize(core, caller, action, Target::None).await?;
    let today = core.clock.today();
    let found = db::run(&core.pool, move |c| {
        let roles = db::proxy_roles::search(c, proxy.as_ref(), patient.as_ref())?;
        let mut out = Vec::with_capacity(roles.len());
        for role in roles {
            let patient = db::patients::find(c, &role.patient_id)?;
            let proxy = proxy_record(c, &role)?;
            let age = review_age(c, &role)?;
            let role = as_of_today(role, patient.as_ref(), age, today);
            out.push(RoleView { role, patient, proxy });
        }
        Ok(out)
    })
    .await?;
    Ok(found
        .into_iter()
        .filter(|v| visible(core, caller, action, &v.role, v.patient.as_ref()))
        .collect())
}

/// Each role shown names its patient, and its proxy where the gateway holds their record: their
/// trails say who saw them.
fn shown(caller: &Caller, action: Action, views: Vec<RoleView>) -> Vec<RoleView> {
    access::disclosed(
        caller,
        action,
        views.iter().flat_map(|v| v.patient.iter().chain(v.proxy.iter())),
    );
    views
}

/// `GET /RelatedPerson`: the relationships of a proxy, or of a proxy-patient pair.
pub async fn related_persons(
    core: &Core,
    caller: &Caller,
    proxy: Option<NhsNumber>,
    patient: Option<NhsNumber>,
) -> Result<Vec<RoleView>> {
    let found = search_roles(core, caller, Action::SearchRelatedPersons, proxy, patient).await?;
    let live = found
        .into_iter()
        .filter(|v| {
            matches!(
                v.role.status,
                RoleStatus::Proposed | RoleStatus::Active | RoleStatus::Inactive
            )
        })
        .collect();
    Ok(shown(caller, Action::SearchRelatedPersons, live))
}

/// `GET /Consent`: roles by performer and/or patient, in any of `statuses`, at `practice`
/// when one is named.
pub async fn consents(
    core: &Core,
    caller: &Caller,
    performer: Option<NhsNumber>,
    patient: Option<NhsNumber>,
    statuses: Option<Vec<RoleStatus>>,
    practice: Option<OdsCode>,
) -> Result<Vec<RoleView>> {
    if let Some(ods) = &practice {
        let ods = ods.clone();
        let known = db::run(&core.pool, move |c| db::practices::find_by_ods(c, &ods)).await?;
        if known.is_none() {
            access::authorize(core, caller, Action::SearchProxyRoles, Target::None).await?;
            return Err(problem(Problem::PracticeNotFound));
        }
    }
    let found = search_roles(core, caller, Action::SearchProxyRoles, performer, patient).await?;
    let matching = found
        .into_iter()
        .filter(|v| statuses.as_ref().is_none_or(|s| s.contains(&v.role.status)))
        .filter(|v| v.role.status != RoleStatus::EnteredInError || statuses.is_some())
        .filter(|v| {
            practice
                .as_ref()
                .is_none_or(|ods| v.patient.as_ref().is_some_and(|p| p.practice_ods == *ods))
        })
        .collect();
    Ok(shown(caller, Action::SearchProxyRoles, matching))
}

/// The role a permit was given for; a role marked entered in error cannot be retrieved.
fn permitted_role(permit: &Permit) -> Result<ProxyRole> {
    let role = permit.role.clone().ok_or_else(|| problem(Problem::RoleNotFound))?;
    if role.status == RoleStatus::EnteredInError {
        return Err(problem(Problem::RoleInvalidated));
    }
    Ok(role)
}

/// `GET /Consent/{id}`.
pub async fn consent(core: &Core, permit: &Permit) -> Result<RoleView> {
    let role = permitted_role(permit)?;
    let lookup = role.clone();
    let (proxy, age) = db::run(&core.pool, move |c| {
        Ok((proxy_record(c, &lookup)?, review_age(c, &lookup)?))
    })
    .await?;
    Ok(RoleView {
        role: as_of_today(role, permit.patient.as_ref(), age, core.clock.today()),
        patient: permit.patient.clone(),
        proxy,
    })
}

/// `POST /Consent`: staff or a system create a role, proposed or active.
pub async fn create(core: &Core, caller: &Caller, request: RoleRequest) -> Result<ProxyRole> {
    let permit = match access::authorize(
        core,
        caller,
        Action::CreateProxyRole,
        Target::PatientNhs(request.patient_nhs_number.clone()),
    )
    .await
    {
        Err(Error::Refused { refusal, .. }) if access::hides_target(&refusal) => {
            return Err(problem(Problem::InvalidPatient(
                "the patient is not registered at a practice the caller may act for".into(),
            )));
        }
        other => other?,
    };
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    if let Some(g) = &request.grantor
        && *g != practice.ods_code
    {
        return Err(problem(Problem::InvalidGrantorValue(format!(
            "the grantor must be the patient's practice ({})",
            practice.ods_code
        ))));
    }
    if patient.deceased_on.is_some() {
        return Err(problem(Problem::InvalidPatient(
            "the patient has died: no proxy role can be made for them".into(),
        )));
    }
    let now = core.clock.now();
    let by = caller.principal.recorded_as();
    let settings = core.settings.suppliers.clone();
    let outcome = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            let existing =
                db::proxy_roles::search(c, Some(&request.proxy_nhs_number), Some(&request.patient_nhs_number))?;
            if existing.iter().any(is_live) {
                return Ok(Err(Problem::DuplicateRelationship));
            }
            let grants = request.grants.clone();
            let mut role = match ProxyRole::create(
                uuid::Uuid::new_v4().to_string(),
                request,
                &patient.id,
                &patient.practice_id,
                patient.details.birth_date,
                now,
            ) {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            // The patient as they are inside this transaction: their access decides the cap.
            let Some(ctx) = db::reads::patient_context(c, &patient.id)? else {
                return Ok(Err(Problem::InvalidPatient("the patient record has gone".into())));
            };
            let state = ctx.state();
            if let Some(g) = grants
                && let Err(why) = entitlements::within_patient(&g, &state, now.date())
            {
                return Ok(Err(Problem::RuleNotMet(why)));
            }
            if role.status == RoleStatus::Active {
                attest(&mut role, &by, now);
            }
            let jobs = jobs_for(
                &ProxyRole {
                    status: RoleStatus::Proposed,
                    ..role.clone()
                },
                &mut role,
                &state,
                now.date(),
            );
            db::proxy_roles::insert(c, &role)?;
            if role.status == RoleStatus::Active {
                enqueue(c, &settings, &role, &state, jobs)?;
            } else {
                db::proxy_roles::insert_review(
                    c,
                    &ProxyReview::requested(uuid::Uuid::new_v4().to_string(), &role, now),
                )?;
            }
            Ok(Ok(role))
        })
    })
    .await?;
    core.provisioner.notify();
    outcome.map_err(problem)
}

/// `PATCH /Consent/{id}`: staff and systems move a role through its lifecycle; its patient or
/// proxy may end it.
pub async fn update(core: &Core, caller: &Caller, permit: Permit, changes: Vec<RoleChange>) -> Result<ProxyRole> {
    let role = permitted_role(&permit)?;
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    let changer = match caller.principal {
        Principal::Patient(_) => Changer::Party,
        _ => Changer::Practice,
    };
    if let Some(RoleChange::Grantor(g)) = changes.iter().find(|c| matches!(c, RoleChange::Grantor(_)))
        && *g != practice.ods_code
    {
        return Err(problem(Problem::InvalidGrantorValue(format!(
            "the grantor must be the patient's practice ({})",
            practice.ods_code
        ))));
    }
    let now = core.clock.now();
    let by = caller.principal.recorded_as();
    let settings = core.settings.suppliers.clone();
    let outcome = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            let Some(ctx) = db::reads::patient_context(c, &patient.id)? else {
                return Ok(Err(Problem::RoleNotFound));
            };
            let state = ctx.state();
            // A role that lapsed (or whose patient moved or died) since it was stored is changed
            // from what it is today; its end is forwarded to the supplier first.
            let mut before = as_of_today(
                role.clone(),
                Some(&ctx.patient),
                practice.settings.proxy_review_age,
                now.date(),
            );
            let mut lapsed = jobs_for(&role, &mut before, &state, now.date());
            let mut after = before.clone();
            if let Err(p) = after.apply(&changes, changer, ctx.patient.details.birth_date, now) {
                return Ok(Err(p));
            }
            if after.status == RoleStatus::Active && before.status != RoleStatus::Active {
                // Death is terminal, and a role ended by a move belongs to the practice the
                // patient left: neither comes back.
                if ctx.patient.deceased_on.is_some() {
                    return Ok(Err(Problem::InvalidStateTransition(
                        "the patient has died: the role cannot be made active again".into(),
                    )));
                }
                if after.practice_id != ctx.patient.practice_id {
                    return Ok(Err(Problem::InvalidStateTransition(
                        "the patient moved practice: the role ended with the move; the new practice can make a new one"
                            .into(),
                    )));
                }
                attest(&mut after, &by, now);
            }
            if after.grants != before.grants
                && let Err(why) = entitlements::within_patient(&after.grants, &state, now.date())
            {
                return Ok(Err(Problem::RuleNotMet(why)));
            }
            lapsed.extend(jobs_for(&before, &mut after, &state, now.date()));
            if !db::proxy_roles::save(c, &mut after)? {
                return Ok(Err(Problem::BadRequest(
                    "the role changed at the same time; read it again".into(),
                )));
            }
            if before.status == RoleStatus::Proposed && after.status != RoleStatus::Proposed {
                db::proxy_roles::close_reviews(c, &after.id, "completed", &by, None, now)?;
            }
            enqueue(c, &settings, &after, &state, lapsed)?;
            Ok(Ok(after))
        })
    })
    .await?;
    core.provisioner.notify();
    outcome.map_err(problem)
}

/// Ends every live role of a patient (they moved practice, or died), in the caller's
/// transaction, and revokes the active ones at the supplier.
pub fn end_roles(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    reason: StatusReason,
    now: NaiveDateTime,
) -> std::result::Result<usize, DbError> {
    let codes = crate::domain::record_access::CodeSet::default();
    // Only revocations are sent, to the practice the roles were made at.
    let state = PatientState {
        patient,
        practice,
        account: None,
        codes: &codes,
    };
    let mut ended = 0;
    for role in db::proxy_roles::for_patient(c, &patient.id)? {
        if !matches!(
            role.status,
            RoleStatus::Proposed | RoleStatus::Active | RoleStatus::Inactive
        ) {
            continue;
        }
        if role.status == RoleStatus::Inactive && role.reason.reason == reason {
            continue;
        }
        let before = role.clone();
        let mut after = role;
        after.end(ReasonRecord { reason, text: None });
        let jobs = jobs_for(&before, &mut after, &state, now.date());
        if db::proxy_roles::save(c, &mut after)? {
            db::proxy_roles::close_reviews(c, &after.id, "cancelled", "gateway", Some(reason.display()), now)?;
            enqueue(c, settings, &after, &state, jobs)?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// Stores the lapse of every active role that has lapsed (end date, review age, 16, five years
/// unused) and revokes it at the supplier. Returns how many roles ended.
pub async fn apply_lapses(core: &Core) -> Result<usize> {
    apply_lapses_as_of(core, core.clock.now()).await
}

/// `apply_lapses` as of a given time (the transitions' clock).
pub async fn apply_lapses_as_of(core: &Core, now: NaiveDateTime) -> Result<usize> {
    let settings = core.settings.suppliers.clone();
    let ended = db::run(&core.pool, move |c| {
        let mut ended = 0;
        let mut last = String::new();
        loop {
            let page = db::proxy_roles::page_in_status(c, RoleStatus::Active, &last, 500)?;
            let Some(tail) = page.last() else {
                break;
            };
            last = tail.id.clone();
            for role in page {
                let Some(patient) = db::patients::find(c, &role.patient_id)? else {
                    continue;
                };
                let Some(practice) = db::practices::find(c, &role.practice_id)? else {
                    continue;
                };
                let mut today = as_of_today(
                    role.clone(),
                    Some(&patient),
                    practice.settings.proxy_review_age,
                    now.date(),
                );
                if today.status == role.status {
                    continue;
                }
                let codes = crate::domain::record_access::CodeSet::default();
                // Only the revocation is sent, to the practice the role was made at.
                let state = PatientState {
                    patient: &patient,
                    practice: &practice,
                    account: None,
                    codes: &codes,
                };
                let jobs = jobs_for(&role, &mut today, &state, now.date());
                db::write_transaction(c, |c| {
                    if db::proxy_roles::save(c, &mut today)? {
                        enqueue(c, &settings, &today, &state, jobs.clone())?;
                        ended += 1;
                    }
                    Ok::<(), DbError>(())
                })?;
            }
        }
        Ok(ended)
    })
    .await?;
    if ended > 0 {
        tracing::info!(ended, "proxy roles lapsed");
        core.provisioner.notify();
    }
    Ok(ended)
}

/// `POST /Consent/{id}/$set-proxy-access`: staff set what an active or proposed role grants.
pub async fn set_access(core: &Core, caller: &Caller, permit: Permit, grants: ProxyGrants) -> Result<ProxyRole> {
    update(core, caller, permit, vec![RoleChange::Grants(grants)]).await
}

/// The patients a person acts for as a proxy, with what is in effect through each role today,
/// from the roles read with each patient's context ([`db::reads::proxy_contexts`]). Only roles
/// that have been in force are shown: a proposed role says nothing to its proxy about the
/// patient it names, and rejected roles and roles entered in error are not shown.
pub fn acting_for(found: Vec<(ProxyRole, db::reads::PatientContext)>, today: NaiveDate) -> Vec<PatientAccess> {
    found
        .into_iter()
        .filter(|(role, _)| matches!(role.status, RoleStatus::Active | RoleStatus::Inactive))
        .map(|(role, ctx)| {
            let entitlements = entitlements::proxy(&ctx.state(), &role, today);
            let account = entitlements::own(&ctx.state(), today).standing;
            PatientAccess {
                account,
                relationship: role
                    .relationships
                    .first()
                    .map_or_else(|| "proxy".to_owned(), |r| r.code.clone()),
                pending_review: None,
                patient: ctx.patient,
                entitlements,
            }
        })
        .collect()
}
