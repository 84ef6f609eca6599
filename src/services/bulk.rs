//! `$apply-opt-in-model`: moving a practice from automatic (opt-out) to opt-in record access,
//! as one resumable job. The practice's model changes at once (so no more automatic access is
//! given); the job then goes through the practice's patients in batches: every patient of 16 or
//! over (or turning 16 within the days asked) without record access is given
//! 1364731000000104, and every account whose record access was given automatically is told
//! to give none until the patient opts in. Each batch commits with the job's cursor and counts,
//! so a job killed midway goes on from its last batch on any instance, and a re-run changes
//! nothing that is already done.

use super::access::Permit;
use super::{Core, Error, Reason, Result};
use crate::db::{self, DbError};
use crate::domain::record_access::{AccessCode, BulkJob, OPT_IN_JOB, OptInCounts, OptInParams, needs_review_code};
use crate::domain::{AccessModel, RecordAccessLevel};

/// Patients per batch: one transaction each.
const BATCH: i64 = 2000;
/// The revoked accounts a job lists by id.
const LISTED: usize = 1000;

/// Starts the job for the permit's practice, or answers the one already running.
pub async fn start_opt_in(core: &Core, permit: Permit, params: OptInParams, by: &str) -> Result<(BulkJob, bool)> {
    let practice = permit.practice()?.clone();
    let now = core.clock.now();
    let by = by.to_owned();
    let started = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            if let Some(running) = db::bulk_jobs::unfinished(c, &practice.id, OPT_IN_JOB)? {
                return Ok((running, false));
            }
            let mut settings = practice.settings.clone();
            settings.access_model = AccessModel::OptIn;
            db::practices::set_settings(c, &practice.id, &settings, now)?;
            let job = BulkJob {
                id: uuid::Uuid::new_v4().to_string(),
                practice_id: practice.id.clone(),
                kind: OPT_IN_JOB.to_owned(),
                status: "queued".into(),
                params,
                cursor: String::new(),
                processed: 0,
                total: db::patients::count_at_practice(c, &practice.id)?,
                counts: OptInCounts::default(),
                requested_by: by,
                created_at: now,
                updated_at: now,
                finished_at: None,
            };
            db::bulk_jobs::insert(c, &job)?;
            Ok((job, true))
        })
    })
    .await?;
    core.provisioner.notify();
    Ok(started)
}

/// One batch of the job: patients after the cursor. Returns false when the job is done or was
/// taken over by another instance.
fn batch(
    c: &mut db::DbConnection,
    job: &mut BulkJob,
    worker: &str,
    settings: &crate::config::SupplierSettings,
    now: chrono::NaiveDateTime,
) -> std::result::Result<bool, DbError> {
    let Some(practice) = db::practices::find(c, &job.practice_id)? else {
        job.status = "failed".into();
        job.finished_at = Some(now);
        db::bulk_jobs::advance(c, job, worker, now, now)?;
        return Ok(false);
    };
    let today = now.date();
    db::write_transaction::<_, DbError, _>(c, |c| {
        let page = db::patients::page_at_practice(c, &practice.id, &job.cursor, BATCH)?;
        let Some((last, _)) = page.last() else {
            job.status = "completed".into();
            job.finished_at = Some(now);
            job.processed = job.total.max(job.processed);
            if !db::bulk_jobs::advance(c, job, worker, now, now)? {
                return Err(DbError::Query("the job was taken over".into()));
            }
            return Ok(false);
        };
        let last = last.clone();
        let ids: Vec<String> = page.iter().map(|(id, _)| id.clone()).collect();
        let accounts: std::collections::HashMap<String, crate::domain::OnlineAccount> =
            db::accounts::for_patients_at(c, &ids, &practice.id)?
                .into_iter()
                .map(|a| (a.patient_id.clone(), a))
                .collect();
        let codes = db::access_codes::active_for(c, &ids)?;
        let mut to_code = vec![];
        for (id, birth) in &page {
            let granted_none = accounts.get(id).is_none_or(|a| {
                a.latest_access().record_level == RecordAccessLevel::None
                    || !matches!(
                        a.status,
                        crate::domain::AccountStatus::Active | crate::domain::AccountStatus::Pending
                    )
            });
            if !needs_review_code(*birth, granted_none, today, job.params.turning_sixteen_within_days) {
                continue;
            }
            if codes.get(id).is_some_and(|c| c.has(AccessCode::ReviewIndicated)) {
                job.counts.already_coded += 1;
            } else {
                to_code.push(id.clone());
            }
        }
        let added = db::access_codes::add_many(
            c,
            &to_code,
            AccessCode::ReviewIndicated,
            "opt-in-model",
            &job.requested_by,
            now,
        )?;
        job.counts.coded += u64::try_from(added).unwrap_or(0);
        job.counts.already_coded += u64::try_from(to_code.len() - added).unwrap_or(0);
        // Accounts the supplier was told to give automatic access: told again, now opt-in.
        let none = Default::default();
        for (id, mut account) in accounts {
            let automatic = account
                .sent_access
                .as_ref()
                .is_some_and(|s| s.record_level == RecordAccessLevel::Full)
                && account.latest_access().record_level != RecordAccessLevel::Full;
            if !automatic {
                continue;
            }
            let Some(patient) = db::patients::find(c, &id)? else {
                continue;
            };
            let patient_codes = codes.get(&id).unwrap_or(&none);
            if super::supplier_sync::sync(
                c,
                settings,
                &patient,
                &practice,
                &mut account,
                patient_codes,
                today,
                None,
            )?
            .is_some()
            {
                job.counts.revoked += 1;
                if job.counts.revoked_accounts.len() < LISTED {
                    job.counts.revoked_accounts.push(account.id.clone());
                }
            }
        }
        job.cursor = last;
        job.processed += i64::try_from(page.len()).unwrap_or(0);
        if !db::bulk_jobs::advance(c, job, worker, now, super::leased::lease_until(now))? {
            return Err(DbError::Query("the job was taken over".into()));
        }
        Ok(true)
    })
}

impl super::leased::Leased for BulkJob {
    const KIND: &'static str = "bulk job";

    fn claim(
        c: &mut db::DbConnection,
        worker: &str,
        now: chrono::NaiveDateTime,
        until: chrono::NaiveDateTime,
    ) -> std::result::Result<Option<Self>, DbError> {
        db::bulk_jobs::claim(c, worker, now, until)
    }

    fn id(&self) -> &str {
        &self.id
    }
}

/// Works through due jobs until there are none. Called by each instance's bulk worker; the
/// provisioning workers are told after each job, for the accounts it changed.
pub async fn work(core: &Core, worker: &str) -> Result<usize> {
    let settings = core.settings.suppliers.clone();
    super::leased::work(
        core,
        worker,
        move |c, job: &mut BulkJob, w, now| batch(c, job, w, &settings, now),
        || core.provisioner.notify(),
    )
    .await
}

/// The job a permit's Task names (for `GET /Task/{id}`).
pub fn job_of(permit: &Permit) -> Result<BulkJob> {
    match &permit.task {
        Some(super::access::AnyTask::Bulk(j)) => Ok(j.clone()),
        _ => Err(Error::rejected(Reason::BusinessRule, "not a practice job")),
    }
}
