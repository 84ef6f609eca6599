//! The one writer per instance: batches events, extends this instance's chain, and never lets
//! one event hold the others back.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::chain::{self, ChainKey, GENESIS, anchor_parts, head_parts, timestamp};
use super::{ActorSnapshot, AuditEntry, AuditRecord, EventRow, Pending, WriterHealth};
use crate::db::schema::{actor_snapshots, audit_chains, audit_events};
use crate::db::{self, DbConnection, DbError, DbPool};

const MAX_BATCH: usize = 500;
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// Whether `c` is stored as it is; anything else is written as `\u{..}`.
fn stored_as_is(c: char, ascii_only: bool) -> bool {
    let unsafe_char = crate::domain::text::forbidden_character(c.encode_utf8(&mut [0u8; 4])).is_some()
        || (ascii_only && !(c.is_ascii_graphic() || c == ' '));
    !(unsafe_char || (ascii_only && c == '\\'))
}

/// Escapes what a database or a log cannot take as it is (NUL, other control characters) and
/// bounds each field, so the same text is stored the same way on both backends. Text that
/// needs neither (nearly all of it) is kept without a copy.
fn escape(raw: String, max_chars: usize, ascii_only: bool) -> String {
    let printable_ascii = |b: u8| (b' '..=b'~').contains(&b) && !(ascii_only && b == b'\\');
    if raw.len() <= max_chars && raw.bytes().all(printable_ascii) {
        return raw;
    }
    let mut out = String::with_capacity(raw.len().min(max_chars));
    for (n, c) in raw.chars().enumerate() {
        if n >= max_chars {
            out.push('…');
            break;
        }
        if stored_as_is(c, ascii_only) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

fn escape_record(mut r: AuditRecord, ascii_only: bool) -> AuditRecord {
    let e = |s: String, max: usize| escape(s, max, ascii_only);
    let eo = |s: Option<String>, max: usize| s.map(|v| escape(v, max, ascii_only));
    r.actor_kind = e(r.actor_kind, 32);
    r.actor = e(r.actor, 512);
    r.assurance = eo(r.assurance, 32);
    r.patient_id = eo(r.patient_id, 128);
    r.practice = eo(r.practice, 16);
    r.action = e(r.action, 64);
    r.rule = eo(r.rule, 64);
    r.code = eo(r.code, 64);
    r.reason = eo(r.reason, 1000);
    r.request_id = eo(r.request_id, 64);
    r.snapshot = r.snapshot.map(|s| ActorSnapshot {
        kind: e(s.kind, 32),
        facts: e(s.facts, 8192),
    });
    r
}

/// What every event goes through before it is queued.
pub(super) fn safe(record: AuditRecord) -> AuditRecord {
    escape_record(record, false)
}

/// This instance's chain as far as it is committed.
struct Chain {
    id: String,
    started_at: NaiveDateTime,
    seq: i64,
    head: String,
    registered: bool,
}

enum Failure {
    /// The database cannot be reached: nothing is wrong with the events; try again.
    Transient(DbError),
    /// The database refused the batch.
    Refused(DbError),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => Self::Transient(e),
            other => Self::Refused(other),
        }
    }
}

pub(super) async fn run(pool: DbPool, key: Arc<ChainKey>, mut rx: mpsc::Receiver<Pending>, health: Arc<WriterHealth>) {
    let mut chain = Chain {
        id: uuid::Uuid::new_v4().to_string(),
        started_at: db::now(),
        seq: 0,
        head: GENESIS.to_owned(),
        registered: false,
    };
    let mut snapshots: HashMap<String, u64> = HashMap::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        write(&pool, &key, &mut chain, &mut snapshots, batch, &health).await;
    }
}

