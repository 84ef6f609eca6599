use chrono::{NaiveDateTime, TimeZone, Utc};
use diesel::prelude::*;

use super::schema::practices;
use super::{DbConnection, DbError};
use crate::domain::{
    OdsCode, OnlineServicesSettings, PracticeAddress, PracticeChanges, PracticeRecord, Supplier, Telephone,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = practices)]
pub struct PracticeRow {
    pub id: String,
    pub ods_code: String,
    pub name: String,
    pub supplier: String,
    pub settings: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub address: Option<String>,
    pub telephone: Option<String>,
}

impl PracticeRow {
    pub fn into_record(self) -> Result<PracticeRecord, DbError> {
        Ok(PracticeRecord {
            ods_code: OdsCode::parse(&self.ods_code).map_err(|e| DbError::Query(format!("stored ODS code: {e}")))?,
            supplier: Supplier::parse(&self.supplier)
                .ok_or_else(|| DbError::Query(format!("stored supplier {:?} unknown", self.supplier)))?,
            settings: serde_json::from_str::<OnlineServicesSettings>(&self.settings)
                .map_err(|e| DbError::Query(format!("stored practice settings: {e}")))?,
            address: self
                .address
                .as_deref()
                .map(serde_json::from_str::<PracticeAddress>)
                .transpose()
                .map_err(|e| DbError::Query(format!("stored practice address: {e}")))?,
            telephone: self
                .telephone
                .as_deref()
                .map(Telephone::parse)
                .transpose()
                .map_err(|e| DbError::Query(format!("stored practice telephone: {e}")))?,
            last_updated: Utc.from_utc_datetime(&self.updated_at),
            id: self.id,
            name: self.name,
            version: self.version,
        })
    }
}

pub fn insert(conn: &mut DbConnection, p: &PracticeRecord) -> Result<(), DbError> {
    super::cache::changed();
    let at = p.last_updated.naive_utc();
    let row = PracticeRow {
        id: p.id.clone(),
        ods_code: p.ods_code.as_str().to_owned(),
        name: p.name.clone(),
        supplier: p.supplier.as_str().to_owned(),
        settings: serde_json::to_string(&p.settings).map_err(|e| DbError::Query(e.to_string()))?,
        version: p.version,
        created_at: at,
        updated_at: at,
        address: address_json(p.address.as_ref())?,
        telephone: p.telephone.as_ref().map(|t| t.as_str().to_owned()),
    };
    diesel::insert_into(practices::table).values(&row).execute(conn)?;
    Ok(())
}

fn address_json(address: Option<&PracticeAddress>) -> Result<Option<String>, DbError> {
    address
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| DbError::Query(e.to_string()))
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<PracticeRecord>, DbError> {
    practices::table
        .find(id)
        .select(PracticeRow::as_select())
        .first(conn)
        .optional()?
        .map(PracticeRow::into_record)
        .transpose()
}

pub fn find_by_ods(conn: &mut DbConnection, ods: &OdsCode) -> Result<Option<PracticeRecord>, DbError> {
    practices::table
        .filter(practices::ods_code.eq(ods.as_str()))
        .select(PracticeRow::as_select())
        .first(conn)
        .optional()?
        .map(PracticeRow::into_record)
        .transpose()
}

/// Practices filtered by ODS code (when given), ordered by ODS code, with the total count.
pub fn search(
    conn: &mut DbConnection,
    ods: Option<&OdsCode>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<PracticeRecord>), DbError> {
    let filtered = || {
        let mut q = practices::table.into_boxed();
        if let Some(ods) = ods {
            q = q.filter(practices::ods_code.eq(ods.as_str().to_owned()));
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order(practices::ods_code.asc())
        .offset(offset)
        .limit(limit)
        .select(PracticeRow::as_select())
        .load(conn)?;
    Ok((
        total,
        rows.into_iter()
            .map(PracticeRow::into_record)
            .collect::<Result<_, _>>()?,
    ))
}

/// Writes new name, contact details and settings if the stored version is still
/// `expected_version`. Returns false when someone else changed the practice first.
pub fn update_if_version(
    conn: &mut DbConnection,
    id: &str,
    expected_version: i64,
    changes: &PracticeChanges,
    at: NaiveDateTime,
) -> Result<bool, DbError> {
    super::cache::changed();
    let settings = serde_json::to_string(&changes.settings).map_err(|e| DbError::Query(e.to_string()))?;
    let n = diesel::update(
        practices::table
            .filter(practices::id.eq(id))
            .filter(practices::version.eq(expected_version)),
    )
    .set((
        practices::name.eq(&changes.name),
        practices::address.eq(address_json(changes.address.as_ref())?),
        practices::telephone.eq(changes.telephone.as_ref().map(Telephone::as_str)),
        practices::settings.eq(settings),
        practices::version.eq(expected_version + 1),
        practices::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Every practice (a few thousand at most).
pub fn all(conn: &mut DbConnection) -> Result<Vec<PracticeRecord>, DbError> {
    practices::table
        .order(practices::ods_code.asc())
        .select(PracticeRow::as_select())
        .load(conn)?
        .into_iter()
        .map(PracticeRow::into_record)
        .collect()
}

/// Changes a practice's settings whatever its version (a job acting on the staff's request).
pub fn set_settings(
    conn: &mut DbConnection,
    id: &str,
    settings: &OnlineServicesSettings,
    now: chrono::NaiveDateTime,
) -> Result<bool, DbError> {
    super::cache::changed();
    let settings = serde_json::to_string(settings).map_err(|e| DbError::Query(e.to_string()))?;
    let n = diesel::update(practices::table.find(id))
        .set((
            practices::settings.eq(settings),
            practices::version.eq(practices::version + 1),
            practices::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The practice, read so that a change to its settings waits for the caller's transaction (and
/// the caller waits for one in progress): on PostgreSQL a row lock; SQLite writes one at a time.
pub fn find_locked(conn: &mut DbConnection, id: &str) -> Result<Option<PracticeRecord>, DbError> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT 1 FROM practices WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    find(conn, id)
}
