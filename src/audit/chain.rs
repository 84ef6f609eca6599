//! Hash chains: how each event is hashed, how chains are anchored and their heads signed, and
//! how the whole trail is checked.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{AuditEntry, EventRow};
use crate::db::schema::{audit_chains, audit_checkpoints, audit_events};
use crate::db::{DbConnection, DbError};

pub(super) use super::hashing::{ChainKey, GENESIS, event_hash, timestamp};

pub(super) fn anchor_parts<'a>(
    chain: &'a str,
    started_at: &'a str,
    anchor: Option<&'a (String, i64, String)>,
    seq: &'a str,
) -> [&'a str; 5] {
    match anchor {
        Some((c, _, h)) => [chain, started_at, c, seq, h],
        None => [chain, started_at, "", "", ""],
    }
}

pub(super) fn head_parts<'a>(chain: &'a str, seq: &'a str, hash: &'a str) -> [&'a str; 3] {
    [chain, seq, hash]
}

/// Registers chains written before chains were registered, signing their heads as they are now.
pub(super) fn adopt_unregistered(conn: &mut DbConnection, key: &ChainKey) -> Result<usize, DbError> {
    let registered: Vec<String> = audit_chains::table.select(audit_chains::chain).load(conn)?;
    let chains: Vec<String> = audit_events::table.select(audit_events::chain).distinct().load(conn)?;
    let mut adopted = 0;
    for chain in chains.iter().filter(|c| !registered.contains(c)) {
        let first: NaiveDateTime = audit_events::table
            .filter(audit_events::chain.eq(chain))
            .select(diesel::dsl::min(audit_events::recorded_at))
            .first::<Option<NaiveDateTime>>(conn)?
            .unwrap_or_else(crate::db::now);
        let (seq, hash): (i64, String) = audit_events::table
            .filter(audit_events::chain.eq(chain))
            .order(audit_events::seq.desc())
            .select((audit_events::seq, audit_events::hash))
            .first(conn)?;
        let started = timestamp(first);
        let seq_text = seq.to_string();
        diesel::insert_into(audit_chains::table)
            .values((
                audit_chains::chain.eq(chain),
                audit_chains::started_at.eq(first),
                audit_chains::anchor_mac.eq(key.mac(&anchor_parts(chain, &started, None, ""))),
                audit_chains::head_seq.eq(seq),
                audit_chains::head_mac.eq(key.mac(&head_parts(chain, &seq_text, &hash))),
                audit_chains::head_hash.eq(hash),
            ))
            .execute(conn)?;
        adopted += 1;
    }
    Ok(adopted)
}

/// The head of the most recently started chain: what a new chain is anchored to.
pub(super) fn latest_head(conn: &mut DbConnection, except: &str) -> Result<Option<(String, i64, String)>, DbError> {
    Ok(audit_chains::table
        .filter(audit_chains::chain.ne(except))
        .order((audit_chains::started_at.desc(), audit_chains::chain.desc()))
        .select((audit_chains::chain, audit_chains::head_seq, audit_chains::head_hash))
        .first::<(String, i64, String)>(conn)
        .optional()?)
}

#[derive(Queryable)]
struct ChainRow {
    chain: String,
    started_at: NaiveDateTime,
    anchor_chain: Option<String>,
    anchor_seq: Option<i64>,
    anchor_hash: Option<String>,
    anchor_mac: String,
    head_seq: i64,
    head_hash: String,
    head_mac: String,
}

/// How much of the trail a check recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// Each chain from its last signed checkpoint: the cost follows what was written since.
    #[default]
    Incremental,
    /// Every event still in the database, from the start of each chain (or from where the
    /// archived and dropped part of it ends).
    Full,
}

impl VerifyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::Full => "full",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Incremental, Self::Full].into_iter().find(|m| m.as_str() == raw)
    }
}