/// Writes a batch, retrying while the database is down; a batch the database refuses is
/// written event by event so that only the event at fault is treated differently.
async fn write(
    pool: &DbPool,
    key: &Arc<ChainKey>,
    chain: &mut Chain,
    snapshots: &mut HashMap<String, u64>,
    batch: Vec<Pending>,
    health: &WriterHealth,
) {
    let (records, acks): (Vec<AuditRecord>, Vec<oneshot::Sender<()>>) =
        batch.into_iter().map(|p| (p.record, p.ack)).unzip();
    match write_until_reachable(pool, key, chain, snapshots, &records, health).await {
        Ok(()) => {
            for ack in acks {
                let _ = ack.send(());
            }
        }
        // A refusal can also be the echo of a commit whose answer was lost (the same rows a
        // second time): the stored head says so.
        Err(_) if matches!(reconcile(pool, chain, records.len()).await, Ok(true)) => {
            for ack in acks {
                let _ = ack.send(());
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, events = records.len(), "audit batch refused; writing its events one by one");
            for (record, ack) in records.into_iter().zip(acks) {
                let stored =
                    match write_until_reachable(pool, key, chain, snapshots, std::slice::from_ref(&record), health)
                        .await
                    {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "an audit event was refused; storing it with its text escaped");
                            let escaped = escape_record(record, true);
                            match write_until_reachable(pool, key, chain, snapshots, &[escaped], health).await {
                                Ok(()) => {
                                    health.escaped.fetch_add(1, Ordering::Relaxed);
                                    true
                                }
                                Err(e) => {
                                    // Not the event's text: its request is refused (503) when its
                                    // receipt is dropped, and the writer goes on with the others.
                                    tracing::error!(error = %e, "an audit event could not be stored");
                                    false
                                }
                            }
                        }
                    };
                if stored {
                    let _ = ack.send(());
                }
            }
        }
    }
}

/// Waits `delay` before the next attempt, or less if the database comes back meanwhile: the
/// trail is writing again (and readiness says so) as soon as it can be.
async fn pause(pool: &DbPool, delay: Duration) {
    let availability = pool.availability();
    if availability.is_up() {
        tokio::time::sleep(delay).await;
        return;
    }
    let mut changes = availability.subscribe();
    let _ = tokio::time::timeout(delay, changes.wait_for(|up| *up)).await;
}

