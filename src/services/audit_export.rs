//! Bulk export of a practice's audit trail for auditors: the FHIR Bulk Data `$export` of
//! `AuditEvent`, asynchronous. A kick-off stores the job; every instance's background worker
//! claims due jobs with a lease and writes each file (a fixed number of events) in one
//! transaction with the job's cursor, so a job whose instance stopped is taken up from its last
//! file by any instance once the lease lapses. Files are kept in the database, where every
//! instance can serve them, for a bounded number of events, and removed with the job when it
//! expires.

use chrono::NaiveDateTime;

use super::access::{self, Permit, Target};
use super::{Caller, Core, Error, Reason, Result};
use crate::audit::archive::archived_event;
use crate::db::{self, DbConnection, DbError};
use crate::domain::audit::{AuditExport, ExportCursor, ExportFile, ExportPeriod, ExportStatus, PeriodError};
use crate::domain::policy::{self, Action, Permission};
use crate::domain::{OdsCode, PracticeRef};

/// Exports a practice may hold at once (until each expires or is cancelled): with
/// `audit.export_max_events`, what bounds the database's share of exports.
pub const HELD_PER_PRACTICE: i64 = 5;
/// The resource name a missing, expired or invisible export is refused as.
const RESOURCE: &str = "Export";

/// What a kick-off asks for.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The practice; may be left out by staff who may audit at one practice only.
    pub practice: Option<OdsCode>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// The kick-off URL, for the manifest.
    pub request: String,
}

/// Starts an export of the practice's events in the period. The caller must be allowed to
/// export at all (decided before the request is read); this decides for the practice.
pub async fn start(core: &Core, caller: &Caller, asked: ExportRequest) -> Result<AuditExport> {
    let practice = match asked.practice {
        Some(p) => p,
        None => {
            let facts = access::actor_facts(&caller.principal);
            let mut practices = policy::practices_granting(&core.policy, &facts, &[Permission::ReadAudit]);
            if practices.len() != 1 {
                return Err(Error::rejected(
                    Reason::InvalidSearch,
                    "practice (an ODS code) is required when the caller may audit at more than one practice",
                )
                .at("practice"));
            }
            practices.remove(0)
        }
    };
    let permit = access::authorize(
        core,
        caller,
        Action::ExportAudit,
        Target::Practice(PracticeRef::Ods(practice)),
    )
    .await?;
    let (practice_id, ods) = {
        let p = permit.practice()?;
        (p.id.clone(), p.ods_code.as_str().to_owned())
    };
    // To the millisecond, as the manifest's transactionTime shows it: an event is in the export
    // exactly when its time is before the one the auditor is shown.
    let now = core.clock.now();
    let now = chrono::DurationRound::duration_trunc(now, chrono::Duration::milliseconds(1)).unwrap_or(now);
    let period = ExportPeriod::new(asked.since, asked.until, now).map_err(|e| {
        let at = match e {
            PeriodError::WrongWayRound => "_until",
            PeriodError::NotBegun => "_since",
        };
        Error::rejected(Reason::InvalidSearch, e.to_string()).at(at)
    })?;
    let job = AuditExport {
        id: uuid::Uuid::new_v4().to_string(),
        practice: ods,
        requested_by: caller.principal.caller_key(),
        request: asked.request,
        period,
        transaction_time: now,
        status: ExportStatus::InProgress,
        cursor: None,
        exported: 0,
        files: 0,
        error: None,
        created_at: now,
        finished_at: None,
        expires_at: now + expiry(core),
    };
    let stored = job.clone();
    let full = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            // Kick-offs for one practice count and insert one at a time (on PostgreSQL the
            // practice's row is locked; SQLite writes one at a time), so two at once cannot
            // both see room for one.
            db::practices::find_locked(c, &practice_id)?;
            let (held, first_expiry) = db::audit_exports::held(c, &stored.practice, now)?;
            if held >= HELD_PER_PRACTICE {
                return Ok(first_expiry);
            }
            db::audit_exports::insert(c, &stored)?;
            Ok::<_, DbError>(None)
        })
    })
    .await?;
    if let Some(first_expiry) = full {
        let wait = (first_expiry - now).num_seconds().max(1);
        return Err(Error::rejected(
            Reason::TooMany {
                retry_after_seconds: u64::try_from(wait).unwrap_or(1),
            },
            format!(
                "the practice holds {HELD_PER_PRACTICE} exports already: cancel one (DELETE its status URL) or wait until one expires"
            ),
        ));
    }
    Ok(job)
}

fn expiry(core: &Core) -> chrono::Duration {
    chrono::Duration::hours(i64::from(core.settings.audit.export_expiry_hours))
}

/// The export a permit names (the decision saw an expired one as gone, like a purged one).
fn live(permit: Permit) -> Result<AuditExport> {
    permit.export.ok_or_else(|| Error::not_found(RESOURCE))
}

/// An export and, once it is complete, its files. For staff who may audit at its practice.
pub async fn status(core: &Core, caller: &Caller, id: &str) -> Result<(AuditExport, Vec<ExportFile>)> {
    let permit = access::authorize(
        core,
        caller,
        Action::ReadAuditExport,
        Target::AuditExport(id.to_owned()),
    )
    .await?;
    let export = live(permit)?;
    if export.status != ExportStatus::Completed {
        return Ok((export, vec![]));
    }
    let id = export.id.clone();
    let files = db::run(&core.pool, move |c| db::audit_exports::files(c, &id)).await?;
    Ok((export, files))
}

