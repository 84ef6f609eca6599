//! What a decision about a patient needs, in one round trip: the record, its practice, the
//! online account at that practice, and the record-access codes; and a token's binding with the
//! record it points at.

use diesel::prelude::*;

use super::accounts::AccountRow;
use super::bindings::Binding;
use super::patients::PatientRow;
use super::practices::PracticeRow;
use super::schema::{identity_bindings, online_accounts, patients, practices, record_access_codes};
use super::{DbConnection, DbError};
use crate::domain::record_access::{AccessCode, CodeSet};
use crate::domain::{OnlineAccount, PatientRecord, PracticeRecord};

/// A patient with everything the engine looks at.
#[derive(Debug, Clone)]
pub struct PatientContext {
    pub patient: PatientRecord,
    pub practice: PracticeRecord,
    pub account: Option<OnlineAccount>,
    pub codes: CodeSet,
}

type Row = (PatientRow, PracticeRow, Option<AccountRow>, Option<String>);

fn assemble(rows: Vec<Row>) -> Result<Option<PatientContext>, DbError> {
    let mut codes = vec![];
    let mut first = None;
    for (patient, practice, account, code) in rows {
        if let Some(c) = code.as_deref().and_then(AccessCode::parse) {
            codes.push(c);
        }
        if first.is_none() {
            first = Some((patient, practice, account));
        }
    }
    let Some((patient, practice, account)) = first else {
        return Ok(None);
    };
    let practice = practice.into_record()?;
    Ok(Some(PatientContext {
        patient: patient.into_record(practice.ods_code.as_str().to_owned())?,
        practice,
        account: account.map(OnlineAccount::try_from).transpose()?,
        codes: CodeSet::new(codes),
    }))
}

macro_rules! context_query {
    ($filter:expr) => {
        patients::table
            .inner_join(practices::table)
            .left_join(
                online_accounts::table.on(online_accounts::patient_id
                    .eq(patients::id)
                    .and(online_accounts::practice_id.eq(patients::practice_id))),
            )
            .left_join(
                record_access_codes::table.on(record_access_codes::patient_id
                    .eq(patients::id)
                    .and(record_access_codes::removed_at.is_null())),
            )
            .filter($filter)
            .select((
                PatientRow::as_select(),
                PracticeRow::as_select(),
                Option::<AccountRow>::as_select(),
                record_access_codes::code.nullable(),
            ))
    };
}

/// The patient with this id, with their practice, account there and codes.
pub fn patient_context(conn: &mut DbConnection, id: &str) -> Result<Option<PatientContext>, DbError> {
    let rows: Vec<Row> = context_query!(patients::id.eq(id)).load(conn)?;
    assemble(rows)
}

/// Several patients' contexts in one query, by id.
pub fn patient_contexts(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<PatientContext>, DbError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Row> = context_query!(patients::id.eq_any(ids)).load(conn)?;
    let mut grouped: Vec<(String, Vec<Row>)> = vec![];
    for row in rows {
        match grouped.iter_mut().find(|(id, _)| *id == row.0.id) {
            Some((_, rs)) => rs.push(row),
            None => grouped.push((row.0.id.clone(), vec![row])),
        }
    }
    grouped
        .into_iter()
        .filter_map(|(_, rs)| assemble(rs).transpose())
        .collect()
}

/// The same, for the record holding this NHS number.
pub fn patient_context_by_nhs(conn: &mut DbConnection, nhs: &str) -> Result<Option<PatientContext>, DbError> {
    let rows: Vec<Row> = context_query!(
        patients::identifier_system
            .eq(crate::domain::PatientIdentifierSystem::NhsNumber.code())
            .and(patients::identifier_value.eq(nhs))
    )
    .load(conn)?;
    assemble(rows)
}

/// A token's binding when it still points at the record that holds its NHS number at the
/// record's practice: the common case, in one query. `None` means look the slow way.
pub fn current_binding(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
    nhs: &str,
) -> Result<Option<(Binding, PatientRecord)>, DbError> {
    let found: Option<(Binding, PatientRow, String)> = identity_bindings::table
        .inner_join(
            patients::table.on(patients::id
                .eq(identity_bindings::patient_id)
                .and(patients::practice_id.eq(identity_bindings::practice_id))),
        )
        .inner_join(practices::table.on(practices::id.eq(patients::practice_id)))
        .filter(identity_bindings::issuer.eq(issuer))
        .filter(identity_bindings::subject.eq(subject))
        .filter(identity_bindings::nhs_number.eq(nhs))
        .filter(patients::identifier_system.eq(crate::domain::PatientIdentifierSystem::NhsNumber.code()))
        .filter(patients::identifier_value.eq(nhs))
        .select((Binding::as_select(), PatientRow::as_select(), practices::ods_code))
        .first(conn)
        .optional()?;
    found.map(|(b, p, ods)| Ok((b, p.into_record(ods)?))).transpose()
}
