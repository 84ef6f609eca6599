//! Online accounts: registration, access changes, disable/enable, linkage-key reset, the
//! registration letter, and the Tasks that track provisioning and record reviews.

use chrono::{NaiveDate, Utc};

use super::access;
use crate::db::accounts::OnlineAccount;
use crate::db::outbox::OutboxJob;
use crate::db::reviews::ReviewTask;
use crate::db::{self, DbError};
use crate::domain::registration::{self, AccessPlan, LETTER_VALIDITY_DAYS, RuleViolation};
use crate::domain::{
    AccessSettings, AccountStatus, Attestation, IdentityVerification, PatientIdentifier, PatientRecord, PracticeRecord,
};
use crate::error::{ApiError, ErrorCode};
use crate::fhir::parameter_path;
use crate::identity::Principal;
use crate::services::provisioning::{self, JobPayload};
use crate::state::AppState;

pub fn violation(v: RuleViolation) -> ApiError {
    ApiError::new(ErrorCode::RegistrationConditionNotMet, v.message).at(parameter_path(&v.field))
}

/// What staff send to register a patient.
#[derive(Debug, Clone)]
pub struct RegistrationInput {
    pub verification: IdentityVerification,
    pub email: Option<String>,
    pub responsibilities_acknowledged: bool,
    pub coercion_considered: bool,
    pub capacity_considered: bool,
    pub access: AccessSettings,
}

/// The result of a change that was committed and handed to the outbox.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub account: OnlineAccount,
    pub job: Option<OutboxJob>,
    pub review: Option<ReviewTask>,
    pub warnings: Vec<String>,
}

/// Loads the patient and their practice and checks the caller is staff there.
async fn staff_context(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
) -> Result<(PatientRecord, PracticeRecord), ApiError> {
    let id = patient_id.to_owned();
    let (patient, practice) = db::run(&state.pool, move |c| {
        let Some(p) = db::patients::find(c, &id)? else {
            return Ok(None);
        };
        let practice = db::practices::find(c, &p.practice_id)?;
        Ok(practice.map(|pr| (p, pr)))
    })
    .await?
    .ok_or_else(|| ApiError::not_found("Patient"))?;
    access::require_staff_at(principal, &patient.practice_ods)?;
    Ok((patient, practice))
}

fn staff_subject(principal: &Principal) -> String {
    match principal {
        Principal::Staff(s) => s.subject.clone(),
        other => other.caller_key(),
    }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn review_task(account: &OnlineAccount, requested: &AccessSettings, by: &str) -> ReviewTask {
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
    }
}

