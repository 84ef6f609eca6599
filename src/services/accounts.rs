//! Online accounts: registration, access changes, disable/enable, linkage-key reset, the
//! registration letter, and the Tasks that track provisioning and record reviews.
//!
//! Every function takes the `Permit` that `access::authorize` gave for the request: none of
//! them can run without a decision on record.

use super::access::{AnyTask, Permit};
use super::jobs::{self, JobPayload};
use super::{Core, Error, Reason, Result};
use crate::db::{self, DbError};
use crate::domain::account::Letter;
use crate::domain::entitlements::{self, PatientState};
use crate::domain::provisioning::OutboxJob;
use crate::domain::record_access::AccessChange;
use crate::domain::registration::{self, AccessPlan, RegistrationRequest, RuleViolation};
use crate::domain::review::{ReviewDecision, ReviewTask};
use crate::domain::{AccessSettings, Attestation, JobSubject, OnlineAccount, PatientRecord, PracticeRecord};

fn condition(v: RuleViolation) -> Error {
    Error::rejected(Reason::RegistrationCondition, v.message).at(v.field)
}

/// The result of a change that was committed and handed to the outbox.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub account: OnlineAccount,
    pub job: Option<OutboxJob>,
    pub review: Option<ReviewTask>,
    pub warnings: Vec<String>,
}

pub(super) fn review_task(account: &OnlineAccount, requested: &AccessSettings, by: &str) -> ReviewTask {
    let now = db::now();
    ReviewTask {
        id: uuid::Uuid::new_v4().to_string(),
        account_id: account.id.clone(),
        patient_id: account.patient_id.clone(),
        status: "requested".into(),
        requested_access: requested.clone(),
        requested_by: by.to_owned(),
        completed_by: None,
        note: None,
        created_at: now,
        updated_at: now,
    }
}

pub fn create_payload(
    patient: &PatientRecord,
    practice: &PracticeRecord,
    email: &str,
    access: &AccessSettings,
) -> JobPayload {
    JobPayload::CreateAccount {
        patient_identifier: patient.details.identifier.value().to_owned(),
        ods_code: practice.ods_code.as_str().to_owned(),
        email: Some(email.to_owned()).filter(|e| !e.is_empty()),
        family_name: patient.details.family.clone(),
        birth_date: patient.details.birth_date,
        access: access.clone(),
        nhs_login: false,
    }
}

