//! Storage: one diesel `MultiConnection` over PostgreSQL and SQLite behind an r2d2 pool.
//! Every query runs on a thread that may block (tokio's blocking pool, the reader that gathers
//! the hot reads in `reads`, or the audit writer's own thread), never on the async workers.

pub mod access_codes;
pub mod accounts;
pub mod audit_exports;
pub mod audit_partitions;
pub mod availability;
pub mod bindings;
pub mod bulk_jobs;
pub mod cache;
pub mod events;
pub mod idempotency;
pub mod linkage_attempts;
pub mod outbox;
pub mod patients;
pub mod practices;
pub mod proxy_roles;
pub mod reads;
pub mod reviews;
pub mod schema;

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, Pool};
use diesel::result::DatabaseErrorKind;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// The connection pool, and a turn for each of its connections (on SQLite, all but one, kept
/// for the reader of gathered reads). A database call waits for its turn on the async side, so
/// no more blocking threads run than there are connections: the rest do not queue on the
/// pool's lock, where each would hold a thread and be woken in turn.
///
/// On PostgreSQL two more connections (`keyed`) serve the reader of gathered reads and the
/// audit writer. Their statements have a fixed shape (rows found by key, events appended) and
/// run thousands of times a second, so these connections keep one generic plan per statement:
/// left to choose, the server plans them afresh on every execution (it prefers a plan made for
/// the exact array of keys, and planning a four-table join costs more than running it). The
/// main pool keeps the server's choice, which searches with patterns need.
#[derive(Clone)]
pub struct DbPool {
    pool: Pool<Manager>,
    keyed: Option<Pool<Manager>>,
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    wait: Duration,
    /// Moved on whenever a write here may have changed what decisions are read from.
    changes: std::sync::Arc<cache::Changes>,
    /// Whether the database answers, as the watcher and the pool's connection attempts tell.
    availability: std::sync::Arc<availability::Availability>,
}

/// Runs a query on the backend's own connection rather than through the `MultiConnection`.
/// The result is the same; the multi-backend wrapper writes the statement's SQL afresh on
/// every execution, where the native connection finds its prepared statement by type. Used on
/// the hot read paths.
macro_rules! native {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgres($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use native;

/// A PostgreSQL statement whose text never changes, prepared once per connection and known to
/// the statement cache by `Id`. Diesel prepares raw SQL and updates afresh on every execution
/// (parse and plan on the server each time), as it cannot tell that their text is fixed; only
/// statements whose text is the same whatever their parameters may be wrapped in this. Run it
/// with `load` (an update with `returning`): `execute` checks the statement through a reference,
/// which does not see the wrapper, and would prepare it afresh each time.
pub(crate) struct Fixed<Q, Id>(Q, std::marker::PhantomData<Id>);

impl<Q, Id> Fixed<Q, Id> {
    pub(crate) fn new(query: Q) -> Self {
        Self(query, std::marker::PhantomData)
    }
}

impl<Q, Id: 'static> diesel::query_builder::QueryId for Fixed<Q, Id> {
    type QueryId = Id;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q: diesel::query_builder::Query, Id> diesel::query_builder::Query for Fixed<Q, Id> {
    type SqlType = Q::SqlType;
}

impl<Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>, Id> diesel::query_builder::QueryFragment<diesel::pg::Pg>
    for Fixed<Q, Id>
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Id> RunQueryDsl<diesel::PgConnection> for Fixed<Q, Id> {}

/// A connection in the pool, with what the pool knows of its health.
pub struct Tracked {
    conn: DbConnection,
    /// When a statement last came back from the server on it.
    answered: Instant,
    /// A statement failed because the connection is gone: it is closed, not reused.
    lost: bool,
    /// Whether the session carries [`cache::ANNOUNCED`] (PostgreSQL): its writes are then
    /// announced by the listener rather than notified by the triggers.
    announced: bool,
}

impl Deref for Tracked {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.conn
    }
}

impl DerefMut for Tracked {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.conn
    }
}

