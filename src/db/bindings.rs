//! Identity bindings: an identity provider's subject mapped to a practice patient record.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::identity_bindings;
use super::{DbConnection, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = identity_bindings)]
pub struct Binding {
    pub issuer: String,
    pub subject: String,
    pub nhs_number: String,
    pub patient_id: String,
    pub practice_id: String,
    pub proofing_level: String,
    /// `token` (first verified call) or `link-identity` (asserted by an identity provider).
    pub source: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection, issuer: &str, subject: &str) -> Result<Option<Binding>, DbError> {
    Ok(identity_bindings::table
        .find((issuer, subject))
        .select(Binding::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConnection, b: &Binding) -> Result<(), DbError> {
    super::cache::changed();
    diesel::insert_into(identity_bindings::table).values(b).execute(conn)?;
    Ok(())
}

/// Points a binding at the patient's current registration.
pub fn repoint(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
    patient_id: &str,
    practice_id: &str,
    proofing_level: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    super::cache::changed();
    diesel::update(identity_bindings::table.find((issuer, subject)))
        .set((
            identity_bindings::patient_id.eq(patient_id),
            identity_bindings::practice_id.eq(practice_id),
            identity_bindings::proofing_level.eq(proofing_level),
            identity_bindings::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
