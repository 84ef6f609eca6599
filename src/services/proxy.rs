//! Proxy access: access requests, proxy roles and their lifecycle, what they grant, the
//! relationships they stand for, and forwarding links to the patient's clinical system.
//!
//! Who may see and change a role is decided by the engine; the rules about what a role may be
//! (lifecycle, reasons, legal basis, ages) live in `domain::proxy`.

use chrono::{NaiveDate, NaiveDateTime};
use rand::Rng;

use super::access::{self, Permit, Target};
use super::provisioning::{self, JobPayload};
use super::{Caller, Core, Error, Result};
use crate::config::SupplierSettings;
use crate::db::{self, DbConnection, DbError};
use crate::domain::policy::{self, Action, ActorFacts, Facts, PracticeFacts, RoleFacts, RolePart, TargetFacts};
use crate::domain::proxy::{
    AccessRequest, AccessRequestForm, Changer, Problem, ProxyGrants, ProxyReview, ProxyRole, ReasonRecord, RoleChange,
    RoleRequest, RoleStatus, StatusReason,
};
use crate::domain::{
    AccessSettings, AccountStatus, JobSubject, NhsNumber, OdsCode, PatientAccess, PatientIdentifierSystem,
    PatientRecord, PracticeRecord,
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
/// it stops being active, and send what it grants when that changes while it is active.
fn jobs_for(
    before: &ProxyRole,
    after: &ProxyRole,
    patient: &PatientRecord,
    practice: &PracticeRecord,
) -> Vec<JobPayload> {
    let mut jobs = vec![];
    let was_active = before.status == RoleStatus::Active;
    let is_active = after.status == RoleStatus::Active;
    if is_active && !was_active {
        jobs.push(link_payload(after, patient, practice));
    } else if was_active && !is_active {
        jobs.push(JobPayload::RevokeProxy {
            reason: after.reason.reason.code().to_owned(),
        });
    } else if is_active && before.grants != after.grants {
        jobs.push(JobPayload::SetProxyAccess {
            access: after.grants.as_access(),
        });
    }
    jobs
}

fn link_payload(role: &ProxyRole, patient: &PatientRecord, practice: &PracticeRecord) -> JobPayload {
    JobPayload::LinkProxy {
        patient_identifier: patient.details.identifier.value().to_owned(),
        proxy_nhs_number: role.proxy_nhs_number.as_str().to_owned(),
        ods_code: practice.ods_code.as_str().to_owned(),
        relationship: role
            .relationships
            .first()
            .map_or_else(|| "Personal".to_owned(), |r| r.code.clone()),
        access: role.grants.as_access(),
        end_date: role.period_end.map(|e| e.date()),
    }
}

/// Links an active role at the patient's clinical system, through the outbox.
pub fn enqueue_link(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    role: &ProxyRole,
    patient: &PatientRecord,
    practice: &PracticeRecord,
) -> std::result::Result<(), DbError> {
    enqueue(
        c,
        settings,
        role,
        patient,
        practice,
        vec![link_payload(role, patient, practice)],
    )
}

fn enqueue(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    role: &ProxyRole,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    jobs: Vec<JobPayload>,
) -> std::result::Result<(), DbError> {
    for payload in jobs {
        let job = provisioning::job(
            settings,
            JobSubject::Role(&role.id),
            &patient.id,
            practice.supplier,
            &payload,
        );
        db::outbox::enqueue(c, &job)?;
    }
    Ok(())
}

/// The patient's own access, which a proxy's record access may never go beyond.
fn patient_access(
    c: &mut DbConnection,
    patient: &PatientRecord,
) -> std::result::Result<Option<AccessSettings>, DbError> {
    Ok(db::accounts::find_by_patient(c, &patient.id, &patient.practice_id)?
        .filter(|a| a.status == AccountStatus::Active && a.practice_id == patient.practice_id)
        .map(|a| a.access))
}

fn within_patient(grants: &ProxyGrants, own: Option<&AccessSettings>) -> std::result::Result<(), Problem> {
    if grants.capped_by(own) != *grants {
        let own_level = own.map_or("none", |a| a.record_level.as_str());
        return Err(Problem::RuleNotMet(format!(
            "a proxy's record access cannot go beyond the patient's own ({own_level})"
        )));
    }
    Ok(())
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
/// proxy). Makes a proposed role and a review Task for the patient's practice.
pub async fn submit_request(
    core: &Core,
    caller: &Caller,
    form: AccessRequestForm,
    body: String,
) -> Result<AccessRequest> {
    let Principal::Patient(me) = &caller.principal else {
        return Err(Error::internal("an access request from a caller who is not a person"));
    };
    if me.nhs_number != form.source_nhs_number {
        access::conclude(core, caller, None).await?;
        return Err(problem(Problem::Forbidden(
            "the access request's source must be the person signed in".into(),
        )));
    }
    let now = core.clock.now();
    let submitted_by = caller.principal.caller_key();
    let outcome = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            let Some(patient) = find_patient(c, &form.patient_nhs_number)? else {
                return Ok(Err(Problem::RuleNotMet(
                    "the patient is not registered at a practice that uses this service".into(),
                )));
            };
            let existing = db::proxy_roles::search(c, Some(&form.proxy_nhs_number), Some(&form.patient_nhs_number))?;
            if existing.iter().any(is_live) {
                return Ok(Err(Problem::DuplicateRelationship));
            }
            let request = RoleRequest {
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
            let role_id = uuid::Uuid::new_v4().to_string();
            let mut role = match ProxyRole::create(
                role_id,
                request,
                &patient.id,
                &patient.practice_id,
                patient.details.birth_date,
                now,
            ) {
                Ok(r) => r,
                Err(p) => return Ok(Err(p)),
            };
            role.period_start = None;
            let request = AccessRequest {
                id: uuid::Uuid::new_v4().to_string(),
                reference: reference_code(),
                proxy_nhs_number: form.proxy_nhs_number.as_str().to_owned(),
                patient_nhs_number: form.patient_nhs_number.as_str().to_owned(),
                patient_id: Some(patient.id.clone()),
                role_id: Some(role.id.clone()),
                body,
                submitted_by,
                created_at: now,
            };
            role.access_request_id = Some(request.id.clone());
            db::proxy_roles::insert(c, &role)?;
            db::proxy_roles::insert_request(c, &request)?;
            db::proxy_roles::insert_review(c, &ProxyReview::requested(uuid::Uuid::new_v4().to_string(), &role, now))?;
            Ok(Ok((request, patient)))
        })
    })
    .await?;
    match outcome {
        Ok((request, patient)) => {
            access::conclude(core, caller, Some(&patient)).await?;
            Ok(request)
        }
        Err(p) => Err(problem(p)),
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
            practice: PracticeFacts {
                ods: p.practice_ods.clone(),
                online_services_enabled: true,
            },
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
/// unused for five years) or whose patient moved practice is shown inactive with the reason,
/// whether or not the change has been stored yet.
fn as_of_today(
    mut role: ProxyRole,
    patient: Option<&PatientRecord>,
    review_age: u8,
    today: chrono::NaiveDate,
) -> ProxyRole {
    let Some(patient) = patient else {
        return role;
    };
    if role.status == RoleStatus::Active && role.practice_id != patient.practice_id {
        role.end(ReasonRecord {
            reason: StatusReason::DeactivatedPatientGpTransferred,
            text: None,
        });
    } else if let Some(reason) = crate::domain::proxy::lapse(&role, patient.details.birth_date, today, review_age) {
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

/// `GET /RelatedPerson`: the relationships of a proxy, or of a proxy-patient pair.
pub async fn related_persons(
    core: &Core,
    caller: &Caller,
    proxy: Option<NhsNumber>,
    patient: Option<NhsNumber>,
) -> Result<Vec<RoleView>> {
    let found = search_roles(core, caller, Action::SearchRelatedPersons, proxy, patient).await?;
    Ok(found
        .into_iter()
        .filter(|v| {
            matches!(
                v.role.status,
                RoleStatus::Proposed | RoleStatus::Active | RoleStatus::Inactive
            )
        })
        .collect())
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
    Ok(found
        .into_iter()
        .filter(|v| statuses.as_ref().is_none_or(|s| s.contains(&v.role.status)))
        .filter(|v| v.role.status != RoleStatus::EnteredInError || statuses.is_some())
        .filter(|v| {
            practice
                .as_ref()
                .is_none_or(|ods| v.patient.as_ref().is_some_and(|p| p.practice_ods == *ods))
        })
        .collect())
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
            if let Some(g) = grants
                && let Err(p) = within_patient(&g, patient_access(c, &patient)?.as_ref())
            {
                return Ok(Err(p));
            }
            if role.status == RoleStatus::Active {
                attest(&mut role, &by, now);
            }
            db::proxy_roles::insert(c, &role)?;
            if role.status == RoleStatus::Active {
                let link = link_payload(&role, &patient, &practice);
                enqueue(c, &settings, &role, &patient, &practice, vec![link])?;
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
            // A role that lapsed since it was stored is changed from what it is today; its
            // lapse is forwarded to the supplier first.
            let stored = role.clone();
            let before = as_of_today(role, Some(&patient), practice.settings.proxy_review_age, now.date());
            let mut lapsed = jobs_for(&stored, &before, &patient, &practice);
            let mut after = before.clone();
            if let Err(p) = after.apply(&changes, changer, patient.details.birth_date, now) {
                return Ok(Err(p));
            }
            if after.grants != before.grants
                && let Err(p) = within_patient(&after.grants, patient_access(c, &patient)?.as_ref())
            {
                return Ok(Err(p));
            }
            if after.status == RoleStatus::Active && before.status != RoleStatus::Active {
                attest(&mut after, &by, now);
            }
            if !db::proxy_roles::save(c, &mut after)? {
                return Ok(Err(Problem::BadRequest(
                    "the role changed at the same time; read it again".into(),
                )));
            }
            if before.status == RoleStatus::Proposed && after.status != RoleStatus::Proposed {
                db::proxy_roles::close_reviews(c, &after.id, "completed", &by, None, now)?;
            }
            lapsed.extend(jobs_for(&before, &after, &patient, &practice));
            enqueue(c, &settings, &after, &patient, &practice, lapsed)?;
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
        if db::proxy_roles::save(c, &mut after)? {
            db::proxy_roles::close_reviews(c, &after.id, "cancelled", "gateway", Some(reason.display()), now)?;
            enqueue(
                c,
                settings,
                &after,
                patient,
                practice,
                jobs_for(&before, &after, patient, practice),
            )?;
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
                db::write_transaction(c, |c| {
                    if db::proxy_roles::save(c, &mut today)? {
                        enqueue(
                            c,
                            &settings,
                            &today,
                            &patient,
                            &practice,
                            jobs_for(&role, &today, &patient, &practice),
                        )?;
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

/// The patients a person acts for as a proxy, with what each role lets them do today, from
/// the roles read with each patient's context ([`db::reads::proxy_contexts`]). Rejected roles
/// and roles entered in error are not shown.
pub fn acting_for(found: Vec<(ProxyRole, db::reads::PatientContext)>, today: NaiveDate) -> Vec<PatientAccess> {
    found
        .into_iter()
        .filter(|(role, _)| {
            matches!(
                role.status,
                RoleStatus::Proposed | RoleStatus::Active | RoleStatus::Inactive
            )
        })
        .map(|(role, ctx)| {
            let own = ctx
                .account
                .as_ref()
                .filter(|a| a.status == AccountStatus::Active && a.practice_id == ctx.patient.practice_id)
                .map(|a| super::record_access::effective(&ctx.practice, &ctx.patient, &ctx.codes, a, today));
            let (patient, practice) = (ctx.patient, ctx.practice);
            let review_age = practice.settings.proxy_review_age;
            // The role as it stands today (lapsed or moved roles are inactive with their reason).
            let role = as_of_today(role, Some(&patient), review_age, today);
            let (reason, effective) = match role.status {
                RoleStatus::Active => (None, role.grants.capped_by(own.as_ref()).as_access()),
                _ => (
                    Some(
                        role.reason
                            .text
                            .clone()
                            .unwrap_or_else(|| role.reason.reason.display().to_owned()),
                    ),
                    AccessSettings::none(),
                ),
            };
            let status = role.status.code().to_owned();
            PatientAccess {
                relationship: role
                    .relationships
                    .first()
                    .map_or_else(|| "proxy".to_owned(), |r| r.code.clone()),
                role_id: Some(role.id.clone()),
                pending_review: None,
                patient,
                status,
                reason,
                effective,
            }
        })
        .collect()
}