/// Registers the permit's patient for online services. `by` is the staff member.
#[tracing::instrument(skip_all)]
pub async fn register(core: &Core, permit: Permit, input: RegistrationRequest, by: &str) -> Result<Accepted> {
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    alive(&patient)?;
    if !practice.settings.enabled {
        return Err(Error::rejected(
            Reason::PracticeNotEnabled,
            "online services are switched off at this practice",
        ));
    }
    let now = core.clock.now().and_utc();
    let today = now.date_naive();
    registration::validate_verification(&input.verification, now).map_err(condition)?;
    let email = input
        .email
        .clone()
        .or_else(|| patient.details.email.clone())
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty());
    if let Some(e) = &email {
        if !crate::domain::is_plausible_email(e) {
            return Err(condition(RuleViolation::new("email", "the email address is not valid")));
        }
    } else if registration::email_required(practice.supplier) {
        return Err(condition(RuleViolation::new(
            "email",
            "an email address is required: this practice's clinical system cannot create an online account without one",
        )));
    }
    let attestation = Attestation {
        responsibilities_acknowledged: input.responsibilities_acknowledged,
        coercion_considered: input.coercion_considered,
        capacity_considered: input.capacity_considered,
        attested_by: by.to_owned(),
        attested_at: now,
    };
    registration::validate_attestation(&attestation).map_err(condition)?;
    let AccessPlan {
        immediate,
        after_review,
    } = registration::plan_access(&input.access, &AccessSettings::none(), input.verification.method, today)
        .map_err(condition)?;

    let email = email.unwrap_or_default();
    let settings = core.settings.suppliers.clone();
    let by = by.to_owned();
    let verification = input.verification.clone();
    let result = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            db::accounts::lock_for_patient(c, &patient.id)?;
            let existing = db::accounts::find_by_patient(c, &patient.id, &practice.id)?;
            if existing.as_ref().is_some_and(|a| !a.can_register_again()) {
                return Ok(Err(Error::rejected(
                    Reason::AccountExists,
                    "the patient already has an online account; change it with $set-online-access or $reset-online-account",
                )));
            }
            let mut warnings = Vec::new();
            if !email.is_empty() && db::accounts::email_used_by_another(c, &email, &patient.id)? {
                warnings.push("the email address is already used by another online account; check it belongs to this patient".to_owned());
            }
            let mut fresh = OnlineAccount::pending(
                uuid::Uuid::new_v4().to_string(),
                &patient.id,
                &practice.id,
                email.clone(),
                immediate.clone(),
                verification,
                attestation,
                db::now(),
            );
            // The supplier is told the access with the practice's model applied.
            let codes = db::access_codes::active(c, &patient.id)?;
            let state = PatientState {
                patient: &patient,
                practice: &practice,
                account: Some(&fresh),
                codes: &codes,
            };
            let sent = entitlements::for_supplier(&state, &fresh, &fresh.access, today);
            fresh.sent_access = Some(sent.clone());
            let account = match existing {
                Some(mut old) => {
                    old.register_again(fresh);
                    if !db::accounts::save(c, &mut old)? {
                        return Err(DbError::Query("online account changed during registration".into()));
                    }
                    old
                }
                None => {
                    db::accounts::insert(c, &fresh)?;
                    fresh
                }
            };
            let job = jobs::job(
                &settings,
                JobSubject::Account(&account.id),
                &patient.id,
                practice.supplier,
                &create_payload(&patient, &practice, &email, &sent),
            );
            db::outbox::enqueue(c, &job)?;
            let review = after_review.as_ref().map(|requested| review_task(&account, requested, &by));
            if let Some(r) = &review {
                db::reviews::insert(c, r)?;
            }
            Ok(Ok(Accepted {
                account,
                job: Some(job),
                review,
                warnings,
            }))
        })
    })
    .await??;
    core.provisioner.notify();
    Ok(result)
}

/// Death is terminal: nothing is registered, switched on or changed for a patient who has died.
pub fn alive(patient: &PatientRecord) -> Result<()> {
    match patient.deceased_on {
        Some(died) => Err(Error::rejected(
            Reason::PatientDeceased,
            format!("the patient died on {died}: their online access has ended and cannot be changed"),
        )),
        None => Ok(()),
    }
}

/// The permit's patient's online account.
pub fn account(permit: &Permit) -> Result<OnlineAccount> {
    permit.account.clone().ok_or_else(|| Error::NotFound {
        resource: "Patient",
        message: "the patient has no online account".to_owned(),
    })
}

/// Whether an error is a lost race on the account's version (a background job saved it at the
/// same moment): worth doing the change again on the account as it now is.
fn lost_race(e: &Error) -> bool {
    matches!(
        e,
        Error::Rejected {
            reason: Reason::VersionConflict,
            ..
        }
    )
}