/// A connection that answered within this long is handed out without a test round trip.
const RECENTLY_ANSWERED: Duration = Duration::from_secs(1);

/// r2d2's manager for diesel connections, without a `SELECT 1` before every use: a
/// connection that answered a moment ago is handed out as it is, one idle for longer is
/// tested first, and one whose statement failed for want of a connection is closed when it
/// comes back. Under load that saves a round trip per database call; after an outage the
/// idle connections are tested and replaced as before.
pub struct Manager {
    inner: ConnectionManager<DbConnection>,
    url: String,
    /// While the database is known to be away, a new connection waits for its return rather
    /// than fail and leave the pool to back off (by up to half its wait) before trying again:
    /// the pool then connects the moment the watcher hears the database back.
    availability: std::sync::Weak<availability::Availability>,
}

/// How long a new connection waits for the database's return before trying regardless.
const AWAIT_RETURN: Duration = Duration::from_secs(30);

impl ManageConnection for Manager {
    type Connection = Tracked;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Tracked, Self::Error> {
        if let Some(availability) = self.availability.upgrade() {
            let until = Instant::now() + AWAIT_RETURN;
            while !availability.is_up() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Tracked {
            conn: establish(&self.url).map_err(diesel::r2d2::Error::ConnectionError)?,
            answered: Instant::now(),
            lost: false,
            announced: false,
        })
    }

    fn is_valid(&self, c: &mut Tracked) -> Result<(), Self::Error> {
        if c.lost {
            return Err(diesel::r2d2::Error::ConnectionError(
                diesel::ConnectionError::BadConnection("the connection was lost".into()),
            ));
        }
        if c.answered.elapsed() < RECENTLY_ANSWERED {
            return Ok(());
        }
        self.inner.is_valid(&mut c.conn)?;
        c.answered = Instant::now();
        Ok(())
    }

    fn has_broken(&self, c: &mut Tracked) -> bool {
        c.lost || self.inner.has_broken(&mut c.conn)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or the pool is exhausted: callers see 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("database query failed: {0}")]
    Query(String),
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::UniqueViolation,
            diesel::result::Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => Self::Unavailable(info.message().to_owned()),
            // SQLite lock contention past busy_timeout: transient, so the caller may retry (503).
            diesel::result::Error::DatabaseError(_, info) if info.message().contains("database is locked") => {
                Self::Unavailable(info.message().to_owned())
            }
            other => Self::Query(other.to_string()),
        }
    }
}

impl From<diesel::r2d2::PoolError> for DbError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// Connects with the backend the URL names. (The `MultiConnection`'s own `establish` tries
/// each backend in turn and, when the database is down, reports only that the URL suits none
/// of them, hiding the cause.)
fn establish(url: &str) -> diesel::ConnectionResult<DbConnection> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        diesel::PgConnection::establish(url).map(DbConnection::Postgres)
    } else {
        diesel::SqliteConnection::establish(url).map(DbConnection::Sqlite)
    }
}

/// The pool's failed connection attempts, told to [`availability::Availability`] (which logs
/// once per change of state) rather than logged one by one.
/// (PostgreSQL only: a SQLite connection that fails to open or set up is most often one that
/// met another's write, which is contention, not an outage; the watcher tells a SQLite file
/// that cannot be used.)
#[derive(Debug)]
struct ReportFailures(Option<std::sync::Weak<availability::Availability>>);

impl diesel::r2d2::HandleError<diesel::r2d2::Error> for ReportFailures {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        match self.0.as_ref().and_then(std::sync::Weak::upgrade) {
            Some(a) => a.connection_failed(&error.to_string()),
            None => tracing::debug!(%error, "a database connection could not be made"),
        }
    }
}

