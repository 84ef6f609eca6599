//! Proxy roles, the access requests they come from, and the practice's reviews of them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{access_requests, proxy_reviews, proxy_roles};
use super::{DbConnection, DbError};
pub use crate::domain::proxy::{AccessRequest, ProxyReview};
use crate::domain::proxy::{
    Assessment, LegalBasis, ProxyGrants, ProxyRole, ReasonRecord, RelationshipCode, RoleStatus, StatusReason,
};
use crate::domain::{AccessSettings, NhsNumber, OdsCode};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = proxy_roles)]
pub(super) struct RoleRow {
    pub(super) id: String,
    proxy_nhs_number: String,
    patient_id: String,
    patient_nhs_number: String,
    practice_id: String,
    status: String,
    reason_code: String,
    reason_text: Option<String>,
    legal_basis: String,
    relationships: String,
    grantor: Option<String>,
    date_time: NaiveDateTime,
    period_start: Option<NaiveDateTime>,
    period_end: Option<NaiveDateTime>,
    grants: String,
    assessment: String,
    access_request_id: Option<String>,
    supplier_ref: Option<String>,
    last_used_at: Option<NaiveDateTime>,
    reviewed_at: Option<NaiveDateTime>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    sent_access: Option<String>,
}

fn corrupt(what: &str) -> DbError {
    DbError::Query(format!("stored proxy role {what} is not valid"))
}

impl TryFrom<RoleRow> for ProxyRole {
    type Error = DbError;

