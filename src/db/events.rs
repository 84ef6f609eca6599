//! Registration events from supplier systems, kept by event id so a repeat changes nothing,
//! and the claims that make a scheduled run happen once a day across instances.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{scheduled_runs, supplier_events};
use super::{DbConnection, DbError};

/// The stored outcome of an event already received.
pub fn outcome(conn: &mut DbConnection, event_id: &str) -> Result<Option<(String, String)>, DbError> {
    Ok(supplier_events::table
        .find(event_id)
        .select((supplier_events::source, supplier_events::outcome))
        .first(conn)
        .optional()?)
}

/// Takes an event id for the transaction on `conn`, before anything of the event is read or
/// changed. Returns false if the event was recorded already. On PostgreSQL a concurrent repeat
/// waits here, on the key, until the first transaction ends, then sees what it stored (or, if it
/// was refused and released, takes the id itself); SQLite's write lock has the same effect.
/// Never fails on the repeat, so the caller's transaction stays usable on PostgreSQL.
pub fn claim(
    conn: &mut DbConnection,
    event_id: &str,
    source: &str,
    kind: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let insert = diesel::insert_into(supplier_events::table).values((
        supplier_events::event_id.eq(event_id),
        supplier_events::source.eq(source),
        supplier_events::kind.eq(kind),
        // Filled in by `complete` in the same transaction: no other reads it before.
        supplier_events::outcome.eq(""),
        supplier_events::received_at.eq(now),
    ));
    let n = match conn {
        DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    Ok(n == 1)
}

/// Stores what a claimed event did, for its repeats to answer.
pub fn complete(conn: &mut DbConnection, event_id: &str, patient_id: &str, outcome: &str) -> Result<(), DbError> {
    let n = diesel::update(supplier_events::table.find(event_id))
        .set((
            supplier_events::patient_id.eq(Some(patient_id)),
            supplier_events::outcome.eq(outcome),
        ))
        .execute(conn)?;
    if n == 1 {
        Ok(())
    } else {
        Err(DbError::Query("the event's claim was not found".into()))
    }
}

/// Gives back the id of an event that was refused: nothing of it is kept, so a corrected
/// event under the same id can still be applied.
pub fn release(conn: &mut DbConnection, event_id: &str) -> Result<(), DbError> {
    diesel::delete(supplier_events::table.find(event_id)).execute(conn)?;
    Ok(())
}

/// Claims today's run of `name` for `worker`. Returns false if an instance claimed it already.
pub fn claim_run(
    conn: &mut DbConnection,
    name: &str,
    day: NaiveDate,
    worker: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let insert = diesel::insert_into(scheduled_runs::table).values((
        scheduled_runs::name.eq(name),
        scheduled_runs::day.eq(day),
        scheduled_runs::claimed_by.eq(worker),
        scheduled_runs::started_at.eq(now),
    ));
    let n = match conn {
        DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    Ok(n == 1)
}

pub fn finish_run(
    conn: &mut DbConnection,
    name: &str,
    day: NaiveDate,
    report: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    diesel::update(scheduled_runs::table.find((name, day)))
        .set((
            scheduled_runs::finished_at.eq(Some(now)),
            scheduled_runs::report.eq(Some(report)),
        ))
        .execute(conn)?;
    Ok(())
}