/// Per-connection settings. SQLite: WAL lets readers run beside the single writer;
/// busy_timeout turns lock contention into a short wait instead of an immediate SQLITE_BUSY.
fn set_up(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    if let DbConnection::Sqlite(c) = conn {
        c.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
        )?;
    }
    Ok(())
}

#[derive(Debug)]
struct SetUp {
    /// Keep one generic plan per prepared statement (the keyed connections).
    generic_plans: bool,
    /// PostgreSQL's `backend_flush_after` for the session, in kB; 0 leaves the server's. (The
    /// PostgreSQL settings are not applied to SQLite connections.)
    flush_after_kb: u32,
}

impl SetUp {
    /// The PostgreSQL session settings, as one statement (one round trip per new connection).
    fn postgres_settings(&self) -> String {
        let mut sql = String::new();
        if self.generic_plans {
            sql.push_str("SET plan_cache_mode = force_generic_plan;");
        }
        if self.flush_after_kb > 0 {
            sql.push_str(&format!("SET backend_flush_after = '{}kB';", self.flush_after_kb));
        }
        sql
    }
}

impl CustomizeConnection<Tracked, diesel::r2d2::Error> for SetUp {
    fn on_acquire(&self, conn: &mut Tracked) -> Result<(), diesel::r2d2::Error> {
        set_up(&mut conn.conn).map_err(diesel::r2d2::Error::QueryError)?;
        let settings = self.postgres_settings();
        if !settings.is_empty()
            && let DbConnection::Postgres(c) = &mut conn.conn
        {
            c.batch_execute(&settings).map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// How many keyed connections PostgreSQL gets beside the pool: the reader of gathered reads
/// and the audit writer, one each.
const KEYED_CONNECTIONS: u32 = 2;

/// Builds the pool. The first connection is made lazily so that a database that is down at
/// start shows up in `/health/ready` rather than preventing start-up.
///
/// `flush_after_kb` (PostgreSQL, `database.backend_flush_after_kb`): each session asks the
/// operating system to write out what it has written every so many kB, rather than leave it to
/// pile up in the page cache and go out in a burst that stalls the commits waiting on their
/// flush; 0 leaves the server's setting.
pub fn build_pool(url: &str, size: u32, connect_timeout: Duration, flush_after_kb: u32) -> Result<DbPool, DbError> {
    let is_sqlite = url.starts_with("sqlite://");
    let url = normalise_url(url)?;
    if is_sqlite
        && let Some(dir) = std::path::Path::new(&url)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let url = if is_sqlite {
        url
    } else {
        with_network_timeouts(&url, connect_timeout)
    };
    let availability = availability::Availability::new();
    let build = |size: u32, generic_plans: bool| {
        Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(connect_timeout)
            .error_handler(Box::new(ReportFailures(
                (!is_sqlite).then(|| std::sync::Arc::downgrade(&availability)),
            )))
            .connection_customizer(Box::new(SetUp {
                generic_plans,
                flush_after_kb,
            }))
            .build_unchecked(Manager {
                inner: ConnectionManager::<DbConnection>::new(url.clone()),
                url: url.clone(),
                availability: std::sync::Arc::downgrade(&availability),
            })
    };
    // The watcher's questions must come back quickly or count as unanswered: the shortest
    // connection timeout libpq allows, and unacknowledged data given up on after a second.
    let watched = if is_sqlite {
        url.clone()
    } else {
        with_network_timeouts(
            &format!(
                "{url}{}tcp_user_timeout=1000",
                if url.contains('?') { '&' } else { '?' }
            ),
            Duration::from_secs(2),
        )
    };
    availability::watch(&availability, move || {
        let mut conn = establish(&watched).map_err(|e| e.to_string())?;
        // SQLite: only a wait for locks; the file's settings are the pool's to make.
        if let DbConnection::Sqlite(c) = &mut conn {
            c.batch_execute("PRAGMA busy_timeout = 1000;")
                .map_err(|e| e.to_string())?;
        }
        Ok(conn)
    })
    .map_err(|e| DbError::Unavailable(format!("cannot start the database watcher: {e}")))?;
    Ok(DbPool {
        pool: build(size, false),
        keyed: (!is_sqlite).then(|| build(KEYED_CONNECTIONS, true)),
        // SQLite: one connection is left to the reader of gathered reads.
        turns: std::sync::Arc::new(tokio::sync::Semaphore::new(if is_sqlite {
            (size as usize).saturating_sub(1).max(1)
        } else {
            size as usize
        })),
        wait: connect_timeout,
        // Nothing is kept until the listener hears other writers (PostgreSQL only).
        changes: cache::Changes::new(false),
        availability,
    })
}

/// On PostgreSQL, starts the listener ([`cache::listen`]) that announces this instance's writes
/// to the tables decisions are read from and, when `keep`, hears everyone else's; until it
/// listens, reads are not kept. On SQLite nothing is kept: it has no way to tell another
/// process's writes, and a second instance on the same file is allowed.
pub fn listen_for_changes(url: &str, pool: &DbPool, keep: bool) -> Result<(), DbError> {
    if !pool.is_postgres() {
        return Ok(());
    }
    let mut url = with_network_timeouts(&normalise_url(url)?, pool.wait);
    // Named, so that an administrator can tell it in `pg_stat_activity`.
    if !url.contains("application_name=") {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("application_name=gateway-facts-listener");
    }
    cache::listen(url, pool.changes.clone(), keep)
        .map_err(|e| DbError::Unavailable(format!("cannot start the listener for changes: {e}")))
}

/// A PostgreSQL server that stops answering (a dead host, a dropped route) must not hold a
/// connection for ever: unless the URL says otherwise, connecting gives up after the pool's
/// wait, and TCP keepalives find a dead peer within about 25 s.
fn with_network_timeouts(url: &str, connect_timeout: Duration) -> String {
    let defaults = [
        ("connect_timeout", connect_timeout.as_secs().max(1).to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", "10".to_owned()),
        ("keepalives_interval", "5".to_owned()),
        ("keepalives_count", "3".to_owned()),
        // A statement sent on a connection whose route was cut fails once its data has gone
        // unacknowledged this long, rather than waiting for the keepalives.
        ("tcp_user_timeout", connect_timeout.as_millis().max(1000).to_string()),
    ];
    let mut out = url.to_owned();
    for (name, value) in defaults {
        if !url.contains(&format!("{name}=")) {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(&format!("{name}={value}"));
        }
    }
    out
}

/// diesel's SQLite connection takes a path, not a `sqlite://` URL.
fn normalise_url(url: &str) -> Result<String, DbError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(DbError::Unavailable("sqlite:// URL has no file path".into()));
        }
        return Ok(path.to_owned());
    }
    Ok(url.to_owned())
}

impl DbPool {
    /// How long a call waits for a connection before the database counts as unavailable.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Whether this is a PostgreSQL pool (which has keyed connections besides its own).
    pub fn is_postgres(&self) -> bool {
        self.keyed.is_some()
    }

