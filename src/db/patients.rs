use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;

use super::schema::{patient_versions, patients, practices};
use super::{DbConnection, DbError};
use crate::domain::{Gender, OdsCode, PatientDetails, PatientIdentifier, PatientIdentifierSystem, PatientRecord};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    pub id: String,
    pub practice_id: String,
    pub identifier_system: String,
    pub identifier_value: String,
    pub family: String,
    pub family_folded: String,
    pub given: String,
    pub birth_date: NaiveDate,
    pub gender: String,
    pub email: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub deceased_on: Option<NaiveDate>,
}

/// Case- and accent-insensitive enough for surname search on both backends.
pub fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

impl PatientRow {
    fn new(
        id: &str,
        practice_id: &str,
        d: &PatientDetails,
        version: i64,
        created: NaiveDateTime,
        updated: NaiveDateTime,
    ) -> Self {
        Self {
            id: id.to_owned(),
            practice_id: practice_id.to_owned(),
            identifier_system: d.identifier.system().code().to_owned(),
            identifier_value: d.identifier.value().to_owned(),
            family: d.family.clone(),
            family_folded: fold(&d.family),
            given: serde_json::to_string(&d.given).unwrap_or_else(|_| "[]".into()),
            birth_date: d.birth_date,
            gender: d.gender.as_str().to_owned(),
            email: d.email.clone(),
            version,
            created_at: created,
            updated_at: updated,
            deceased_on: None,
        }
    }

    pub(super) fn into_record(self, ods: String) -> Result<PatientRecord, DbError> {
        let corrupt = |what: &str| DbError::Query(format!("stored patient {what} is not valid"));
        let system =
            PatientIdentifierSystem::from_code(&self.identifier_system).map_err(|_| corrupt("identifier system"))?;
        let identifier = PatientIdentifier::parse(system, &self.identifier_value).map_err(|_| corrupt("identifier"))?;
        Ok(PatientRecord {
            practice_ods: OdsCode::parse(&ods).map_err(|_| corrupt("practice ODS code"))?,
            details: PatientDetails {
                identifier,
                family: self.family,
                given: serde_json::from_str(&self.given).map_err(|_| corrupt("given names"))?,
                birth_date: self.birth_date,
                gender: Gender::parse(&self.gender).ok_or_else(|| corrupt("gender"))?,
                email: self.email,
            },
            last_updated: Utc.from_utc_datetime(&self.updated_at),
            id: self.id,
            practice_id: self.practice_id,
            version: self.version,
            deceased_on: self.deceased_on,
        })
    }
}

pub fn insert(
    conn: &mut DbConnection,
    id: &str,
    practice_id: &str,
    d: &PatientDetails,
    at: NaiveDateTime,
) -> Result<(), DbError> {
    super::cache::changed();
    diesel::insert_into(patients::table)
        .values(PatientRow::new(id, practice_id, d, 1, at, at))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<PatientRecord>, DbError> {
    patients::table
        .inner_join(practices::table)
        .filter(patients::id.eq(id))
        .select((PatientRow::as_select(), practices::ods_code))
        .first::<(PatientRow, String)>(conn)
        .optional()?
        .map(|(row, ods)| row.into_record(ods))
        .transpose()
}

#[derive(Debug, Default, Clone)]
pub struct PatientFilter {
    pub identifier: Option<(PatientIdentifierSystem, String)>,
    /// Any system: matches the value in whichever national system it is stored under.
    pub identifier_value: Option<String>,
    pub family_prefix: Option<String>,
    /// `family:exact`: the whole family name, as written.
    pub family_exact: Option<String>,
    /// A given name starting with this (case-insensitive).
    pub given_prefix: Option<String>,
    /// `name`: the family name or a given name starting with this.
    pub name_prefix: Option<String>,
    pub birth_date: Option<NaiveDate>,
    /// Birth-date ranges that must all hold: `[from, to)` (either open), or outside it when
    /// the flag is set (`ne`).
    pub birth_ranges: Vec<(Option<NaiveDate>, Option<NaiveDate>, bool)>,
    /// `_id`: any of these ids.
    pub ids: Vec<String>,
    pub practice_id: Option<String>,
    /// Sort keys, in order; `true` for descending.
    pub sort: Vec<(PatientSort, bool)>,
}

/// What a patient search can sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientSort {
    Family,
    Given,
    BirthDate,
    LastUpdated,
    Id,
}