#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
    input: RegistrationInput,
) -> Result<Accepted, ApiError> {
    let (patient, practice) = staff_context(state, principal, patient_id).await?;
    if !practice.settings.enabled {
        return Err(ApiError::new(
            ErrorCode::PracticeNotEnabled,
            "online services are switched off at this practice",
        ));
    }
    let now = Utc::now();
    registration::validate_verification(&input.verification, now).map_err(violation)?;
    let email = input
        .email
        .clone()
        .or_else(|| patient.details.email.clone())
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty());
    if let Some(e) = &email {
        if crate::domain::PatientDetails::new(
            patient.details.identifier.clone(),
            &patient.details.family,
            vec![],
            patient.details.birth_date,
            patient.details.gender,
            Some(e),
            today(),
        )
        .is_err()
        {
            return Err(violation(RuleViolation::new("email", "the email address is not valid")));
        }
    } else if registration::email_required(practice.supplier) {
        return Err(violation(RuleViolation::new(
            "email",
            "an email address is required: this practice's clinical system cannot create an online account without one",
        )));
    }
    let attestation = Attestation {
        responsibilities_acknowledged: input.responsibilities_acknowledged,
        coercion_considered: input.coercion_considered,
        capacity_considered: input.capacity_considered,
        attested_by: staff_subject(principal),
        attested_at: now,
    };
    registration::validate_attestation(&attestation).map_err(violation)?;
    let AccessPlan {
        immediate,
        after_review,
    } = registration::plan_access(&input.access, input.verification.method, today()).map_err(violation)?;

    let email = email.unwrap_or_default();
    let settings = state.settings.suppliers.clone();
    let by = staff_subject(principal);
    let verification = input.verification.clone();
    let result = db::run(&state.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let existing = db::accounts::find_by_patient(c, &patient.id)?;
            if existing.as_ref().is_some_and(|a| a.status != AccountStatus::Rejected) {
                return Ok(Err(ApiError::new(
                    ErrorCode::AccountExists,
                    "the patient already has an online account; change it with $set-online-access or $reset-online-account",
                )));
            }
            let mut warnings = Vec::new();
            if !email.is_empty() && db::accounts::email_used_by_another(c, &email, &patient.id)? {
                warnings.push("the email address is already used by another online account; check it belongs to this patient".to_owned());
            }
            let now = db::now();
            let mut account = OnlineAccount::pending(
                existing.as_ref().map_or_else(|| uuid::Uuid::new_v4().to_string(), |a| a.id.clone()),
                &patient.id,
                &practice.id,
                email.clone(),
                immediate.clone(),
                verification,
                attestation,
                now,
            );
            if let Some(old) = &existing {
                // A rejected registration is made again on the same row (jobs refer to it).
                account.version = old.version;
                account.created_at = old.created_at;
            }
            if existing.is_some() {
                if !db::accounts::save(c, &mut account)? {
                    return Err(DbError::Query("online account changed during registration".into()));
                }
            } else {
                db::accounts::insert(c, &account)?;
            }
            let job = provisioning::job(
                &settings,
                &account.id,
                &patient.id,
                practice.supplier,
                &create_payload(&patient, &practice, &email, &immediate),
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
    state.provisioner.notify();
    Ok(result)
}

/// Loads the account for a patient (staff of the patient's practice only).
pub async fn account_for(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
) -> Result<(PatientRecord, PracticeRecord, OnlineAccount), ApiError> {
    let (patient, practice) = staff_context(state, principal, patient_id).await?;
    let id = patient.id.clone();
    let account = db::run(&state.pool, move |c| db::accounts::find_by_patient(c, &id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ResourceNotFound, "the patient has no online account"))?;
    Ok((patient, practice, account))
}

/// Applies `change` to the account and enqueues `payload`, in one transaction.
async fn change_and_enqueue(
    state: &AppState,
    practice: &PracticeRecord,
    account: OnlineAccount,
    change: impl FnOnce(&mut OnlineAccount) + Send + 'static,
    payload: JobPayload,
    review: Option<ReviewTask>,
) -> Result<Accepted, ApiError> {
    let settings = state.settings.suppliers.clone();
    let supplier = practice.supplier;
    let accepted = db::run(&state.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let mut account = account;
            change(&mut account);
            if !db::accounts::save(c, &mut account)? {
                return Ok(Err(ApiError::version_conflict()));
            }
            let job = provisioning::job(&settings, &account.id, &account.patient_id, supplier, &payload);
            db::outbox::enqueue(c, &job)?;
            if let Some(r) = &review {
                db::reviews::insert(c, r)?;
            }
            Ok(Ok(Accepted {
                account,
                job: Some(job),
                review,
                warnings: vec![],
            }))
        })
    })
    .await??;
    state.provisioner.notify();
    Ok(accepted)
}

fn require_status(account: &OnlineAccount, allowed: &[AccountStatus], action: &str) -> Result<(), ApiError> {
    if allowed.contains(&account.status) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::AccountState,
            format!("cannot {action} an online account that is {}", account.status.as_str()),
        ))
    }
}

