//! Replay of completed writes (`X-Request-ID`): the claim a write makes before it runs, what
//! it leaves when it finishes, and the heartbeat that tells other instances this one's claims
//! are still being worked on. The HTTP layer decides what is a write and what to replay; the
//! rules about claims and their owners live here.

use chrono::NaiveDateTime;

use super::{Core, Result};
pub use crate::db::idempotency::{Claim, IdempotencyRecord};
use crate::db::{self, idempotency};

/// A claim older than this without a stored response belongs to a request that died, whatever
/// its instance says. (Another instance's claim: this instance knows its own.)
const ABANDONED_CLAIM_SECONDS: i64 = 60;
/// An instance that has not beaten for this long is gone: its claims can be taken over.
pub const HEARTBEAT_LAPSE_SECONDS: i64 = 6;

/// How a finished request leaves its claim: answered (replayable) or released (a retry runs).
#[derive(Debug, Clone)]
pub enum Settlement {
    Release,
    Complete { status: i32, headers: String, body: String },
}

/// A write about to run, as its claim records it.
pub struct Write {
    pub caller: String,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub fingerprint: String,
}

/// A claim without a response whose request cannot finish: its instance stopped beating (it
/// died), or it is older than any request runs. A claim of this instance's own is abandoned
/// unless the request is running here, which the caller has already ruled out.
fn abandoned(
    c: &mut db::DbConnection,
    old: &IdempotencyRecord,
    now: NaiveDateTime,
    me: &str,
) -> std::result::Result<bool, db::DbError> {
    if old.owner.as_deref() == Some(me) || (now - old.created_at).num_seconds() > ABANDONED_CLAIM_SECONDS {
        return Ok(true);
    }
    match &old.owner {
        Some(owner) => {
            let since = now - chrono::Duration::seconds(HEARTBEAT_LAPSE_SECONDS);
            idempotency::silent_since(c, owner, since)
        }
        None => Ok(false),
    }
}

fn apply(
    c: &mut db::DbConnection,
    caller: &str,
    request_id: &str,
    settlement: &Settlement,
) -> std::result::Result<(), db::DbError> {
    match settlement {
        Settlement::Release => idempotency::release(c, caller, request_id),
        Settlement::Complete { status, headers, body } => {
            idempotency::complete(c, caller, request_id, *status, headers, body)
        }
    }
}

/// Claims `write` for this instance. What an earlier request with the same id left here and
/// could not store (`left`) is stored first: its answer is then replayed, or its claim is gone
/// and this request runs. An abandoned claim of the same request is taken over.
pub async fn claim(core: &Core, write: Write, left: Option<Settlement>) -> Result<Claim> {
    let record = IdempotencyRecord {
        caller: write.caller,
        request_id: write.request_id,
        method: write.method,
        path: write.path,
        fingerprint: write.fingerprint,
        status: None,
        response_headers: None,
        response_body: None,
        created_at: core.clock.now(),
        owner: Some(core.instance.clone()),
    };
    let me = core.instance.clone();
    Ok(db::run(&core.pool, move |c| {
        if let Some(settlement) = &left {
            apply(c, &record.caller, &record.request_id, settlement)?;
        }
        match idempotency::claim(c, &record)? {
            Claim::Existing(old)
                if old.status.is_none()
                    && old.fingerprint == record.fingerprint
                    && abandoned(c, &old, record.created_at, &me)? =>
            {
                idempotency::release(c, &record.caller, &record.request_id)?;
                idempotency::claim(c, &record)
            }
            other => Ok(other),
        }
    })
    .await?)
}

/// Stores what a finished request leaves under its claim.
pub async fn settle(core: &Core, caller: &str, request_id: &str, settlement: Settlement) -> Result<()> {
    let (caller, request_id) = (caller.to_owned(), request_id.to_owned());
    Ok(db::run(&core.pool, move |c| apply(c, &caller, &request_id, &settlement)).await?)
}

/// Says that this instance is alive, so requests it claimed are known to be its own while it
/// runs, and free for a retry soon after it dies.
pub async fn heartbeat(core: &Core) -> std::result::Result<(), db::DbError> {
    let (me, now) = (core.instance.clone(), core.clock.now());
    db::run(&core.pool, move |c| idempotency::heartbeat(c, &me, now)).await?;
    Ok(())
}

/// Forgets the claims older than `ttl`, by the same clock that dated them: their writes can no
/// longer be replayed.
pub async fn purge(core: &Core, ttl: chrono::Duration) -> std::result::Result<usize, db::DbError> {
    let cutoff = core.clock.now() - ttl;
    db::run(&core.pool, move |c| idempotency::purge_older_than(c, cutoff)).await
}