    /// The generation of what decisions are read from, for keeping reads.
    pub fn changes(&self) -> &std::sync::Arc<cache::Changes> {
        &self.changes
    }

    /// Whether the database answers.
    pub fn availability(&self) -> &std::sync::Arc<availability::Availability> {
        &self.availability
    }

    /// The error for a call not made because the database is known to be away.
    fn away(&self) -> DbError {
        DbError::Unavailable(format!(
            "the database is unreachable: {}",
            self.availability.cause().unwrap_or_else(|| "no answer".into())
        ))
    }
}

/// Runs `f` on a connection from the pool, on the calling thread (one that may block), and
/// notes what the outcome says about the connection.
fn with_connection<T>(
    pool: &Pool<Manager>,
    changes: &cache::Changes,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    with_connection_if(pool, changes, || true, f)
}

/// As [`with_connection`], running `f` only if `go` still says so once a connection is had.
fn with_connection_if<T>(
    pool: &Pool<Manager>,
    changes: &cache::Changes,
    go: impl FnOnce() -> bool,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut conn = pool.get()?;
    if !go() {
        return Err(DbError::Unavailable("given up: the database went away".into()));
    }
    // A transaction on this thread whose commit goes unanswered asks this pool how it ended.
    let _reconciler = Reconciler::set(pool);
    CONNECTION_LOST.with(|l| l.set(false));
    cache::take_changed();
    let result = match announce_here(&mut conn, changes.announcing()) {
        Ok(()) => f(&mut conn),
        Err(e) => Err(e.into()),
    };
    // After the closure's transaction is over, before its caller hears back.
    if cache::take_changed() {
        changes.wrote();
    }
    let lost = CONNECTION_LOST.with(|l| l.replace(false));
    match &result {
        _ if lost => conn.lost = true,
        // The connection itself failed: the pool closes it rather than hand it out again.
        // (SQLite's only "unavailable" is lock contention, which leaves the file usable.)
        Err(DbError::Unavailable(_)) if matches!(conn.conn, DbConnection::Postgres(_)) => conn.lost = true,
        // The server answered, with rows or with an error about the statement.
        _ => conn.answered = Instant::now(),
    }
    result
}

/// Brings the session's [`cache::ANNOUNCED`] in line with whether the listener announces this
/// instance's writes; a round trip only when that has changed since the connection's last use.
fn announce_here(conn: &mut Tracked, announcing: bool) -> diesel::QueryResult<()> {
    if conn.announced == announcing {
        return Ok(());
    }
    if let DbConnection::Postgres(c) = &mut conn.conn {
        c.batch_execute(&format!(
            "SET {} = {}",
            cache::ANNOUNCED,
            if announcing { "on" } else { "off" }
        ))?;
    }
    conn.announced = announcing;
    Ok(())
}

/// Runs a database closure on a thread of its own that may block (not the async workers),
/// outside the pool's turns, on a keyed connection: for a long-lived reader that gathers many
/// requests' reads.
fn run_here<T>(pool: &DbPool, f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>) -> Result<T, DbError> {
    with_connection(pool.keyed.as_ref().unwrap_or(&pool.pool), &pool.changes, f)
}

/// Runs a database closure of fixed shape on a keyed connection, outside the pool's turns,
/// blocking the calling thread: for the audit writer, which has a thread and a runtime of its
/// own and makes one call at a time. (SQLite has no keyed connections: the call takes its
/// turn in the pool, on the blocking pool.)
pub async fn run_keyed<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
{
    match &pool.keyed {
        Some(keyed) => with_connection(keyed, &pool.changes, f),
        None => run(pool, f).await,
    }
}

/// Runs a blocking database closure on tokio's blocking pool.
pub async fn run<T, F>(pool: &DbPool, f: F) -> Result<T, DbError>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
{
    use std::sync::atomic::{AtomicU8, Ordering};
    const WAITING: u8 = 0;
    const RUNNING: u8 = 1;
    const ABANDONED: u8 = 2;
    // A database known to be away is not waited for.
    if !pool.availability.is_up() {
        return Err(pool.away());
    }
    let mut availability = pool.availability.subscribe();
    let away = async move {
        let _ = availability.wait_for(|up| !*up).await;
    };
    tokio::pin!(away);
    let turn = tokio::select! {
        turn = tokio::time::timeout(pool.wait, pool.turns.clone().acquire_owned()) => match turn {
            Ok(Ok(turn)) => turn,
            Ok(Err(_)) => return Err(DbError::Unavailable("the connection pool is closed".into())),
            Err(_) => {
                return Err(DbError::Unavailable(format!(
                    "no database connection free within {} ms",
                    pool.wait.as_millis()
                )));
            }
        },
        () = &mut away => return Err(pool.away()),
    };
    // Waiting for a connection is given up when the database is found away; a call that has
    // its connection runs to its end (its statements are bounded by the network timeouts), so
    // that whether a change was made is never left to chance.
    let state = std::sync::Arc::new(AtomicU8::new(WAITING));
    let (inner, changes, here) = (pool.pool.clone(), pool.changes.clone(), state.clone());
    let task = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let go = || {
            here.compare_exchange(WAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        };
        with_connection_if(&inner, &changes, go, f)
    });
    tokio::pin!(task);
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = &mut away => {
            if state
                .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Err(pool.away());
            }
            task.await
        }
    };
    joined.map_err(|e| DbError::Query(format!("database task failed: {e}")))?
}