    fn try_from(r: RoleRow) -> Result<Self, DbError> {
        Ok(Self {
            proxy_nhs_number: NhsNumber::parse(&r.proxy_nhs_number).map_err(|_| corrupt("proxy"))?,
            patient_nhs_number: NhsNumber::parse(&r.patient_nhs_number).map_err(|_| corrupt("patient"))?,
            status: RoleStatus::parse(&r.status).ok_or_else(|| corrupt("status"))?,
            reason: ReasonRecord {
                reason: StatusReason::parse(&r.reason_code).ok_or_else(|| corrupt("reason"))?,
                text: r.reason_text,
            },
            legal_basis: LegalBasis::parse(&r.legal_basis).ok_or_else(|| corrupt("legal basis"))?,
            relationships: serde_json::from_str(&r.relationships).map_err(|_| corrupt("relationships"))?,
            grantor: r
                .grantor
                .map(|g| OdsCode::parse(&g))
                .transpose()
                .map_err(|_| corrupt("grantor"))?,
            grants: serde_json::from_str(&r.grants).map_err(|_| corrupt("grants"))?,
            assessment: serde_json::from_str(&r.assessment).map_err(|_| corrupt("assessment"))?,
            sent_access: r
                .sent_access
                .map(|a| serde_json::from_str(&a))
                .transpose()
                .map_err(|_| corrupt("sent access"))?,
            id: r.id,
            patient_id: r.patient_id,
            practice_id: r.practice_id,
            date_time: r.date_time,
            period_start: r.period_start,
            period_end: r.period_end,
            access_request_id: r.access_request_id,
            supplier_ref: r.supplier_ref,
            last_used_at: r.last_used_at,
            reviewed_at: r.reviewed_at,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

fn to_row(r: &ProxyRole) -> Result<RoleRow, DbError> {
    let json = |v: serde_json::Result<String>| v.map_err(|e| DbError::Query(e.to_string()));
    Ok(RoleRow {
        id: r.id.clone(),
        proxy_nhs_number: r.proxy_nhs_number.as_str().to_owned(),
        patient_id: r.patient_id.clone(),
        patient_nhs_number: r.patient_nhs_number.as_str().to_owned(),
        practice_id: r.practice_id.clone(),
        status: r.status.code().to_owned(),
        reason_code: r.reason.reason.code().to_owned(),
        reason_text: r.reason.text.clone(),
        legal_basis: r.legal_basis.code().to_owned(),
        relationships: json(serde_json::to_string::<Vec<RelationshipCode>>(&r.relationships))?,
        grantor: r.grantor.as_ref().map(|g| g.as_str().to_owned()),
        date_time: r.date_time,
        period_start: r.period_start,
        period_end: r.period_end,
        grants: json(serde_json::to_string::<ProxyGrants>(&r.grants))?,
        assessment: json(serde_json::to_string::<Assessment>(&r.assessment))?,
        access_request_id: r.access_request_id.clone(),
        supplier_ref: r.supplier_ref.clone(),
        last_used_at: r.last_used_at,
        reviewed_at: r.reviewed_at,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        sent_access: r
            .sent_access
            .as_ref()
            .map(|a| json(serde_json::to_string::<AccessSettings>(a)))
            .transpose()?,
    })
}

pub fn insert(conn: &mut DbConnection, r: &ProxyRole) -> Result<(), DbError> {
    super::cache::changed();
    diesel::insert_into(proxy_roles::table)
        .values(to_row(r)?)
        .execute(conn)?;
    Ok(())
}

/// Writes a changed role if the stored row is still at the version it was read at; false (and
/// the role left as it was) when another change got there first.
pub fn save(conn: &mut DbConnection, r: &mut ProxyRole) -> Result<bool, DbError> {
    super::cache::changed();
    let read_at = (r.version, r.updated_at);
    r.version += 1;
    r.updated_at = super::now();
    let row = to_row(r)?;
    let n = diesel::update(
        proxy_roles::table
            .filter(proxy_roles::id.eq(&r.id))
            .filter(proxy_roles::version.eq(read_at.0)),
    )
    .set((
        proxy_roles::practice_id.eq(row.practice_id),
        proxy_roles::status.eq(row.status),
        proxy_roles::reason_code.eq(row.reason_code),
        proxy_roles::reason_text.eq(row.reason_text),
        proxy_roles::legal_basis.eq(row.legal_basis),
        proxy_roles::relationships.eq(row.relationships),
        proxy_roles::grantor.eq(row.grantor),
        proxy_roles::period_start.eq(row.period_start),
        proxy_roles::period_end.eq(row.period_end),
        proxy_roles::grants.eq(row.grants),
        proxy_roles::assessment.eq(row.assessment),
        proxy_roles::reviewed_at.eq(row.reviewed_at),
        proxy_roles::sent_access.eq(row.sent_access),
        proxy_roles::version.eq(row.version),
        proxy_roles::updated_at.eq(row.updated_at),
    ))
    .execute(conn)?;
    if n != 1 {
        (r.version, r.updated_at) = read_at;
    }
    Ok(n == 1)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ProxyRole>, DbError> {
    proxy_roles::table
        .find(id)
        .select(RoleRow::as_select())
        .first(conn)
        .optional()?
        .map(ProxyRole::try_from)
        .transpose()
}

fn load(rows: Vec<RoleRow>) -> Result<Vec<ProxyRole>, DbError> {
    rows.into_iter().map(ProxyRole::try_from).collect()
}

/// Roles matching a proxy and/or a patient NHS number, newest first.
pub fn search(
    conn: &mut DbConnection,
    proxy: Option<&NhsNumber>,
    patient: Option<&NhsNumber>,
) -> Result<Vec<ProxyRole>, DbError> {
    let mut q = proxy_roles::table.into_boxed();
    if let Some(p) = proxy {
        q = q.filter(proxy_roles::proxy_nhs_number.eq(p.as_str().to_owned()));
    }
    if let Some(p) = patient {
        q = q.filter(proxy_roles::patient_nhs_number.eq(p.as_str().to_owned()));
    }
    load(
        q.order((proxy_roles::created_at.desc(), proxy_roles::id.asc()))
            .limit(1000)
            .select(RoleRow::as_select())
            .load(conn)?,
    )
}

/// A proxy's roles for one patient record.
pub fn for_pair(conn: &mut DbConnection, proxy: &NhsNumber, patient_id: &str) -> Result<Vec<ProxyRole>, DbError> {
    load(
        proxy_roles::table
            .filter(proxy_roles::proxy_nhs_number.eq(proxy.as_str()))
            .filter(proxy_roles::patient_id.eq(patient_id))
            .order(proxy_roles::updated_at.desc())
            .select(RoleRow::as_select())
            .load(conn)?,
    )
}

/// Every role of a patient record.
pub fn for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<ProxyRole>, DbError> {
    load(
        proxy_roles::table
            .filter(proxy_roles::patient_id.eq(patient_id))
            .order(proxy_roles::created_at.asc())
            .select(RoleRow::as_select())
            .load(conn)?,
    )
}

/// Roles in a status, a page at a time by id (for the daily transitions).
pub fn page_in_status(
    conn: &mut DbConnection,
    status: RoleStatus,
    after: &str,
    limit: i64,
) -> Result<Vec<ProxyRole>, DbError> {
    load(
        proxy_roles::table
            .filter(proxy_roles::status.eq(status.code()))
            .filter(proxy_roles::id.gt(after))
            .order(proxy_roles::id.asc())
            .limit(limit)
            .select(RoleRow::as_select())
            .load(conn)?,
    )
}

pub fn set_supplier_ref(conn: &mut DbConnection, id: &str, link: Option<&str>) -> Result<(), DbError> {
    super::cache::changed();
    diesel::update(proxy_roles::table.find(id))
        .set(proxy_roles::supplier_ref.eq(link))
        .execute(conn)?;
    Ok(())
}

/// Notes that the role was used, at most once a day.
pub fn touch(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<(), DbError> {
    super::cache::changed();
    let start_of_day = now.date().and_hms_opt(0, 0, 0).unwrap_or(now);
    diesel::update(
        proxy_roles::table.find(id).filter(
            proxy_roles::last_used_at
                .is_null()
                .or(proxy_roles::last_used_at.lt(start_of_day)),
        ),
    )
    .set(proxy_roles::last_used_at.eq(now))
    .execute(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_requests)]
struct RequestRow {
    id: String,
    reference: String,
    proxy_nhs_number: String,
    patient_nhs_number: String,
    patient_id: Option<String>,
    role_id: Option<String>,
    body: String,
    submitted_by: String,
    created_at: NaiveDateTime,
}

pub fn insert_request(conn: &mut DbConnection, r: &AccessRequest) -> Result<(), DbError> {
    let row = RequestRow {
        id: r.id.clone(),
        reference: r.reference.clone(),
        proxy_nhs_number: r.proxy_nhs_number.clone(),
        patient_nhs_number: r.patient_nhs_number.clone(),
        patient_id: r.patient_id.clone(),
        role_id: r.role_id.clone(),
        body: r.body.clone(),
        submitted_by: r.submitted_by.clone(),
        created_at: r.created_at,
    };
    diesel::insert_into(access_requests::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_request(conn: &mut DbConnection, id: &str) -> Result<Option<AccessRequest>, DbError> {
    Ok(access_requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first::<RequestRow>(conn)
        .optional()?
        .map(|r| AccessRequest {
            id: r.id,
            reference: r.reference,
            proxy_nhs_number: r.proxy_nhs_number,
            patient_nhs_number: r.patient_nhs_number,
            patient_id: r.patient_id,
            role_id: r.role_id,
            body: r.body,
            submitted_by: r.submitted_by,
            created_at: r.created_at,
        }))
}

/// How many access requests one person has submitted since `since` (the per-person limit).
pub fn requests_submitted_since(
    conn: &mut DbConnection,
    submitted_by: &str,
    since: NaiveDateTime,
) -> Result<i64, DbError> {
    Ok(access_requests::table
        .filter(access_requests::submitted_by.eq(submitted_by))
        .filter(access_requests::created_at.ge(since))
        .count()
        .get_result(conn)?)
}

/// Whether an access request for this proxy and patient was made since `since`.
pub fn request_for_pair_since(
    conn: &mut DbConnection,
    proxy: &NhsNumber,
    patient: &NhsNumber,
    since: NaiveDateTime,
) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        access_requests::table
            .filter(access_requests::proxy_nhs_number.eq(proxy.as_str()))
            .filter(access_requests::patient_nhs_number.eq(patient.as_str()))
            .filter(access_requests::created_at.ge(since)),
    ))
    .get_result(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = proxy_reviews)]
struct ReviewRow {
    id: String,
    role_id: String,
    patient_id: String,
    status: String,
    completed_by: Option<String>,
    note: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<ReviewRow> for ProxyReview {
    fn from(r: ReviewRow) -> Self {
        Self {
            id: r.id,
            role_id: r.role_id,
            patient_id: r.patient_id,
            status: r.status,
            completed_by: r.completed_by,
            note: r.note,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

pub fn insert_review(conn: &mut DbConnection, r: &ProxyReview) -> Result<(), DbError> {
    let row = ReviewRow {
        id: r.id.clone(),
        role_id: r.role_id.clone(),
        patient_id: r.patient_id.clone(),
        status: r.status.clone(),
        completed_by: r.completed_by.clone(),
        note: r.note.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    };
    diesel::insert_into(proxy_reviews::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_review(conn: &mut DbConnection, id: &str) -> Result<Option<ProxyReview>, DbError> {
    Ok(proxy_reviews::table
        .find(id)
        .select(ReviewRow::as_select())
        .first::<ReviewRow>(conn)
        .optional()?
        .map(ProxyReview::from))
}

pub fn reviews_for_patient(conn: &mut DbConnection, patient_id: &str) -> Result<Vec<ProxyReview>, DbError> {
    Ok(proxy_reviews::table
        .filter(proxy_reviews::patient_id.eq(patient_id))
        .order(proxy_reviews::created_at.asc())
        .select(ReviewRow::as_select())
        .load::<ReviewRow>(conn)?
        .into_iter()
        .map(ProxyReview::from)
        .collect())
}

/// The open reviews of proposed roles for a practice's patients, oldest first, at most `limit`.
pub fn open_reviews_at_practice(
    conn: &mut DbConnection,
    practice_id: &str,
    limit: i64,
) -> Result<Vec<ProxyReview>, DbError> {
    Ok(proxy_reviews::table
        .filter(proxy_reviews::status.eq("requested"))
        .filter(
            proxy_reviews::role_id.eq_any(
                proxy_roles::table
                    .filter(proxy_roles::practice_id.eq(practice_id))
                    .select(proxy_roles::id),
            ),
        )
        .order((proxy_reviews::created_at.asc(), proxy_reviews::id.asc()))
        .limit(limit)
        .select(ReviewRow::as_select())
        .load::<ReviewRow>(conn)?
        .into_iter()
        .map(ProxyReview::from)
        .collect())
}

/// Closes the open review of a role (it was decided: `completed`; or withdrawn: `cancelled`).
pub fn close_reviews(
    conn: &mut DbConnection,
    role_id: &str,
    status: &str,
    by: &str,
    note: Option<&str>,
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        proxy_reviews::table
            .filter(proxy_reviews::role_id.eq(role_id))
            .filter(proxy_reviews::status.eq("requested")),
    )
    .set((
        proxy_reviews::status.eq(status),
        proxy_reviews::completed_by.eq(by),
        proxy_reviews::note.eq(note),
        proxy_reviews::updated_at.eq(now),
    ))
    .execute(conn)?)
}
