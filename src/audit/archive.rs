//! Sealed segments: a closed period of each chain written as gzip-compressed NDJSON of FHIR
//! `AuditEvent`s with a signed manifest, and checked again with no database at all.
//!
//! Each line is the `AuditEvent` the trail's search returns, with four more details on its
//! entity (`recordedAt`, `outcome`, `prevHash`, `hash`): what the event's hash was made of, so
//! the chain can be recomputed from the file alone. The manifest names each segment's chain,
//! sequence range, event count, first and last hash, its anchor (the hash the first event links
//! to) and the file's SHA-256, and is signed with the audit chain key: an archive cannot be cut,
//! extended or re-hashed without the key, and two archives of one chain must join up.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hashing::{ChainKey, GENESIS, event_hash, hex, timestamp};
use super::{AuditEntry, EventRow};
use crate::db::schema::{audit_archives, audit_chains, audit_events};
use crate::db::{self, DbConnection, DbError};
use crate::fhir::{AuditEntityDetail, AuditEvent};

/// What the manifest says it is; a later format gets a new name.
pub const FORMAT: &str = "gp-online-gateway-audit-archive/1";
pub const MANIFEST: &str = "manifest.json";
const PAGE: i64 = 10_000;
const TIMESTAMP: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// The signed description of one archive directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The period, `[from, to)`, in UTC.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub created_at: String,
    pub segments: Vec<Segment>,
    /// HMAC-SHA256 under the audit chain key over everything above.
    pub signature: String,
}

/// One chain's events in the period: a contiguous range of its sequence numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    pub file: String,
    pub chain: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub events: i64,
    /// The hash the first event links to (`prev_hash`): the last hash of the range before.
    pub anchor: String,
    pub first_hash: String,
    pub last_hash: String,
    /// SHA-256 of the file as written.
    pub sha256: String,
}

impl Manifest {
    fn signed_parts(&self) -> Vec<String> {
        let mut parts = vec![
            "audit-archive".to_owned(),
            self.format.clone(),
            self.from.to_string(),
            self.to.to_string(),
            self.created_at.clone(),
            self.segments.len().to_string(),
        ];
        for s in &self.segments {
            parts.extend([
                s.file.clone(),
                s.chain.clone(),
                s.first_seq.to_string(),
                s.last_seq.to_string(),
                s.events.to_string(),
                s.anchor.clone(),
                s.first_hash.clone(),
                s.last_hash.clone(),
                s.sha256.clone(),
            ]);
        }
        parts
    }

