//! Reading the audit trail: search, chain verification and access explanations.

use super::access::{self, Target};
use super::{Caller, Core, Result};
use crate::audit::{AuditEntry, AuditQuery, Verification};
use crate::db;
use crate::domain::policy::{self, Action, Permission};

/// Audit events the caller may read: about one patient of a practice where they may audit, or
/// (with no patient) about their practices and about no practice at all, such as refused
/// authentications.
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
            let permit = access::authorize(core, caller, Action::SearchAudit, Target::None).await?;
            let _ = permit;
            let scope = policy::practices_granting(
                &core.policy,
                &access::actor_facts(&caller.principal),
                &[Permission::ReadAudit],
            );
            q.practices = Some(scope.iter().map(|p| p.as_str().to_owned()).collect());
        }
    }
    Ok(db::run(&core.pool, move |c| crate::audit::search(c, &q, offset, count)).await?)
}

/// Recomputes every chain and checks every anchor and signed head.
pub async fn verify(core: &Core, caller: &Caller) -> Result<Verification> {
    access::authorize(core, caller, Action::VerifyAudit, Target::None).await?;
    let log = core.audit.clone();
    Ok(db::run(&core.pool, move |c| log.verify(c)).await?)
}