async fn write_until_reachable(
    pool: &DbPool,
    key: &Arc<ChainKey>,
    chain: &mut Chain,
    snapshots: &mut HashMap<String, u64>,
    records: &[AuditRecord],
    health: &WriterHealth,
) -> Result<(), DbError> {
    let mut delay = Duration::from_millis(50);
    // After a failure in mid-transaction the commit may have happened with only its answer
    // lost: the stored head says whether, before the batch is written a second time.
    let mut uncertain = false;
    loop {
        if uncertain {
            match reconcile(pool, chain, records.len()).await {
                Ok(true) => {
                    tracing::info!(
                        events = records.len(),
                        "an audit batch whose commit went unanswered was stored"
                    );
                    health.failing.store(false, Ordering::Relaxed);
                    health
                        .written
                        .fetch_add(u64::try_from(records.len()).unwrap_or(0), Ordering::Relaxed);
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the audit chain's head cannot be read yet");
                    pause(pool, delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                    continue;
                }
            }
        }
        match attempt(pool, key, chain, snapshots, records).await {
            Ok(()) => {
                if health.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the audit trail is writing again");
                }
                health
                    .written
                    .fetch_add(u64::try_from(records.len()).unwrap_or(0), Ordering::Relaxed);
                return Ok(());
            }
            Err(Failure::Refused(e)) => return Err(e),
            Err(Failure::Transient(e)) => {
                uncertain = true;
                if !health.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "the audit trail cannot be written; requests that need it are refused until it can");
                }
                pause(pool, delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

fn facts_hash(s: &ActorSnapshot) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.kind.hash(&mut h);
    s.facts.hash(&mut h);
    h.finish()
}

async fn attempt(
    pool: &DbPool,
    key: &Arc<ChainKey>,
    chain: &mut Chain,
    snapshots: &mut HashMap<String, u64>,
    records: &[AuditRecord],
) -> Result<(), Failure> {
    let now = db::now();
    let mut prev = chain.head.clone();
    let mut entries = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let mut e = AuditEntry {
            // Time-ordered, so that each insert lands at the right edge of the primary key's
            // index rather than on a random page of it.
            id: crate::domain::ids::time_ordered(now).to_string(),
            chain: chain.id.clone(),
            seq: chain.seq + i64::try_from(i).unwrap_or(0) + 1,
            recorded_at: now,
            actor_kind: r.actor_kind.clone(),
            actor: r.actor.clone(),
            patient_id: r.patient_id.clone(),
            practice: r.practice.clone(),
            action: r.action.clone(),
            outcome: r.outcome.as_str().to_owned(),
            assurance: r.assurance.clone(),
            rule: r.rule.clone(),
            code: r.code.clone(),
            reason: r.reason.clone(),
            request_id: r.request_id.clone(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = chain::event_hash(&e);
        prev = e.hash.clone();
        entries.push(e);
    }
    let head_seq = chain.seq + i64::try_from(entries.len()).unwrap_or(0);
    let head_hash = prev;
    let mut changed: HashMap<String, ActorSnapshot> = HashMap::new();
    for r in records {
        if let Some(s) = &r.snapshot
            && snapshots.get(&r.actor) != Some(&facts_hash(s))
        {
            changed.insert(r.actor.clone(), s.clone());
        }
    }

    let job = {
        let key = key.clone();
        let (chain_id, started_at, registered) = (chain.id.clone(), chain.started_at, chain.registered);
        let changed = changed.clone();
        let head_hash = head_hash.clone();
        let head_mac = key.mac(&head_parts(&chain.id, &head_seq.to_string(), &head_hash));
        move |c: &mut DbConnection| {
            if registered
                && changed.is_empty()
                && let DbConnection::Postgres(pg) = c
            {
                return append_postgres(pg, &chain_id, now, entries, head_seq, &head_hash, &head_mac);
            }
            db::write_transaction(c, |c| {
                if !registered {
                    register(c, &key, &chain_id, started_at)?;
                }
                let rows: Vec<EventRow> = entries.into_iter().map(EventRow::from).collect();
                // One statement for the whole batch.
                match c {
                    DbConnection::Postgres(pg) => diesel::insert_into(audit_events::table).values(&rows).execute(pg)?,
                    DbConnection::Sqlite(lite) => {
                        diesel::insert_into(audit_events::table).values(&rows).execute(lite)?
                    }
                };
                diesel::update(audit_chains::table.find(&chain_id))
                    .set((
                        audit_chains::head_seq.eq(head_seq),
                        audit_chains::head_mac.eq(&head_mac),
                        audit_chains::head_hash.eq(&head_hash),
                    ))
                    .execute(c)?;
                for (caller, s) in &changed {
                    let n = diesel::update(actor_snapshots::table.find(caller))
                        .set((
                            actor_snapshots::kind.eq(&s.kind),
                            actor_snapshots::facts.eq(&s.facts),
                            actor_snapshots::last_seen.eq(now),
                        ))
                        .execute(c)?;
                    if n == 0 {
                        diesel::insert_into(actor_snapshots::table)
                            .values((
                                actor_snapshots::caller_key.eq(caller),
                                actor_snapshots::kind.eq(&s.kind),
                                actor_snapshots::facts.eq(&s.facts),
                                actor_snapshots::first_seen.eq(now),
                                actor_snapshots::last_seen.eq(now),
                            ))
                            .execute(c)?;
                    }
                }
                Ok::<_, DbError>(())
            })
        }
    };
    db::run_keyed(pool, job).await?;
    chain.registered = true;
    chain.seq = head_seq;
    chain.head = head_hash;
    if snapshots.len() > 100_000 {
        snapshots.clear();
    }
    for (caller, s) in changed {
        snapshots.insert(caller, facts_hash(&s));
    }
    Ok(())
}

/// PostgreSQL: the batch and the chain's new head in one statement, so one round trip and one
/// implicit transaction: a statement that fails stores neither. (A chain row that has gone
/// leaves the events stored and the head unmoved, as the transaction path does; `verify` reports
/// it.) Its text never changes (the events travel as one array per column), so it is prepared
/// once per connection.
struct AppendToChain<'a> {
    chain_id: &'a str,
    recorded_at: NaiveDateTime,
    id: Vec<String>,
    seq: Vec<i64>,
    actor_kind: Vec<String>,
    actor: Vec<String>,
    patient_id: Vec<Option<String>>,
    action: Vec<String>,
    outcome: Vec<String>,
    assurance: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    request_id: Vec<Option<String>>,
    prev_hash: Vec<String>,
    hash: Vec<String>,
    practice: Vec<Option<String>>,
    rule: Vec<Option<String>>,
    code: Vec<Option<String>>,
    head_seq: i64,
    head_hash: &'a str,
    head_mac: &'a str,
}

impl<'a> AppendToChain<'a> {
    fn new(
        chain_id: &'a str,
        recorded_at: NaiveDateTime,
        entries: Vec<AuditEntry>,
        (head_seq, head_hash, head_mac): (i64, &'a str, &'a str),
    ) -> Self {
        let n = entries.len();
        let mut a = Self {
            chain_id,
            recorded_at,
            id: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            actor_kind: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            patient_id: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            outcome: Vec::with_capacity(n),
            assurance: Vec::with_capacity(n),
            reason: Vec::with_capacity(n),
            request_id: Vec::with_capacity(n),
            prev_hash: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
            practice: Vec::with_capacity(n),
            rule: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
            head_seq,
            head_hash,
            head_mac,
        };
        for e in entries {
            a.id.push(e.id);
            a.seq.push(e.seq);
            a.actor_kind.push(e.actor_kind);
            a.actor.push(e.actor);
            a.patient_id.push(e.patient_id);
            a.action.push(e.action);
            a.outcome.push(e.outcome);
            a.assurance.push(e.assurance);
            a.reason.push(e.reason);
            a.request_id.push(e.request_id);
            a.prev_hash.push(e.prev_hash);
            a.hash.push(e.hash);
            a.practice.push(e.practice);
            a.rule.push(e.rule);
            a.code.push(e.code);
        }
        a
    }
}

/// The prepared statement cache knows the statement by this type.
struct AppendToChainId;

impl diesel::query_builder::QueryId for AppendToChain<'_> {
    type QueryId = AppendToChainId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for AppendToChain<'_> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
        out.push_sql(
            "WITH stored AS (INSERT INTO audit_events (id, chain, seq, recorded_at, actor_kind, actor, \
             patient_id, action, outcome, assurance, reason, request_id, prev_hash, hash, practice, rule, code) \
             SELECT e.id, ",
        );
        out.push_bind_param::<Text, _>(self.chain_id)?;
        out.push_sql(", e.seq, ");
        out.push_bind_param::<Timestamp, _>(&self.recorded_at)?;
        out.push_sql(
            ", e.actor_kind, e.actor, e.patient_id, e.action, e.outcome, e.assurance, e.reason, \
             e.request_id, e.prev_hash, e.hash, e.practice, e.rule, e.code FROM unnest(",
        );
        out.push_bind_param::<Array<Text>, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<BigInt>, _>(&self.seq)?;
        for text in [&self.actor_kind, &self.actor] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(text)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.patient_id)?;
        for text in [&self.action, &self.outcome] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(text)?;
        }
        for optional in [&self.assurance, &self.reason, &self.request_id] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<Text>>, _>(optional)?;
        }
        for text in [&self.prev_hash, &self.hash] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Text>, _>(text)?;
        }
        for optional in [&self.practice, &self.rule, &self.code] {
            out.push_sql(", ");
            out.push_bind_param::<Array<Nullable<Text>>, _>(optional)?;
        }
        out.push_sql(
            ") AS e(id, seq, actor_kind, actor, patient_id, action, outcome, assurance, reason, \
             request_id, prev_hash, hash, practice, rule, code)) \
             UPDATE audit_chains SET head_seq = ",
        );
        out.push_bind_param::<BigInt, _>(&self.head_seq)?;
        out.push_sql(", head_hash = ");
        out.push_bind_param::<Text, _>(self.head_hash)?;
        out.push_sql(", head_mac = ");
        out.push_bind_param::<Text, _>(self.head_mac)?;
        out.push_sql(" WHERE chain = ");
        out.push_bind_param::<Text, _>(self.chain_id)?;
        Ok(())
    }
}

