//! Practice-wide jobs, claimed with a lease and resumed from their cursor.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::bulk_jobs;
use super::{DbConnection, DbError};
use crate::domain::record_access::BulkJob;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = bulk_jobs)]
struct Row {
    id: String,
    practice_id: String,
    kind: String,
    status: String,
    params: String,
    cursor: String,
    processed: i64,
    total: i64,
    counts: String,
    requested_by: String,
    claimed_by: Option<String>,
    claimed_until: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
}

fn corrupt() -> DbError {
    DbError::Query("stored bulk job is not valid".into())
}

impl TryFrom<Row> for BulkJob {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self, DbError> {
        Ok(Self {
            params: serde_json::from_str(&r.params).map_err(|_| corrupt())?,
            counts: serde_json::from_str(&r.counts).map_err(|_| corrupt())?,
            id: r.id,
            practice_id: r.practice_id,
            kind: r.kind,
            status: r.status,
            cursor: r.cursor,
            processed: r.processed,
            total: r.total,
            requested_by: r.requested_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
        })
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, DbError> {
    serde_json::to_string(v).map_err(|e| DbError::Query(e.to_string()))
}

pub fn insert(conn: &mut DbConnection, j: &BulkJob) -> Result<(), DbError> {
    diesel::insert_into(bulk_jobs::table)
        .values(Row {
            id: j.id.clone(),
            practice_id: j.practice_id.clone(),
            kind: j.kind.clone(),
            status: j.status.clone(),
            params: json(&j.params)?,
            cursor: j.cursor.clone(),
            processed: j.processed,
            total: j.total,
            counts: json(&j.counts)?,
            requested_by: j.requested_by.clone(),
            claimed_by: None,
            claimed_until: None,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: None,
        })
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<BulkJob>, DbError> {
    bulk_jobs::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(BulkJob::try_from)
        .transpose()
}

/// The practice's unfinished job of this kind, if any.
pub fn unfinished(conn: &mut DbConnection, practice_id: &str, kind: &str) -> Result<Option<BulkJob>, DbError> {
    bulk_jobs::table
        .filter(bulk_jobs::practice_id.eq(practice_id))
        .filter(bulk_jobs::kind.eq(kind))
        .filter(bulk_jobs::status.eq_any(["queued", "in-progress"]))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(BulkJob::try_from)
        .transpose()
}

/// A practice's jobs of `kind`, newest first, at most `limit`.
pub fn recent(conn: &mut DbConnection, practice_id: &str, kind: &str, limit: i64) -> Result<Vec<BulkJob>, DbError> {
    bulk_jobs::table
        .filter(bulk_jobs::practice_id.eq(practice_id))
        .filter(bulk_jobs::kind.eq(kind))
        .order((bulk_jobs::created_at.desc(), bulk_jobs::id.desc()))
        .limit(limit)
        .select(Row::as_select())
        .load(conn)?
        .into_iter()
        .map(BulkJob::try_from)
        .collect()
}

/// Claims one due job (queued, or in progress with a lapsed lease) for `worker` until
/// `until`. A compare-and-set: two instances never hold the same job.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<Option<BulkJob>, DbError> {
    let candidates: Vec<String> = bulk_jobs::table
        .filter(
            bulk_jobs::status.eq("queued").or(bulk_jobs::status
                .eq("in-progress")
                .and(bulk_jobs::claimed_until.lt(now))),
        )
        .order(bulk_jobs::created_at.asc())
        .select(bulk_jobs::id)
        .limit(5)
        .load(conn)?;
    for id in candidates {
        let n = diesel::update(
            bulk_jobs::table.filter(bulk_jobs::id.eq(&id)).filter(
                bulk_jobs::status.eq("queued").or(bulk_jobs::status
                    .eq("in-progress")
                    .and(bulk_jobs::claimed_until.lt(now))),
            ),
        )
        .set((
            bulk_jobs::status.eq("in-progress"),
            bulk_jobs::claimed_by.eq(Some(worker)),
            bulk_jobs::claimed_until.eq(Some(until)),
            bulk_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;
        if n == 1 {
            return find(conn, &id);
        }
    }
    Ok(None)
}

/// Records a batch done (cursor, counts) and renews the lease, if `worker` still holds the job.
/// Returns false when another instance took it over: the caller's transaction must roll back.
pub fn advance(
    conn: &mut DbConnection,
    j: &BulkJob,
    worker: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    let n = diesel::update(
        bulk_jobs::table
            .filter(bulk_jobs::id.eq(&j.id))
            .filter(bulk_jobs::claimed_by.eq(worker))
            .filter(bulk_jobs::status.eq("in-progress")),
    )
    .set((
        bulk_jobs::cursor.eq(&j.cursor),
        bulk_jobs::processed.eq(j.processed),
        bulk_jobs::counts.eq(json(&j.counts)?),
        bulk_jobs::status.eq(&j.status),
        bulk_jobs::claimed_until.eq(Some(until)),
        bulk_jobs::updated_at.eq(now),
        bulk_jobs::finished_at.eq(j.finished_at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
