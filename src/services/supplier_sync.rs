//! Keeping the supplier told what each account gives: the account's latest grant with the
//! practice's model applied, and the patient's proxy links with it. In the caller's
//! transaction; every path that changes what an account gives (staff changes, codes, the
//! model, registration events) ends here.

use chrono::NaiveDate;

use super::jobs::{self, JobPayload};
use super::proxy::Links;
use crate::config::SupplierSettings;
use crate::db::{self, DbConnection, DbError};
use crate::domain::entitlements::{self, PatientState};
use crate::domain::provisioning::OutboxJob;
use crate::domain::record_access::CodeSet;
use crate::domain::{AccessSettings, AccountStatus, JobSubject, OnlineAccount, PatientRecord, PracticeRecord};

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
        let job = jobs::job(
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
