//! Retention: dropping old events from the database once they are archived and the archive
//! still verifies. Never anything else.
//!
//! A chain keeps verifying after its start is dropped: the archived ranges dropped from it are
//! kept (signed) in `audit_archives`, and the last one's hash is what the first retained event
//! must link to.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::archive::{self, ArchivedRange};
use super::chain::{self, ChainKey, event_hash};
use super::{AuditEntry, EventRow};
use crate::db::schema::{audit_archives, audit_chains, audit_events};
use crate::db::{self, DbConnection, DbError};

const PAGE: i64 = 10_000;

/// Why nothing was dropped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("no retention is configured (audit.retention_months, or --months): the whole trail is kept")]
    NotConfigured,
    #[error(
        "keeping the trail from {cutoff} would drop events of chain {chain} up to seq {through}, but {archived}: export the period first (audit export); nothing was dropped"
    )]
    NotArchived {
        cutoff: NaiveDateTime,
        chain: String,
        through: i64,
        archived: String,
    },
    #[error("the archive at {location} does not verify ({problem}); nothing was dropped")]
    Archive { location: String, problem: String },
    #[error("chain {chain} in the database is not what was archived, at seq {seq} ({reason}); nothing was dropped")]
    Differs { chain: String, seq: i64, reason: String },
    #[error("the record of what was archived is not as this gateway signed it ({0}); nothing was dropped")]
    Forged(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for RetentionError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// The start of the month `months` before the month `today` is in: events recorded before it
/// are older than what is kept.
pub fn cutoff(today: NaiveDate, months: u32) -> NaiveDateTime {
    let month_start = today.with_day(1).unwrap_or(today);
    month_start
        .checked_sub_months(Months::new(months))
        .unwrap_or(NaiveDate::MIN)
        .and_time(chrono::NaiveTime::MIN)
}

/// What was dropped, by chain.
#[derive(Debug, Clone, Default)]
pub struct RetentionReport {
    pub cutoff: Option<NaiveDateTime>,
    /// Chain, the last sequence number now dropped, events deleted by this run.
    pub chains: Vec<(String, i64, usize)>,
}

impl RetentionReport {
    pub fn events(&self) -> usize {
        self.chains.iter().map(|c| c.2).sum()
    }
}

/// Drops the events recorded before `cutoff`, whole archived ranges at a time, after checking
/// that every one of them is archived, that each archive still verifies, and that the database
/// holds what was archived. If any event before the cutoff is not archived, nothing is dropped.
pub fn drop_before(
    conn: &mut DbConnection,
    key: &ChainKey,
    cutoff: NaiveDateTime,
) -> Result<RetentionReport, RetentionError> {
    let floors = match chain::floors(conn, key)? {
        Ok(f) => f,
        Err(b) => return Err(RetentionError::Forged(format!("chain {}: {}", b.chain, b.reason))),
    };
    let mut ranges: BTreeMap<String, Vec<ArchivedRange>> = BTreeMap::new();
    for r in archive::ranges(conn)?.into_iter().filter(|r| r.dropped_at.is_none()) {
        ranges.entry(r.chain.clone()).or_default().push(r);
    }
    let mut chains: Vec<String> = audit_chains::table.select(audit_chains::chain).load(conn)?;
    chains.sort();

    // First the plan, for every chain: nothing is dropped unless all of it can be.
    let mut plan: Vec<(String, (i64, String), Vec<ArchivedRange>)> = vec![];
    for name in &chains {
        let floor = floors.get(name).cloned().unwrap_or((0, chain::GENESIS.to_owned()));
        let through: Option<i64> = audit_events::table
            .filter(audit_events::chain.eq(name))
            .filter(audit_events::recorded_at.lt(cutoff))
            .select(diesel::dsl::max(audit_events::seq))
            .first(conn)?;
        let Some(through) = through.filter(|t| *t > floor.0) else {
            plan.push((name.clone(), floor, vec![]));
            continue;
        };
        let (mut covered, mut hash) = floor.clone();
        let mut selected = vec![];
        for r in ranges.remove(name).unwrap_or_default() {
            if r.first_seq != covered + 1 || r.anchor != hash {
                break;
            }
            (covered, hash) = (r.last_seq, r.last_hash.clone());
            // Whole ranges only: one that runs past the cutoff waits for a later run.
            if r.last_seq <= through {
                selected.push(r);
            }
        }
        if covered < through {
            return Err(RetentionError::NotArchived {
                cutoff,
                chain: name.clone(),
                through,
                archived: if covered == floor.0 {
                    format!("nothing after seq {covered} is archived")
                } else {
                    format!("archives reach only seq {covered}")
                },
            });
        }
        plan.push((name.clone(), floor, selected));
    }

    // Each archive is read and checked again, and the database must hold what it holds.
    let mut locations: Vec<&str> = plan
        .iter()
        .flat_map(|(_, _, rs)| rs.iter().map(|r| r.location.as_str()))
        .collect();
    locations.sort_unstable();
    locations.dedup();
    for location in locations {
        archive::verify_archives(&[PathBuf::from(location)], key).map_err(|p| RetentionError::Archive {
            location: location.to_owned(),
            problem: p.to_string(),
        })?;
    }
    for (name, floor, selected) in &plan {
        check_stored(conn, name, floor, selected)?;
    }

    let mut report = RetentionReport {
        cutoff: Some(cutoff),
        chains: vec![],
    };
    for (name, floor, selected) in plan {
        let now = db::now();
        // Recorded as dropped before the rows go: a run cut short leaves events the check
        // skips and the next run deletes, never a gap the check cannot explain.
        db::write_transaction(conn, |c| {
            for r in &selected {
                let mut row = r.clone();
                row.dropped_at = Some(now);
                row.sign(key);
                diesel::update(
                    audit_archives::table
                        .filter(audit_archives::chain.eq(&row.chain))
                        .filter(audit_archives::first_seq.eq(row.first_seq)),
                )
                .set((
                    audit_archives::dropped_at.eq(row.dropped_at),
                    audit_archives::signature.eq(&row.signature),
                ))
                .execute(c)?;
            }
            Ok::<_, DbError>(())
        })?;
        let through = selected.last().map_or(floor.0, |r| r.last_seq);
        let deleted = delete_through(conn, &name, through)?;
        if deleted > 0 || !selected.is_empty() {
            report.chains.push((name, through, deleted));
        }
    }
    Ok(report)
}

/// The database's events of the ranges to drop link up from the floor and end where each
/// archived range ends: what is dropped is what the archive holds.
fn check_stored(
    conn: &mut DbConnection,
    name: &str,
    floor: &(i64, String),
    selected: &[ArchivedRange],
) -> Result<(), RetentionError> {
    let differs = |seq: i64, reason: &str| RetentionError::Differs {
        chain: name.to_owned(),
        seq,
        reason: reason.to_owned(),
    };
    let (mut after, mut prev) = floor.clone();
    for r in selected {
        while after < r.last_seq {
            let page: Vec<EventRow> = audit_events::table
                .filter(audit_events::chain.eq(name))
                .filter(audit_events::seq.gt(after))
                .filter(audit_events::seq.le(r.last_seq))
                .order(audit_events::seq.asc())
                .limit(PAGE)
                .select(EventRow::as_select())
                .load(conn)?;
            if page.is_empty() {
                return Err(differs(after + 1, "an event is missing"));
            }
            for e in page.into_iter().map(AuditEntry::from) {
                if e.seq != after + 1 {
                    return Err(differs(after + 1, "an event is missing"));
                }
                if e.prev_hash != prev || event_hash(&e) != e.hash {
                    return Err(differs(e.seq, "the event or its link was changed"));
                }
                (after, prev) = (e.seq, e.hash);
            }
        }
        if prev != r.last_hash {
            return Err(differs(
                r.last_seq,
                "the range ends on another event than the archive's",
            ));
        }
    }
    Ok(())
}

/// Deletes a chain's events up to `through`, a page of sequence numbers per transaction.
fn delete_through(conn: &mut DbConnection, name: &str, through: i64) -> Result<usize, DbError> {
    let first: Option<i64> = audit_events::table
        .filter(audit_events::chain.eq(name))
        .filter(audit_events::seq.le(through))
        .select(diesel::dsl::min(audit_events::seq))
        .first(conn)?;
    let Some(mut from) = first else {
        return Ok(0);
    };
    let mut deleted = 0;
    while from <= through {
        let to = (from + PAGE - 1).min(through);
        deleted += db::write_transaction(conn, |c| {
            diesel::delete(
                audit_events::table
                    .filter(audit_events::chain.eq(name))
                    .filter(audit_events::seq.ge(from))
                    .filter(audit_events::seq.le(to)),
            )
            .execute(c)
        })?;
        from = to + 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_cutoff_is_the_start_of_a_month() {
        assert_eq!(
            cutoff(day("2026-12-07"), 3),
            day("2026-09-01").and_hms_opt(0, 0, 0).unwrap()
        );
        assert_eq!(
            cutoff(day("2026-03-31"), 1),
            day("2026-02-01").and_hms_opt(0, 0, 0).unwrap()
        );
        assert_eq!(
            cutoff(day("2026-01-15"), 13),
            day("2024-12-01").and_hms_opt(0, 0, 0).unwrap()
        );
    }
}
