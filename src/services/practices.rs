use crate::db::{self, DbPool};
use crate::domain::{OdsCode, PracticeRecord};
use crate::error::{ApiError, ErrorCode};
use crate::fhir::Organization;
use crate::identity::Principal;

use super::access;

pub async fn read(pool: &DbPool, id: String) -> Result<PracticeRecord, ApiError> {
    db::run(pool, move |c| db::practices::find(c, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("Organization"))
}

pub async fn search(
    pool: &DbPool,
    ods: Option<OdsCode>,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<PracticeRecord>), ApiError> {
    Ok(db::run(pool, move |c| db::practices::search(c, ods.as_ref(), offset, count)).await?)
}

/// Updates a practice's name and online-services settings (staff of that practice only).
pub async fn update(
    pool: &DbPool,
    principal: &Principal,
    id: String,
    if_match: Option<i64>,
    body: Organization,
) -> Result<PracticeRecord, ApiError> {
    let expected = if_match.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PreconditionRequired,
            "If-Match with the current ETag is required to update",
        )
    })?;
    let current = read(pool, id.clone()).await?;
    access::require_staff_at(principal, &current.ods_code)?;
    if body.id.as_deref().is_some_and(|b| b != id) {
        return Err(ApiError::invalid_resource(
            "id in the body does not match the URL",
            "Organization.id",
        ));
    }
    if current.version != expected {
        return Err(ApiError::version_conflict());
    }
    let (name, settings) = body.parse_update(&current)?;
    let updated = db::run(pool, move |c| {
        let ok = db::practices::update_if_version(c, &id, expected, &name, &settings, db::now())?;
        Ok(if ok { db::practices::find(c, &id)? } else { None })
    })
    .await?;
    updated.ok_or_else(ApiError::version_conflict)
}
