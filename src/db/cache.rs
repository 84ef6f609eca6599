//! What the reader of gathered reads found, kept for a moment: a read that finds its answer here
//! makes no round trip and no hand-off to the reader's thread. What is kept are the facts a
//! decision is made from (a record with its practice, account and codes; a token's binding; a
//! proxy's roles), never a decision: every request is still decided and audited.
//!
//! A kept answer is good only while nothing it was read from can have changed since:
//!
//! - every statement here that writes those tables marks its thread ([`changed`]), and the
//!   connection's caller moves the [`Changes`] generation on once the statement's transaction
//!   is over, before the write's caller hears back; answers kept under an earlier generation are
//!   never given out again, so a write is seen by the next read on this instance;
//! - every instance tells the others: on PostgreSQL a connection of its own ([`listen`])
//!   notifies the schema's `gateway_facts_…` channel within a few milliseconds of such a commit,
//!   and hears the other instances' notifications, moving the generation on. Writes by anyone
//!   else (an administrator's statement, an instance that cannot announce) are notified by a
//!   trigger on each of those tables. While the listener is not listening (not yet connected,
//!   or its connection lost) nothing is kept. On SQLite nothing is kept;
//! - whatever happens, an answer is given out for at most the configured lifetime.
//!
//! Why the gateway announces its own writes rather than leaving it to the triggers: PostgreSQL
//! lets only one notifying transaction commit at a time across the whole database (the lock is
//! held through the commit's flush), so a notification in every write transaction made writes
//! queue behind each other. One notification from one connection, after the commits it covers,
//! costs the writers nothing.
//!
//! A read keeps what it found under the generation it saw *before* it asked the database, so
//! a write that lands while the read is under way leaves that answer unused.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

thread_local! {
    static CHANGED: Cell<bool> = const { Cell::new(false) };
}

/// Notes that the statement just run on this thread wrote a table decisions are read from: the
/// seven the `facts_changed` migration's triggers watch (practices, patients, online accounts,
/// record access codes, identity bindings, proxy roles, review tasks).
pub fn changed() {
    CHANGED.with(|c| c.set(true));
}

/// Whether a statement on this thread has written such a table since the last call.
pub(super) fn take_changed() -> bool {
    CHANGED.with(|c| c.replace(false))
}

/// The generation of the facts: moved on by every write seen, here or notified.
///
/// One word holds both the generation and whether answers may be kept (its lowest bit), so a
/// reader never sees one without the other: an answer kept under a value is good only while
/// the word still holds it, which it cannot once keeping stops.
#[derive(Debug)]
pub struct Changes {
    /// Keeping only while the PostgreSQL listener hears other writers; never on SQLite.
    word: AtomicU64,
    /// A write here that the other instances have not been told of yet.
    unannounced: AtomicBool,
    /// Whether the listener is connected and tells the other instances of writes here; while
    /// it is not, this instance's connections leave it to the triggers.
    announcing: AtomicBool,
}

const KEEPING: u64 = 1;

impl Changes {
    pub fn new(keeping: bool) -> Arc<Self> {
        Arc::new(Self {
            word: AtomicU64::new(if keeping { KEEPING } else { 0 }),
            unannounced: AtomicBool::new(false),
            announcing: AtomicBool::new(false),
        })
    }

    /// Something may have changed: every answer kept so far is stale.
    pub fn bump(&self) {
        self.word.fetch_add(2, Ordering::AcqRel);
    }

    /// A write here has committed: what is kept here is stale, and the other instances are to
    /// be told.
    pub fn wrote(&self) {
        self.bump();
        self.unannounced.store(true, Ordering::Release);
    }

    /// Whether writes here are announced by the listener, so that the triggers need not.
    pub fn announcing(&self) -> bool {
        self.announcing.load(Ordering::Acquire)
    }

    /// The generation answers read now may be kept under, or `None` when nothing may be kept.
    pub fn current(&self) -> Option<u64> {
        let word = self.word.load(Ordering::Acquire);
        (word & KEEPING != 0).then_some(word)
    }

    /// Starts or stops keeping answers; either way, what was kept before is stale.
    pub fn set_keeping(&self, keeping: bool) {
        let _ = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let next = word.wrapping_add(2);
            Some(if keeping { next | KEEPING } else { next & !KEEPING })
        });
    }
}

struct Entry<V> {
    generation: u64,
    at: Instant,
    value: V,
}

/// The newer half and the older.
type Halves<K, V> = (HashMap<K, Entry<V>>, HashMap<K, Entry<V>>);

