//! The audit trail: append-only, hash-chained, written in batches.
//!
//! Requests hand their decision to one writer task per instance and wait, with a bound, for its
//! batch to commit, so every decision is on disk before anything is changed or returned, yet
//! concurrent requests share one transaction instead of queueing for the database one by one
//! (group commit). Each instance start writes its own chain, `hash = sha256(prev_hash | fields)`,
//! anchored to the head of the chain before it; each chain's anchor and head carry a MAC under a
//! key the database does not hold. `verify` detects an edited, inserted or deleted event, a
//! truncated chain and a deleted one.
//!
//! One event can never hold the others back: text is made safe for both databases before it is
//! queued, a batch the database refuses is written event by event, and an event refused on its
//! own is stored with its text escaped.

pub mod archive;
mod chain;
mod hashing;
pub mod retention;
mod trail;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio::sync::{mpsc, oneshot};

pub use chain::{Broken, Verification, VerifyMode};
pub use hashing::ChainKey;
pub use trail::Trail;

use crate::db::schema::{actor_snapshots, audit_events};
use crate::db::{DbConnection, DbError, DbPool};
pub use crate::domain::audit::{AuditEntry, Outcome};

/// One decision or change to record. Text from outside is made safe when it is submitted.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// patient | staff | system | unauthenticated
    pub actor_kind: String,
    /// issuer|subject (or client id); "unknown" when the token could not be verified.
    pub actor: String,
    /// The token's `vot` (patients).
    pub assurance: Option<String>,
    pub patient_id: Option<String>,
    /// ODS code of the practice the decision concerns.
    pub practice: Option<String>,
    pub action: String,
    pub outcome: Outcome,
    pub rule: Option<String>,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// The facts the decision saw about the caller, kept for `$explain-access`.
    pub snapshot: Option<ActorSnapshot>,
}

/// What the gateway last saw about a caller (roles, scopes, assurance), as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorSnapshot {
    pub kind: String,
    pub facts: String,
}

/// Why an event could not be put on record in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuditFailure {
    #[error("the audit queue is full")]
    Full,
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("the audit event was not committed in time")]
    TimedOut,
    /// The database is known to be away: the event stays queued and is written once it is
    /// back, but nobody waits for that.
    #[error("the database is unreachable")]
    DatabaseAway,
}

/// Waits for one event's commit.
pub struct Receipt(oneshot::Receiver<()>);

impl Receipt {
    fn failed() -> Self {
        let (_, rx) = oneshot::channel();
        Self(rx)
    }
}

struct Pending {
    record: AuditRecord,
    ack: oneshot::Sender<()>,
}

/// Whether the writer is keeping up, for `/health/ready` and `/metrics`.
#[derive(Default)]
pub struct WriterHealth {
    failing: AtomicBool,
    written: AtomicU64,
    escaped: AtomicU64,
}

impl WriterHealth {
    pub fn is_writing(&self) -> bool {
        !self.failing.load(Ordering::Relaxed)
    }

    pub fn events_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Events stored with their text escaped because the database refused them as they were.
    pub fn events_escaped(&self) -> u64 {
        self.escaped.load(Ordering::Relaxed)
    }
}

/// Handle for recording audit events; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
    health: Arc<WriterHealth>,
    timeout: Duration,
    key: Arc<ChainKey>,
    availability: Arc<crate::db::availability::Availability>,
}

