//! Practices: the directory, and the online-services settings their staff change.

use super::access::Permit;
use super::{Core, Error, Result};
use crate::db;
use crate::domain::{OdsCode, PracticeChanges, PracticeRecord};

pub async fn search(core: &Core, ods: Option<OdsCode>, offset: i64, count: i64) -> Result<(i64, Vec<PracticeRecord>)> {
    Ok(db::run(&core.pool, move |c| {
        db::practices::search(c, ods.as_ref(), offset, count)
    })
    .await?)
}

/// Changes the permit's practice's name, contact details and settings, if it is still at the
/// caller's version.
pub async fn update(
    core: &Core,
    permit: Permit,
    if_match: Option<i64>,
    changes: PracticeChanges,
) -> Result<PracticeRecord> {
    let current = permit.practice()?.clone();
    // Without If-Match (or with `*`) the update applies to the current version.
    let expected = if_match.unwrap_or(current.version);
    if current.version != expected {
        return Err(Error::stale_if_match());
    }
    let id = current.id.clone();
    let settings = &changes.settings;
    let model_changed = settings.access_model != current.settings.access_model
        || settings.prospective_go_live != current.settings.prospective_go_live
        || settings.enabled != current.settings.enabled;
    let updated = db::run(&core.pool, move |c| {
        let ok = db::practices::update_if_version(c, &id, expected, &changes, db::now())?;
        Ok(if ok { db::practices::find(c, &id)? } else { None })
    })
    .await?
    .ok_or_else(Error::version_conflict)?;
    if model_changed {
        // The supplier is told what each account gives under the new model, now rather than
        // at the next daily run.
        super::transitions::sync_practice(core, &updated.id).await?;
    }
    Ok(updated)
}