diesel::define_sql_function! {
    /// Lower case, on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

fn like_escaped(raw: &str) -> String {
    raw.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

pub fn search(
    conn: &mut DbConnection,
    f: &PatientFilter,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<PatientRecord>), DbError> {
    let filtered = || {
        let mut q = patients::table.inner_join(practices::table).into_boxed();
        if let Some((system, value)) = &f.identifier {
            q = q
                .filter(patients::identifier_system.eq(system.code().to_owned()))
                .filter(patients::identifier_value.eq(value.clone()));
        }
        if let Some(value) = &f.identifier_value {
            q = q.filter(patients::identifier_value.eq(value.clone()));
        }
        if let Some(prefix) = &f.family_prefix {
            let escaped = like_escaped(&fold(prefix));
            q = q.filter(patients::family_folded.like(format!("{escaped}%")).escape('\\'));
        }
        if let Some(exact) = &f.family_exact {
            q = q.filter(patients::family.eq(exact.clone()));
        }
        if let Some(prefix) = &f.given_prefix {
            // `given` is a JSON list: a name starting with the prefix follows a quote.
            let escaped = like_escaped(&fold(prefix));
            q = q.filter(lower(patients::given).like(format!("%\"{escaped}%")).escape('\\'));
        }
        if let Some(prefix) = &f.name_prefix {
            let escaped = like_escaped(&fold(prefix));
            q = q.filter(
                patients::family_folded
                    .like(format!("{escaped}%"))
                    .escape('\\')
                    .or(lower(patients::given).like(format!("%\"{escaped}%")).escape('\\')),
            );
        }
        if let Some(date) = f.birth_date {
            q = q.filter(patients::birth_date.eq(date));
        }
        for (from, to, negate) in &f.birth_ranges {
            match (from, to, negate) {
                (Some(a), Some(b), true) => {
                    q = q.filter(patients::birth_date.lt(*a).or(patients::birth_date.ge(*b)));
                }
                (from, to, _) => {
                    if let Some(a) = from {
                        q = q.filter(patients::birth_date.ge(*a));
                    }
                    if let Some(b) = to {
                        q = q.filter(patients::birth_date.lt(*b));
                    }
                }
            }
        }
        if !f.ids.is_empty() {
            q = q.filter(patients::id.eq_any(f.ids.clone()));
        }
        if let Some(practice) = &f.practice_id {
            q = q.filter(patients::practice_id.eq(practice.clone()));
        }
        q
    };
    let mut ordered = filtered();
    for (i, (key, desc)) in f.sort.iter().enumerate() {
        macro_rules! by {
            ($col:expr) => {
                match (i, desc) {
                    (0, false) => ordered.order($col.asc()),
                    (0, true) => ordered.order($col.desc()),
                    (_, false) => ordered.then_order_by($col.asc()),
                    (_, true) => ordered.then_order_by($col.desc()),
                }
            };
        }
        ordered = match key {
            PatientSort::Family => by!(patients::family_folded),
            PatientSort::Given => by!(patients::given),
            PatientSort::BirthDate => by!(patients::birth_date),
            PatientSort::LastUpdated => by!(patients::updated_at),
            PatientSort::Id => by!(patients::id),
        };
    }
    let ordered = if f.sort.is_empty() {
        ordered.order((patients::family_folded.asc(), patients::id.asc()))
    } else {
        // The same order every time for equal keys, so paging is stable.
        ordered.then_order_by(patients::id.asc())
    };
    let rows = ordered
        .offset(offset)
        .limit(limit)
        .select((PatientRow::as_select(), practices::ods_code))
        .load::<(PatientRow, String)>(conn)?;
    // A page that is not full ends the matches: the total is known without counting (the
    // common case of an identifier search). An empty page past the start must count, as
    // must `_count=0`.
    let found = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let total = if found < limit && (offset == 0 || found > 0) {
        offset + found
    } else {
        filtered().count().get_result(conn)?
    };
    let records = rows
        .into_iter()
        .map(|(row, ods)| row.into_record(ods))
        .collect::<Result<_, _>>()?;
    Ok((total, records))
}

/// Replaces the record if it is still at `expected_version`; false when it has moved on.
pub fn update_if_version(
    conn: &mut DbConnection,
    id: &str,
    expected_version: i64,
    practice_id: &str,
    d: &PatientDetails,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    super::cache::changed();
    let row = PatientRow::new(id, practice_id, d, expected_version + 1, at, at);
    keep_version(conn, id, Some(expected_version), false)?;
    let n = diesel::update(
        patients::table
            .filter(patients::id.eq(id))
            .filter(patients::version.eq(expected_version)),
    )
    .set((
        patients::practice_id.eq(row.practice_id),
        patients::identifier_system.eq(row.identifier_system),
        patients::identifier_value.eq(row.identifier_value),
        patients::family.eq(row.family),
        patients::family_folded.eq(row.family_folded),
        patients::given.eq(row.given),
        patients::birth_date.eq(row.birth_date),
        patients::gender.eq(row.gender),
        patients::email.eq(row.email),
        patients::version.eq(row.version),
        patients::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The record holding a national identifier, wherever it is registered.
pub fn find_by_identifier(
    conn: &mut DbConnection,
    system: PatientIdentifierSystem,
    value: &str,
) -> Result<Option<PatientRecord>, DbError> {
    let filter = PatientFilter {
        identifier: Some((system, value.to_owned())),
        ..Default::default()
    };
    Ok(search(conn, &filter, 0, 1)?.1.pop())
}

/// One page of a practice's patients as (id, birth date), by id after `after`.
pub fn page_at_practice(
    conn: &mut DbConnection,
    practice_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<(String, NaiveDate)>, DbError> {
    Ok(patients::table
        .filter(patients::practice_id.eq(practice_id))
        .filter(patients::id.gt(after))
        .filter(patients::deceased_on.is_null())
        .order(patients::id.asc())
        .limit(limit)
        .select((patients::id, patients::birth_date))
        .load(conn)?)
}

pub fn count_at_practice(conn: &mut DbConnection, practice_id: &str) -> Result<i64, DbError> {
    Ok(patients::table
        .filter(patients::practice_id.eq(practice_id))
        .filter(patients::deceased_on.is_null())
        .count()
        .get_result(conn)?)
}

/// Registration moved the patient to another practice.
pub fn move_to(conn: &mut DbConnection, id: &str, practice_id: &str, now: NaiveDateTime) -> Result<bool, DbError> {
    super::cache::changed();
    keep_version(conn, id, None, false)?;
    let n = diesel::update(patients::table.find(id))
        .set((
            patients::practice_id.eq(practice_id),
            patients::version.eq(patients::version + 1),
            patients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The patient died on `day`.
pub fn set_deceased(conn: &mut DbConnection, id: &str, day: NaiveDate, now: NaiveDateTime) -> Result<bool, DbError> {
    super::cache::changed();
    keep_version(conn, id, None, true)?;
    let n = diesel::update(patients::table.find(id).filter(patients::deceased_on.is_null()))
        .set((
            patients::deceased_on.eq(Some(day)),
            patients::version.eq(patients::version + 1),
            patients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Keeps the current version of a record before a change replaces it (only at `version`, and
/// only while living when `living_only`: the same condition as the change). Called inside the
/// change's transaction; a version kept already (a change that lost a race) is left as it is.
fn keep_version(conn: &mut DbConnection, id: &str, version: Option<i64>, living_only: bool) -> Result<(), DbError> {
    let current: Option<PatientRow> = patients::table
        .find(id)
        .select(PatientRow::as_select())
        .first(conn)
        .optional()?;
    let Some(r) =
        current.filter(|r| version.is_none_or(|v| v == r.version) && !(living_only && r.deceased_on.is_some()))
    else {
        return Ok(());
    };
    let insert = diesel::insert_into(patient_versions::table)
        .values((
            patient_versions::id.eq(&r.id),
            patient_versions::version.eq(r.version),
            patient_versions::practice_id.eq(&r.practice_id),
            patient_versions::identifier_system.eq(&r.identifier_system),
            patient_versions::identifier_value.eq(&r.identifier_value),
            patient_versions::family.eq(&r.family),
            patient_versions::family_folded.eq(&r.family_folded),
            patient_versions::given.eq(&r.given),
            patient_versions::birth_date.eq(r.birth_date),
            patient_versions::gender.eq(&r.gender),
            patient_versions::email.eq(&r.email),
            patient_versions::created_at.eq(r.created_at),
            patient_versions::updated_at.eq(r.updated_at),
            patient_versions::deceased_on.eq(r.deceased_on),
        ))
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Postgres(c) => insert.execute(c)?,
        DbConnection::Sqlite(c) => insert.execute(c)?,
    };
    Ok(())
}

/// The columns of a kept version, in `PatientRow` order (so a row loads as a `PatientRow`).
macro_rules! version_columns {
    () => {
        (
            patient_versions::id,
            patient_versions::practice_id,
            patient_versions::identifier_system,
            patient_versions::identifier_value,
            patient_versions::family,
            patient_versions::family_folded,
            patient_versions::given,
            patient_versions::birth_date,
            patient_versions::gender,
            patient_versions::email,
            patient_versions::version,
            patient_versions::created_at,
            patient_versions::updated_at,
            patient_versions::deceased_on,
        )
    };
}

/// Every kept (superseded) version of a record, newest first, each with the practice it was at.
pub fn versions(conn: &mut DbConnection, id: &str) -> Result<Vec<PatientRecord>, DbError> {
    patient_versions::table
        .inner_join(practices::table)
        .filter(patient_versions::id.eq(id))
        .order(patient_versions::version.desc())
        .select((version_columns!(), practices::ods_code))
        .load::<(PatientRow, String)>(conn)?
        .into_iter()
        .map(|(row, ods)| row.into_record(ods))
        .collect()
}

/// One kept version of a record.
pub fn version(conn: &mut DbConnection, id: &str, version: i64) -> Result<Option<PatientRecord>, DbError> {
    patient_versions::table
        .inner_join(practices::table)
        .filter(patient_versions::id.eq(id))
        .filter(patient_versions::version.eq(version))
        .select((version_columns!(), practices::ods_code))
        .first::<(PatientRow, String)>(conn)
        .optional()?
        .map(|(row, ods)| row.into_record(ods))
        .transpose()
}
