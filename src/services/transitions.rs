//! The daily transitions: what changes with the date alone. Patients turning 16 get what the
//! practice's model gives (the supplier is told), registration letters past their two weeks are
//! marked expired, and proxy roles that lapsed end. Each instance runs them once a day (one
//! instance wins the day's claim); `$run-transitions` runs them on demand. Safe to run twice:
//! each step changes only what is not already as it should be.

use chrono::NaiveDateTime;

use super::{Core, Result};
use crate::db::{self, DbError};
use crate::domain::AccountStatus;

/// What a run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransitionReport {
    /// The time the run worked to.
    pub as_of: NaiveDateTime,
    /// Accounts whose supplier was told new access (a 16th birthday, a code, the model).
    pub accounts_updated: u64,
    /// Registration letters that expired since the last run.
    pub letters_expired: u64,
    /// Proxy roles that ended (end date, review age, 16, five years unused).
    pub roles_ended: u64,
}

/// Goes through one practice's accounts: marks letters that expired, and tells the supplier
/// the access of each account whose model-applied access changed. Returns (updated, expired).
fn practice_pass(
    c: &mut db::DbConnection,
    settings: &crate::config::SupplierSettings,
    practice: &crate::domain::PracticeRecord,
    now: NaiveDateTime,
) -> std::result::Result<(u64, u64), DbError> {
    let today = now.date();
    let (mut updated, mut expired) = (0u64, 0u64);
    let mut last = String::new();
    loop {
        let page = db::accounts::page_at_practice(c, &practice.id, &last, 500)?;
        let Some(tail) = page.last() else {
            break;
        };
        last = tail.id.clone();
        for account in page {
            let (id, patient_id) = (account.id.clone(), account.patient_id.clone());
            // Everything is read again inside the account's transaction, the practice with a
            // lock, so a change of model made meanwhile is either seen here or made after this
            // commits (and then tells the supplier itself).
            let mut changed = Err(DbError::Query("not tried".into()));
            for _ in 0..3 {
                changed = db::write_transaction::<_, DbError, _>(c, |c| {
                    let Some(practice) = db::practices::find_locked(c, &practice.id)? else {
                        return Ok((false, false));
                    };
                    db::accounts::lock_for_patient(c, &patient_id)?;
                    let Some(ctx) = db::reads::patient_context(c, &patient_id)? else {
                        return Ok((false, false));
                    };
                    // An account the patient has left behind at another practice is not sent.
                    let Some(mut account) = ctx.account.filter(|a| a.id == id) else {
                        return Ok((false, false));
                    };
                    let mut changed = (false, false);
                    if account.status == AccountStatus::Active
                        && account.letter_expired(now)
                        && account.status_reason.is_none()
                    {
                        account.status_reason = account.letter_expires_at.map(|e| {
                            format!(
                                "the registration letter expired on {}; reset the account to issue a new one",
                                e.format("%Y-%m-%d")
                            )
                        });
                        if !db::accounts::save(c, &mut account)? {
                            return Err(DbError::Query("online account changed during the transitions".into()));
                        }
                        changed.1 = true;
                    }
                    let job = super::supplier_sync::sync(
                        c,
                        settings,
                        &ctx.patient,
                        &practice,
                        &mut account,
                        &ctx.codes,
                        today,
                        None,
                    )?;
                    changed.0 = job.is_some();
                    Ok(changed)
                });
                if changed.is_ok() {
                    break;
                }
            }
            // One account that kept changing does not stop the others; it is looked at again
            // on the next run.
            let changed = match changed {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(account = %id, error = %e, "an account was skipped by the transitions");
                    (false, false)
                }
            };
            updated += u64::from(changed.0);
            expired += u64::from(changed.1);
        }
    }
    Ok((updated, expired))
}

/// Tells the supplier what each of a practice's accounts gives now (after its model changed).
pub async fn sync_practice(core: &Core, practice_id: &str) -> Result<u64> {
    let settings = core.settings.suppliers.clone();
    let now = core.clock.now();
    let id = practice_id.to_owned();
    let updated = db::run(&core.pool, move |c| match db::practices::find(c, &id)? {
        Some(practice) => Ok(practice_pass(c, &settings, &practice, now)?.0),
        None => Ok(0),
    })
    .await?;
    if updated > 0 {
        core.provisioner.notify();
    }
    Ok(updated)
}

/// Runs the transitions as of `now`.
pub async fn run(core: &Core, now: NaiveDateTime) -> Result<TransitionReport> {
    let settings = core.settings.suppliers.clone();
    let (accounts_updated, letters_expired) = db::run(&core.pool, move |c| {
        let (mut updated, mut expired) = (0u64, 0u64);
        for practice in db::practices::all(c)? {
            let (u, e) = practice_pass(c, &settings, &practice, now)?;
            updated += u;
            expired += e;
        }
        Ok((updated, expired))
    })
    .await?;
    let roles_ended = super::proxy::apply_lapses_as_of(core, now).await?;
    if accounts_updated > 0 {
        core.provisioner.notify();
    }
    Ok(TransitionReport {
        as_of: now,
        accounts_updated,
        letters_expired,
        roles_ended: u64::try_from(roles_ended).unwrap_or(0),
    })
}

const DAILY: &str = "transitions";

/// Runs today's transitions unless another instance has claimed them already.
pub async fn run_daily(core: &Core, instance: &str) -> Result<Option<TransitionReport>> {
    let now = core.clock.now();
    let day = now.date();
    let worker = instance.to_owned();
    let claimed = db::run(&core.pool, move |c| db::events::claim_run(c, DAILY, day, &worker, now)).await?;
    if !claimed {
        return Ok(None);
    }
    let report = run(core, now).await?;
    let text = serde_json::to_string(&report).unwrap_or_default();
    db::run(&core.pool, move |c| {
        db::events::finish_run(c, DAILY, day, &text, db::now())
    })
    .await?;
    tracing::info!(?report, "daily transitions done");
    Ok(Some(report))
}