/// Applies `change` to the account as stored and enqueues `payload`, in one transaction. A
/// change that loses a race with a background job is made again on the fresh account.
async fn change_and_enqueue(
    core: &Core,
    practice: &PracticeRecord,
    account: OnlineAccount,
    change: impl Fn(&mut OnlineAccount) -> std::result::Result<(), crate::domain::account::StateError>
    + Send
    + Sync
    + Clone
    + 'static,
    payload: JobPayload,
    review: Option<ReviewTask>,
) -> Result<Accepted> {
    let settings = core.settings.suppliers.clone();
    let supplier = practice.supplier;
    let today = core.clock.today();
    let mut attempt = 0;
    let accepted = loop {
        attempt += 1;
        let (settings, payload, review, change, id) = (
            settings.clone(),
            payload.clone(),
            review.clone(),
            change.clone(),
            account.id.clone(),
        );
        let result = db::run(&core.pool, move |c| {
            db::write_transaction::<_, DbError, _>(c, |c| {
                let Some(mut account) = db::accounts::find_locked(c, &id)? else {
                    return Ok(Err(Error::not_found("Patient")));
                };
                if let Err(e) = change(&mut account) {
                    return Ok(Err(Error::from(e)));
                }
                if !db::accounts::save(c, &mut account)? {
                    return Ok(Err(Error::version_conflict()));
                }
                let job = jobs::job(
                    &settings,
                    JobSubject::Account(&account.id),
                    &account.patient_id,
                    supplier,
                    &payload,
                );
                db::outbox::enqueue(c, &job)?;
                if let Some(r) = &review {
                    db::reviews::insert(c, r)?;
                }
                // Disabling or enabling the account changes what the patient has in effect,
                // and so what their proxies' links may give.
                super::proxy::sync_links(c, &settings, &account.patient_id, today, super::proxy::Links::All)?;
                Ok(Ok(Accepted {
                    account,
                    job: Some(job),
                    review,
                    warnings: vec![],
                }))
            })
        })
        .await?;
        match result {
            Err(e) if lost_race(&e) && attempt < 3 => continue,
            other => break other?,
        }
    };
    core.provisioner.notify();
    Ok(accepted)
}

/// Changes the parts of the account's access that `change` names. The change is pending until
/// the supplier confirms it; a refused change leaves the confirmed access as it was. More of
/// the record than the account has confirmed waits for a record review.
#[tracing::instrument(skip_all)]
pub async fn set_access(core: &Core, permit: Permit, change: AccessChange, by: &str) -> Result<Accepted> {
    let account = account(&permit)?;
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    alive(permit.patient()?)?;
    let requested = change.applied_to(account.latest_access());
    // The state is checked before the plan, so a refused change says why the account cannot
    // change rather than what was wrong with the new access.
    account.clone().change_access(requested.clone())?;
    // A change that does not name the record leaves it exactly as it is: no new `from` date
    // and no review, whatever the record access is.
    let AccessPlan {
        immediate,
        after_review,
    } = match change.record {
        None => AccessPlan {
            immediate: requested,
            after_review: None,
        },
        Some(_) => registration::plan_access(
            &requested,
            account.latest_access(),
            account.verification.method,
            core.clock.today(),
        )
        .map_err(condition)?,
    };
    let review = after_review.as_ref().map(|r| review_task(&account, r, by));
    let settings = core.settings.suppliers.clone();
    let today = core.clock.today();
    let id = account.id.clone();
    let accepted = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            // The account as stored: a job may have confirmed something since it was read.
            let Some(mut account) = db::accounts::find_locked(c, &id)? else {
                return Ok(Err(Error::not_found("Patient")));
            };
            if let Err(e) = account.change_access(immediate.clone()) {
                return Ok(Err(Error::from(e)));
            }
            let codes = db::access_codes::active(c, &patient.id)?;
            let job = super::supplier_sync::sync(
                c,
                &settings,
                &patient,
                &practice,
                &mut account,
                &codes,
                today,
                Some(immediate),
            )?;
            if let Some(r) = &review {
                db::reviews::insert(c, r)?;
            }
            Ok(Ok(Accepted {
                account,
                job,
                review,
                warnings: vec![],
            }))
        })
    })
    .await??;
    core.provisioner.notify();
    Ok(accepted)
}

