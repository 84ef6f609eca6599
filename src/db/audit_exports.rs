//! Bulk exports of a practice's audit trail: the job, claimed with a lease and resumed from its
//! cursor, and its output files.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_export_files, audit_exports};
use super::{DbConnection, DbError};
use crate::domain::audit::{AuditExport, ExportCursor, ExportFile, ExportPeriod, ExportStatus};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_exports)]
struct Row {
    id: String,
    practice: String,
    requested_by: String,
    request: String,
    since: Option<NaiveDateTime>,
    until: NaiveDateTime,
    transaction_time: NaiveDateTime,
    status: String,
    cursor_recorded_at: Option<NaiveDateTime>,
    cursor_chain: Option<String>,
    cursor_seq: Option<i64>,
    exported: i64,
    files: i64,
    error: Option<String>,
    claimed_by: Option<String>,
    claimed_until: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    expires_at: NaiveDateTime,
}

impl TryFrom<Row> for AuditExport {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self, DbError> {
        let status =
            ExportStatus::parse(&r.status).ok_or_else(|| DbError::Query("stored audit export is not valid".into()))?;
        let cursor = match (r.cursor_recorded_at, r.cursor_chain, r.cursor_seq) {
            (Some(recorded_at), Some(chain), Some(seq)) => Some(ExportCursor {
                recorded_at,
                chain,
                seq,
            }),
            _ => None,
        };
        Ok(Self {
            id: r.id,
            practice: r.practice,
            requested_by: r.requested_by,
            request: r.request,
            period: ExportPeriod {
                since: r.since,
                until: r.until,
            },
            transaction_time: r.transaction_time,
            status,
            cursor,
            exported: r.exported,
            files: r.files,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
            expires_at: r.expires_at,
        })
    }
}

pub fn insert(conn: &mut DbConnection, e: &AuditExport) -> Result<(), DbError> {
    diesel::insert_into(audit_exports::table)
        .values(Row {
            id: e.id.clone(),
            practice: e.practice.clone(),
            requested_by: e.requested_by.clone(),
            request: e.request.clone(),
            since: e.period.since,
            until: e.period.until,
            transaction_time: e.transaction_time,
            status: e.status.as_str().to_owned(),
            cursor_recorded_at: None,
            cursor_chain: None,
            cursor_seq: None,
            exported: 0,
            files: 0,
            error: None,
            claimed_by: None,
            claimed_until: None,
            created_at: e.created_at,
            finished_at: None,
            expires_at: e.expires_at,
        })
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<AuditExport>, DbError> {
    audit_exports::table
        .find(id)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(AuditExport::try_from)
        .transpose()
}

/// How many of a practice's exports are kept at `now` (running, complete or failed, until
/// they expire), and when the first of them expires.
pub fn held(
    conn: &mut DbConnection,
    practice: &str,
    now: NaiveDateTime,
) -> Result<(i64, Option<NaiveDateTime>), DbError> {
    let kept = || {
        audit_exports::table
            .filter(audit_exports::practice.eq(practice))
            .filter(audit_exports::expires_at.gt(now))
    };
    let n = kept().count().get_result(conn)?;
    let first = kept()
        .select(audit_exports::expires_at)
        .order(audit_exports::expires_at.asc())
        .first(conn)
        .optional()?;
    Ok((n, first))
}

/// Claims one export that is due (never claimed, or its lease lapsed) for `worker` until
/// `until`. A compare-and-set: two instances never write the same export.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<Option<AuditExport>, DbError> {
    let due = || {
        audit_exports::status.eq(ExportStatus::InProgress.as_str()).and(
            audit_exports::claimed_until
                .is_null()
                .or(audit_exports::claimed_until.lt(now)),
        )
    };
    let candidates: Vec<String> = audit_exports::table
        .filter(due())
        .order(audit_exports::created_at.asc())
        .select(audit_exports::id)
        .limit(5)
        .load(conn)?;
    for id in candidates {
        let n = diesel::update(audit_exports::table.filter(audit_exports::id.eq(&id)).filter(due()))
            .set((
                audit_exports::claimed_by.eq(Some(worker)),
                audit_exports::claimed_until.eq(Some(until)),
            ))
            .execute(conn)?;
        if n == 1 {
            return find(conn, &id);
        }
    }
    Ok(None)
}

