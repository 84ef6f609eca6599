//! The audit trail: append-only, hash-chained, written in batches.
//!
//! Handlers hand an event to one writer task per instance and wait for its batch to commit, so
//! every decision is on disk before the response leaves, yet concurrent requests share one
//! transaction instead of queueing for the database one by one (group commit). Each instance
//! writes its own chain: `hash = sha256(prev_hash | fields)`, so any edit, deletion or insertion
//! inside a chain is detected by `verify`.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::db::schema::audit_events;
use crate::db::{self, DbConnection, DbError, DbPool};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAX_BATCH: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }
}

/// One access decision or change. No tokens or linkage keys; the patient is named by record id.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// patient | staff | system | unauthenticated
    pub actor_kind: String,
    /// issuer|subject (or client id); "unknown" when the token could not be verified.
    pub actor: String,
    pub patient_id: Option<String>,
    pub action: String,
    pub outcome: Outcome,
    /// The token's `vot` (patients) or proofing level.
    pub assurance: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct StoredEvent {
    pub id: String,
    pub chain: String,
    pub seq: i64,
    pub recorded_at: NaiveDateTime,
    pub actor_kind: String,
    pub actor: String,
    pub patient_id: Option<String>,
    pub action: String,
    pub outcome: String,
    pub assurance: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl StoredEvent {
    fn compute_hash(&self) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let mut h = Sha256::new();
        for field in [
            self.chain.clone(),
            self.seq.to_string(),
            self.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            self.actor_kind.clone(),
            self.actor.clone(),
            opt(&self.patient_id),
            self.action.clone(),
            self.outcome.clone(),
            opt(&self.assurance),
            opt(&self.reason),
            opt(&self.request_id),
            self.prev_hash.clone(),
        ] {
            // Length-prefixed so that moving characters between fields changes the hash.
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        format!("{:x}", h.finalize())
    }
}

enum Message {
    Record(AuditRecord, oneshot::Sender<()>),
}

/// Handle for recording audit events; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Message>,
}

impl AuditLog {
    /// Starts this instance's writer with a fresh chain.
    pub fn start(pool: DbPool) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(10_000);
        let chain = uuid::Uuid::new_v4().to_string();
        let handle = tokio::spawn(writer(pool, chain, rx));
        (Self { tx }, handle)
    }

    /// Records an event and waits until it is committed.
    pub async fn record(&self, record: AuditRecord) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Record(record, ack)).await.is_err() {
            tracing::error!("audit writer has stopped; an audit event could not be recorded");
            return;
        }
        let _ = done.await;
    }
}

async fn writer(pool: DbPool, chain: String, mut rx: mpsc::Receiver<Message>) {
    let mut seq = 0i64;
    let mut prev = GENESIS.to_owned();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for Message::Record(r, ack) in batch {
            seq += 1;
            let mut e = StoredEvent {
                id: uuid::Uuid::new_v4().to_string(),
                chain: chain.clone(),
                seq,
                recorded_at: db::now(),
                actor_kind: r.actor_kind,
                actor: r.actor,
                patient_id: r.patient_id,
                action: r.action,
                outcome: r.outcome.as_str().to_owned(),
                assurance: r.assurance,
                reason: r.reason,
                request_id: r.request_id,
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            prev = e.hash.clone();
            events.push(e);
            acks.push(ack);
        }
        // Nothing is dropped: a failed write is retried until the database takes it.
        let mut delay = Duration::from_millis(50);
        loop {
            let to_write = events.clone();
            match db::run(&pool, move |c| {
                db::write_transaction(c, |c| {
                    // One transaction for the batch; rows one by one because a multi-row insert
                    // is not in the subset both backends share.
                    for e in &to_write {
                        diesel::insert_into(audit_events::table).values(e).execute(c)?;
                    }
                    Ok::<_, DbError>(())
                })
            })
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, events = events.len(), "audit batch not written yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// The result of checking every chain.
#[derive(Debug, Clone)]
pub struct Verification {
    pub chains: usize,
    pub events: usize,
    /// The first event (by chain and sequence) whose hash or link does not hold.
    pub first_broken: Option<(String, i64, String)>,
}

/// Recomputes every chain from its start.
pub fn verify(conn: &mut DbConnection) -> Result<Verification, DbError> {
    let events: Vec<StoredEvent> = audit_events::table
        .order((audit_events::chain.asc(), audit_events::seq.asc()))
        .select(StoredEvent::as_select())
        .load(conn)?;
    let mut chains = 0;
    let mut current: Option<(&str, i64, &str)> = None;
    for e in &events {
        let (expected_seq, expected_prev) = match current {
            Some((chain, seq, hash)) if chain == e.chain => (seq + 1, hash),
            _ => {
                chains += 1;
                (1, GENESIS)
            }
        };
        let broken = if e.seq != expected_seq {
            Some("an event is missing before this one")
        } else if e.prev_hash != expected_prev {
            Some("the link to the previous event does not match")
        } else if e.compute_hash() != e.hash {
            Some("the event was changed after it was written")
        } else {
            None
        };
        if let Some(why) = broken {
            return Ok(Verification {
                chains,
                events: events.len(),
                first_broken: Some((e.id.clone(), e.seq, why.to_owned())),
            });
        }
        current = Some((&e.chain, e.seq, &e.hash));
    }
    Ok(Verification {
        chains,
        events: events.len(),
        first_broken: None,
    })
}

/// Events about a patient, newest first, within a time range.
pub fn search(
    conn: &mut DbConnection,
    patient_id: &str,
    from: Option<NaiveDateTime>,
    to: Option<NaiveDateTime>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<StoredEvent>), DbError> {
    let filtered = || {
        let mut q = audit_events::table
            .filter(audit_events::patient_id.eq(patient_id.to_owned()))
            .into_boxed();
        if let Some(f) = from {
            q = q.filter(audit_events::recorded_at.ge(f));
        }
        if let Some(t) = to {
            q = q.filter(audit_events::recorded_at.lt(t));
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order((audit_events::recorded_at.desc(), audit_events::seq.desc()))
        .offset(offset)
        .limit(limit)
        .select(StoredEvent::as_select())
        .load(conn)?;
    Ok((total, rows))
}
