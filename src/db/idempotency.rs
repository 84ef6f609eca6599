//! Remembered responses for `X-Request-ID` replay.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_records;
use super::{DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_records)]
pub struct IdempotencyRecord {
    pub caller: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub fingerprint: String,
    pub status: Option<i32>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub created_at: NaiveDateTime,
    /// The instance carrying the request out.
    pub owner: Option<String>,
}

pub enum Claim {
    /// No earlier request with this id: the caller owns it now and must complete or release it.
    Started,
    /// An earlier request with this id exists (finished or still running).
    Existing(Box<IdempotencyRecord>),
}

/// Claims a request id for a caller by inserting an in-progress marker; the primary key makes
/// concurrent duplicates lose the race instead of running twice.
pub fn claim(conn: &mut DbConnection, record: &IdempotencyRecord) -> Result<Claim, DbError> {
    match diesel::insert_into(idempotency_records::table)
        .values(record)
        .execute(conn)
    {
        Ok(_) => Ok(Claim::Started),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            let existing = idempotency_records::table
                .find((&record.caller, &record.request_id))
                .select(IdempotencyRecord::as_select())
                .first(conn)?;
            Ok(Claim::Existing(Box::new(existing)))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn complete(
    conn: &mut DbConnection,
    caller: &str,
    request_id: &str,
    status: i32,
    headers: &str,
    body: &str,
) -> Result<(), DbError> {
    diesel::update(idempotency_records::table.find((caller, request_id)))
        .set((
            idempotency_records::status.eq(status),
            idempotency_records::response_headers.eq(headers),
            idempotency_records::response_body.eq(body),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets a claim whose request did not complete (a server error), so a retry runs again.
pub fn release(conn: &mut DbConnection, caller: &str, request_id: &str) -> Result<(), DbError> {
    diesel::delete(idempotency_records::table.find((caller, request_id)))
        .filter(idempotency_records::status.is_null())
        .execute(conn)?;
    Ok(())
}

pub fn purge_older_than(conn: &mut DbConnection, cutoff: NaiveDateTime) -> Result<usize, DbError> {
    Ok(diesel::delete(idempotency_records::table.filter(idempotency_records::created_at.lt(cutoff))).execute(conn)?)
}

/// This instance is alive (every few seconds).
pub fn heartbeat(conn: &mut DbConnection, instance: &str, now: NaiveDateTime) -> Result<(), DbError> {
    use super::schema::instance_heartbeats;
    let n = diesel::update(instance_heartbeats::table.find(instance))
        .set(instance_heartbeats::beat_at.eq(now))
        .execute(conn)?;
    if n == 0 {
        diesel::insert_into(instance_heartbeats::table)
            .values((
                instance_heartbeats::instance.eq(instance),
                instance_heartbeats::beat_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether the instance has gone quiet: it has beaten, but not since `since`. An instance with
/// no beat on record is not taken for dead (the claim's age decides then).
pub fn silent_since(conn: &mut DbConnection, instance: &str, since: NaiveDateTime) -> Result<bool, DbError> {
    use super::schema::instance_heartbeats;
    let beat: Option<NaiveDateTime> = instance_heartbeats::table
        .find(instance)
        .select(instance_heartbeats::beat_at)
        .first(conn)
        .optional()?;
    Ok(beat.is_some_and(|b| b < since))
}