impl AuditLog {
    /// Starts this instance's writer with a fresh chain, on a thread of its own: its
    /// PostgreSQL round trips block that thread rather than hop to the blocking pool and back,
    /// a hand-off saved on every batch. The thread ends when the last handle is dropped.
    pub fn start(pool: DbPool, key: ChainKey, capacity: usize, timeout: Duration) -> Result<Self, DbError> {
        let (tx, rx) = mpsc::channel(capacity);
        let health = Arc::new(WriterHealth::default());
        let key = Arc::new(key);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| DbError::Unavailable(format!("cannot start the audit writer: {e}")))?;
        let availability = pool.availability().clone();
        let (writer_key, writer_health) = (key.clone(), health.clone());
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || runtime.block_on(writer::run(pool, writer_key, rx, writer_health)))
            .map_err(|e| DbError::Unavailable(format!("cannot start the audit writer: {e}")))?;
        Ok(Self {
            tx,
            health,
            timeout,
            key,
            availability,
        })
    }

    /// Queues an event; the receipt says when it is committed. Never waits: a full queue
    /// fails the receipt at once.
    pub fn submit(&self, record: AuditRecord) -> Receipt {
        let (ack, done) = oneshot::channel();
        let pending = Pending {
            record: writer::safe(record),
            ack,
        };
        match self.tx.try_send(pending) {
            Ok(()) => Receipt(done),
            Err(e) => {
                tracing::error!(error = %e, "audit event could not be queued");
                Receipt::failed()
            }
        }
    }

    /// Waits for a receipt, for at most the configured time.
    /// Gives up at once when the database is found away.
    pub async fn confirm(&self, receipt: Receipt) -> Result<(), AuditFailure> {
        let mut availability = self.availability.subscribe();
        let confirmed = tokio::select! {
            confirmed = tokio::time::timeout(self.timeout, receipt.0) => confirmed,
            _ = availability.wait_for(|up| !*up) => return Err(AuditFailure::DatabaseAway),
        };
        match confirmed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) if self.tx.is_closed() => Err(AuditFailure::Stopped),
            Ok(Err(_)) => Err(AuditFailure::Full),
            Err(_) => Err(AuditFailure::TimedOut),
        }
    }

    /// Records an event and waits until it is committed.
    pub async fn record(&self, record: AuditRecord) -> Result<(), AuditFailure> {
        let receipt = self.submit(record);
        self.confirm(receipt).await
    }

    pub fn health(&self) -> &WriterHealth {
        &self.health
    }

    /// Checks every chain's anchor and head and recomputes its events (from its last checkpoint,
    /// or all of them); when all is well, moves each chain's checkpoint to where it was found
    /// whole.
    pub fn verify(&self, conn: &mut DbConnection, mode: VerifyMode) -> Result<Verification, DbError> {
        let v = chain::verify(conn, &self.key, mode)?;
        if v.first_broken.is_none() {
            chain::save_checkpoints(conn, &self.key, &v.verified_heads)?;
        }
        Ok(v)
    }
}

/// What an audit search may return, and how much of it.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub patient_id: Option<String>,
    /// Only events about these practices.
    pub practices: Option<Vec<String>>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    /// Ranges of time left out (`date=ne...`).
    pub excluded: Vec<(NaiveDateTime, NaiveDateTime)>,
    pub outcome: Option<Outcome>,
    /// Action codes (any of).
    pub actions: Option<Vec<String>>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
}

/// An event's row, as read and as written.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct EventRow {
    id: String,
    chain: String,
    seq: i64,
    recorded_at: NaiveDateTime,
    actor_kind: String,
    actor: String,
    patient_id: Option<String>,
    action: String,
    outcome: String,
    assurance: Option<String>,
    reason: Option<String>,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
    practice: Option<String>,
    rule: Option<String>,
    code: Option<String>,
}