/// The result of checking the trail.
#[derive(Debug, Clone)]
pub struct Verification {
    pub mode: VerifyMode,
    pub chains: usize,
    /// Events recomputed by this check (in the incremental mode, those after the checkpoints).
    pub events: usize,
    /// Chains checked on from a signed checkpoint rather than from their start.
    pub from_checkpoint: usize,
    /// The first problem found: the event (or chain) at fault, its sequence number and why.
    pub first_broken: Option<Broken>,
    /// Where each chain was found whole: the next checkpoints.
    pub(super) verified_heads: Vec<(String, i64, String)>,
}

#[derive(Debug, Clone)]
pub struct Broken {
    pub event: Option<String>,
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

/// Events read per query, so a check holds one page of a chain in memory, not the trail.
const PAGE: i64 = 10_000;

pub(super) fn checkpoint_parts<'a>(chain: &'a str, seq: &'a str, hash: &'a str, verified_at: &'a str) -> [&'a str; 5] {
    ["audit-checkpoint", chain, seq, hash, verified_at]
}

/// The stored hash of one event, if it is there.
fn hash_at(conn: &mut DbConnection, chain: &str, seq: i64) -> Result<Option<String>, DbError> {
    Ok(audit_events::table
        .filter(audit_events::chain.eq(chain))
        .filter(audit_events::seq.eq(seq))
        .select(audit_events::hash)
        .first(conn)
        .optional()?)
}

/// Runs `f` on one consistent view of the database: a chain's head and its events are read as
/// they were at the same moment, though the writer goes on appending meanwhile.
fn on_snapshot<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let begin = |conn: &mut DbConnection| match conn {
        DbConnection::Postgres(pg) => {
            AnsiTransactionManager::begin_transaction_sql(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        }
        DbConnection::Sqlite(lite) => AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN DEFERRED"),
    };
    begin(conn)?;
    let result = f(conn);
    // Nothing was written: ending it either way is the same.
    let ended = match conn {
        DbConnection::Postgres(pg) => AnsiTransactionManager::rollback_transaction(pg),
        DbConnection::Sqlite(lite) => AnsiTransactionManager::rollback_transaction(lite),
    };
    let value = result?;
    ended?;
    Ok(value)
}

/// By chain: the last sequence number and hash of its archived and dropped events.
pub(super) type Floors = HashMap<String, (i64, String)>;

/// Where each chain's retained events start: after the ranges that were archived and dropped.
/// Every archive record is checked against its signature.
pub(super) fn floors(conn: &mut DbConnection, key: &ChainKey) -> Result<Result<Floors, Broken>, DbError> {
    let rows = super::archive::ranges(conn)?;
    let mut floors = Floors::new();
    for r in &rows {
        if !r.signed_by(key) {
            return Ok(Err(Broken {
                event: None,
                chain: r.chain.clone(),
                seq: r.first_seq,
                reason: "a record of an archived range of this chain is not signed by this gateway".into(),
            }));
        }
        if r.dropped_at.is_none() {
            continue;
        }
        let (seq, hash) = floors.entry(r.chain.clone()).or_insert_with(|| (0, GENESIS.to_owned()));
        if r.first_seq != *seq + 1 || r.anchor != *hash {
            return Ok(Err(Broken {
                event: None,
                chain: r.chain.clone(),
                seq: r.first_seq,
                reason: "the archived ranges dropped from this chain do not join up".into(),
            }));
        }
        *seq = r.last_seq;
        hash.clone_from(&r.last_hash);
    }
    Ok(Ok(floors))
}

/// Checks each chain's signed anchor and head, and recomputes its events: in the incremental
/// mode from its last signed checkpoint, in the full mode from its start. Events archived and
/// dropped are not in the database; the remainder is checked from where they end.
pub(super) fn verify(conn: &mut DbConnection, key: &ChainKey, mode: VerifyMode) -> Result<Verification, DbError> {
    on_snapshot(conn, |conn| verify_snapshot(conn, key, mode))
}