/// Applies pending migrations for whichever backend the connection is.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let applied = match conn {
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| DbError::Query(format!("migration failed: {e}")))?;
    Ok(applied.into_iter().map(|v| v.to_string()).collect())
}

/// Reverts every migration (used by the migration round-trip test and `migrate --revert-all`).
pub fn revert_all_migrations(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    let reverted = match conn {
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
    }
    .map_err(|e| DbError::Query(format!("migration revert failed: {e}")))?;
    Ok(reverted.into_iter().map(|v| v.to_string()).collect())
}

/// Tables and their columns as the live database reports them, sorted, for comparing backends.
/// PostgreSQL's partitions (of the audit trail) are parts of their table, not tables of their own.
pub fn describe_tables(conn: &mut DbConnection) -> Result<Vec<(String, Vec<String>)>, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Col {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        column_name: String,
    }
    let cols: Vec<Col> = match conn {
        DbConnection::Postgres(c) => diesel::sql_query(
            "SELECT table_name::text AS table_name, column_name::text AS column_name \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name <> '__diesel_schema_migrations' \
             AND table_name NOT IN (SELECT c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relispartition AND n.nspname = current_schema())",
        )
        .load(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
             AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'",
        )
        .load(c)?,
    };
    let mut tables: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in cols {
        tables.entry(c.table_name).or_default().push(c.column_name);
    }
    Ok(tables
        .into_iter()
        .map(|(t, mut c)| {
            c.sort();
            (t, c)
        })
        .collect())
}

