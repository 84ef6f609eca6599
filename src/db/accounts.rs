use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::online_accounts;
use super::{DbConnection, DbError};
use crate::domain::AccountStatus;
pub use crate::domain::OnlineAccount;
use crate::domain::account::AccountSource;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
// None is written as NULL (no column has another default), so the statement text is the same
// every time and is prepared once.
#[diesel(table_name = online_accounts, treat_none_as_default_value = false)]
pub(super) struct AccountRow {
    id: String,
    patient_id: String,
    practice_id: String,
    status: String,
    status_reason: Option<String>,
    email: String,
    access: String,
    verification: String,
    attestation: String,
    supplier_ref: Option<String>,
    supplier_account_id: Option<String>,
    linkage_key_enc: Option<String>,
    linkage_key_issued_at: Option<NaiveDateTime>,
    letter_printed_at: Option<NaiveDateTime>,
    letter_expires_at: Option<NaiveDateTime>,
    last_error: Option<String>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    pending_access: Option<String>,
    sent_access: Option<String>,
    source: String,
}

fn corrupt(what: &str) -> DbError {
    DbError::Query(format!("stored online account {what} is not valid"))
}

impl TryFrom<AccountRow> for OnlineAccount {
    type Error = DbError;

    fn try_from(r: AccountRow) -> Result<Self, DbError> {
        Ok(Self {
            status: AccountStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            access: serde_json::from_str(&r.access).map_err(|_| corrupt("access"))?,
            verification: serde_json::from_str(&r.verification).map_err(|_| corrupt("verification"))?,
            attestation: serde_json::from_str(&r.attestation).map_err(|_| corrupt("attestation"))?,
            pending_access: r
                .pending_access
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("pending access"))?,
            sent_access: r
                .sent_access
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| corrupt("sent access"))?,
            source: AccountSource::parse(&r.source).ok_or_else(|| corrupt("source"))?,
            id: r.id,
            patient_id: r.patient_id,
            practice_id: r.practice_id,
            status_reason: r.status_reason,
            email: r.email,
            supplier_ref: r.supplier_ref,
            account_id: r.supplier_account_id,
            linkage_key_sealed: r.linkage_key_enc,
            linkage_key_issued_at: r.linkage_key_issued_at,
            letter_printed_at: r.letter_printed_at,
            letter_expires_at: r.letter_expires_at,
            last_error: r.last_error,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn to_row(a: &OnlineAccount) -> Result<AccountRow, DbError> {
    let json = |v: serde_json::Result<String>| v.map_err(|e| DbError::Query(e.to_string()));
    Ok(AccountRow {
        id: a.id.clone(),
        patient_id: a.patient_id.clone(),
        practice_id: a.practice_id.clone(),
        status: a.status.as_str().to_owned(),
        status_reason: a.status_reason.clone(),
        email: a.email.clone(),
        access: json(serde_json::to_string(&a.access))?,
        verification: json(serde_json::to_string(&a.verification))?,
        attestation: json(serde_json::to_string(&a.attestation))?,
        supplier_ref: a.supplier_ref.clone(),
        supplier_account_id: a.account_id.clone(),
        linkage_key_enc: a.linkage_key_sealed.clone(),
        linkage_key_issued_at: a.linkage_key_issued_at,
        letter_printed_at: a.letter_printed_at,
        letter_expires_at: a.letter_expires_at,
        last_error: a.last_error.clone(),
        version: a.version,
        created_at: a.created_at,
        updated_at: a.updated_at,
        pending_access: a
            .pending_access
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Query(e.to_string()))?,
        sent_access: a
            .sent_access
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Query(e.to_string()))?,
        source: a.source.as_str().to_owned(),
    })
}

pub fn insert(conn: &mut DbConnection, a: &OnlineAccount) -> Result<(), DbError> {
    super::cache::changed();
    diesel::insert_into(online_accounts::table)
        .values(to_row(a)?)
        .execute(conn)?;
    Ok(())
}

/// The statement saving an account, for the statement cache.
struct SaveStatement;

