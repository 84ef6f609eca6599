//! Record access as the practice's rules give it: record-access codes, the opt-in/opt-out
//! model applied to each account, keeping the supplier told what each account should give,
//! self-registration with NHS login, and a patient asking for record access.

use chrono::NaiveDate;

use super::access::Permit;
use super::accounts::{Accepted, review_task};
use super::provisioning::{self, JobPayload};
use super::proxy::Links;
use super::{Caller, Core, Error, Reason, Result};
use crate::config::SupplierSettings;
use crate::db::{self, DbConnection, DbError};
use crate::domain::account::AccountSource;
use crate::domain::entitlements::{self, PatientState};
use crate::domain::provisioning::OutboxJob;
use crate::domain::record_access::{self as rules, AccessCode, CodeSet, ModelFacts};
use crate::domain::{
    AccessSettings, AccountStatus, Attestation, IdentityVerification, JobSubject, OnlineAccount, PatientRecord,
    PracticeRecord, VerificationMethod,
};

/// Tells the supplier what the account should give now, and what each of the patient's proxy
/// links gives with it (see [`sync_account`] and [`super::proxy::sync_links`]). In the caller's
/// transaction. Answers the account's job, if one was needed.
#[allow(clippy::too_many_arguments)]
pub fn sync(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    account: &mut OnlineAccount,
    codes: &CodeSet,
    today: NaiveDate,
    grant: Option<AccessSettings>,
) -> std::result::Result<Option<OutboxJob>, DbError> {
    super::proxy::sync_links(c, settings, &patient.id, today, Links::Lowered)?;
    let job = sync_account(c, settings, patient, practice, account, codes, today, grant)?;
    super::proxy::sync_links(c, settings, &patient.id, today, Links::All)?;
    Ok(job)
}

/// Tells the supplier what the account should give now (its latest grant with the model
/// applied) when that differs from what it was last told, or when `grant` is a change staff
/// made. Saves the account. In the caller's transaction. When a job saved the account since the
/// caller read it, the account is read again (and `grant` applied to it again) and the work
/// redone, so no caller loses a change to a background job.
#[allow(clippy::too_many_arguments)]
fn sync_account(
    c: &mut DbConnection,
    settings: &SupplierSettings,
    patient: &PatientRecord,
    practice: &PracticeRecord,
    account: &mut OnlineAccount,
    codes: &CodeSet,
    today: NaiveDate,
    grant: Option<AccessSettings>,
) -> std::result::Result<Option<OutboxJob>, DbError> {
    // What the caller read; replaced by a fresh read when a concurrent change wins the race.
    let (mut patient, mut practice, mut codes) = (patient.clone(), practice.clone(), codes.clone());
    for attempt in 0..3 {
        if attempt > 0 {
            let Some(mut fresh) = db::accounts::find(c, &account.id)? else {
                return Ok(None);
            };
            let Some(ctx) = db::reads::patient_context(c, &fresh.patient_id)? else {
                return Ok(None);
            };
            if let Some(g) = &grant
                && fresh.change_access(g.clone()).is_err()
            {
                return Ok(None);
            }
            *account = fresh;
            (patient, practice, codes) = (ctx.patient, ctx.practice, ctx.codes);
        }
        if account.practice_id != practice.id
            || !matches!(account.status, AccountStatus::Pending | AccountStatus::Active)
        {
            return Ok(None);
        }
        let state = PatientState {
            patient: &patient,
            practice: &practice,
            account: Some(account),
            codes: &codes,
        };
        let target = entitlements::for_supplier(&state, account, account.latest_access(), today);
        if grant.is_none() && account.sent_access.as_ref() == Some(&target) {
            return Ok(None);
        }
        account.sent_access = Some(target.clone());
        if !db::accounts::save(c, account)? {
            continue;
        }
        let job = provisioning::job(
            settings,
            JobSubject::Account(&account.id),
            &account.patient_id,
            practice.supplier,
            &JobPayload::SetAccess {
                access: target,
                grant: grant.clone(),
            },
        );
        db::outbox::enqueue(c, &job)?;
        return Ok(Some(job));
    }
    Err(DbError::Query(
        "online account changed while its access was sent".into(),
    ))
}