fn verify_snapshot(conn: &mut DbConnection, key: &ChainKey, mode: VerifyMode) -> Result<Verification, DbError> {
    let mut rows: Vec<ChainRow> = audit_chains::table
        .select((
            audit_chains::chain,
            audit_chains::started_at,
            audit_chains::anchor_chain,
            audit_chains::anchor_seq,
            audit_chains::anchor_hash,
            audit_chains::anchor_mac,
            audit_chains::head_seq,
            audit_chains::head_hash,
            audit_chains::head_mac,
        ))
        .load(conn)?;
    rows.sort_by(|a, b| a.chain.cmp(&b.chain));
    let mut v = Verification {
        mode,
        chains: rows.len(),
        events: 0,
        from_checkpoint: 0,
        first_broken: None,
        verified_heads: Vec::with_capacity(rows.len()),
    };
    let broken = |mut v: Verification, event: Option<String>, chain: &str, seq: i64, reason: &str| {
        v.first_broken = Some(Broken {
            event,
            chain: chain.to_owned(),
            seq,
            reason: reason.to_owned(),
        });
        v.verified_heads.clear();
        Ok(v)
    };
    let floors = match floors(conn, key)? {
        Ok(f) => f,
        Err(b) => {
            v.first_broken = Some(b);
            return Ok(v);
        }
    };
    let checkpoints: HashMap<String, (i64, String, NaiveDateTime, String)> = match mode {
        VerifyMode::Full => HashMap::new(),
        VerifyMode::Incremental => audit_checkpoints::table
            .select((
                audit_checkpoints::chain,
                audit_checkpoints::seq,
                audit_checkpoints::hash,
                audit_checkpoints::verified_at,
                audit_checkpoints::signature,
            ))
            .load::<(String, i64, String, NaiveDateTime, String)>(conn)?
            .into_iter()
            .map(|(c, s, h, at, sig)| (c, (s, h, at, sig)))
            .collect(),
    };
    let heads: std::collections::HashSet<&str> = rows.iter().map(|r| r.chain.as_str()).collect();
    let genesis = (0, GENESIS.to_owned());

    for row in &rows {
        let name = row.chain.as_str();
        // Every registered chain is signed, anchored to a chain that still exists, and whole.
        let started = timestamp(row.started_at);
        let anchor = match (&row.anchor_chain, row.anchor_seq, &row.anchor_hash) {
            (Some(c), Some(s), Some(h)) => Some((c.clone(), s, h.clone())),
            _ => None,
        };
        let anchor_seq = anchor.as_ref().map(|a| a.1.to_string()).unwrap_or_default();
        if !key.verify(
            &anchor_parts(name, &started, anchor.as_ref(), &anchor_seq),
            &row.anchor_mac,
        ) {
            return broken(v, None, name, 0, "the chain's anchor is not signed by this gateway");
        }
        let head_seq = row.head_seq.to_string();
        if !key.verify(&head_parts(name, &head_seq, &row.head_hash), &row.head_mac) {
            return broken(
                v,
                None,
                name,
                row.head_seq,
                "the chain's head is not signed by this gateway",
            );
        }

        let floor = floors.get(name).unwrap_or(&genesis);
        let (mut last_seq, mut last_hash) = floor.clone();
        if let Some((seq, hash, at, signature)) = checkpoints.get(name) {
            let seq_text = seq.to_string();
            if !key.verify(&checkpoint_parts(name, &seq_text, hash, &timestamp(*at)), signature) {
                return broken(
                    v,
                    None,
                    name,
                    *seq,
                    "the chain's checkpoint is not signed by this gateway (check the whole trail with mode=full)",
                );
            }
            if *seq > last_seq {
                if hash_at(conn, name, *seq)?.as_deref() != Some(hash.as_str()) {
                    return broken(
                        v,
                        None,
                        name,
                        *seq,
                        "the event the chain's checkpoint names is missing or changed",
                    );
                }
                (last_seq, last_hash) = (*seq, hash.clone());
                v.from_checkpoint += 1;
            }
        }

        // The events after that link up, one page at a time.
        let checked_from = last_seq;
        let mut last_event: Option<String> = None;
        loop {
            let page: Vec<EventRow> = audit_events::table
                .filter(audit_events::chain.eq(name))
                .filter(audit_events::seq.gt(last_seq))
                .order(audit_events::seq.asc())
                .limit(PAGE)
                .select(EventRow::as_select())
                .load(conn)?;
            let full_page = i64::try_from(page.len()).unwrap_or(0) == PAGE;
            for e in page.into_iter().map(AuditEntry::from) {
                let why = if e.seq != last_seq + 1 {
                    Some("an event is missing before this one")
                } else if e.prev_hash != last_hash {
                    Some("the link to the previous event does not match")
                } else if event_hash(&e) != e.hash {
                    Some("the event was changed after it was written")
                } else if e.seq > row.head_seq {
                    return broken(
                        v,
                        Some(e.id),
                        name,
                        row.head_seq + 1,
                        "events were added after the chain's signed head",
                    );
                } else {
                    None
                };
                if let Some(why) = why {
                    return broken(v, Some(e.id), name, e.seq, why);
                }
                v.events += 1;
                (last_seq, last_hash) = (e.seq, e.hash);
                last_event = Some(e.id);
            }
            if !full_page {
                break;
            }
        }
        if last_seq < row.head_seq {
            return broken(
                v,
                last_event,
                name,
                last_seq + 1,
                if last_seq == 0 {
                    "every event of this chain was deleted"
                } else {
                    "events were deleted from the end of this chain"
                },
            );
        }
        if last_seq == row.head_seq && last_hash != row.head_hash {
            return broken(
                v,
                last_event,
                name,
                last_seq,
                "the chain's last event is not its signed head",
            );
        }
        // A second row under a sequence number already checked (PostgreSQL's partitioned
        // trail cannot refuse one by itself) is found by counting.
        let stored: i64 = audit_events::table
            .filter(audit_events::chain.eq(name))
            .filter(audit_events::seq.gt(checked_from))
            .count()
            .get_result(conn)?;
        if stored != last_seq - checked_from {
            return broken(
                v,
                None,
                name,
                checked_from + 1,
                "a sequence number of this chain was written more than once",
            );
        }
        if let Some((anchor_chain, anchor_seq, anchor_hash)) = &anchor {
            if !heads.contains(anchor_chain.as_str()) {
                return broken(
                    v,
                    None,
                    anchor_chain,
                    *anchor_seq,
                    "a chain this one is anchored to was deleted",
                );
            }
            let dropped = floors.get(anchor_chain.as_str()).unwrap_or(&genesis);
            let anchored = if *anchor_seq == 0 {
                anchor_hash == GENESIS
            } else if *anchor_seq < dropped.0 {
                // Archived and dropped: the archive holds it, and `audit verify-archive` checks it.
                true
            } else if *anchor_seq == dropped.0 {
                anchor_hash == &dropped.1
            } else {
                hash_at(conn, anchor_chain, *anchor_seq)?.as_deref() == Some(anchor_hash.as_str())
            };
            if !anchored {
                return broken(
                    v,
                    None,
                    anchor_chain,
                    *anchor_seq,
                    "the event another chain is anchored to is missing or changed",
                );
            }
        }
        v.verified_heads.push((row.chain.clone(), last_seq, last_hash));
    }

    // Every chain of events is registered: the writer registers chains from before registration
    // existed when it starts, so an unregistered chain was not written by the gateway. The
    // incremental check looks among the events recorded since the oldest checkpoint (by index);
    // the full check looks at every row, whatever time it claims.
    let since = match mode {
        VerifyMode::Full => None,
        VerifyMode::Incremental if rows.iter().all(|r| checkpoints.contains_key(&r.chain)) => {
            checkpoints.values().map(|c| c.2).min()
        }
        VerifyMode::Incremental => None,
    };
    let mut strays = audit_events::table
        .filter(diesel::dsl::not(diesel::dsl::exists(
            audit_chains::table.filter(audit_chains::chain.eq(audit_events::chain)),
        )))
        .into_boxed();
    if let Some(since) = since {
        strays = strays.filter(audit_events::recorded_at.ge(since));
    }
    let stray: Option<String> = strays.select(audit_events::chain).first(conn).optional()?;
    if let Some(name) = stray {
        let (id, seq): (String, i64) = audit_events::table
            .filter(audit_events::chain.eq(&name))
            .order(audit_events::seq.asc())
            .select((audit_events::id, audit_events::seq))
            .first(conn)?;
        v.chains += 1;
        return broken(v, Some(id), &name, seq, "this chain was not written by the gateway");
    }
    Ok(v)
}

