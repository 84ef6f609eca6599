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

/// Records an event. Returns false if it was recorded already (by another request). Never
/// fails on the repeat, so the caller's transaction stays usable on PostgreSQL.
pub fn insert(
    conn: &mut DbConnection,
    event_id: &str,
    source: &str,
    kind: &str,
    patient_id: Option<&str>,
    outcome: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    let insert = diesel::insert_into(supplier_events::table).values((
        supplier_events::event_id.eq(event_id),
        supplier_events::source.eq(source),
        supplier_events::kind.eq(kind),
        supplier_events::patient_id.eq(patient_id),
        supplier_events::outcome.eq(outcome),
        supplier_events::received_at.eq(now),
    ));
    let n = match conn {
        DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
        DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
    };
    Ok(n == 1)
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