/// A cheap round trip, for readiness checks.
pub fn ping(conn: &mut DbConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

/// One connection outside the pool (commands and tests), set up as the pool's are.
pub fn connect(url: &str) -> Result<DbConnection, DbError> {
    let url = normalise_url(url)?;
    let mut conn = establish(&url).map_err(|e| DbError::Unavailable(e.to_string()))?;
    set_up(&mut conn).map_err(|e| DbError::Unavailable(e.to_string()))?;
    Ok(conn)
}

pub fn now() -> chrono::NaiveDateTime {
    // Microsecond precision: both backends store it exactly, so a value read back compares equal.
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::Duration::microseconds(1)).unwrap_or(now)
}

thread_local! {
    /// The pool of the call running on this thread, for finding out how a transaction whose
    /// commit went unanswered ended.
    static RECONCILER: std::cell::RefCell<Option<Pool<Manager>>> = const { std::cell::RefCell::new(None) };
    /// Set when a statement on this thread's connection went unanswered, whatever the call
    /// made of it: the connection is not used again.
    static CONNECTION_LOST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets [`RECONCILER`] for as long as it is held.
struct Reconciler(Option<Pool<Manager>>);

impl Reconciler {
    fn set(pool: &Pool<Manager>) -> Self {
        Self(RECONCILER.with(|r| r.replace(Some(pool.clone()))))
    }
}

impl Drop for Reconciler {
    fn drop(&mut self) {
        let previous = self.0.take();
        RECONCILER.with(|r| *r.borrow_mut() = previous);
    }
}

/// How long a transaction whose commit went unanswered is looked for before it is given up as
/// in doubt. Its request's answer does not wait for this (the caller was answered 503 when the
/// database went away); its `X-Request-ID` claim does, so that a retry is replayed or run
/// according to what really happened.
const RECONCILE_FOR: Duration = Duration::from_secs(60);

/// Whether a failed COMMIT leaves the transaction's fate unknown: the request may or may not
/// have reached the server. An error the server itself answered is a definite failure.
fn commit_in_doubt(e: &diesel::result::Error) -> bool {
    !matches!(e, diesel::result::Error::DatabaseError(kind, _)
        if !matches!(kind, DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand))
}

/// Asks the server, on another connection, whether transaction `xid` committed: `Some(true)`
/// or `Some(false)` once it knows, `None` if no answer came within [`RECONCILE_FOR`].
fn committed(xid: i64) -> Option<bool> {
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        status: Option<String>,
    }
    let pool = RECONCILER.with(|r| r.borrow().clone())?;
    let until = Instant::now() + RECONCILE_FOR;
    while Instant::now() < until {
        let asked = pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
            let DbConnection::Postgres(pg) = &mut c.conn else {
                return Err("not PostgreSQL".to_owned());
            };
            let found = diesel::sql_query("SELECT txid_status($1)::text AS status")
                .bind::<diesel::sql_types::BigInt, _>(xid)
                .get_result::<Status>(pg);
            if found.is_err() {
                c.lost = true;
            }
            found.map_err(|e| e.to_string())
        });
        match asked.as_ref().map(|s| s.status.as_deref()) {
            Ok(Some("committed")) => return Some(true),
            Ok(Some("aborted")) => return Some(false),
            // Unknown to the server: it never got as far as being given its id on disk.
            Ok(None) => return Some(false),
            // In progress: the server has not yet noticed that its client went away.
            Ok(Some(_)) | Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
    None
}