impl From<EventRow> for AuditEntry {
    fn from(r: EventRow) -> Self {
        Self {
            id: r.id,
            chain: r.chain,
            seq: r.seq,
            recorded_at: r.recorded_at,
            actor_kind: r.actor_kind,
            actor: r.actor,
            patient_id: r.patient_id,
            practice: r.practice,
            action: r.action,
            outcome: r.outcome,
            assurance: r.assurance,
            rule: r.rule,
            code: r.code,
            reason: r.reason,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<AuditEntry> for EventRow {
    fn from(r: AuditEntry) -> Self {
        Self {
            id: r.id,
            chain: r.chain,
            seq: r.seq,
            recorded_at: r.recorded_at,
            actor_kind: r.actor_kind,
            actor: r.actor,
            patient_id: r.patient_id,
            practice: r.practice,
            action: r.action,
            outcome: r.outcome,
            assurance: r.assurance,
            rule: r.rule,
            code: r.code,
            reason: r.reason,
            request_id: r.request_id,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Events matching `q`, newest first, with the total count.
pub fn search(
    conn: &mut DbConnection,
    q: &AuditQuery,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<AuditEntry>), DbError> {
    let filtered = || {
        let mut query = audit_events::table.into_boxed();
        if let Some(p) = &q.patient_id {
            query = query.filter(audit_events::patient_id.eq(p.clone()));
        }
        if let Some(practices) = &q.practices {
            query = query.filter(audit_events::practice.eq_any(practices.clone()));
        }
        if let Some(f) = q.from {
            query = query.filter(audit_events::recorded_at.ge(f));
        }
        if let Some(t) = q.to {
            query = query.filter(audit_events::recorded_at.lt(t));
        }
        for (from, to) in &q.excluded {
            query = query.filter(
                audit_events::recorded_at
                    .lt(*from)
                    .or(audit_events::recorded_at.ge(*to)),
            );
        }
        if let Some(o) = q.outcome {
            query = query.filter(audit_events::outcome.eq(o.as_str()));
        }
        if let Some(a) = &q.actions {
            query = query.filter(audit_events::action.eq_any(a.clone()));
        }
        if let Some(a) = &q.actor {
            query = query.filter(audit_events::actor.eq(a.clone()));
        }
        if let Some(r) = &q.request_id {
            query = query.filter(audit_events::request_id.eq(r.clone()));
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let rows: Vec<EventRow> = filtered()
        .order((audit_events::recorded_at.desc(), audit_events::seq.desc()))
        .offset(offset)
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok((total, rows.into_iter().map(AuditEntry::from).collect()))
}

/// Up to `limit` events about `practice` recorded in `period`, after `after`, in the order an
/// export writes them: by time, then chain and place in the chain, so a cursor resumes exactly.
pub fn practice_events(
    conn: &mut DbConnection,
    practice: &str,
    period: &crate::domain::audit::ExportPeriod,
    after: Option<&crate::domain::audit::ExportCursor>,
    limit: i64,
) -> Result<Vec<AuditEntry>, DbError> {
    let mut query = audit_events::table
        .filter(audit_events::practice.eq(practice))
        .filter(audit_events::recorded_at.lt(period.until))
        .into_boxed();
    if let Some(since) = period.since {
        query = query.filter(audit_events::recorded_at.ge(since));
    }
    if let Some(c) = after {
        // The first condition alone bounds the index range; the second picks up exactly after
        // the cursor among events of the same moment.
        query = query.filter(audit_events::recorded_at.ge(c.recorded_at)).filter(
            audit_events::recorded_at
                .gt(c.recorded_at)
                .or(audit_events::recorded_at.eq(c.recorded_at).and(
                    audit_events::chain
                        .gt(c.chain.clone())
                        .or(audit_events::chain.eq(c.chain.clone()).and(audit_events::seq.gt(c.seq))),
                )),
        );
    }
    let rows: Vec<EventRow> = query
        .order((
            audit_events::recorded_at.asc(),
            audit_events::chain.asc(),
            audit_events::seq.asc(),
        ))
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(AuditEntry::from).collect())
}

/// The facts last seen for a caller key.
pub fn snapshot(conn: &mut DbConnection, caller_key: &str) -> Result<Option<ActorSnapshot>, DbError> {
    Ok(actor_snapshots::table
        .find(caller_key)
        .select((actor_snapshots::kind, actor_snapshots::facts))
        .first::<(String, String)>(conn)
        .optional()?
        .map(|(kind, facts)| ActorSnapshot { kind, facts }))
}
