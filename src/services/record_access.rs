//! Record access as the practice's rules give it: record-access codes, the opt-in/opt-out
//! model applied to each account, self-registration with NHS login, and a patient asking for record access.

use super::access::Permit;
use super::accounts::{Accepted, review_task};
use super::jobs::{self, JobPayload};
use super::{Caller, Core, Error, Reason, Result};
use crate::db::{self, DbError};
use crate::domain::account::AccountSource;
use crate::domain::entitlements::{self, PatientState};
use crate::domain::record_access::{self as rules, AccessCode, CodeSet, ModelFacts};
use crate::domain::{AccessSettings, Attestation, IdentityVerification, JobSubject, OnlineAccount, VerificationMethod};

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
                super::supplier_sync::sync(c, &settings, &patient, &practice, &mut account, &codes, today, None)?;
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
            let job = jobs::job(
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