/// Answers by key, bounded: two halves, the newer taking new answers until it is full, when it
/// becomes the older and the older is dropped. An answer found in the older half moves to the
/// newer, so what is asked for often stays.
pub struct Memo<K, V> {
    halves: Mutex<Halves<K, V>>,
    per_half: usize,
    lifetime: Duration,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// Keeps at most `entries` answers (none when 0), each for at most `lifetime`.
    pub fn new(entries: usize, lifetime: Duration) -> Self {
        Self {
            halves: Mutex::new((HashMap::new(), HashMap::new())),
            per_half: entries / 2,
            lifetime,
        }
    }

    fn on(&self) -> bool {
        self.per_half > 0 && !self.lifetime.is_zero()
    }

    /// The answer kept for `key` under `generation`, if it is not too old.
    pub fn get<Q>(&self, key: &Q, generation: u64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.on() {
            return None;
        }
        let fresh = |e: &Entry<V>| e.generation == generation && e.at.elapsed() < self.lifetime;
        let mut halves = self.halves.lock().unwrap_or_else(|e| e.into_inner());
        let (newer, older) = &mut *halves;
        if let Some(e) = newer.get(key) {
            if fresh(e) {
                return Some(e.value.clone());
            }
            newer.remove(key);
            return None;
        }
        let (key, e) = older.remove_entry(key)?;
        if !fresh(&e) {
            return None;
        }
        let value = e.value.clone();
        Self::insert(halves, self.per_half, key, e);
        Some(value)
    }

    /// Keeps `value` for `key`, read under `generation`.
    pub fn put(&self, key: K, value: V, generation: u64) {
        if !self.on() {
            return;
        }
        let entry = Entry {
            generation,
            at: Instant::now(),
            value,
        };
        let halves = self.halves.lock().unwrap_or_else(|e| e.into_inner());
        Self::insert(halves, self.per_half, key, entry);
    }

    fn insert(mut halves: std::sync::MutexGuard<'_, Halves<K, V>>, per_half: usize, key: K, entry: Entry<V>) {
        let (newer, older) = &mut *halves;
        if newer.len() >= per_half && !newer.contains_key(&key) {
            *older = std::mem::take(newer);
        }
        newer.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let halves = self.halves.lock().unwrap();
        halves.0.len() + halves.1.len()
    }
}

/// The channel of the connection's schema (as the migrations name it, from the schema, so that
/// gateways on other schemas of one database do not hear each other), and the connection's
/// own server process, whose notifications it need not hear.
const CHANNEL_OF_SCHEMA: &str =
    "SELECT 'gateway_facts_' || left(md5(current_schema()), 16) AS channel, pg_backend_pid() AS pid";

#[derive(diesel::QueryableByName)]
struct Channel {
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

/// The session setting a gateway connection carries while its instance announces its own
/// writes: the triggers then leave the notification to the listener (the `facts_announced`
/// migration).
pub const ANNOUNCED: &str = "gateway.facts_announced";

/// How often the listener announces writes here and looks for notifications: the longest a
/// write may go unseen by another instance, besides the notification's own delivery.
const LISTEN_EVERY: Duration = Duration::from_millis(5);

/// On PostgreSQL, a connection of this instance's own, on a thread of its own, that tells the
/// other instances of writes here ([`Changes::wrote`]) and, when `keep`, hears theirs and
/// everyone else's, moving `changes` on for each batch heard. Nothing is kept until it listens;
/// a lost connection stops keeping (and leaves this instance's notifications to the triggers)
/// until it is back, when it announces once in case a write here went untold meanwhile. It ends
/// once nothing else holds `changes`.
pub fn listen(url: String, changes: Arc<Changes>, keep: bool) -> std::io::Result<()> {
    changes.set_keeping(false);
    // Held weakly: when the pool and the reader are gone, the listener ends and lets its
    // connection go.
    let changes = Arc::downgrade(&changes);
    std::thread::Builder::new().name("facts-listener".into()).spawn(move || {
        let mut retry = Duration::from_millis(250);
        loop {
            if changes.strong_count() == 0 {
                return;
            }
            match connect(&url, keep) {
                Ok((mut conn, Channel { channel, pid })) => {
                    retry = Duration::from_millis(250);
                    let Some(now) = changes.upgrade() else { return };
                    now.unannounced.store(true, Ordering::Release);
                    now.announcing.store(true, Ordering::Release);
                    if keep {
                        now.set_keeping(true);
                    }
                    drop(now);
                    tracing::debug!(keep, "announcing writes here and hearing others' to the facts decisions are read from");
                    let lost = loop {
                        std::thread::sleep(LISTEN_EVERY);
                        let Some(changes) = changes.upgrade() else { return };
                        if let Err(e) = announce(&mut conn, &channel, &changes) {
                            break e;
                        }
                        if keep && let Err(e) = hear(&mut conn, pid, &changes) {
                            break e;
                        }
                    };
                    let Some(changes) = changes.upgrade() else { return };
                    changes.announcing.store(false, Ordering::Release);
                    changes.set_keeping(false);
                    tracing::debug!(error = %lost, "lost the connection that announces and hears changes; nothing is kept until it is back");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot connect to announce and hear changes; nothing is kept until it can");
                }
            }
            std::thread::sleep(retry);
            retry = (retry * 2).min(Duration::from_secs(5));
        }
    })?;
    Ok(())
}

fn connect(url: &str, keep: bool) -> Result<(diesel::PgConnection, Channel), String> {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl};
    let mut c = diesel::PgConnection::establish(url).map_err(|e| e.to_string())?;
    let found: Channel = diesel::sql_query(CHANNEL_OF_SCHEMA)
        .get_result(&mut c)
        .map_err(|e| e.to_string())?;
    if keep {
        // The name is made of letters, digits and an underscore.
        c.batch_execute(&format!("LISTEN {}", found.channel))
            .map_err(|e| e.to_string())?;
    }
    Ok((c, found))
}

