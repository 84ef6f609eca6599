//! Failed linkage verifications per (practice, Account ID), for lockout.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::linkage_attempts;
use super::{DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = linkage_attempts)]
struct Attempts {
    ods_code: String,
    account_id: String,
    failures: i32,
    window_started_at: NaiveDateTime,
    locked_until: Option<NaiveDateTime>,
}

pub fn locked_until(
    conn: &mut DbConnection,
    ods: &str,
    account_id: &str,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, DbError> {
    let row: Option<Attempts> = linkage_attempts::table
        .find((ods, account_id))
        .select(Attempts::as_select())
        .first(conn)
        .optional()?;
    Ok(row.and_then(|r| r.locked_until).filter(|until| *until > now))
}

/// Counts a failure; returns the lock's end when this failure locks the account.
pub fn record_failure(
    conn: &mut DbConnection,
    ods: &str,
    account_id: &str,
    now: NaiveDateTime,
    max_failures: i32,
    window: chrono::Duration,
) -> Result<Option<NaiveDateTime>, DbError> {
    super::write_transaction(conn, |c| {
        let existing: Option<Attempts> = linkage_attempts::table
            .find((ods, account_id))
            .select(Attempts::as_select())
            .first(c)
            .optional()?;
        let (failures, started) = match existing {
            Some(a) if now - a.window_started_at < window => (a.failures + 1, a.window_started_at),
            _ => (1, now),
        };
        let locked_until = (failures >= max_failures).then_some(now + window);
        let row = Attempts {
            ods_code: ods.to_owned(),
            account_id: account_id.to_owned(),
            failures: if locked_until.is_some() { 0 } else { failures },
            window_started_at: if locked_until.is_some() { now } else { started },
            locked_until,
        };
        diesel::delete(linkage_attempts::table.find((ods, account_id))).execute(c)?;
        diesel::insert_into(linkage_attempts::table).values(&row).execute(c)?;
        Ok(locked_until)
    })
}

pub fn clear(conn: &mut DbConnection, ods: &str, account_id: &str) -> Result<(), DbError> {
    diesel::delete(linkage_attempts::table.find((ods, account_id))).execute(conn)?;
    Ok(())
}