/// Writes a changed account if the stored row is still at the version it was read at, moving
/// it to the next version. Returns false (and leaves `a` as it was) when another change got
/// there first.
pub fn save(conn: &mut DbConnection, a: &mut OnlineAccount) -> Result<bool, DbError> {
    super::cache::changed();
    let read_at = (a.version, a.updated_at);
    a.version += 1;
    a.updated_at = super::now();
    let row = to_row(a)?;
    let update = diesel::update(
        online_accounts::table
            .filter(online_accounts::id.eq(&a.id))
            .filter(online_accounts::version.eq(read_at.0)),
    )
    .set((
        online_accounts::status.eq(row.status),
        online_accounts::status_reason.eq(row.status_reason),
        online_accounts::email.eq(row.email),
        online_accounts::access.eq(row.access),
        online_accounts::supplier_ref.eq(row.supplier_ref),
        online_accounts::supplier_account_id.eq(row.supplier_account_id),
        online_accounts::linkage_key_enc.eq(row.linkage_key_enc),
        online_accounts::linkage_key_issued_at.eq(row.linkage_key_issued_at),
        online_accounts::letter_printed_at.eq(row.letter_printed_at),
        online_accounts::letter_expires_at.eq(row.letter_expires_at),
        online_accounts::last_error.eq(row.last_error),
        online_accounts::version.eq(row.version),
        online_accounts::updated_at.eq(row.updated_at),
        online_accounts::pending_access.eq(row.pending_access),
        online_accounts::sent_access.eq(row.sent_access),
    ));
    let n = match conn {
        // Loaded, not executed: diesel checks an executed statement for caching through a
        // reference, which does not see the wrapper.
        DbConnection::Postgres(pg) => super::Fixed::<_, SaveStatement>::new(update.returning(online_accounts::id))
            .load::<String>(pg)?
            .len(),
        DbConnection::Sqlite(lite) => update.execute(lite)?,
    };
    if n != 1 {
        (a.version, a.updated_at) = read_at;
    }
    Ok(n == 1)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OnlineAccount>, DbError> {
    online_accounts::table
        .find(id)
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?
        .map(OnlineAccount::try_from)
        .transpose()
}

/// The patient's account at one practice.
pub fn find_by_patient(
    conn: &mut DbConnection,
    patient_id: &str,
    practice_id: &str,
) -> Result<Option<OnlineAccount>, DbError> {
    online_accounts::table
        .filter(online_accounts::patient_id.eq(patient_id))
        .filter(online_accounts::practice_id.eq(practice_id))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?
        .map(OnlineAccount::try_from)
        .transpose()
}

/// The account, read so that a concurrent change waits for the caller's transaction instead of
/// losing the optimistic race to it: on PostgreSQL a row lock; SQLite writes one at a time.
/// For the request paths that change an account; background jobs re-read and retry instead.
pub fn find_locked(conn: &mut DbConnection, id: &str) -> Result<Option<OnlineAccount>, DbError> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT 1 FROM online_accounts WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    find(conn, id)
}

/// Locks every account the patient holds (see [`find_locked`]), before a change reads them.
pub fn lock_for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<(), DbError> {
    if let DbConnection::Postgres(pg) = conn {
        diesel::sql_query("SELECT 1 FROM online_accounts WHERE patient_id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(patient_id)
            .execute(pg)?;
    }
    Ok(())
}

/// Every account the patient has had, at any practice, newest first.
pub fn all_for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<OnlineAccount>, DbError> {
    online_accounts::table
        .filter(online_accounts::patient_id.eq(patient_id))
        .order(online_accounts::created_at.desc())
        .select(AccountRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OnlineAccount::try_from)
        .collect()
}

/// The accounts of these patients at one practice.
pub fn for_patients_at(
    conn: &mut DbConnection,
    patient_ids: &[String],
    practice_id: &str,
) -> Result<Vec<OnlineAccount>, DbError> {
    online_accounts::table
        .filter(online_accounts::patient_id.eq_any(patient_ids))
        .filter(online_accounts::practice_id.eq(practice_id))
        .select(AccountRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OnlineAccount::try_from)
        .collect()
}

/// One page of a practice's accounts, by id after `after`.
pub fn page_at_practice(
    conn: &mut DbConnection,
    practice_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<OnlineAccount>, DbError> {
    online_accounts::table
        .filter(online_accounts::practice_id.eq(practice_id))
        .filter(online_accounts::id.gt(after))
        .order(online_accounts::id.asc())
        .limit(limit)
        .select(AccountRow::as_select())
        .load(conn)?
        .into_iter()
        .map(OnlineAccount::try_from)
        .collect()
}

/// Whether another patient's live account already uses this email address.
pub fn email_used_by_another(conn: &mut DbConnection, email: &str, patient_id: &str) -> Result<bool, DbError> {
    // The first such account answers: a family sharing one address does not make every
    // registration count them all.
    Ok(diesel::select(diesel::dsl::exists(
        online_accounts::table
            .filter(online_accounts::email.eq(email))
            .filter(online_accounts::patient_id.ne(patient_id))
            .filter(online_accounts::status.ne(AccountStatus::Rejected.as_str())),
    ))
    .get_result(conn)?)
}

/// The account a registration letter names: the practice and the supplier's Account ID.
pub fn find_by_account_id(
    conn: &mut DbConnection,
    practice_id: &str,
    account_id: &str,
) -> Result<Option<OnlineAccount>, DbError> {
    online_accounts::table
        .filter(online_accounts::practice_id.eq(practice_id))
        .filter(online_accounts::supplier_account_id.eq(account_id))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()?
        .map(OnlineAccount::try_from)
        .transpose()
}

/// One page of sealed linkage keys, `(account id, sealed value)` by id after `after`.
pub fn sealed_linkage_keys(conn: &mut DbConnection, after: &str, limit: i64) -> Result<Vec<(String, String)>, DbError> {
    let rows: Vec<(String, Option<String>)> = online_accounts::table
        .filter(online_accounts::id.gt(after))
        .filter(online_accounts::linkage_key_enc.is_not_null())
        .order(online_accounts::id.asc())
        .limit(limit)
        .select((online_accounts::id, online_accounts::linkage_key_enc))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, sealed)| Some((id, sealed?)))
        .collect())
}

/// Replaces a sealed linkage key with the same secret sealed again, only if it is still the
/// value that was read (a key re-issued meanwhile is left as it is). The account's version is
/// not moved: what it holds has not changed.
pub fn reseal_linkage_key(conn: &mut DbConnection, id: &str, was: &str, now: &str) -> Result<bool, DbError> {
    super::cache::changed();
    let n = diesel::update(
        online_accounts::table
            .filter(online_accounts::id.eq(id))
            .filter(online_accounts::linkage_key_enc.eq(was)),
    )
    .set(online_accounts::linkage_key_enc.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}