/// One file of a completed export, as NDJSON.
/// `part` is the file's number (from 1); `None` for one that is not a number, which is no file.
pub async fn file(core: &Core, caller: &Caller, id: &str, part: Option<i64>) -> Result<String> {
    let permit = access::authorize(
        core,
        caller,
        Action::ReadAuditExport,
        Target::AuditExport(id.to_owned()),
    )
    .await?;
    let export = live(permit)?;
    let Some(part) = part.filter(|_| export.status == ExportStatus::Completed) else {
        return Err(Error::not_found(RESOURCE));
    };
    let id = export.id.clone();
    db::run(&core.pool, move |c| db::audit_exports::file_content(c, &id, part))
        .await?
        .ok_or_else(|| Error::not_found(RESOURCE))
}

/// Cancels an export, running or done: it and its files are removed at once, and a worker
/// writing it stops at its next file.
pub async fn cancel(core: &Core, caller: &Caller, id: &str) -> Result<()> {
    let permit = access::authorize(
        core,
        caller,
        Action::CancelAuditExport,
        Target::AuditExport(id.to_owned()),
    )
    .await?;
    let export = live(permit)?;
    db::run(&core.pool, move |c| db::audit_exports::delete(c, &export.id)).await?;
    Ok(())
}

/// What one export may hold and how it is cut into files.
#[derive(Debug, Clone, Copy)]
struct Limits {
    file_events: i64,
    max_events: i64,
    expiry: chrono::Duration,
}

/// Writes the next file of `job`. Returns false when the job is finished (completed or failed).
/// An error leaves the job as it was after its last file: taken over, cancelled, or the
/// database failed.
fn next_file(
    c: &mut DbConnection,
    job: &mut AuditExport,
    worker: &str,
    limits: Limits,
    now: chrono::NaiveDateTime,
) -> std::result::Result<bool, DbError> {
    let page = crate::audit::practice_events(c, &job.practice, &job.period, job.cursor.as_ref(), limits.file_events)?;
    let lease = super::leased::lease_until(now);
    let n = i64::try_from(page.len()).unwrap_or(i64::MAX);
    let finish = |job: &mut AuditExport, status: ExportStatus| {
        job.status = status;
        job.finished_at = Some(now);
        job.expires_at = now + limits.expiry;
    };
    if job.exported.saturating_add(n) > limits.max_events {
        finish(job, ExportStatus::Failed);
        job.error = Some(format!(
            "the period holds more than {} events of the practice, the most one export may hold: export shorter periods",
            limits.max_events
        ));
        return match db::audit_exports::advance(c, job, worker, lease)? {
            true => Ok(false),
            false => Err(DbError::Query("the export was taken over or cancelled".into())),
        };
    }
    let Some(last) = page.last() else {
        finish(job, ExportStatus::Completed);
        return match db::audit_exports::advance(c, job, worker, lease)? {
            true => Ok(false),
            false => Err(DbError::Query("the export was taken over or cancelled".into())),
        };
    };
    job.cursor = Some(ExportCursor {
        recorded_at: last.recorded_at,
        chain: last.chain.clone(),
        seq: last.seq,
    });
    let mut content = String::with_capacity(page.len() * 1024);
    for e in &page {
        let line = serde_json::to_string(&archived_event(e)).map_err(|e| DbError::Query(e.to_string()))?;
        content.push_str(&line);
        content.push('\n');
    }
    job.exported += n;
    job.files += 1;
    // A short file is the last: the job completes with it, saving a round trip.
    let more = n == limits.file_events;
    if !more {
        finish(job, ExportStatus::Completed);
    }
    let stored = db::write_transaction(c, |c| db::audit_exports::add_file(c, job, worker, content, n, lease))?;
    if !stored {
        return Err(DbError::Query("the export was taken over or cancelled".into()));
    }
    Ok(more)
}

impl super::leased::Leased for AuditExport {
    const KIND: &'static str = "audit export";

    fn claim(
        c: &mut DbConnection,
        worker: &str,
        now: NaiveDateTime,
        until: NaiveDateTime,
    ) -> std::result::Result<Option<Self>, DbError> {
        db::audit_exports::claim(c, worker, now, until)
    }

    fn id(&self) -> &str {
        &self.id
    }
}

/// Works through due exports until there are none. Called by each instance's background
/// worker; a job whose lease lapsed (its instance stopped) is taken up from its last file.
pub async fn work(core: &Core, worker: &str) -> Result<usize> {
    let limits = Limits {
        file_events: i64::from(core.settings.audit.export_file_events),
        max_events: i64::from(core.settings.audit.export_max_events),
        expiry: expiry(core),
    };
    super::leased::work(
        core,
        worker,
        move |c, job: &mut AuditExport, w, now| next_file(c, job, w, limits, now),
        || {},
    )
    .await
}

/// Removes expired exports and their files.
pub async fn purge(core: &Core) -> Result<usize> {
    let now = core.clock.now();
    Ok(db::run(&core.pool, move |c| db::audit_exports::purge_expired(c, now)).await?)
}
