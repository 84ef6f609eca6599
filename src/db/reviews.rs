//! Record-review tasks: a clinician checks a record for third-party and sensitive information
//! before historic record access is switched on.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::review_tasks;
use super::{DbConnection, DbError};
pub use crate::domain::review::ReviewTask;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = review_tasks)]
struct ReviewRow {
    id: String,
    account_id: String,
    patient_id: String,
    status: String,
    requested_access: String,
    requested_by: String,
    completed_by: Option<String>,
    note: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl TryFrom<ReviewRow> for ReviewTask {
    type Error = DbError;

    fn try_from(r: ReviewRow) -> Result<Self, DbError> {
        Ok(Self {
            requested_access: serde_json::from_str(&r.requested_access)
                .map_err(|_| DbError::Query("stored review access is not valid".into()))?,
            id: r.id,
            account_id: r.account_id,
            patient_id: r.patient_id,
            status: r.status,
            requested_by: r.requested_by,
            completed_by: r.completed_by,
            note: r.note,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub fn insert(conn: &mut DbConnection, t: &ReviewTask) -> Result<(), DbError> {
    super::cache::changed();
    diesel::insert_into(review_tasks::table)
        .values(ReviewRow {
            id: t.id.clone(),
            account_id: t.account_id.clone(),
            patient_id: t.patient_id.clone(),
            status: t.status.clone(),
            requested_access: serde_json::to_string(&t.requested_access).map_err(|e| DbError::Query(e.to_string()))?,
            requested_by: t.requested_by.clone(),
            completed_by: None,
            note: None,
            created_at: t.created_at,
            updated_at: t.updated_at,
        })
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ReviewTask>, DbError> {
    review_tasks::table
        .find(id)
        .select(ReviewRow::as_select())
        .first(conn)
        .optional()?
        .map(ReviewTask::try_from)
        .transpose()
}

pub fn for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<ReviewTask>, DbError> {
    review_tasks::table
        .filter(review_tasks::patient_id.eq(patient_id))
        .order(review_tasks::created_at.asc())
        .select(ReviewRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ReviewTask::try_from)
        .collect()
}

/// The open record reviews of a practice's patients, oldest first, at most `limit`.
pub fn open_at_practice(conn: &mut DbConnection, practice_id: &str, limit: i64) -> Result<Vec<ReviewTask>, DbError> {
    use super::schema::patients;
    review_tasks::table
        .filter(review_tasks::status.eq("requested"))
        .filter(
            review_tasks::patient_id.eq_any(
                patients::table
                    .filter(patients::practice_id.eq(practice_id))
                    .select(patients::id),
            ),
        )
        .order((review_tasks::created_at.asc(), review_tasks::id.asc()))
        .limit(limit)
        .select(ReviewRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ReviewTask::try_from)
        .collect()
}

/// Marks an open review finished (`completed` or `cancelled`); false if it was not open.
pub fn close(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    by: &str,
    note: Option<&str>,
    now: NaiveDateTime,
) -> Result<bool, DbError> {
    super::cache::changed();
    let n = diesel::update(
        review_tasks::table
            .filter(review_tasks::id.eq(id))
            .filter(review_tasks::status.eq("requested")),
    )
    .set((
        review_tasks::status.eq(status),
        review_tasks::completed_by.eq(by),
        review_tasks::note.eq(note),
        review_tasks::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