    fn sign(&mut self, key: &ChainKey) {
        let parts = self.signed_parts();
        self.signature = key.mac(&parts.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn signed_by(&self, key: &ChainKey) -> bool {
        let parts = self.signed_parts();
        key.verify(&parts.iter().map(String::as_str).collect::<Vec<_>>(), &self.signature)
    }
}

/// Why an archive does not hold what its manifest says, or could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct ArchiveProblem {
    /// The directory, file or line at fault.
    pub place: String,
    pub reason: String,
}

fn problem(place: impl std::fmt::Display, reason: impl Into<String>) -> ArchiveProblem {
    ArchiveProblem {
        place: place.to_string(),
        reason: reason.into(),
    }
}

/// An event as one archive line: its `AuditEvent` with what its hash was made of.
pub fn archived_event(e: &AuditEntry) -> AuditEvent {
    let mut event = AuditEvent::from_entry(e);
    let extra = [
        ("recordedAt", timestamp(e.recorded_at)),
        ("outcome", e.outcome.clone()),
        ("prevHash", e.prev_hash.clone()),
        ("hash", e.hash.clone()),
    ];
    if let Some(entity) = event.entity.first_mut() {
        entity.detail.extend(extra.into_iter().map(|(t, v)| AuditEntityDetail {
            type_: t.into(),
            value_string: v,
        }));
    }
    event
}

/// The stored event an archive line stands for. The line must be exactly what the event
/// renders as, so a change to any field (hashed or not) is found.
fn entry_from_line(line: &str) -> Result<AuditEntry, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let event: AuditEvent =
        serde_json::from_value(value.clone()).map_err(|e| format!("not an archived AuditEvent: {e}"))?;
    let entity = event.entity.first().ok_or("the event names no entity")?;
    let detail = |name: &str| {
        entity
            .detail
            .iter()
            .find(|d| d.type_ == name)
            .map(|d| d.value_string.clone())
    };
    let required = |name: &str| detail(name).ok_or_else(|| format!("the event has no {name} detail"));
    let place = required("chain")?;
    let (chain, seq) = place.rsplit_once('#').ok_or("the chain detail is not chain#seq")?;
    let agent = event.agent.first().ok_or("the event names no agent")?;
    let entry = AuditEntry {
        id: event.id.clone(),
        chain: chain.to_owned(),
        seq: seq
            .parse()
            .map_err(|_| "the chain detail's sequence number is not a number")?,
        recorded_at: NaiveDateTime::parse_from_str(&required("recordedAt")?, TIMESTAMP)
            .map_err(|_| "recordedAt is not a timestamp")?,
        actor_kind: agent.type_.text.clone().unwrap_or_default(),
        actor: agent
            .who
            .identifier
            .as_ref()
            .and_then(|i| i.value.clone())
            .unwrap_or_default(),
        patient_id: entity
            .what
            .as_ref()
            .and_then(|w| w.reference.as_deref())
            .map(|r| r.strip_prefix("Patient/").unwrap_or(r).to_owned()),
        practice: detail("practice"),
        action: event.subtype.first().and_then(|c| c.code.clone()).unwrap_or_default(),
        outcome: required("outcome")?,
        assurance: detail("vot"),
        rule: detail("rule"),
        code: detail("code"),
        reason: event.outcome_desc.clone(),
        request_id: detail("requestId"),
        prev_hash: required("prevHash")?,
        hash: required("hash")?,
    };
    if serde_json::to_value(archived_event(&entry)).ok().as_ref() != Some(&value) {
        return Err("the event was changed after it was archived".into());
    }
    Ok(entry)
}

