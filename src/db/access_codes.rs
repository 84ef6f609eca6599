//! Record-access codes on patients' records. A code is active until removed; removing keeps the
//! row, so the record shows who added and removed it and when.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::record_access_codes;
use super::{DbConnection, DbError};
use crate::domain::record_access::{AccessCode, CodeSet};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = record_access_codes)]
pub struct CodeRow {
    pub id: String,
    pub patient_id: String,
    pub code: String,
    pub source: String,
    pub added_by: String,
    pub added_at: NaiveDateTime,
    pub removed_by: Option<String>,
    pub removed_at: Option<NaiveDateTime>,
}

/// The codes on a patient's record now, with who added them.
pub fn active_rows(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<CodeRow>, DbError> {
    Ok(record_access_codes::table
        .filter(record_access_codes::patient_id.eq(patient_id))
        .filter(record_access_codes::removed_at.is_null())
        .order(record_access_codes::added_at.asc())
        .select(CodeRow::as_select())
        .load(conn)?)
}

pub fn active(conn: &mut DbConnection, patient_id: &str) -> Result<CodeSet, DbError> {
    Ok(CodeSet::new(
        active_rows(conn, patient_id)?
            .iter()
            .filter_map(|r| AccessCode::parse(&r.code)),
    ))
}

/// The active codes of many patients at once.
pub fn active_for(conn: &mut DbConnection, patient_ids: &[String]) -> Result<HashMap<String, CodeSet>, DbError> {
    let rows: Vec<(String, String)> = record_access_codes::table
        .filter(record_access_codes::patient_id.eq_any(patient_ids))
        .filter(record_access_codes::removed_at.is_null())
        .select((record_access_codes::patient_id, record_access_codes::code))
        .load(conn)?;
    let mut out: HashMap<String, Vec<AccessCode>> = HashMap::new();
    for (patient, code) in rows {
        if let Some(c) = AccessCode::parse(&code) {
            out.entry(patient).or_default().push(c);
        }
    }
    Ok(out.into_iter().map(|(k, v)| (k, CodeSet::new(v))).collect())
}

/// Adds a code unless the record already carries it. Returns whether it was added.
pub fn add(
    conn: &mut DbConnection,
    patient_id: &str,
    code: AccessCode,
    source: &str,
    by: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    Ok(add_many(conn, &[patient_id.to_owned()], code, source, by, now)? == 1)
}

/// Adds a code to every listed record that does not carry it yet, in one statement. Returns
/// how many were added. Safe to repeat and to run from two instances at once.
pub fn add_many(
    conn: &mut DbConnection,
    patient_ids: &[String],
    code: AccessCode,
    source: &str,
    by: &str,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    super::cache::changed();
    if patient_ids.is_empty() {
        return Ok(0);
    }
    let mut added = 0;
    // Bounded statement size on both backends.
    for chunk in patient_ids.chunks(500) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|p| {
                (
                    record_access_codes::id.eq(uuid::Uuid::new_v4().to_string()),
                    record_access_codes::patient_id.eq(p),
                    record_access_codes::code.eq(code.code()),
                    record_access_codes::source.eq(source),
                    record_access_codes::added_by.eq(by),
                    record_access_codes::added_at.eq(now),
                )
            })
            .collect();
        let insert = diesel::insert_into(record_access_codes::table).values(&rows);
        // An active code already on the record is left as it is (a partial unique index).
        added += match conn {
            DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
            DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
        };
    }
    Ok(added)
}

/// Removes an active code. Returns whether there was one.
pub fn remove(
    conn: &mut DbConnection,
    patient_id: &str,
    code: AccessCode,
    by: &str,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    super::cache::changed();
    let n = diesel::update(
        record_access_codes::table
            .filter(record_access_codes::patient_id.eq(patient_id))
            .filter(record_access_codes::code.eq(code.code()))
            .filter(record_access_codes::removed_at.is_null()),
    )
    .set((
        record_access_codes::removed_by.eq(Some(by)),
        record_access_codes::removed_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(n > 0)
}