/// A code on a record: which, who added it, when.
pub type CodeEntry = (AccessCode, String, chrono::NaiveDateTime);

/// The permit's patient's account, the access it gives today, and the codes on the record.
pub async fn account_view(core: &Core, permit: &Permit) -> Result<(OnlineAccount, AccessSettings, Vec<CodeEntry>)> {
    let account = super::accounts::account(permit)?;
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    let id = patient.id.clone();
    let rows = db::run(&core.pool, move |c| db::access_codes::active_rows(c, &id)).await?;
    let entries: Vec<CodeEntry> = rows
        .into_iter()
        .filter_map(|r| AccessCode::parse(&r.code).map(|c| (c, r.added_by, r.added_at)))
        .collect();
    let codes = CodeSet::new(entries.iter().map(|(c, _, _)| *c));
    let state = PatientState {
        patient: &patient,
        practice: &practice,
        account: Some(&account),
        codes: &codes,
    };
    let in_effect = entitlements::own(&state, core.clock.today()).access;
    Ok((account, in_effect, entries))
}

/// Adds or removes a record-access code, and tells the supplier what the account gives now.
/// Answers whether the record changed (adding a code it has, or removing one it has not, does
/// nothing) and the codes on it afterwards.
pub async fn codes_after(
    core: &Core,
    permit: Permit,
    code: AccessCode,
    add: bool,
    by: &str,
) -> Result<(bool, Vec<CodeEntry>)> {
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    let account = permit.account.clone();
    let settings = core.settings.suppliers.clone();
    let (now, today) = (core.clock.now(), core.clock.today());
    let by = by.to_owned();
    let (changed, rows) = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            let changed = if add {
                db::access_codes::add(c, &patient.id, code, "staff", &by, now)?
            } else {
                db::access_codes::remove(c, &patient.id, code, &by, now)?
            };
            if changed && let Some(mut account) = account {
                let codes = db::access_codes::active(c, &patient.id)?;
                sync(c, &settings, &patient, &practice, &mut account, &codes, today, None)?;
            }
            Ok((changed, db::access_codes::active_rows(c, &patient.id)?))
        })
    })
    .await?;
    core.provisioner.notify();
    Ok((
        changed,
        rows.into_iter()
            .filter_map(|r| AccessCode::parse(&r.code).map(|c| (c, r.added_by, r.added_at)))
            .collect(),
    ))
}

