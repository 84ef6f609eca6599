//! Jobs that any instance may work on, claimed with a lease: the opt-in move's batches and the
//! audit exports' files. A worker claims a due job (never claimed, or its lease lapsed) and
//! does it one step at a time, each step one transaction that also moves the lease on; a step
//! that does not commit (the job was taken over, cancelled, or the database failed) ends the
//! work here, and the job goes on from its last committed step once the lease lapses.

use chrono::NaiveDateTime;

use super::{Core, Result};
use crate::db::{self, DbConnection, DbError};

/// How long a claim lasts without a step being done.
const LEASE_SECONDS: i64 = 30;

/// When a lease taken or renewed `now` runs out.
pub fn lease_until(now: NaiveDateTime) -> NaiveDateTime {
    now + chrono::Duration::seconds(LEASE_SECONDS)
}

/// How one kind of job is claimed and stepped through.
pub trait Leased: Send + 'static {
    /// What the log calls it.
    const KIND: &'static str;
    /// Claims one due job for `worker` until `until`.
    fn claim(
        c: &mut DbConnection,
        worker: &str,
        now: NaiveDateTime,
        until: NaiveDateTime,
    ) -> std::result::Result<Option<Self>, DbError>
    where
        Self: Sized;
    /// Its id, for the log.
    fn id(&self) -> &str;
}

/// Works through due jobs until there are none: each claimed in turn and stepped through with
/// `step` (true while there is more to do); `finished` runs after each job. Returns how many
/// jobs were worked on.
pub async fn work<J, S>(core: &Core, worker: &str, step: S, finished: impl Fn()) -> Result<usize>
where
    J: Leased,
    S: Fn(&mut DbConnection, &mut J, &str, NaiveDateTime) -> std::result::Result<bool, DbError>
        + Clone
        + Send
        + 'static,
{
    let mut done = 0;
    loop {
        let now = core.clock.now();
        let w = worker.to_owned();
        let Some(mut job) = db::run(&core.pool, move |c| J::claim(c, &w, now, lease_until(now))).await? else {
            return Ok(done);
        };
        tracing::info!(kind = J::KIND, job = %job.id(), "working on a job");
        loop {
            let (w, now, step) = (worker.to_owned(), core.clock.now(), step.clone());
            let result = db::run(&core.pool, move |c| {
                let more = step(c, &mut job, &w, now)?;
                Ok((more, job))
            })
            .await;
            match result {
                Ok((true, j)) => job = j,
                Ok((false, _)) => break,
                Err(e) => {
                    tracing::warn!(kind = J::KIND, error = %e, "a job's step did not commit; it goes on once its lease lapses");
                    break;
                }
            }
        }
        finished();
        done += 1;
    }
}