#[tracing::instrument(skip_all)]
pub async fn reset(core: &Core, permit: Permit) -> Result<Accepted> {
    alive(permit.patient()?)?;
    let account = account(&permit)?;
    change_and_enqueue(
        core,
        permit.practice()?,
        account,
        OnlineAccount::reset_linkage_key,
        JobPayload::ResetLinkageKey,
        None,
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn set_enabled(core: &Core, permit: Permit, enabled: bool, reason: Option<String>) -> Result<Accepted> {
    if enabled {
        alive(permit.patient()?)?;
    }
    let account = account(&permit)?;
    let stored = reason.clone();
    change_and_enqueue(
        core,
        permit.practice()?,
        account,
        move |a| match (enabled, stored.clone()) {
            (true, _) => a.enable(),
            (false, reason) => a.disable(reason.unwrap_or_default()),
        },
        JobPayload::SetAccountStatus { enabled, reason },
        None,
    )
    .await
}

/// Prints (or reprints) the registration letter. The first print starts the 14-day validity;
/// after it, the account must be reset for a new key.
#[tracing::instrument(skip_all)]
pub async fn letter(core: &Core, permit: Permit) -> Result<Letter> {
    let patient = permit.patient()?.clone();
    alive(&patient)?;
    let practice = permit.practice()?.clone();
    let mut account = account(&permit)?;
    let now = core.clock.now();
    if account.status != crate::domain::AccountStatus::Active {
        return Err(Error::rejected(
            Reason::AccountState,
            format!(
                "cannot print a letter for an online account that is {}",
                account.status.as_str()
            ),
        ));
    }
    let (Some(sealed), Some(account_id)) = (account.linkage_key_sealed.clone(), account.account_id.clone()) else {
        return Err(Error::rejected(
            Reason::AccountState,
            "the supplier has not issued a linkage key yet; check the provisioning Task",
        ));
    };
    if account.letter_expired(now) {
        return Err(Error::rejected(
            Reason::LinkageKeyExpired,
            "the linkage key on the letter has expired; reset the account with $reset-online-account to issue a new one",
        ));
    }
    if account.letter_printed(now)? {
        account = db::run(&core.pool, move |c| {
            let saved = db::accounts::save(c, &mut account)?;
            Ok(saved.then_some(account))
        })
        .await?
        .ok_or_else(Error::version_conflict)?;
    }
    let linkage_key = core.secrets.open(&sealed, &account.id).map_err(Error::internal)?;
    let printed = account.letter_printed_at.unwrap_or(now);
    let expires = account.letter_expires_at.unwrap_or(now);
    let access = entitlements::own(
        &PatientState {
            patient: &patient,
            practice: &practice,
            account: Some(&account),
            codes: &permit.codes,
        },
        now.date(),
    )
    .access;
    Ok(Letter {
        practice_name: practice.name,
        ods_code: practice.ods_code.as_str().to_owned(),
        practice_address: practice.address,
        practice_telephone: practice.telephone,
        access,
        patient_name: format!("{} {}", patient.details.given.join(" "), patient.details.family)
            .trim()
            .to_owned(),
        patient_identifier: patient.details.identifier,
        account_id,
        linkage_key,
        printed_on: printed.date(),
        expires_on: expires.date(),
    })
}

/// Provisioning jobs, record reviews and proxy-role reviews for the permit's patient.
pub async fn tasks_for(core: &Core, permit: &Permit) -> Result<Vec<AnyTask>> {
    let id = permit.patient()?.id.clone();
    Ok(db::run(&core.pool, move |c| {
        let jobs = db::outbox::for_patient(c, &id)?.into_iter().map(AnyTask::Job);
        let reviews = db::reviews::for_patient(c, &id)?.into_iter().map(AnyTask::Review);
        let proxies = db::proxy_roles::reviews_for_patient(c, &id)?
            .into_iter()
            .map(AnyTask::ProxyReview);
        Ok(jobs.chain(reviews).chain(proxies).collect())
    })
    .await?)
}

/// How many of each kind of open Task a practice's worklist lists.
const WORKLIST_LIMIT: i64 = 500;

/// The permit's practice's worklist: provisioning jobs not completed (queued, running, failed),
/// open record reviews and proxy-role reviews, and its recent practice-wide jobs.
pub async fn worklist(core: &Core, permit: &Permit) -> Result<Vec<AnyTask>> {
    let practice = permit.practice()?.id.clone();
    Ok(db::run(&core.pool, move |c| {
        let jobs = db::outbox::open_at_practice(c, &practice, WORKLIST_LIMIT)?
            .into_iter()
            .map(AnyTask::Job);
        let reviews = db::reviews::open_at_practice(c, &practice, WORKLIST_LIMIT)?
            .into_iter()
            .map(AnyTask::Review);
        let proxies = db::proxy_roles::open_reviews_at_practice(c, &practice, WORKLIST_LIMIT)?
            .into_iter()
            .map(AnyTask::ProxyReview);
        let bulk = db::bulk_jobs::recent(c, &practice, crate::domain::record_access::OPT_IN_JOB, 10)?
            .into_iter()
            .map(AnyTask::Bulk);
        Ok(jobs.chain(reviews).chain(proxies).chain(bulk).collect())
    })
    .await?)
}

/// The permit's Task.
pub fn task(permit: &Permit) -> Result<AnyTask> {
    permit.task.clone().ok_or_else(|| Error::not_found("Task"))
}

/// Completes a record review: approved, the access it waited for is switched on through the
/// outbox; declined, the access stays as it is and the reason is kept on the Task.
#[tracing::instrument(skip_all)]
pub async fn complete_review(
    core: &Core,
    permit: Permit,
    decision: ReviewDecision,
    note: Option<String>,
    by: &str,
) -> Result<Accepted> {
    let AnyTask::Review(review) = task(&permit)? else {
        return Err(Error::rejected(
            Reason::BusinessRule,
            "only record-review Tasks are completed here; a proxy role is decided by changing its Consent (PATCH /Consent/{id})",
        ));
    };
    if review.status != "requested" {
        return Err(Error::rejected(
            Reason::AccountState,
            format!("the review is already {}", review.status),
        ));
    }
    let account = account(&permit)?;
    let patient = permit.patient()?.clone();
    if decision == ReviewDecision::Approve {
        alive(&patient)?;
    }
    let practice = permit.practice()?.clone();
    let by = by.to_owned();
    let requested = review.requested_access.clone();
    let settings = core.settings.suppliers.clone();
    let today = core.clock.today();
    let accepted = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let (status, note) = match &decision {
                ReviewDecision::Approve => ("completed", note),
                ReviewDecision::Decline(reason) => ("rejected", Some(reason.clone())),
            };
            if !db::reviews::close(c, &review.id, status, &by, note.as_deref(), db::now())? {
                return Ok(Err(Error::rejected(
                    Reason::AccountState,
                    "the review was completed at the same time",
                )));
            }
            let mut account = account;
            let job = match decision {
                ReviewDecision::Decline(_) => None,
                ReviewDecision::Approve => {
                    if let Err(e) = account.change_access(requested.clone()) {
                        return Ok(Err(e.into()));
                    }
                    let codes = db::access_codes::active(c, &patient.id)?;
                    super::supplier_sync::sync(
                        c,
                        &settings,
                        &patient,
                        &practice,
                        &mut account,
                        &codes,
                        today,
                        Some(requested),
                    )?
                }
            };
            let review = db::reviews::find(c, &review.id)?;
            Ok(Ok(Accepted {
                account,
                job,
                review,
                warnings: vec![],
            }))
        })
    })
    .await??;
    core.provisioner.notify();
    Ok(accepted)
}

/// Puts a failed (refused or dead-lettered) provisioning job back in the queue.
pub async fn retry_job(core: &Core, permit: Permit) -> Result<OutboxJob> {
    let AnyTask::Job(job) = task(&permit)? else {
        return Err(Error::rejected(
            Reason::BusinessRule,
            "only provisioning Tasks can be retried",
        ));
    };
    let id = job.id.clone();
    let requeued = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let ok = db::outbox::requeue(c, &id, db::now())?;
            if ok
                && let Some(job) = db::outbox::find(c, &id)?
                && job.kind == crate::domain::JobKind::CreateAccount
                && let Some(account_id) = &job.account_id
                && let Some(mut account) = db::accounts::find_locked(c, account_id)?
                && account.can_register_again()
            {
                account.creation_retried();
                if !db::accounts::save(c, &mut account)? {
                    return Err(DbError::Query(
                        "online account changed while its job was requeued".into(),
                    ));
                }
            }
            Ok(if ok { db::outbox::find(c, &id)? } else { None })
        })
    })
    .await?;
    let job = requeued.ok_or_else(|| Error::rejected(Reason::AccountState, "only a failed Task can be retried"))?;
    core.provisioner.notify();
    Ok(job)
}