/// Reads one segment's file and checks it against its manifest entry: every event's hash, the
/// links between them from the anchor, the range, the count and the file's digest.
fn check_segment(dir: &Path, s: &Segment) -> Result<usize, ArchiveProblem> {
    if s.file.contains(['/', '\\']) || s.file.starts_with('.') {
        return Err(problem(
            dir.display(),
            format!("the manifest names a file outside the archive: {}", s.file),
        ));
    }
    let path = dir.join(&s.file);
    let place = path.display().to_string();
    let bytes = fs::read(&path).map_err(|e| problem(&place, format!("cannot be read: {e}")))?;
    let reader = BufReader::new(GzDecoder::new(bytes.as_slice()));
    let (mut expected_seq, mut prev) = (s.first_seq, s.anchor.clone());
    let mut count: i64 = 0;
    let mut first_hash = None;
    for (n, line) in reader.lines().enumerate() {
        let at = format!("{place}, line {}", n + 1);
        let line = line.map_err(|e| problem(&at, format!("cannot be read (truncated or not gzip): {e}")))?;
        let e = entry_from_line(&line).map_err(|why| problem(&at, why))?;
        if e.chain != s.chain {
            return Err(problem(
                &at,
                format!("the event belongs to chain {}, not {}", e.chain, s.chain),
            ));
        }
        if e.seq > expected_seq {
            return Err(problem(
                &at,
                format!(
                    "seq {} where {expected_seq} belongs: an event was removed, or the events were reordered",
                    e.seq
                ),
            ));
        }
        if e.seq < expected_seq {
            return Err(problem(
                &at,
                format!(
                    "seq {} where {expected_seq} belongs: an event was added, or the events were reordered",
                    e.seq
                ),
            ));
        }
        if event_hash(&e) != e.hash {
            return Err(problem(
                &at,
                format!("seq {}: the event was changed after it was written", e.seq),
            ));
        }
        if e.prev_hash != prev {
            return Err(problem(
                &at,
                if n == 0 {
                    format!("seq {}: the first event does not link to the manifest's anchor", e.seq)
                } else {
                    format!(
                        "seq {}: the link to the previous event does not match (an event was added or replaced)",
                        e.seq
                    )
                },
            ));
        }
        first_hash.get_or_insert_with(|| e.hash.clone());
        prev = e.hash;
        expected_seq += 1;
        count += 1;
    }
    if s.first_seq == 1 && s.anchor != GENESIS {
        return Err(problem(
            &place,
            "the chain's first segment is not anchored to its start",
        ));
    }
    if count < s.events || expected_seq - 1 < s.last_seq {
        return Err(problem(
            &place,
            format!(
                "{count} events where the manifest names {} (seq {} to {}): events were removed from the end",
                s.events, s.first_seq, s.last_seq
            ),
        ));
    }
    if count > s.events || expected_seq - 1 > s.last_seq {
        return Err(problem(
            &place,
            format!(
                "{count} events where the manifest names {}: events were added after seq {}",
                s.events, s.last_seq
            ),
        ));
    }
    if first_hash.as_deref() != Some(s.first_hash.as_str()) || prev != s.last_hash {
        return Err(problem(&place, "the events are not the ones the manifest names"));
    }
    let digest = hex(&Sha256::digest(&bytes));
    if digest != s.sha256 {
        return Err(problem(
            &place,
            "the file is not the one the manifest names (its SHA-256 differs)",
        ));
    }
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

fn read_manifest(dir: &Path, key: &ChainKey) -> Result<Manifest, ArchiveProblem> {
    let path = dir.join(MANIFEST);
    let place = path.display().to_string();
    let raw = fs::read_to_string(&path).map_err(|e| problem(&place, format!("cannot be read: {e}")))?;
    let manifest: Manifest =
        serde_json::from_str(&raw).map_err(|e| problem(&place, format!("is not an archive manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(problem(&place, format!("unknown format {:?}", manifest.format)));
    }
    if !manifest.signed_by(key) {
        return Err(problem(
            &place,
            "the manifest's signature does not verify: it was changed, or signed with another key",
        ));
    }
    Ok(manifest)
}

/// What a check of one or more archives found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    pub archives: usize,
    pub segments: usize,
    pub chains: usize,
    pub events: usize,
}

/// Checks archive directories with no database: each manifest's signature, each segment's
/// events, and that the segments of one chain across all the archives given join up, with
/// none missing between them.
pub fn verify_archives(dirs: &[PathBuf], key: &ChainKey) -> Result<ArchiveReport, ArchiveProblem> {
    let mut report = ArchiveReport::default();
    let mut by_chain: BTreeMap<String, Vec<(Segment, PathBuf)>> = BTreeMap::new();
    for dir in dirs {
        let manifest = read_manifest(dir, key)?;
        for s in &manifest.segments {
            report.events += check_segment(dir, s)?;
            report.segments += 1;
            by_chain
                .entry(s.chain.clone())
                .or_default()
                .push((s.clone(), dir.clone()));
        }
        report.archives += 1;
    }
    for (chain, segments) in &mut by_chain {
        segments.sort_by_key(|(s, _)| s.first_seq);
        for pair in segments.windows(2) {
            let [(before, before_dir), (after, after_dir)] = pair else {
                continue;
            };
            let place = format!("chain {chain} ({} then {})", before_dir.display(), after_dir.display());
            if after.first_seq <= before.last_seq {
                return Err(problem(place, format!("segments overlap at seq {}", after.first_seq)));
            }
            if after.first_seq > before.last_seq + 1 {
                return Err(problem(
                    place,
                    format!(
                        "a segment is missing: seq {} to {} are in none of the archives given",
                        before.last_seq + 1,
                        after.first_seq - 1
                    ),
                ));
            }
            if after.anchor != before.last_hash {
                return Err(problem(
                    place,
                    format!(
                        "the segment from seq {} does not follow on from the one before",
                        after.first_seq
                    ),
                ));
            }
        }
    }
    report.chains = by_chain.len();
    Ok(report)
}

/// A range of a chain recorded as archived (and perhaps dropped), as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_archives)]
pub struct ArchivedRange {
    pub chain: String,
    pub first_seq: i64,
    pub last_seq: i64,
    pub anchor: String,
    pub last_hash: String,
    pub events: i64,
    pub location: String,
    pub archived_at: NaiveDateTime,
    pub dropped_at: Option<NaiveDateTime>,
    pub signature: String,
}

impl ArchivedRange {
    fn parts(&self) -> [String; 10] {
        [
            "audit-archived-range".to_owned(),
            self.chain.clone(),
            self.first_seq.to_string(),
            self.last_seq.to_string(),
            self.anchor.clone(),
            self.last_hash.clone(),
            self.events.to_string(),
            self.location.clone(),
            timestamp(self.archived_at),
            self.dropped_at.map(timestamp).unwrap_or_default(),
        ]
    }

    pub(super) fn sign(&mut self, key: &ChainKey) {
        let parts = self.parts();
        self.signature = key.mac(&parts.iter().map(String::as_str).collect::<Vec<_>>());
    }

    pub(super) fn signed_by(&self, key: &ChainKey) -> bool {
        let parts = self.parts();
        key.verify(&parts.iter().map(String::as_str).collect::<Vec<_>>(), &self.signature)
    }
}

/// Every archived range, by chain and sequence.
pub(super) fn ranges(conn: &mut DbConnection) -> Result<Vec<ArchivedRange>, DbError> {
    Ok(audit_archives::table
        .order((audit_archives::chain.asc(), audit_archives::first_seq.asc()))
        .select(ArchivedRange::as_select())
        .load(conn)?)
}

/// Why an export was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the period is the wrong way round: --from {from} is not before --to {to}")]
    WrongWayRound { from: NaiveDate, to: NaiveDate },
    #[error("the period has not ended: --to {to} is after today ({today}); only a closed period is archived")]
    NotClosed { to: NaiveDate, today: NaiveDate },
    #[error("{0} already holds an archive; give an empty or new directory")]
    NotEmpty(PathBuf),
    #[error(
        "chain {chain} is broken at seq {seq} ({reason}); nothing was archived: check the trail with $verify?mode=full"
    )]
    Broken { chain: String, seq: i64, reason: String },
    #[error("the archive could not be written: {0}")]
    Io(#[from] std::io::Error),
    #[error("the archive written does not read back: {0}")]
    ReadBack(#[from] ArchiveProblem),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

/// The contiguous range of `chain` recorded in `[from, to)`: the writer stamps each batch with
/// the time it is written, so sequence and time go up together.
fn range_in(
    conn: &mut DbConnection,
    chain: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Option<(i64, i64)>, DbError> {
    let in_period = || {
        audit_events::table
            .filter(audit_events::chain.eq(chain))
            .filter(audit_events::recorded_at.ge(from))
            .filter(audit_events::recorded_at.lt(to))
    };
    let first: Option<i64> = in_period().select(diesel::dsl::min(audit_events::seq)).first(conn)?;
    let last: Option<i64> = in_period().select(diesel::dsl::max(audit_events::seq)).first(conn)?;
    Ok(first.zip(last))
}

/// The hash the event before `seq` has (its successor's anchor): from the database, or from
/// the archived range that ends there if that was dropped.
fn anchor_of(conn: &mut DbConnection, chain: &str, seq: i64) -> Result<Option<String>, DbError> {
    if seq == 1 {
        return Ok(Some(GENESIS.to_owned()));
    }
    let stored: Option<String> = audit_events::table
        .filter(audit_events::chain.eq(chain))
        .filter(audit_events::seq.eq(seq - 1))
        .select(audit_events::hash)
        .first(conn)
        .optional()?;
    if stored.is_some() {
        return Ok(stored);
    }
    Ok(audit_archives::table
        .filter(audit_archives::chain.eq(chain))
        .filter(audit_archives::last_seq.eq(seq - 1))
        .filter(audit_archives::dropped_at.is_not_null())
        .select(audit_archives::last_hash)
        .first(conn)
        .optional()?)
}

/// Writes one chain's range to `path`, checking every event and link on the way: a broken
/// chain is never archived.
fn write_segment(
    conn: &mut DbConnection,
    path: &Path,
    chain: &str,
    first: i64,
    last: i64,
) -> Result<Segment, ExportError> {
    let broken = |seq: i64, reason: &str| ExportError::Broken {
        chain: chain.to_owned(),
        seq,
        reason: reason.to_owned(),
    };
    let anchor =
        anchor_of(conn, chain, first)?.ok_or_else(|| broken(first - 1, "the event before the period is missing"))?;
    let mut out = GzEncoder::new(BufWriter::new(fs::File::create(path)?), Compression::default());
    let (mut after, mut prev, mut events) = (first - 1, anchor.clone(), 0i64);
    let mut first_hash = None;
    while after < last {
        let page: Vec<EventRow> = audit_events::table
            .filter(audit_events::chain.eq(chain))
            .filter(audit_events::seq.gt(after))
            .filter(audit_events::seq.le(last))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(EventRow::as_select())
            .load(conn)
            .map_err(DbError::from)?;
        if page.is_empty() {
            return Err(broken(after + 1, "an event is missing"));
        }
        for e in page.into_iter().map(AuditEntry::from) {
            if e.seq != after + 1 {
                return Err(broken(after + 1, "an event is missing"));
            }
            if e.prev_hash != prev {
                return Err(broken(e.seq, "the link to the previous event does not match"));
            }
            if event_hash(&e) != e.hash {
                return Err(broken(e.seq, "the event was changed after it was written"));
            }
            serde_json::to_writer(&mut out, &archived_event(&e)).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            first_hash.get_or_insert_with(|| e.hash.clone());
            (after, prev) = (e.seq, e.hash);
            events += 1;
        }
    }
    out.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Segment {
        file: path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        chain: chain.to_owned(),
        first_seq: first,
        last_seq: last,
        events,
        anchor,
        first_hash: first_hash.unwrap_or_default(),
        last_hash: prev,
        sha256: hex(&Sha256::digest(fs::read(path)?)),
    })
}

/// Seals the closed period `[from, to)`: each chain's events recorded in it, into `out` as one
/// segment per chain and a signed manifest; reads the archive back and checks it; then records
/// each range as archived, which is what allows retention to drop it.
pub fn export(
    conn: &mut DbConnection,
    key: &ChainKey,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    if from >= to {
        return Err(ExportError::WrongWayRound { from, to });
    }
    if to > today {
        return Err(ExportError::NotClosed { to, today });
    }
    fs::create_dir_all(out)?;
    if out.join(MANIFEST).exists() {
        return Err(ExportError::NotEmpty(out.to_owned()));
    }
    let (start, end) = (
        from.and_time(chrono::NaiveTime::MIN),
        to.and_time(chrono::NaiveTime::MIN),
    );
    let mut chains: Vec<String> = audit_chains::table
        .select(audit_chains::chain)
        .load(conn)
        .map_err(DbError::from)?;
    chains.sort();
    let mut segments = vec![];
    for chain in &chains {
        let Some((first, last)) = range_in(conn, chain, start, end)? else {
            continue;
        };
        let file = format!("{chain}-{first:012}-{last:012}.ndjson.gz");
        segments.push(write_segment(conn, &out.join(&file), chain, first, last)?);
    }
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        from,
        to,
        created_at: timestamp(db::now()),
        segments,
        signature: String::new(),
    };
    manifest.sign(key);
    let json = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::other)?;
    let partial = out.join(format!("{MANIFEST}.partial"));
    fs::write(&partial, json)?;
    fs::File::open(&partial)?.sync_all()?;
    fs::rename(&partial, out.join(MANIFEST))?;

    verify_archives(&[out.to_owned()], key)?;

    let location = fs::canonicalize(out)?.display().to_string();
    let archived_at = db::now();
    db::write_transaction(conn, |c| {
        for s in &manifest.segments {
            let mut row = ArchivedRange {
                chain: s.chain.clone(),
                first_seq: s.first_seq,
                last_seq: s.last_seq,
                anchor: s.anchor.clone(),
                last_hash: s.last_hash.clone(),
                events: s.events,
                location: location.clone(),
                archived_at,
                dropped_at: None,
                signature: String::new(),
            };
            row.sign(key);
            // The same range archived again (to a second copy) keeps its first record.
            let insert = diesel::insert_into(audit_archives::table).values(&row);
            match c {
                DbConnection::Postgres(pg) => insert.on_conflict_do_nothing().execute(pg)?,
                DbConnection::Sqlite(lite) => insert.on_conflict_do_nothing().execute(lite)?,
            };
        }
        Ok::<_, DbError>(())
    })?;
    Ok(ExportReport {
        manifest,
        dir: out.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ChainKey {
        ChainKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap()
    }

    fn chain_of(chain: &str, first: i64, n: i64, anchor: &str) -> Vec<AuditEntry> {
        let mut prev = anchor.to_owned();
        (first..first + n)
            .map(|seq| {
                let mut e = AuditEntry {
                    id: format!("{chain}-{seq}"),
                    chain: chain.into(),
                    seq,
                    recorded_at: NaiveDateTime::parse_from_str("2026-11-03T10:00:00.000001", TIMESTAMP).unwrap()
                        + chrono::Duration::seconds(seq),
                    actor_kind: "staff".into(),
                    actor: "staff|https://idp.example|sub".into(),
                    patient_id: (seq % 2 == 0).then(|| "patient-1".into()),
                    practice: Some("A81001".into()),
                    action: "read-patient".into(),
                    outcome: if seq % 3 == 0 { "denied" } else { "success" }.into(),
                    assurance: (seq % 4 == 0).then(|| "P9.Cp.Cd".into()),
                    rule: Some("staff-practice-role".into()),
                    code: None,
                    reason: Some(format!("reason {seq}")),
                    request_id: Some(format!("req-{seq}")),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = event_hash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn lines(events: &[AuditEntry]) -> Vec<String> {
        events
            .iter()
            .map(|e| serde_json::to_string(&archived_event(e)).unwrap())
            .collect()
    }

    /// Writes an archive of these lines, with a manifest describing `events` as they were.
    fn write(dir: &Path, events: &[AuditEntry], lines: &[String]) {
        fs::create_dir_all(dir).unwrap();
        let file = "segment.ndjson.gz";
        let mut gz = GzEncoder::new(vec![], Compression::default());
        for l in lines {
            gz.write_all(l.as_bytes()).unwrap();
            gz.write_all(b"\n").unwrap();
        }
        let bytes = gz.finish().unwrap();
        fs::write(dir.join(file), &bytes).unwrap();
        let (first, last) = (events.first().unwrap(), events.last().unwrap());
        let mut m = Manifest {
            format: FORMAT.into(),
            from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            created_at: "2026-12-01T00:00:00.000000".into(),
            segments: vec![Segment {
                file: file.into(),
                chain: first.chain.clone(),
                first_seq: first.seq,
                last_seq: last.seq,
                events: i64::try_from(events.len()).unwrap(),
                anchor: first.prev_hash.clone(),
                first_hash: first.hash.clone(),
                last_hash: last.hash.clone(),
                sha256: hex(&Sha256::digest(&bytes)),
            }],
            signature: String::new(),
        };
        m.sign(&key());
        fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }

    fn check(dirs: &[&Path]) -> Result<ArchiveReport, ArchiveProblem> {
        verify_archives(&dirs.iter().map(|d| d.to_path_buf()).collect::<Vec<_>>(), &key())
    }

    fn fails_with(dirs: &[&Path], words: &str) {
        let err = check(dirs).expect_err("the archive should fail its check");
        assert!(err.to_string().contains(words), "{err}");
    }

    #[test]
    fn an_archived_line_reads_back_as_the_event_it_was() {
        for e in chain_of("c", 1, 8, GENESIS) {
            let line = serde_json::to_string(&archived_event(&e)).unwrap();
            let back = entry_from_line(&line).unwrap();
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }

    #[test]
    fn a_whole_archive_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let events = chain_of("c", 1, 20, GENESIS);
        write(tmp.path(), &events, &lines(&events));
        let report = check(&[tmp.path()]).unwrap();
        assert_eq!((report.segments, report.events, report.chains), (1, 20, 1));
    }

    #[test]
    fn an_edited_event_is_found_whether_or_not_its_field_is_hashed() {
        let tmp = tempfile::tempdir().unwrap();
        let events = chain_of("c", 1, 5, GENESIS);
        let mut edited = lines(&events);
        edited[2] = edited[2].replace("reason 3", "reason X");
        write(tmp.path(), &events, &edited);
        fails_with(&[tmp.path()], "line 3");
        let mut edited = lines(&events);
        edited[1] = edited[1].replace("\"action\":\"R\"", "\"action\":\"U\"");
        write(tmp.path(), &events, &edited);
        fails_with(&[tmp.path()], "changed after it was archived");
    }

    #[test]
    fn a_removed_added_or_reordered_event_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let events = chain_of("c", 1, 6, GENESIS);
        let all = lines(&events);

        let mut removed = all.clone();
        removed.remove(2);
        write(tmp.path(), &events, &removed);
        fails_with(&[tmp.path()], "an event was removed");

        let mut cut = all.clone();
        cut.pop();
        write(tmp.path(), &events, &cut);
        fails_with(&[tmp.path()], "removed from the end");

        // An event made up and chained on correctly: only the signed manifest tells.
        let longer = chain_of("c", 1, 7, GENESIS);
        write(tmp.path(), &events, &lines(&longer));
        fails_with(&[tmp.path()], "added after seq 6");

        let mut repeated = all.clone();
        repeated.insert(3, all[2].clone());
        write(tmp.path(), &events, &repeated);
        fails_with(&[tmp.path()], "an event was added");

        let mut reordered = all.clone();
        reordered.swap(1, 2);
        write(tmp.path(), &events, &reordered);
        fails_with(&[tmp.path()], "reordered");
    }

    #[test]
    fn a_manifest_changed_by_hand_fails_its_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let events = chain_of("c", 1, 5, GENESIS);
        write(tmp.path(), &events, &lines(&events));
        let path = tmp.path().join(MANIFEST);
        let edited = fs::read_to_string(&path)
            .unwrap()
            .replace("\"events\": 5", "\"events\": 4");
        fs::write(&path, edited).unwrap();
        fails_with(&[tmp.path()], "signature does not verify");
        let other = ChainKey::from_base64("OTg3NjU0MzIxMDk4NzY1NDMyMTA5ODc2NTQzMjEwOTg=").unwrap();
        write(tmp.path(), &events, &lines(&events));
        let err = verify_archives(&[tmp.path().to_owned()], &other).unwrap_err();
        assert!(err.reason.contains("signature"), "{err}");
    }

    #[test]
    fn a_truncated_file_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let events = chain_of("c", 1, 50, GENESIS);
        write(tmp.path(), &events, &lines(&events));
        let file = tmp.path().join("segment.ndjson.gz");
        let bytes = fs::read(&file).unwrap();
        fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
        assert!(check(&[tmp.path()]).is_err());
    }

    #[test]
    fn archives_of_one_chain_must_join_up_with_none_missing_between() {
        let tmp = tempfile::tempdir().unwrap();
        let all = chain_of("c", 1, 30, GENESIS);
        let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
        write(&a, &all[..10], &lines(&all[..10]));
        write(&b, &all[10..20], &lines(&all[10..20]));
        write(&c, &all[20..], &lines(&all[20..]));
        let report = check(&[&a, &b, &c]).unwrap();
        assert_eq!((report.archives, report.events), (3, 30));
        fails_with(&[&a, &c], "a segment is missing: seq 11 to 20");
        // A segment of another history that happens to have the right numbers.
        let other = chain_of("c", 11, 10, &"1".repeat(64));
        write(&b, &other, &lines(&other));
        fails_with(&[&a, &b], "does not follow on");
    }
}