impl RunQueryDsl<diesel::PgConnection> for AppendToChain<'_> {}

fn append_postgres(
    c: &mut diesel::PgConnection,
    chain_id: &str,
    recorded_at: NaiveDateTime,
    entries: Vec<AuditEntry>,
    head_seq: i64,
    head_hash: &str,
    head_mac: &str,
) -> Result<(), DbError> {
    let statement = AppendToChain::new(chain_id, recorded_at, entries, (head_seq, head_hash, head_mac));
    if statement.execute(c)? != 1 {
        // The events are stored; only the head did not move, which `verify` reports.
        tracing::error!(chain = chain_id, "the audit chain's head row was not found to move on");
    }
    Ok(())
}

/// Brings the writer's view of its chain in line with what is stored, after an attempt whose
/// outcome is unknown. True when that attempt's `events` are in fact stored (the head moved on
/// by exactly that many); only this writer appends to its chain, so nothing else can have.
async fn reconcile(pool: &DbPool, chain: &mut Chain, events: usize) -> Result<bool, DbError> {
    let id = chain.id.clone();
    let stored: Option<(i64, String)> = db::run_keyed(pool, move |c| {
        Ok(audit_chains::table
            .find(&id)
            .select((audit_chains::head_seq, audit_chains::head_hash))
            .first(c)
            .optional()?)
    })
    .await?;
    let Some((seq, hash)) = stored else {
        return Ok(false);
    };
    chain.registered = true;
    if seq == chain.seq {
        return Ok(false);
    }
    let written = seq == chain.seq + i64::try_from(events).unwrap_or(i64::MAX);
    if !written {
        tracing::error!(
            stored = seq,
            expected = chain.seq,
            "the audit chain's stored head is not where this writer left it; continuing from it"
        );
    }
    chain.seq = seq;
    chain.head = hash;
    Ok(written)
}

