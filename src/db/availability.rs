//! Whether the database answers, as one watcher sees it. A thread of its own asks the
//! database a trivial question several times a second on a connection of its own; the pool
//! reports every connection it could not make. From that:
//!
//! - `/health/ready` answers at once from what is known, and follows the database within a
//!   second of its return;
//! - a database call made while the database is known to be away fails at once (503) instead
//!   of waiting out the connection timeout, and a request waiting on one gives up as soon as
//!   the database is found away;
//! - the log says why once when the database goes away, again (with the latest cause) every
//!   [`STILL_DOWN_EVERY`] while it stays away, and once when it is back: not once per failed
//!   attempt.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;

use super::DbConnection;

/// How often the watcher asks the database.
pub const ASK_EVERY: Duration = Duration::from_millis(250);
/// How often an outage that lasts is said again in the log.
pub const STILL_DOWN_EVERY: Duration = Duration::from_secs(10);
/// An answer older than this does not count: a watcher stuck on a connection that no longer
/// answers (a cut route) must not keep the gateway ready.
const ANSWER_LASTS: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    /// Since when the database has been away, and why, as last heard.
    down: Option<(Instant, String)>,
    last_answer: Instant,
    last_said: Instant,
}

/// What is known of the database's availability; shared by the pool, the watcher and readiness.
#[derive(Debug)]
pub struct Availability {
    state: Mutex<State>,
    up: tokio::sync::watch::Sender<bool>,
    /// Dropped with this: the watcher, waiting between questions, ends at once.
    _watched: Mutex<std::sync::mpsc::Sender<()>>,
    ended: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Availability {
    pub fn new() -> Arc<Self> {
        let now = Instant::now();
        let (watched, ended) = std::sync::mpsc::channel();
        Arc::new(Self {
            _watched: Mutex::new(watched),
            ended: Mutex::new(Some(ended)),
            state: Mutex::new(State {
                down: None,
                last_answer: now,
                last_said: now,
            }),
            up: tokio::sync::watch::channel(true).0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the database is not known to be away.
    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Why the database is unavailable now, if it is: away, or silent for too long.
    pub fn problem(&self) -> Option<String> {
        let state = self.state();
        match &state.down {
            Some((since, cause)) => Some(format!("unreachable for {} s: {cause}", since.elapsed().as_secs())),
            None if state.last_answer.elapsed() > ANSWER_LASTS => {
                Some(format!("no answer for {} ms", state.last_answer.elapsed().as_millis()))
            }
            None => None,
        }
    }

    /// The cause of the outage in progress, for the answers it makes.
    pub fn cause(&self) -> Option<String> {
        self.state().down.as_ref().map(|(_, c)| c.clone())
    }

    /// Changes to `true` (up) and `false` (away), for waiters that give up when it goes away.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.up.subscribe()
    }

    /// The database answered.
    pub fn answered(&self) {
        let mut state = self.state();
        state.last_answer = Instant::now();
        if let Some((since, _)) = state.down.take() {
            tracing::warn!(
                outage_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "the database is reachable again"
            );
            state.last_said = Instant::now();
            drop(state);
            self.up.send_replace(true);
        }
    }

    /// The pool could not make a connection, for `cause`. Taken as an outage unless the
    /// watcher heard the database answer a moment ago: an attempt begun before the database
    /// came back may fail after it did, and must not take it away again.
    pub fn connection_failed(&self, cause: &str) {
        let recent = {
            let state = self.state();
            state.down.is_none() && state.last_answer.elapsed() < 2 * ASK_EVERY
        };
        if recent {
            tracing::debug!(cause, "a database connection could not be made");
        } else {
            self.failed(cause);
        }
    }

    /// A connection could not be made or the database did not answer, for `cause`.
    pub fn failed(&self, cause: &str) {
        let mut state = self.state();
        match &mut state.down {
            None => {
                tracing::error!(
                    cause,
                    "the database is unreachable; requests that need it are answered 503"
                );
                state.down = Some((Instant::now(), cause.to_owned()));
                state.last_said = Instant::now();
                drop(state);
                self.up.send_replace(false);
            }
            Some((since, last_cause)) => {
                let since = *since;
                // The latest cause is kept for readiness; the log says it every so often only,
                // however many attempts fail or however their messages vary.
                *last_cause = cause.to_owned();
                if state.last_said.elapsed() >= STILL_DOWN_EVERY {
                    tracing::error!(
                        cause,
                        down_for_s = since.elapsed().as_secs(),
                        "the database is still unreachable"
                    );
                    state.last_said = Instant::now();
                }
            }
        }
    }
}

/// Watches the database from a thread of its own until `availability` is dropped. `connect`
/// makes the watcher's connection (with short network timeouts), each attempt timed by the
/// caller's settings.
pub fn watch(
    availability: &Arc<Availability>,
    connect: impl Fn() -> Result<DbConnection, String> + Send + 'static,
) -> std::io::Result<()> {
    let ended = availability
        .ended
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| std::io::Error::other("the database is watched already"))?;
    let availability: Weak<Availability> = Arc::downgrade(availability);
    std::thread::Builder::new()
        .name("database-watcher".into())
        .spawn(move || {
            let mut conn: Option<DbConnection> = None;
            loop {
                let started = Instant::now();
                let outcome = match conn.as_mut() {
                    Some(c) => ask(c),
                    None => connect().and_then(|mut c| {
                        ask(&mut c)?;
                        conn = Some(c);
                        Ok(())
                    }),
                };
                let Some(availability) = availability.upgrade() else {
                    return;
                };
                match outcome {
                    Ok(()) => availability.answered(),
                    Err(cause) => {
                        conn = None;
                        availability.failed(&cause);
                    }
                }
                drop(availability);
                if let Err(std::sync::mpsc::RecvTimeoutError::Disconnected) =
                    ended.recv_timeout(ASK_EVERY.saturating_sub(started.elapsed()))
                {
                    return;
                }
            }
        })?;
    Ok(())
}

fn ask(c: &mut DbConnection) -> Result<(), String> {
    match super::native!(c, |c| diesel::sql_query("SELECT 1").execute(c)) {
        Ok(_) => Ok(()),
        // SQLite busy with another connection's write answered all the same: contention, not
        // an outage.
        Err(e) if matches!(c, DbConnection::Sqlite(_)) && e.to_string().contains("locked") => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_changes_the_state_once_and_its_return_once() {
        let a = Availability::new();
        let mut changes = a.subscribe();
        assert!(a.is_up() && a.problem().is_none());
        // The watcher heard it a moment ago: one failed connection is not an outage.
        a.connection_failed("connection refused");
        assert!(a.is_up());
        a.failed("connection refused");
        a.failed("connection refused");
        assert!(!a.is_up());
        assert!(changes.has_changed().unwrap());
        assert!(!*changes.borrow_and_update());
        assert!(a.problem().unwrap().contains("connection refused"), "{:?}", a.problem());
        a.answered();
        assert!(a.is_up() && a.problem().is_none() && a.cause().is_none());
        assert!(*changes.borrow_and_update());
    }
}
