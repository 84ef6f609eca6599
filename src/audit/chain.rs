//! Hash chains: how each event is hashed, how chains are anchored and their heads signed, and
//! how the whole trail is checked.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::{AuditEntry, EventRow};
use crate::db::schema::{audit_chains, audit_events};
use crate::db::{DbConnection, DbError};

pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key that signs chain anchors and heads. It lives outside the database (configuration or
/// the data directory), so someone who can change the database cannot re-sign what they cut.
pub struct ChainKey(Vec<u8>);

#[derive(Debug, thiserror::Error)]
#[error("the audit chain key must be base64 of at least 32 bytes")]
pub struct BadKey;

impl ChainKey {
    pub fn from_base64(raw: &str) -> Result<Self, BadKey> {
        let bytes = STANDARD.decode(raw.trim()).map_err(|_| BadKey)?;
        if bytes.len() < 32 {
            return Err(BadKey);
        }
        Ok(Self(bytes))
    }

    pub(super) fn mac(&self, parts: &[&str]) -> String {
        #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        hex(&mac.finalize().into_bytes())
    }

    fn verify(&self, parts: &[&str], expected: &str) -> bool {
        let actual = self.mac(parts);
        actual.len() == expected.len()
            && actual
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `%Y-%m-%dT%H:%M:%S%.6f`, as every stored hash was made with. Written out by hand for the
/// years a clock gives (chrono parses the format string on every call); anything else goes
/// through chrono.
pub(super) fn timestamp(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    if !(1000..=9999).contains(&t.year()) || t.nanosecond() >= 1_000_000_000 {
        return t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    }
    let mut out = String::with_capacity(26);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000
    );
    out
}

/// `sha256` over the event's fields, each length-prefixed so that moving characters between
/// fields changes the hash. Fields added later are hashed only when present, so events written
/// before they existed keep their hash.
pub(super) fn event_hash(e: &AuditEntry) -> String {
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or_default()
    }
    let mut h = Sha256::new();
    let mut field = |f: &str| {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    };
    let (seq, recorded_at) = (e.seq.to_string(), timestamp(e.recorded_at));
    for f in [
        e.chain.as_str(),
        &seq,
        &recorded_at,
        &e.actor_kind,
        &e.actor,
        opt(&e.patient_id),
        &e.action,
        &e.outcome,
        opt(&e.assurance),
        opt(&e.reason),
        opt(&e.request_id),
        &e.prev_hash,
    ] {
        field(f);
    }
    for (name, value) in [("practice", &e.practice), ("rule", &e.rule), ("code", &e.code)] {
        if let Some(v) = value {
            field(name);
            field(v);
        }
    }
    hex(&h.finalize())
}

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

/// The result of checking the whole trail.
#[derive(Debug, Clone)]
pub struct Verification {
    pub chains: usize,
    pub events: usize,
    /// The first problem found: the event (or chain) at fault, its sequence number and why.
    pub first_broken: Option<Broken>,
}

#[derive(Debug, Clone)]
pub struct Broken {
    pub event: Option<String>,
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

/// Recomputes every chain from its start and checks each chain's anchor and signed head.
pub(super) fn verify(conn: &mut DbConnection, key: &ChainKey) -> Result<Verification, DbError> {
    let rows: Vec<ChainRow> = audit_chains::table
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
    let events: Vec<AuditEntry> = audit_events::table
        .order((audit_events::chain.asc(), audit_events::seq.asc()))
        .select(EventRow::as_select())
        .load::<EventRow>(conn)?
        .into_iter()
        .map(AuditEntry::from)
        .collect();
    let total = events.len();
    let mut by_chain: HashMap<&str, Vec<&AuditEntry>> = HashMap::new();
    for e in &events {
        by_chain.entry(e.chain.as_str()).or_default().push(e);
    }
    let broken = |event: Option<&AuditEntry>, chain: &str, seq: i64, reason: &str| Verification {
        chains: by_chain.len().max(rows.len()),
        events: total,
        first_broken: Some(Broken {
            event: event.map(|e| e.id.clone()),
            chain: chain.to_owned(),
            seq,
            reason: reason.to_owned(),
        }),
    };

    // Every event chain links up from its genesis.
    let mut chain_names: Vec<&str> = by_chain.keys().copied().collect();
    chain_names.sort_unstable();
    for name in &chain_names {
        let mut expected_prev = GENESIS.to_owned();
        for (i, e) in by_chain[name].iter().enumerate() {
            let expected_seq = i64::try_from(i).unwrap_or(i64::MAX - 1) + 1;
            let why = if e.seq != expected_seq {
                Some("an event is missing before this one")
            } else if e.prev_hash != expected_prev {
                Some("the link to the previous event does not match")
            } else if event_hash(e) != e.hash {
                Some("the event was changed after it was written")
            } else {
                None
            };
            if let Some(why) = why {
                return Ok(broken(Some(e), name, e.seq, why));
            }
            expected_prev = e.hash.clone();
        }
    }

    // Every registered chain is whole, signed and anchored to a chain that still exists.
    let heads: HashMap<&str, &ChainRow> = rows.iter().map(|r| (r.chain.as_str(), r)).collect();
    for row in &rows {
        let started = timestamp(row.started_at);
        let anchor = match (&row.anchor_chain, row.anchor_seq, &row.anchor_hash) {
            (Some(c), Some(s), Some(h)) => Some((c.clone(), s, h.clone())),
            _ => None,
        };
        let anchor_seq = anchor.as_ref().map(|a| a.1.to_string()).unwrap_or_default();
        if !key.verify(
            &anchor_parts(&row.chain, &started, anchor.as_ref(), &anchor_seq),
            &row.anchor_mac,
        ) {
            return Ok(broken(
                None,
                &row.chain,
                0,
                "the chain's anchor is not signed by this gateway",
            ));
        }
        let head_seq = row.head_seq.to_string();
        if !key.verify(&head_parts(&row.chain, &head_seq, &row.head_hash), &row.head_mac) {
            return Ok(broken(
                None,
                &row.chain,
                row.head_seq,
                "the chain's head is not signed by this gateway",
            ));
        }
        let chain_events = by_chain.get(row.chain.as_str()).map_or(&[][..], |v| v.as_slice());
        let last = chain_events.last();
        let (last_seq, last_hash) = last.map_or((0, GENESIS), |e| (e.seq, e.hash.as_str()));
        if last_seq < row.head_seq {
            return Ok(broken(
                last.copied(),
                &row.chain,
                last_seq + 1,
                if last_seq == 0 {
                    "every event of this chain was deleted"
                } else {
                    "events were deleted from the end of this chain"
                },
            ));
        }
        if last_seq > row.head_seq {
            return Ok(broken(
                chain_events.get(usize::try_from(row.head_seq).unwrap_or(0)).copied(),
                &row.chain,
                row.head_seq + 1,
                "events were added after the chain's signed head",
            ));
        }
        if last_seq == row.head_seq && last_hash != row.head_hash {
            return Ok(broken(
                last.copied(),
                &row.chain,
                last_seq,
                "the chain's last event is not its signed head",
            ));
        }
        if let Some((anchor_chain, anchor_seq, anchor_hash)) = &anchor {
            let Some(_) = heads.get(anchor_chain.as_str()) else {
                return Ok(broken(
                    None,
                    anchor_chain,
                    *anchor_seq,
                    "a chain this one is anchored to was deleted",
                ));
            };
            let anchored = match by_chain.get(anchor_chain.as_str()) {
                _ if *anchor_seq == 0 => anchor_hash == GENESIS,
                Some(list) => list
                    .get(usize::try_from(*anchor_seq - 1).unwrap_or(usize::MAX))
                    .is_some_and(|e| &e.hash == anchor_hash),
                None => false,
            };
            if !anchored {
                return Ok(broken(
                    None,
                    anchor_chain,
                    *anchor_seq,
                    "the event another chain is anchored to is missing or changed",
                ));
            }
        }
    }
    // Every chain of events is registered: the writer registers chains from before registration
    // existed when it starts, so an unregistered chain was not written by the gateway.
    if let Some(name) = chain_names.iter().find(|c| !heads.contains_key(**c)) {
        let first = by_chain[name].first().copied();
        return Ok(broken(first, name, 1, "this chain was not written by the gateway"));
    }
    Ok(Verification {
        chains: by_chain.len().max(rows.len()),
        events: total,
        first_broken: None,
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
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
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