/// Runs `f` in a transaction that takes the write lock up front. On SQLite a deferred
/// transaction that reads before it writes can fail at once with SQLITE_BUSY when another
/// connection wrote in between; `BEGIN IMMEDIATE` makes it wait its turn instead.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if let DbConnection::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        let result = f(conn);
        let DbConnection::Sqlite(c) = conn else {
            unreachable!("the connection does not change backend")
        };
        return match result {
            Ok(v) => match AnsiTransactionManager::commit_transaction(c) {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = AnsiTransactionManager::rollback_transaction(c);
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(c);
                Err(e)
            }
        };
    }
    let DbConnection::Postgres(c) = conn else {
        unreachable!("SQLite is handled above")
    };
    let outermost = matches!(
        AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth(),
        Ok(None)
    );
    if !outermost {
        return conn.transaction(f);
    }
    // The transaction's id, so that a commit whose answer is lost can be looked up: the change
    // is then reported as made if it was, and as failed only if it was not.
    #[derive(diesel::QueryableByName)]
    struct Xid {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        xid: i64,
    }
    AnsiTransactionManager::begin_transaction(c)?;
    let xid = match diesel::sql_query("SELECT txid_current() AS xid").get_result::<Xid>(c) {
        Ok(x) => x.xid,
        Err(e) => {
            let _ = AnsiTransactionManager::rollback_transaction(c);
            return Err(e.into());
        }
    };
    let result = f(conn);
    let DbConnection::Postgres(c) = conn else {
        unreachable!("the connection does not change backend")
    };
    match result {
        Ok(v) => match AnsiTransactionManager::commit_transaction(c) {
            Ok(()) => Ok(v),
            Err(e) if commit_in_doubt(&e) => {
                CONNECTION_LOST.with(|l| l.set(true));
                match committed(xid) {
                    Some(true) => {
                        tracing::info!(xid, "a transaction whose commit went unanswered was found committed");
                        Ok(v)
                    }
                    Some(false) => Err(e.into()),
                    None => {
                        tracing::error!(xid, "a transaction whose commit went unanswered could not be found out");
                        Err(e.into())
                    }
                }
            }
            Err(e) => {
                let _ = AnsiTransactionManager::rollback_transaction(c);
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = AnsiTransactionManager::rollback_transaction(c);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_tests_only_idle_connections_and_closes_lost_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.db").to_string_lossy().into_owned();
        let manager = Manager {
            inner: ConnectionManager::new(path.clone()),
            url: path,
            availability: std::sync::Weak::new(),
        };
        let mut c = manager.connect().unwrap();
        assert!(manager.is_valid(&mut c).is_ok() && !manager.has_broken(&mut c));
        // Idle for longer than the grace: tested with a round trip, and marked fresh again.
        c.answered = Instant::now() - RECENTLY_ANSWERED * 2;
        assert!(manager.is_valid(&mut c).is_ok());
        assert!(c.answered.elapsed() < RECENTLY_ANSWERED);
        // A statement that failed for want of a connection: never handed out again.
        c.lost = true;
        assert!(manager.is_valid(&mut c).is_err());
        assert!(manager.has_broken(&mut c));
    }

    #[tokio::test]
    async fn a_call_waits_for_a_free_connection_at_most_the_pool_wait() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("turns.db").display());
        let pool = build_pool(&url, 1, Duration::from_millis(200), 0).unwrap();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move {
                run(&pool, |_| {
                    std::thread::sleep(Duration::from_millis(600));
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let waited = run(&pool, |_| Ok(())).await;
        assert!(matches!(waited, Err(DbError::Unavailable(m)) if m.contains("no database connection free")));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "gave up after the wait, not the holder"
        );
        assert!(busy.await.unwrap().is_ok());
        assert!(run(&pool, |_| Ok(())).await.is_ok(), "the connection is free again");
    }

    #[tokio::test]
    async fn lock_contention_on_sqlite_does_not_close_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("lock.db").display());
        let pool = build_pool(&url, 1, Duration::from_secs(5), 0).unwrap();
        let r: Result<(), DbError> = run(&pool, |_| Err(DbError::Unavailable("database is locked".into()))).await;
        assert!(r.is_err());
        let state = pool.pool.state();
        assert_eq!(state.connections, 1, "the connection stays in the pool");
    }

    #[test]
    #[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
    fn a_transaction_whose_commit_went_unanswered_is_looked_up_by_its_id() {
        // PostgreSQL only: SQLite's commits are never in doubt.
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            return;
        };
        #[derive(diesel::QueryableByName)]
        struct Xid {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            xid: i64,
        }
        let pool = build_pool(&url, 2, Duration::from_secs(2), 0).unwrap();
        let _reconciler = Reconciler::set(&pool.pool);
        let mut conn = connect(&url).unwrap();
        let mut ended = |how: &str| {
            conn.batch_execute("BEGIN").unwrap();
            let xid = diesel::sql_query("SELECT txid_current() AS xid")
                .get_result::<Xid>(&mut conn)
                .unwrap()
                .xid;
            conn.batch_execute(how).unwrap();
            xid
        };
        let (made, undone) = (ended("COMMIT"), ended("ROLLBACK"));
        assert_eq!(committed(made), Some(true));
        assert_eq!(committed(undone), Some(false));
    }

    #[test]
    fn postgres_urls_get_network_timeouts_unless_they_set_their_own() {
        let url = with_network_timeouts("postgres://db/gw", Duration::from_secs(5));
        assert_eq!(
            url,
            "postgres://db/gw?connect_timeout=5&keepalives=1&keepalives_idle=10&keepalives_interval=5&keepalives_count=3&tcp_user_timeout=5000"
        );
        let url = with_network_timeouts(
            "postgres://db/gw?connect_timeout=2&sslmode=require",
            Duration::from_millis(300),
        );
        assert!(
            url.starts_with("postgres://db/gw?connect_timeout=2&sslmode=require&keepalives=1&"),
            "{url}"
        );
        assert_eq!(url.matches("connect_timeout").count(), 1);
    }
}
