//! Reading the audit trail: search, chain verification and access explanations.

use super::access::{self, Target};
use super::{Caller, Core, Result};
use crate::audit::{AuditEntry, AuditQuery, Verification, VerifyMode};
use crate::db;
use crate::domain::policy::{self, Action, Permission};

/// Audit events the caller may read: about one patient of a practice where they may audit, or
/// (with no patient) about the practices where they may audit. Events that belong to no
/// practice (refused authentications, a person's own searches) are the service operator's: a
/// system client with the `audit:read` scope reads the whole trail.
pub async fn search(
    core: &Core,
    caller: &Caller,
    mut q: AuditQuery,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<AuditEntry>)> {
    match q.patient_id.clone() {
        Some(patient) => {
            access::authorize(core, caller, Action::SearchAudit, Target::Patient(patient)).await?;
        }
        None => {
            access::authorize(core, caller, Action::SearchAudit, Target::None).await?;
            if !matches!(caller.principal, crate::identity::Principal::System(_)) {
                let scope = policy::practices_granting(
                    &core.policy,
                    &access::actor_facts(&caller.principal),
                    &[Permission::ReadAudit],
                );
                q.practices = Some(scope.iter().map(|p| p.as_str().to_owned()).collect());
            }
        }
    }
    Ok(db::run(&core.pool, move |c| crate::audit::search(c, &q, offset, count)).await?)
}

/// Checks every chain's anchor and signed head and recomputes its events, from its last
/// checkpoint or (`VerifyMode::Full`) from its start.
pub async fn verify(core: &Core, caller: &Caller, mode: VerifyMode) -> Result<Verification> {
    access::authorize(core, caller, Action::VerifyAudit, Target::None).await?;
    let log = core.audit.clone();
    Ok(db::run(&core.pool, move |c| log.verify(c, mode)).await?)
}