/// Tells the other instances, in a statement of its own after the commits it covers, that
/// something here was written since the last time.
fn announce(conn: &mut diesel::PgConnection, channel: &str, changes: &Changes) -> Result<(), String> {
    use diesel::RunQueryDsl;
    if !changes.unannounced.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    // The name is made of letters, digits and an underscore; written into the statement so
    // that `pg_stat_activity` shows which schema's listener this is.
    diesel::sql_query(format!("SELECT pg_notify('{channel}', '')"))
        .execute(conn)
        .map(drop)
        .map_err(|e| {
            changes.unannounced.store(true, Ordering::Release);
            e.to_string()
        })
}

/// Moves `changes` on if anyone but this connection notified since the last look.
fn hear(conn: &mut diesel::PgConnection, me: i32, changes: &Changes) -> Result<(), String> {
    let mut heard = false;
    let mut failed = None;
    for n in conn.notifications_iter() {
        match n {
            Ok(n) => heard |= n.process_id != me,
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    if heard {
        changes.bump();
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_given_only_under_the_generation_it_was_read_in() {
        let changes = Changes::new(true);
        let memo: Memo<String, u32> = Memo::new(8, Duration::from_secs(60));
        let g = changes.current().unwrap();
        memo.put("a".into(), 1, g);
        assert_eq!(memo.get("a", changes.current().unwrap()), Some(1));
        changes.bump();
        assert_eq!(memo.get("a", changes.current().unwrap()), None, "a write came after it");
        // Read before a write and kept after it: never given out.
        let before = changes.current().unwrap();
        changes.bump();
        memo.put("b".into(), 2, before);
        assert_eq!(memo.get("b", changes.current().unwrap()), None);
    }

    #[test]
    fn nothing_is_kept_while_not_keeping_and_what_was_kept_is_stale_after() {
        let changes = Changes::new(true);
        let memo: Memo<String, u32> = Memo::new(8, Duration::from_secs(60));
        memo.put("a".into(), 1, changes.current().unwrap());
        changes.set_keeping(false);
        assert_eq!(changes.current(), None);
        changes.set_keeping(true);
        assert_eq!(memo.get("a", changes.current().unwrap()), None);
    }

    #[test]
    fn answers_expire_and_the_memo_stays_within_its_bound() {
        let memo: Memo<u32, u32> = Memo::new(4, Duration::from_millis(30));
        memo.put(1, 1, 0);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(memo.get(&1, 0), None, "older than its lifetime");
        for k in 0..100 {
            memo.put(k, k, 0);
            assert!(memo.len() <= 4);
        }
        // What is asked for stays: two more answers put 98 in the older half, and asking for
        // it moves it back to the newer, so two more still leave it kept.
        memo.put(200, 200, 0);
        memo.put(201, 201, 0);
        assert_eq!(memo.get(&98, 0), Some(98));
        memo.put(202, 202, 0);
        assert_eq!(memo.get(&98, 0), Some(98));
        assert_eq!(memo.get(&0, 0), None, "dropped long ago");
        let off: Memo<u32, u32> = Memo::new(0, Duration::from_secs(1));
        off.put(1, 1, 0);
        assert_eq!(off.get(&1, 0), None);
    }

    #[test]
    fn a_write_marks_only_its_own_thread() {
        assert!(!take_changed());
        changed();
        std::thread::spawn(|| assert!(!take_changed())).join().unwrap();
        assert!(take_changed());
        assert!(!take_changed());
    }
}