/// Registers this instance's chain, anchored to the head of the chain started before it.
fn register(c: &mut DbConnection, key: &ChainKey, chain_id: &str, started_at: NaiveDateTime) -> Result<(), DbError> {
    let adopted = chain::adopt_unregistered(c, key)?;
    if adopted > 0 {
        tracing::info!(
            chains = adopted,
            "registered audit chains written before chains were signed"
        );
    }
    let anchor = chain::latest_head(c, chain_id)?;
    let started = timestamp(started_at);
    let anchor_seq = anchor.as_ref().map(|a| a.1.to_string()).unwrap_or_default();
    let anchor_mac = key.mac(&anchor_parts(chain_id, &started, anchor.as_ref(), &anchor_seq));
    let (anchor_chain, anchor_seq, anchor_hash) = match anchor {
        Some((c, s, h)) => (Some(c), Some(s), Some(h)),
        None => (None, None, None),
    };
    diesel::insert_into(audit_chains::table)
        .values((
            audit_chains::chain.eq(chain_id),
            audit_chains::started_at.eq(started_at),
            audit_chains::anchor_chain.eq(anchor_chain),
            audit_chains::anchor_seq.eq(anchor_seq),
            audit_chains::anchor_hash.eq(anchor_hash),
            audit_chains::anchor_mac.eq(anchor_mac),
            audit_chains::head_seq.eq(0i64),
            audit_chains::head_hash.eq(GENESIS),
            audit_chains::head_mac.eq(key.mac(&head_parts(chain_id, "0", GENESIS))),
        ))
        .execute(c)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(action: &str) -> AuditRecord {
        AuditRecord {
            actor_kind: "staff".into(),
            actor: "staff|test".into(),
            assurance: None,
            patient_id: None,
            practice: None,
            action: action.into(),
            outcome: crate::audit::Outcome::Success,
            rule: None,
            code: None,
            reason: None,
            request_id: None,
            snapshot: None,
        }
    }

    #[tokio::test]
    async fn a_batch_whose_commit_went_unanswered_is_not_written_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let pool = db::build_pool(&url, 2, Duration::from_secs(5), 0).unwrap();
        db::run(&pool, |c| db::run_migrations(c).map(|_| ())).await.unwrap();
        let key = Arc::new(ChainKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap());
        let fresh = |id: &str| Chain {
            id: id.to_owned(),
            started_at: db::now(),
            seq: 0,
            head: GENESIS.to_owned(),
            registered: false,
        };
        let mut snapshots = HashMap::new();
        let mut chain = fresh("chain-1");
        let batch = [record("read-patient"), record("search-patients")];
        attempt(&pool, &key, &mut chain, &mut snapshots, &batch)
            .await
            .ok()
            .unwrap();
        // The writer's view as it was before that commit, as when its answer is lost.
        let mut stale = Chain {
            started_at: chain.started_at,
            ..fresh("chain-1")
        };
        assert!(
            matches!(
                attempt(&pool, &key, &mut stale, &mut snapshots, &[record("x")]).await,
                Err(Failure::Refused(_))
            ),
            "without reconciling, the chain's next rows collide with the stored ones"
        );
        assert!(reconcile(&pool, &mut stale, batch.len()).await.unwrap());
        assert_eq!((stale.seq, &stale.head, stale.registered), (2, &chain.head, true));
        attempt(&pool, &key, &mut stale, &mut snapshots, &[record("read-task")])
            .await
            .ok()
            .unwrap();
        let verified = db::run(&pool, move |c| chain::verify(c, &key, chain::VerifyMode::Full))
            .await
            .unwrap();
        assert!(verified.first_broken.is_none(), "{:?}", verified.first_broken);
        assert_eq!(verified.events, 3);
    }

    #[test]
    fn escaping_makes_text_safe_and_keeps_ordinary_text() {
        assert_eq!(escape("Jane O'Brien-Zoë".into(), 100, false), "Jane O'Brien-Zoë");
        assert_eq!(escape("x\u{0}y".into(), 100, false), "x\\u{0}y");
        assert_eq!(escape("bell\u{7}\u{1b}".into(), 100, false), "bell\\u{7}\\u{1b}");
        assert_eq!(escape("Zoë".into(), 100, true), "Zo\\u{eb}");
        assert_eq!(escape("a".repeat(10), 4, false), "aaaa…");
        assert_eq!(escape("abcd".into(), 4, false), "abcd");
        assert_eq!(escape("a\tb".into(), 100, false), "a\tb");
        assert_eq!(escape("a\tb".into(), 100, true), "a\\u{9}b");
        assert_eq!(escape("C:\\x".into(), 100, false), "C:\\x");
        assert_eq!(escape("C:\\x".into(), 100, true), "C:\\u{5c}x");
    }
}
