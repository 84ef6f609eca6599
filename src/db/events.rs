//! Registration events from supplier systems, kept by event id so a repeat changes nothing,
//! and the claims that make a scheduled run happen once a day across instances.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{Date, Nullable, Text, Timestamp};

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
    let sql = "INSERT INTO supplier_events (event_id, source, kind, patient_id, outcome, received_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING";
    let n = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(sql)
            .bind::<Text, _>(event_id)
            .bind::<Text, _>(source)
            .bind::<Text, _>(kind)
            .bind::<Nullable<Text>, _>(patient_id)
            .bind::<Text, _>(outcome)
            .bind::<Timestamp, _>(now)
            .execute(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "INSERT INTO supplier_events (event_id, source, kind, patient_id, outcome, received_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(event_id)
        .bind::<Text, _>(source)
        .bind::<Text, _>(kind)
        .bind::<Nullable<Text>, _>(patient_id)
        .bind::<Text, _>(outcome)
        .bind::<Timestamp, _>(now)
        .execute(lite)?,
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
    let n = match conn {
        DbConnection::Postgres(pg) => diesel::sql_query(
            "INSERT INTO scheduled_runs (name, day, claimed_by, started_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(name)
        .bind::<Date, _>(day)
        .bind::<Text, _>(worker)
        .bind::<Timestamp, _>(now)
        .execute(pg)?,
        DbConnection::Sqlite(lite) => diesel::sql_query(
            "INSERT INTO scheduled_runs (name, day, claimed_by, started_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(name)
        .bind::<Date, _>(day)
        .bind::<Text, _>(worker)
        .bind::<Timestamp, _>(now)
        .execute(lite)?,
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