/// Stores the next file of an export and moves its cursor on, renewing the lease, if `worker`
/// still holds it. Returns false when it does not (taken over, or cancelled): the caller's
/// transaction must roll back.
pub fn add_file(
    conn: &mut DbConnection,
    e: &AuditExport,
    worker: &str,
    content: String,
    events: i64,
    until: NaiveDateTime,
) -> Result<bool, DbError> {
    if !advance(conn, e, worker, until)? {
        return Ok(false);
    }
    diesel::insert_into(audit_export_files::table)
        .values((
            audit_export_files::export_id.eq(&e.id),
            audit_export_files::part.eq(e.files),
            audit_export_files::events.eq(events),
            audit_export_files::content.eq(content),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Records where the export has got to (status, cursor, counts, error, expiry), if `worker`
/// still holds it; false otherwise.
pub fn advance(conn: &mut DbConnection, e: &AuditExport, worker: &str, until: NaiveDateTime) -> Result<bool, DbError> {
    let n = diesel::update(
        audit_exports::table
            .filter(audit_exports::id.eq(&e.id))
            .filter(audit_exports::claimed_by.eq(worker))
            .filter(audit_exports::status.eq(ExportStatus::InProgress.as_str())),
    )
    .set((
        audit_exports::status.eq(e.status.as_str()),
        audit_exports::cursor_recorded_at.eq(e.cursor.as_ref().map(|c| c.recorded_at)),
        audit_exports::cursor_chain.eq(e.cursor.as_ref().map(|c| c.chain.clone())),
        audit_exports::cursor_seq.eq(e.cursor.as_ref().map(|c| c.seq)),
        audit_exports::exported.eq(e.exported),
        audit_exports::files.eq(e.files),
        audit_exports::error.eq(&e.error),
        audit_exports::claimed_until.eq(Some(until)),
        audit_exports::finished_at.eq(e.finished_at),
        audit_exports::expires_at.eq(e.expires_at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The files an export has written so far, in order.
pub fn files(conn: &mut DbConnection, id: &str) -> Result<Vec<ExportFile>, DbError> {
    Ok(audit_export_files::table
        .filter(audit_export_files::export_id.eq(id))
        .order(audit_export_files::part.asc())
        .select((audit_export_files::part, audit_export_files::events))
        .load::<(i64, i64)>(conn)?
        .into_iter()
        .map(|(part, events)| ExportFile { part, events })
        .collect())
}

/// One file's NDJSON.
pub fn file_content(conn: &mut DbConnection, id: &str, part: i64) -> Result<Option<String>, DbError> {
    Ok(audit_export_files::table
        .find((id, part))
        .select(audit_export_files::content)
        .first(conn)
        .optional()?)
}

/// Removes an export and its files (a cancellation). Returns whether there was one.
pub fn delete(conn: &mut DbConnection, id: &str) -> Result<bool, DbError> {
    super::write_transaction(conn, |c| {
        diesel::delete(audit_export_files::table.filter(audit_export_files::export_id.eq(id))).execute(c)?;
        Ok(diesel::delete(audit_exports::table.filter(audit_exports::id.eq(id))).execute(c)? == 1)
    })
}

/// Removes exports (and their files) that expired before `now`.
pub fn purge_expired(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, DbError> {
    let expired: Vec<String> = audit_exports::table
        .filter(audit_exports::expires_at.lt(now))
        .select(audit_exports::id)
        .load(conn)?;
    for id in &expired {
        delete(conn, id)?;
    }
    Ok(expired.len())
}