/// A patient (with an NHS login at P9, or through their identity provider) makes their own
/// online account at their practice: no letter and no linkage key, and the access the
/// practice's model gives.
pub async fn register_self(core: &Core, permit: Permit, caller: &Caller, email: Option<String>) -> Result<Accepted> {
    let patient = permit.patient()?.clone();
    let named = patient.clone();
    let practice = permit.practice()?.clone();
    let existing = permit.account.clone();
    let settings = core.settings.suppliers.clone();
    let now = core.clock.now();
    let today = now.date();
    let by = caller.principal.caller_key();
    let email = email
        .or_else(|| patient.details.email.clone())
        .map(|e| e.trim().to_owned())
        .unwrap_or_default();
    if !email.is_empty() && !crate::domain::is_plausible_email(&email) {
        return Err(Error::rejected(Reason::RegistrationCondition, "the email address is not valid").at("email"));
    }
    let result = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            if existing.as_ref().is_some_and(|a| !a.can_register_again()) {
                return Ok(Err(Error::rejected(
                    Reason::AccountExists,
                    "the patient already has an online account at this practice",
                )));
            }
            let codes = db::access_codes::active(c, &patient.id)?;
            let model = ModelFacts {
                settings: &practice.settings,
                birth_date: patient.details.birth_date,
                deceased: patient.deceased_on.is_some(),
                codes: &codes,
                account_created: today,
            };
            if let Err(why) = rules::may_self_register(&model, today) {
                let reason = match why {
                    rules::SelfRegistration::PracticeNotEnabled => Reason::PracticeNotEnabled,
                    _ => Reason::RegistrationCondition,
                };
                return Ok(Err(Error::rejected(reason, why.message())));
            }
            let grant = rules::self_registered_grant();
            let at = now.and_utc();
            let mut account = OnlineAccount::pending(
                uuid::Uuid::new_v4().to_string(),
                &patient.id,
                &practice.id,
                email.clone(),
                grant.clone(),
                IdentityVerification {
                    method: VerificationMethod::NhsLoginP9,
                    documents: vec![],
                    verified_by: by.clone(),
                    verified_at: at,
                },
                Attestation {
                    responsibilities_acknowledged: true,
                    coercion_considered: false,
                    capacity_considered: false,
                    attested_by: by.clone(),
                    attested_at: at,
                },
                now,
            );
            account.source = AccountSource::NhsLogin;
            let state = PatientState {
                patient: &patient,
                practice: &practice,
                account: Some(&account),
                codes: &codes,
            };
            let access = entitlements::for_supplier(&state, &account, &grant, today);
            account.sent_access = Some(access.clone());
            let account = match existing {
                Some(mut old) => {
                    old.register_again(account);
                    if !db::accounts::save(c, &mut old)? {
                        return Err(DbError::Query("online account changed during registration".into()));
                    }
                    old
                }
                None => {
                    db::accounts::insert(c, &account)?;
                    account
                }
            };
            let payload = JobPayload::CreateAccount {
                patient_identifier: patient.details.identifier.value().to_owned(),
                ods_code: practice.ods_code.as_str().to_owned(),
                email: Some(email).filter(|e| !e.is_empty()),
                family_name: patient.details.family.clone(),
                birth_date: patient.details.birth_date,
                access,
                nhs_login: true,
            };
            let job = provisioning::job(
                &settings,
                JobSubject::Account(&account.id),
                &patient.id,
                practice.supplier,
                &payload,
            );
            db::outbox::enqueue(c, &job)?;
            Ok(Ok(Accepted {
                account,
                job: Some(job),
                review: None,
                warnings: vec![],
            }))
        })
    })
    .await??;
    super::access::conclude(core, caller, Some(&named)).await?;
    core.provisioner.notify();
    Ok(result)
}

/// A patient asks for (more) record access from their app: a review Task for the practice,
/// which approves (completing the Task) or declines it with a reason.
pub async fn request_record_access(
    core: &Core,
    permit: Permit,
    requested: AccessSettings,
    by: &str,
) -> Result<Accepted> {
    let account = permit.account.clone().ok_or_else(|| {
        Error::rejected(
            Reason::AccountState,
            "there is no online account to add record access to",
        )
    })?;
    let patient = permit.patient()?.clone();
    super::accounts::alive(&patient)?;
    let codes = {
        let id = patient.id.clone();
        db::run(&core.pool, move |c| db::access_codes::active(c, &id)).await?
    };
    if codes.has(AccessCode::Declined) {
        return Err(Error::rejected(
            Reason::RegistrationCondition,
            "the patient's record says they declined online access; the practice must remove that first",
        ));
    }
    let review = review_task(&account, &requested, by);
    let stored = review.clone();
    let open = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            if db::reviews::for_patient(c, &stored.patient_id)?
                .iter()
                .any(|r| r.status == "requested" && r.account_id == stored.account_id)
            {
                return Ok(false);
            }
            db::reviews::insert(c, &stored)?;
            Ok(true)
        })
    })
    .await?;
    if !open {
        return Err(Error::rejected(
            Reason::AccountState,
            "a request for record access is already waiting for the practice",
        ));
    }
    Ok(Accepted {
        account,
        job: None,
        review: Some(review),
        warnings: vec![],
    })
}