/// Records where each chain was found whole, signed, so the next incremental check starts
/// there. A checkpoint only moves forward.
pub(super) fn save_checkpoints(
    conn: &mut DbConnection,
    key: &ChainKey,
    heads: &[(String, i64, String)],
) -> Result<(), DbError> {
    let now = crate::db::now();
    let at = timestamp(now);
    crate::db::write_transaction(conn, |c| {
        for (chain, seq, hash) in heads {
            let seq_text = seq.to_string();
            let signature = key.mac(&checkpoint_parts(chain, &seq_text, hash, &at));
            let moved = diesel::update(
                audit_checkpoints::table
                    .filter(audit_checkpoints::chain.eq(chain))
                    .filter(audit_checkpoints::seq.lt(seq)),
            )
            .set((
                audit_checkpoints::seq.eq(seq),
                audit_checkpoints::hash.eq(hash),
                audit_checkpoints::verified_at.eq(now),
                audit_checkpoints::signature.eq(&signature),
            ))
            .execute(c)?;
            if moved == 0 {
                let insert = diesel::insert_into(audit_checkpoints::table).values((
                    audit_checkpoints::chain.eq(chain),
                    audit_checkpoints::seq.eq(seq),
                    audit_checkpoints::hash.eq(hash),
                    audit_checkpoints::verified_at.eq(now),
                    audit_checkpoints::signature.eq(&signature),
                ));
                match c {
                    DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
                    DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
                };
            }
        }
        Ok::<_, DbError>(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        for s in [
            "2026-12-02T13:42:22.123456",
            "2026-01-01T00:00:00",
            "1999-12-31T23:59:59.999999999",
            "2026-06-30T08:05:09.000001",
            "0999-03-04T05:06:07.5",
        ] {
            let t = at(s);
            assert_eq!(timestamp(t), t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(), "{s}");
        }
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(super::super::hashing::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    /// Stored events keep their hash: the way fields are hashed never changes.
    #[test]
    fn an_event_hashes_as_it_always_has() {
        let e = AuditEntry {
            id: "id-1".into(),
            chain: "chain-1".into(),
            seq: 7,
            recorded_at: at("2026-12-02T13:42:22.123456"),
            actor_kind: "staff".into(),
            actor: "staff|https://idp.example|sub".into(),
            patient_id: Some("patient-1".into()),
            practice: Some("A81001".into()),
            action: "read-patient".into(),
            outcome: "success".into(),
            assurance: None,
            rule: Some("staff-practice-role".into()),
            code: None,
            reason: Some("a role grants read".into()),
            request_id: None,
            prev_hash: "0".repeat(64),
            hash: String::new(),
        };
        assert_eq!(
            event_hash(&e),
            "6e69e2f5ba3aab36598f3ed3917dbc4f32f9c385365cdac6085207aadada5fe3"
        );
    }
}