#[tracing::instrument(skip_all)]
pub async fn set_access(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
    requested: AccessSettings,
) -> Result<Accepted, ApiError> {
    let (_, practice, account) = account_for(state, principal, patient_id).await?;
    require_status(
        &account,
        &[AccountStatus::Pending, AccountStatus::Active, AccountStatus::Disabled],
        "change access of",
    )?;
    let AccessPlan {
        immediate,
        after_review,
    } = registration::plan_access(&requested, account.verification.method, today()).map_err(violation)?;
    let review = after_review
        .as_ref()
        .map(|r| review_task(&account, r, &staff_subject(principal)));
    let access = immediate.clone();
    change_and_enqueue(
        state,
        &practice,
        account,
        move |a| a.access = access,
        JobPayload::SetAccess { access: immediate },
        review,
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn reset(state: &AppState, principal: &Principal, patient_id: &str) -> Result<Accepted, ApiError> {
    let (_, practice, account) = account_for(state, principal, patient_id).await?;
    require_status(&account, &[AccountStatus::Active, AccountStatus::Disabled], "reset")?;
    change_and_enqueue(
        state,
        &practice,
        account,
        |a| {
            // The old key stops working here and now, not when the supplier answers.
            a.linkage_key_sealed = None;
            a.linkage_key_issued_at = None;
            a.letter_printed_at = None;
            a.letter_expires_at = None;
        },
        JobPayload::ResetLinkageKey,
        None,
    )
    .await
}

#[tracing::instrument(skip_all)]
pub async fn set_enabled(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
    enabled: bool,
    reason: Option<String>,
) -> Result<Accepted, ApiError> {
    let (_, practice, account) = account_for(state, principal, patient_id).await?;
    if enabled {
        require_status(&account, &[AccountStatus::Disabled], "re-enable")?;
    } else {
        require_status(&account, &[AccountStatus::Active, AccountStatus::Pending], "disable")?;
    }
    let (new_status, stored_reason) = if enabled {
        // Back to active once it has credentials; an account never confirmed stays pending.
        let status = if account.supplier_ref.is_some() {
            AccountStatus::Active
        } else {
            AccountStatus::Pending
        };
        (status, None)
    } else {
        (AccountStatus::Disabled, reason.clone())
    };
    change_and_enqueue(
        state,
        &practice,
        account,
        move |a| {
            a.status = new_status;
            a.status_reason = stored_reason;
        },
        JobPayload::SetAccountStatus { enabled, reason },
        None,
    )
    .await
}

/// The content of a registration letter. Holds the linkage key in clear: only for the letter.
pub struct Letter {
    pub practice_name: String,
    pub ods_code: String,
    pub patient_name: String,
    pub patient_identifier: PatientIdentifier,
    pub account_id: String,
    pub linkage_key: String,
    pub printed_on: NaiveDate,
    pub expires_on: NaiveDate,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// Prints (or reprints) the registration letter. The first print starts the 14-day validity;
/// after it, the account must be reset for a new key.
#[tracing::instrument(skip_all)]
pub async fn letter(state: &AppState, principal: &Principal, patient_id: &str) -> Result<Letter, ApiError> {
    let (patient, practice, mut account) = account_for(state, principal, patient_id).await?;
    require_status(&account, &[AccountStatus::Active], "print a letter for")?;
    let (Some(sealed), Some(account_id)) = (account.linkage_key_sealed.clone(), account.account_id.clone()) else {
        return Err(ApiError::new(
            ErrorCode::AccountState,
            "the supplier has not issued a linkage key yet; check the provisioning Task",
        ));
    };
    let now = db::now();
    if account.letter_expires_at.is_some_and(|e| e < now) {
        return Err(ApiError::new(
            ErrorCode::LinkageKeyExpired,
            "the linkage key on the letter has expired; reset the account with $reset-online-account to issue a new one",
        ));
    }
    if account.letter_printed_at.is_none() {
        account.letter_printed_at = Some(now);
        account.letter_expires_at = Some(now + chrono::Duration::days(LETTER_VALIDITY_DAYS));
        account = db::run(&state.pool, move |c| {
            let saved = db::accounts::save(c, &mut account)?;
            Ok(saved.then_some(account))
        })
        .await?
        .ok_or_else(ApiError::version_conflict)?;
    }
    let linkage_key = state.secrets.open(&sealed, &account.id).map_err(ApiError::internal)?;
    let printed = account.letter_printed_at.unwrap_or(now);
    let expires = account.letter_expires_at.unwrap_or(now);
    Ok(Letter {
        practice_name: practice.name,
        ods_code: practice.ods_code.as_str().to_owned(),
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

/// Provisioning jobs and reviews for a patient (staff of the practice).
pub async fn tasks_for(
    state: &AppState,
    principal: &Principal,
    patient_id: &str,
) -> Result<(Vec<OutboxJob>, Vec<ReviewTask>), ApiError> {
    let (patient, _) = staff_context(state, principal, patient_id).await?;
    Ok(db::run(&state.pool, move |c| {
        Ok((
            db::outbox::for_patient(c, &patient.id)?,
            db::reviews::for_patient(c, &patient.id)?,
        ))
    })
    .await?)
}

pub enum AnyTask {
    Job(OutboxJob),
    Review(ReviewTask),
}

pub async fn task(state: &AppState, principal: &Principal, id: &str) -> Result<AnyTask, ApiError> {
    let task_id = id.to_owned();
    let found = db::run(&state.pool, move |c| {
        if let Some(j) = db::outbox::find(c, &task_id)? {
            return Ok(Some(AnyTask::Job(j)));
        }
        Ok(db::reviews::find(c, &task_id)?.map(AnyTask::Review))
    })
    .await?
    .ok_or_else(|| ApiError::not_found("Task"))?;
    let patient_id = match &found {
        AnyTask::Job(j) => j.patient_id.clone(),
        AnyTask::Review(r) => r.patient_id.clone(),
    };
    // Tasks are visible to staff of the patient's practice; to anyone else they do not exist.
    staff_context(state, principal, &patient_id).await.map_err(|e| {
        if e.code == ErrorCode::ResourceNotFound {
            e
        } else {
            ApiError::not_found("Task")
        }
    })?;
    Ok(found)
}

/// Completing a record review switches the historic access on (through the outbox).
#[tracing::instrument(skip_all)]
pub async fn complete_review(
    state: &AppState,
    principal: &Principal,
    task_id: &str,
    note: Option<String>,
) -> Result<Accepted, ApiError> {
    let AnyTask::Review(review) = task(state, principal, task_id).await? else {
        return Err(ApiError::new(
            ErrorCode::BusinessRule,
            "only record-review Tasks are completed by staff",
        ));
    };
    if review.status != "requested" {
        return Err(ApiError::new(
            ErrorCode::AccountState,
            format!("the review is already {}", review.status),
        ));
    }
    let (_, practice, account) = account_for(state, principal, &review.patient_id).await?;
    let by = staff_subject(principal);
    let requested = review.requested_access.clone();
    let settings = state.settings.suppliers.clone();
    let accepted = db::run(&state.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            if !db::reviews::close(c, &review.id, "completed", &by, note.as_deref(), db::now())? {
                return Ok(Err(ApiError::new(
                    ErrorCode::AccountState,
                    "the review was completed at the same time",
                )));
            }
            let mut account = account;
            account.access = requested.clone();
            if !db::accounts::save(c, &mut account)? {
                return Ok(Err(ApiError::version_conflict()));
            }
            let job = provisioning::job(
                &settings,
                &account.id,
                &account.patient_id,
                practice.supplier,
                &JobPayload::SetAccess { access: requested },
            );
            db::outbox::enqueue(c, &job)?;
            let review = db::reviews::find(c, &review.id)?;
            Ok(Ok(Accepted {
                account,
                job: Some(job),
                review,
                warnings: vec![],
            }))
        })
    })
    .await??;
    state.provisioner.notify();
    Ok(accepted)
}

/// Puts a failed (refused or dead-lettered) provisioning job back in the queue.
pub async fn retry_job(state: &AppState, principal: &Principal, task_id: &str) -> Result<OutboxJob, ApiError> {
    let AnyTask::Job(job) = task(state, principal, task_id).await? else {
        return Err(ApiError::new(
            ErrorCode::BusinessRule,
            "only provisioning Tasks can be retried",
        ));
    };
    let id = job.id.clone();
    let requeued = db::run(&state.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let ok = db::outbox::requeue(c, &id, db::now())?;
            if ok
                && let Some(job) = db::outbox::find(c, &id)?
                && job.kind == crate::domain::JobKind::CreateAccount
                && let Some(mut account) = db::accounts::find(c, &job.account_id)?
                && account.status == AccountStatus::Rejected
            {
                account.status = AccountStatus::Pending;
                account.status_reason = None;
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
    let job = requeued.ok_or_else(|| ApiError::new(ErrorCode::AccountState, "only a failed Task can be retried"))?;
    state.provisioner.notify();
    Ok(job)
}
