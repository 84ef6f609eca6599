//! The transactional outbox. Jobs are inserted in the same transaction as the state change
//! that needs them, and claimed by workers on any gateway instance with a lease.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamp};

use super::schema::outbox_jobs;
use super::{DbConnection, DbError};
pub use crate::domain::provisioning::OutboxJob;
use crate::domain::{JobKind, JobStatus};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is written as NULL (no column has another default), so the statement text is the same
// every time and is prepared once.
#[diesel(table_name = outbox_jobs, treat_none_as_default_value = false)]
struct JobRow {
    id: String,
    kind: String,
    account_id: Option<String>,
    patient_id: String,
    supplier: String,
    payload: String,
    idempotency_key: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    next_attempt_at: NaiveDateTime,
    claimed_by: Option<String>,
    claimed_until: Option<NaiveDateTime>,
    last_error: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    role_id: Option<String>,
}

impl TryFrom<JobRow> for OutboxJob {
    type Error = DbError;

    fn try_from(r: JobRow) -> Result<Self, DbError> {
        let corrupt = |what: &str| DbError::Query(format!("stored outbox job {what} is not valid"));
        Ok(Self {
            kind: JobKind::parse(&r.kind).ok_or_else(|| corrupt("kind"))?,
            status: JobStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            payload: serde_json::from_str(&r.payload).map_err(|_| corrupt("payload"))?,
            id: r.id,
            account_id: r.account_id,
            role_id: r.role_id,
            patient_id: r.patient_id,
            supplier: r.supplier,
            idempotency_key: r.idempotency_key,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            next_attempt_at: r.next_attempt_at,
            claimed_by: r.claimed_by,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub fn enqueue(conn: &mut DbConnection, job: &OutboxJob) -> Result<(), DbError> {
    let row = JobRow {
        id: job.id.clone(),
        kind: job.kind.as_str().to_owned(),
        account_id: job.account_id.clone(),
        patient_id: job.patient_id.clone(),
        supplier: job.supplier.clone(),
        payload: job.payload.to_string(),
        idempotency_key: job.idempotency_key.clone(),
        status: job.status.as_str().to_owned(),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        next_attempt_at: job.next_attempt_at,
        claimed_by: None,
        claimed_until: None,
        last_error: None,
        created_at: job.created_at,
        updated_at: job.updated_at,
        role_id: job.role_id.clone(),
    };
    diesel::insert_into(outbox_jobs::table).values(row).execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

// A job is due when it is queued and its time has come, or when the worker that claimed it has
// let its lease run out (it crashed or was killed). A patient's jobs run in the order they were
// made, whichever account or proxy link they are for: a proxy link raised after the patient's
// own access was raised reaches the supplier after it, and one lowered before it was lowered,
// so the supplier never holds a proxy with more than the patient. Job ids are time-ordered, so
// (created_at, id) is the order they were made even within one microsecond.
const IN_TURN: &str = "NOT EXISTS (SELECT 1 FROM outbox_jobs e WHERE e.patient_id = j.patient_id \
        AND e.status IN ('queued', 'in-progress') \
        AND (e.created_at < j.created_at OR (e.created_at = j.created_at AND e.id < j.id)))";

/// The claim's statement, for the statement cache.
struct ClaimStatement;

/// Claims up to `limit` due jobs for `worker` until `lease_until`, counting an attempt on each.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i32,
) -> Result<Vec<OutboxJob>, DbError> {
    let ids: Vec<String> = match conn {
        // Several instances claim concurrently: SKIP LOCKED hands each a disjoint set without
        // waiting on each other's row locks.
        // Queued jobs are taken in the order of the due index, so that the scan stops once it
        // has enough instead of checking every due job's predecessors; lapsed leases (few)
        // are taken beside them.
        DbConnection::Postgres(pg) => super::Fixed::<_, ClaimStatement>::new(
            diesel::sql_query(format!(
                "WITH queued AS (SELECT j.id, j.next_attempt_at, j.created_at FROM outbox_jobs j \
                 WHERE j.status = 'queued' AND j.next_attempt_at <= $2 AND {IN_TURN} \
                 ORDER BY j.next_attempt_at, j.created_at LIMIT $4 FOR UPDATE SKIP LOCKED), \
             lapsed AS (SELECT j.id, j.next_attempt_at, j.created_at FROM outbox_jobs j \
                 WHERE j.status = 'in-progress' AND j.claimed_until < $2 AND {IN_TURN} \
                 ORDER BY j.next_attempt_at, j.created_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox_jobs SET status = 'in-progress', claimed_by = $1, claimed_until = $3, \
             attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT d.id FROM (SELECT * FROM queued UNION ALL SELECT * FROM lapsed) d \
                 ORDER BY d.next_attempt_at, d.created_at LIMIT $4) \
             RETURNING id"
            ))
            .bind::<Text, _>(worker)
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Integer, _>(limit),
        )
        .load::<IdRow>(pg)?
        .into_iter()
        .map(|r| r.id)
        .collect(),
        // SQLite has one writer at a time; a conditional update is an atomic compare-and-set.
        DbConnection::Sqlite(lite) => {
            let due = format!(
                "((j.status = 'queued' AND j.next_attempt_at <= ?) OR (j.status = 'in-progress' AND j.claimed_until < ?)) \
                 AND {IN_TURN}"
            );
            let candidates: Vec<IdRow> = diesel::sql_query(format!(
                "SELECT j.id FROM outbox_jobs j WHERE {due} ORDER BY j.next_attempt_at, j.created_at LIMIT ?"
            ))
            .bind::<Timestamp, _>(now)
            .bind::<Timestamp, _>(now)
            .bind::<Integer, _>(limit)
            .load(lite)?;
            let mut claimed = Vec::new();
            for c in candidates {
                let n = diesel::sql_query(
                    "UPDATE outbox_jobs SET status = 'in-progress', claimed_by = ?, claimed_until = ?, \
                     attempts = attempts + 1, updated_at = ? WHERE id = ? \
                     AND ((status = 'queued' AND next_attempt_at <= ?) OR (status = 'in-progress' AND claimed_until < ?))",
                )
                .bind::<Text, _>(worker)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(&c.id)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .execute(lite)?;
                if n == 1 {
                    claimed.push(c.id);
                }
            }
            claimed
        }
    };
    if ids.is_empty() {
        return Ok(vec![]);
    }
    outbox_jobs::table
        .filter(outbox_jobs::id.eq_any(&ids))
        .select(JobRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OutboxJob::try_from)
        .collect()
}

/// The statement recording an attempt's outcome, for the statement cache.
struct FinishStatement;

/// Records the outcome of an attempt, if `worker` still holds the claim. Returns false when the
/// claim was lost (the lease ran out and another worker took the job).
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    status: JobStatus,
    next_attempt_at: NaiveDateTime,
    last_error: Option<&str>,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let finish = diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq(id))
            .filter(outbox_jobs::claimed_by.eq(worker))
            .filter(outbox_jobs::status.eq(JobStatus::InProgress.as_str())),
    )
    .set((
        outbox_jobs::status.eq(status.as_str()),
        outbox_jobs::next_attempt_at.eq(next_attempt_at),
        outbox_jobs::claimed_by.eq(None::<String>),
        outbox_jobs::claimed_until.eq(None::<NaiveDateTime>),
        outbox_jobs::last_error.eq(last_error),
        outbox_jobs::updated_at.eq(now),
    ));
    let n = match conn {
        // Loaded, not executed: diesel checks an executed statement for caching through a
        // reference, which does not see the wrapper.
        DbConnection::Postgres(pg) => super::Fixed::<_, FinishStatement>::new(finish.returning(outbox_jobs::id))
            .load::<String>(pg)?
            .len(),
        DbConnection::Sqlite(lite) => finish.execute(lite)?,
    };
    Ok(n == 1)
}

/// Puts a failed job back in the queue with a fresh attempt budget (same idempotency key).
pub fn requeue(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(
        outbox_jobs::table
            .filter(outbox_jobs::id.eq(id))
            .filter(outbox_jobs::status.eq(JobStatus::Failed.as_str())),
    )
    .set((
        outbox_jobs::status.eq(JobStatus::Queued.as_str()),
        outbox_jobs::attempts.eq(0),
        outbox_jobs::next_attempt_at.eq(now),
        outbox_jobs::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OutboxJob>, DbError> {
    outbox_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?
        .map(OutboxJob::try_from)
        .transpose()
}

/// Every provisioning job for a patient, oldest first.
pub fn for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<OutboxJob>, DbError> {
    outbox_jobs::table
        .filter(outbox_jobs::patient_id.eq(patient_id))
        .order((outbox_jobs::created_at.asc(), outbox_jobs::id.asc()))
        .select(JobRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OutboxJob::try_from)
        .collect()
}

/// The jobs of a practice's patients that are not completed (queued, running or failed), oldest
/// first, at most `limit`: the practice's worklist.
pub fn open_at_practice(conn: &mut DbConnection, practice_id: &str, limit: i64) -> Result<Vec<OutboxJob>, DbError> {
    use super::schema::patients;
    outbox_jobs::table
        .filter(outbox_jobs::status.ne(JobStatus::Completed.as_str()))
        .filter(
            outbox_jobs::patient_id.eq_any(
                patients::table
                    .filter(patients::practice_id.eq(practice_id))
                    .select(patients::id),
            ),
        )
        .order((outbox_jobs::created_at.asc(), outbox_jobs::id.asc()))
        .limit(limit)
        .select(JobRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OutboxJob::try_from)
        .collect()
}

/// Jobs that are not finished yet, for readiness and the start-up log.
pub fn count_unfinished(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(outbox_jobs::table
        .filter(outbox_jobs::status.eq_any([JobStatus::Queued.as_str(), JobStatus::InProgress.as_str()]))
        .count()
        .get_result(conn)?)
}
