//! What a decision about a patient needs, in one round trip: the record, its practice, the
//! online account at that practice, and the record-access codes; and a token's binding with the
//! record it points at. `ContextReader` answers the commonest of these for many requests at
//! once.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use diesel::prelude::*;

use super::accounts::AccountRow;
use super::bindings::Binding;
use super::cache::Memo;
use super::patients::PatientRow;
use super::practices::PracticeRow;
use super::proxy_roles::RoleRow;
use super::schema::{
    identity_bindings, online_accounts, patients, practices, proxy_roles, record_access_codes, review_tasks,
};
use super::{DbConnection, DbError, native};
use crate::domain::proxy::ProxyRole;
use crate::domain::record_access::{AccessCode, CodeSet};
use crate::domain::{NhsNumber, OnlineAccount, PatientIdentifierSystem, PatientRecord, PracticeRecord};

/// A patient with everything the engine looks at.
#[derive(Debug, Clone)]
pub struct PatientContext {
    pub patient: PatientRecord,
    pub practice: PracticeRecord,
    pub account: Option<OnlineAccount>,
    pub codes: CodeSet,
}

impl PatientContext {
    /// What the entitlements model needs about the patient.
    pub fn state(&self) -> crate::domain::entitlements::PatientState<'_> {
        crate::domain::entitlements::PatientState {
            patient: &self.patient,
            practice: &self.practice,
            account: self.account.as_ref(),
            codes: &self.codes,
        }
    }
}

type Row = (PatientRow, PracticeRow, Option<AccountRow>, Option<String>);
/// A context row led by the row that found the patient (a role, a binding).
type LedRow<T> = (T, Row);

fn assemble(rows: Vec<Row>) -> Result<Option<PatientContext>, DbError> {
    let mut codes = vec![];
    let mut first = None;
    for (patient, practice, account, code) in rows {
        if let Some(c) = code.as_deref().and_then(AccessCode::parse) {
            codes.push(c);
        }
        if first.is_none() {
            first = Some((patient, practice, account));
        }
    }
    let Some((patient, practice, account)) = first else {
        return Ok(None);
    };
    let practice = practice.into_record()?;
    Ok(Some(PatientContext {
        patient: patient.into_record(practice.ods_code.as_str().to_owned())?,
        practice,
        account: account.map(OnlineAccount::try_from).transpose()?,
        codes: CodeSet::new(codes),
    }))
}

/// `$source` (a query that has joined `patients`) joined to the patient's practice, their
/// account at that practice and their active record-access codes.
macro_rules! with_context {
    ($source:expr) => {
        $source
            .inner_join(practices::table.on(practices::id.eq(patients::practice_id)))
            .left_join(
                online_accounts::table.on(online_accounts::patient_id
                    .eq(patients::id)
                    .and(online_accounts::practice_id.eq(patients::practice_id))),
            )
            .left_join(
                record_access_codes::table.on(record_access_codes::patient_id
                    .eq(patients::id)
                    .and(record_access_codes::removed_at.is_null())),
            )
    };
}

/// The columns of a [`Row`].
macro_rules! context_columns {
    () => {
        (
            PatientRow::as_select(),
            PracticeRow::as_select(),
            Option::<AccountRow>::as_select(),
            record_access_codes::code.nullable(),
        )
    };
}

macro_rules! context_query {
    ($filter:expr) => {
        with_context!(patients::table)
            .filter($filter)
            .select(context_columns!())
    };
}

/// The patient with this id, with their practice, account there and codes.
pub fn patient_context(conn: &mut DbConnection, id: &str) -> Result<Option<PatientContext>, DbError> {
    let rows: Vec<Row> = native!(conn, |c| context_query!(patients::id.eq(id)).load(c))?;
    assemble(rows)
}

/// Several patients' contexts in one query, by id.
pub fn patient_contexts(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<PatientContext>, DbError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // Ordered by the database, so a patient's rows are adjacent: sorting them here moved
    // whole rows (a patient, a practice, an account) about on every gathered read.
    let rows: Vec<Row> = native!(conn, |c| context_query!(patients::id.eq_any(ids))
        .order(patients::id)
        .load(c))?;
    let mut grouped: Vec<Vec<Row>> = vec![];
    for row in rows {
        match grouped.last_mut() {
            Some(rs) if rs[0].0.id == row.0.id => rs.push(row),
            _ => grouped.push(vec![row]),
        }
    }
    grouped.into_iter().filter_map(|rs| assemble(rs).transpose()).collect()
}

/// The most reads gathered into one batch.
const MAX_GATHERED: usize = 64;

/// A token's binding, as [`current_binding`] looks it up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BindingKey {
    pub issuer: String,
    pub subject: String,
    pub nhs: String,
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T, DbError>>;

enum Ask {
    Patient(String, Reply<Option<PatientContext>>),
    Binding(BindingKey, Reply<Option<(Binding, PatientContext)>>),
    Practice(String, Reply<Option<PracticeRecord>>),
    Identifier(PatientIdentifierSystem, String, Reply<Option<PatientRecord>>),
    ProxyRoles(NhsNumber, Reply<Vec<(ProxyRole, PatientContext)>>),
    /// The open reviews of the accounts of the record holding this NHS number.
    OpenReviews(NhsNumber, Reply<Vec<OpenReview>>),
}

impl Ask {
    fn abandoned(&self) -> bool {
        match self {
            Self::Patient(_, r) => r.is_closed(),
            Self::Binding(_, r) => r.is_closed(),
            Self::Practice(_, r) => r.is_closed(),
            Self::Identifier(_, _, r) => r.is_closed(),
            Self::ProxyRoles(_, r) => r.is_closed(),
            Self::OpenReviews(_, r) => r.is_closed(),
        }
    }

    /// Sending fails only when the requester has gone (timed out): it needs no answer then.
    fn answer(self, found: &mut Found) {
        match self {
            Self::Patient(id, reply) => drop(reply.send(Ok(found.patients.take(&id)))),
            Self::Binding(key, reply) => drop(reply.send(Ok(found.bindings.take(&key)))),
            Self::Practice(ods, reply) => {
                let hit = found.practices.iter().find(|p| p.ods_code.as_str() == ods);
                drop(reply.send(Ok(hit.cloned())));
            }
            Self::Identifier(system, value, reply) => {
                let hit = found
                    .identified
                    .iter()
                    .find(|r| r.details.identifier.system() == system && r.details.identifier.value() == value);
                drop(reply.send(Ok(hit.cloned())));
            }
            Self::ProxyRoles(proxy, reply) => drop(reply.send(Ok(found.roles.take(&proxy).unwrap_or_default()))),
            Self::OpenReviews(nhs, reply) => {
                let hits = found
                    .reviews
                    .iter()
                    .filter(|(n, _)| n == nhs.as_str())
                    .map(|(_, r)| r.clone());
                drop(reply.send(Ok(hits.collect())));
            }
        }
    }

    fn fail(self, e: &DbError) {
        match self {
            Self::Patient(_, r) => drop(r.send(Err(e.clone()))),
            Self::Binding(_, r) => drop(r.send(Err(e.clone()))),
            Self::Practice(_, r) => drop(r.send(Err(e.clone()))),
            Self::Identifier(_, _, r) => drop(r.send(Err(e.clone()))),
            Self::ProxyRoles(_, r) => drop(r.send(Err(e.clone()))),
            Self::OpenReviews(_, r) => drop(r.send(Err(e.clone()))),
        }
    }
}

/// The current bindings of several tokens with their records' contexts, in one query.
fn current_bindings(conn: &mut DbConnection, keys: &[&BindingKey]) -> Result<Vec<(Binding, PatientContext)>, DbError> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    // Both key columns, so that the primary key (issuer, subject) finds them.
    let mut issuers: Vec<&str> = keys.iter().map(|k| k.issuer.as_str()).collect();
    issuers.sort_unstable();
    issuers.dedup();
    let subjects: Vec<&str> = keys.iter().map(|k| k.subject.as_str()).collect();
    let rows: Vec<LedRow<Binding>> = native!(conn, |c| {
        with_context!(
            identity_bindings::table.inner_join(
                patients::table.on(patients::id
                    .eq(identity_bindings::patient_id)
                    .and(patients::practice_id.eq(identity_bindings::practice_id))
                    .and(patients::identifier_value.eq(identity_bindings::nhs_number))),
            )
        )
        .filter(identity_bindings::issuer.eq_any(&issuers))
        .filter(identity_bindings::subject.eq_any(&subjects))
        .filter(patients::identifier_system.eq(crate::domain::PatientIdentifierSystem::NhsNumber.code()))
        .select((Binding::as_select(), context_columns!()))
        .order((identity_bindings::issuer, identity_bindings::subject))
        .load(c)
    })?;
    let mut grouped: Vec<(Binding, Vec<Row>)> = vec![];
    for (binding, row) in rows {
        match grouped.last_mut() {
            Some((b, rs)) if b.issuer == binding.issuer && b.subject == binding.subject => rs.push(row),
            _ => grouped.push((binding, vec![row])),
        }
    }
    grouped
        .into_iter()
        .filter_map(|(binding, rs)| assemble(rs).map(|ctx| ctx.map(|ctx| (binding, ctx))).transpose())
        .collect()
}

/// Practices by ODS code, in one query.
fn practices_by_ods(conn: &mut DbConnection, codes: &[&str]) -> Result<Vec<PracticeRecord>, DbError> {
    if codes.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<PracticeRow> = native!(conn, |c| practices::table
        .filter(practices::ods_code.eq_any(codes))
        .select(PracticeRow::as_select())
        .load(c))?;
    rows.into_iter().map(PracticeRow::into_record).collect()
}

/// Records by identifier (system, value), with their practices' ODS codes, in one query.
fn records_by_identifier(
    conn: &mut DbConnection,
    keys: &[(PatientIdentifierSystem, &str)],
) -> Result<Vec<PatientRecord>, DbError> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let mut systems: Vec<&str> = keys.iter().map(|(s, _)| s.code()).collect();
    systems.sort_unstable();
    systems.dedup();
    let values: Vec<&str> = keys.iter().map(|(_, v)| *v).collect();
    let rows: Vec<(PatientRow, String)> = native!(conn, |c| patients::table
        .inner_join(practices::table.on(practices::id.eq(patients::practice_id)))
        .filter(patients::identifier_system.eq_any(&systems))
        .filter(patients::identifier_value.eq_any(&values))
        .select((PatientRow::as_select(), practices::ods_code))
        .load(c))?;
    rows.into_iter().map(|(row, ods)| row.into_record(ods)).collect()
}

/// A review of an account's access still open (`requested`), as `$my-access` shows it.
#[derive(Debug, Clone)]
pub struct OpenReview {
    pub id: String,
    pub patient_id: String,
    pub account_id: String,
}

/// The open reviews of the accounts of the records holding these NHS numbers, oldest first,
/// each with its NHS number, in one query.
fn open_reviews(conn: &mut DbConnection, nhs_numbers: &[&NhsNumber]) -> Result<Vec<(String, OpenReview)>, DbError> {
    if nhs_numbers.is_empty() {
        return Ok(vec![]);
    }
    let values: Vec<&str> = nhs_numbers.iter().map(|n| n.as_str()).collect();
    let rows: Vec<(String, String, String, String)> = native!(conn, |c| review_tasks::table
        .inner_join(patients::table.on(patients::id.eq(review_tasks::patient_id)))
        .filter(patients::identifier_system.eq(PatientIdentifierSystem::NhsNumber.code()))
        .filter(patients::identifier_value.eq_any(&values))
        .filter(review_tasks::status.eq("requested"))
        .order((review_tasks::created_at.asc(), review_tasks::id.asc()))
        .select((
            patients::identifier_value,
            review_tasks::id,
            review_tasks::patient_id,
            review_tasks::account_id,
        ))
        .load(c))?;
    Ok(rows
        .into_iter()
        .map(|(nhs, id, patient_id, account_id)| {
            (
                nhs,
                OpenReview {
                    id,
                    patient_id,
                    account_id,
                },
            )
        })
        .collect())
}

/// What one batch of asks found: one query for each kind asked for (each proxy's roles are
/// one query of their own, so that the row limit is the proxy's). What was found for a patient,
/// a token or a proxy is handed out by key.
struct Found {
    patients: Answers<String, PatientContext>,
    bindings: Answers<BindingKey, (Binding, PatientContext)>,
    practices: Vec<PracticeRecord>,
    identified: Vec<PatientRecord>,
    roles: Answers<NhsNumber, Vec<(ProxyRole, PatientContext)>>,
    reviews: Vec<(String, OpenReview)>,
}

/// Found values by key, each with the number of asks still to answer: the last ask for a key
/// takes the value and any others get a copy, so a read asked for once (nearly all of them) is
/// moved to its requester rather than copied on the reader's thread.
struct Answers<K, V>(HashMap<K, (usize, V)>);

impl<K: Eq + Hash, V: Clone> Answers<K, V> {
    /// `found` kept for the keys asked for, with how often each was asked; the first value
    /// found for a key is its answer.
    fn new(found: impl IntoIterator<Item = (K, V)>, asked: &HashMap<&K, usize>) -> Self {
        let mut answers = HashMap::with_capacity(asked.len());
        for (key, value) in found {
            if let Some(&times) = asked.get(&key) {
                answers.entry(key).or_insert((times, value));
            }
        }
        Self(answers)
    }

    fn take<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (left, value) = self.0.get_mut(key)?;
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.0.remove(key).map(|(_, v)| v)
        } else {
            Some(value.clone())
        }
    }
}

/// How often each key appears among the asks.
fn tally<'a, K: Eq + Hash>(keys: impl IntoIterator<Item = &'a K>) -> HashMap<&'a K, usize> {
    let mut counts = HashMap::new();
    for key in keys {
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn read_batch(c: &mut DbConnection, batch: &[Ask]) -> Result<Found, DbError> {
    let mut ids: Vec<&String> = vec![];
    let mut keys: Vec<&BindingKey> = vec![];
    let mut codes: Vec<&str> = vec![];
    let mut identifiers: Vec<(PatientIdentifierSystem, &str)> = vec![];
    let mut proxies: Vec<&NhsNumber> = vec![];
    let mut reviewed: Vec<&NhsNumber> = vec![];
    for ask in batch {
        match ask {
            Ask::Patient(id, _) => ids.push(id),
            Ask::Binding(key, _) => keys.push(key),
            Ask::Practice(ods, _) => codes.push(ods),
            Ask::Identifier(system, value, _) => identifiers.push((*system, value)),
            Ask::ProxyRoles(proxy, _) => proxies.push(proxy),
            Ask::OpenReviews(nhs, _) => reviewed.push(nhs),
        }
    }
    let (asked_ids, asked_keys, asked_proxies) = (tally(ids), tally(keys), tally(proxies));
    let mut roles = Vec::with_capacity(asked_proxies.len());
    for &proxy in asked_proxies.keys() {
        roles.push((proxy.clone(), proxy_contexts(c, proxy)?));
    }
    // Each key once; the queries order their rows themselves.
    let ids: Vec<String> = asked_ids.keys().map(|id| (*id).clone()).collect();
    let keys: Vec<&BindingKey> = asked_keys.keys().copied().collect();
    reviewed.sort_unstable();
    reviewed.dedup();
    codes.sort_unstable();
    codes.dedup();
    // A binding answers its token only while the record it points at still carries its NHS
    // number.
    let bindings = current_bindings(c, &keys)?
        .into_iter()
        .filter(|(b, ctx)| ctx.patient.details.identifier.value() == b.nhs_number)
        .map(|(b, ctx)| {
            let key = BindingKey {
                issuer: b.issuer.clone(),
                subject: b.subject.clone(),
                nhs: b.nhs_number.clone(),
            };
            (key, (b, ctx))
        });
    let contexts = patient_contexts(c, &ids)?
        .into_iter()
        .map(|ctx| (ctx.patient.id.clone(), ctx));
    Ok(Found {
        patients: Answers::new(contexts, &asked_ids),
        bindings: Answers::new(bindings, &asked_keys),
        practices: practices_by_ods(c, &codes)?,
        identified: records_by_identifier(c, &identifiers)?,
        roles: Answers::new(roles, &asked_proxies),
        reviews: open_reviews(c, &reviewed)?,
    })
}

/// Reads for many requests at once: a thread of its own takes every read waiting at that
/// moment (up to 64) and answers them with one query per kind (patients by id, tokens'
/// bindings, practices by ODS code, records by identifier, open reviews; a proxy's roles one
/// query per proxy). Under load this replaces a hand-off to the blocking pool and a round trip per
/// request with one per batch; one read alone is one query, as before. The thread ends when the
/// reader is dropped.
///
/// What it finds is kept for a moment ([`super::cache`]): a read whose answer is kept makes no
/// round trip and does not wait for the reader's thread.
pub struct ContextReader {
    asks: tokio::sync::mpsc::Sender<Ask>,
    wait: std::time::Duration,
    kept: Kept,
    /// A read is not waited for while the database is away.
    availability: std::sync::Arc<super::availability::Availability>,
}

/// The answers kept, by kind of read.
struct Kept {
    changes: std::sync::Arc<super::cache::Changes>,
    /// Whether anything is kept at all (PostgreSQL, with entries and a lifetime).
    on: bool,
    lifetime: std::time::Duration,
    /// Reads answered by kind of answer: `kept`, or `database`.
    answered: prometheus::IntCounterVec,
    from_kept: prometheus::IntCounter,
    from_database: prometheus::IntCounter,
    patients: Memo<String, Option<PatientContext>>,
    bindings: Memo<BindingKey, Option<(Binding, PatientContext)>>,
    practices: Memo<String, Option<PracticeRecord>>,
    identified: Memo<(PatientIdentifierSystem, String), Option<PatientRecord>>,
    roles: Memo<NhsNumber, Vec<(ProxyRole, PatientContext)>>,
    reviews: Memo<NhsNumber, Vec<OpenReview>>,
}

/// Whether reads are kept between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptReads {
    /// Turned off, or SQLite.
    Off,
    /// Kept, for at most `lifetime` each; with the count of reads answered each way so far.
    Keeping {
        lifetime: std::time::Duration,
        from_kept: u64,
        from_database: u64,
    },
    /// PostgreSQL's listener for changes is not connected: everything is read from the database.
    NotListening,
}

/// How many answers of each kind are kept, and for how long at most.
#[derive(Debug, Clone, Copy)]
pub struct Keeping {
    pub entries: usize,
    pub lifetime: std::time::Duration,
}

impl Keeping {
    /// Whether these settings keep anything at all (on PostgreSQL: SQLite keeps nothing).
    pub fn is_on(&self) -> bool {
        self.entries > 1 && !self.lifetime.is_zero()
    }
}

impl ContextReader {
    pub fn start(pool: super::DbPool, keeping: Keeping) -> Result<Self, DbError> {
        let answered = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "gateway_context_reads_total",
                "Reads of the facts access decisions are made from, by where the answer came from (kept or database)",
            ),
            &["from"],
        )
        .map_err(|e| DbError::Unavailable(format!("cannot count reads: {e}")))?;
        let kept = Kept {
            changes: pool.changes().clone(),
            on: pool.is_postgres() && keeping.is_on(),
            lifetime: keeping.lifetime,
            from_kept: answered.with_label_values(&["kept"]),
            from_database: answered.with_label_values(&["database"]),
            answered,
            patients: Memo::new(keeping.entries, keeping.lifetime),
            bindings: Memo::new(keeping.entries, keeping.lifetime),
            practices: Memo::new(keeping.entries, keeping.lifetime),
            identified: Memo::new(keeping.entries, keeping.lifetime),
            roles: Memo::new(keeping.entries, keeping.lifetime),
            reviews: Memo::new(keeping.entries, keeping.lifetime),
        };
        let (asks, mut waiting) = tokio::sync::mpsc::channel::<Ask>(4 * MAX_GATHERED);
        let wait = pool.wait();
        let availability = pool.availability().clone();
        std::thread::Builder::new()
            .name("context-reader".into())
            .spawn(move || {
                while let Some(first) = waiting.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_GATHERED {
                        match waiting.try_recv() {
                            Ok(ask) => batch.push(ask),
                            Err(_) => break,
                        }
                    }
                    // Asks whose requester has gone (timed out) need no answer.
                    batch.retain(|a| !a.abandoned());
                    match super::run_here(&pool, |c| read_batch(c, &batch)) {
                        Ok(mut found) => batch.into_iter().for_each(|ask| ask.answer(&mut found)),
                        Err(e) => batch.into_iter().for_each(|ask| ask.fail(&e)),
                    }
                }
            })
            .map_err(|e| DbError::Unavailable(format!("cannot start the context reader: {e}")))?;
        Ok(Self {
            asks,
            wait,
            kept,
            availability,
        })
    }

    /// The answer kept for `key`, else the reader's, kept for the next ask. The generation is
    /// taken before asking, so a write that lands meanwhile leaves the answer unused.
    async fn ask_kept<K, T>(
        &self,
        memo: &Memo<K, T>,
        key: K,
        make: impl FnOnce(K, Reply<T>) -> Ask,
    ) -> Result<T, DbError>
    where
        K: Eq + Hash + Clone,
        T: Clone,
    {
        let generation = self.kept.changes.current().filter(|_| self.kept.on);
        if let Some(g) = generation
            && let Some(hit) = memo.get(&key, g)
        {
            self.kept.from_kept.inc();
            return Ok(hit);
        }
        let found = self.ask(|reply| make(key.clone(), reply)).await?;
        self.kept.from_database.inc();
        if let Some(g) = generation {
            memo.put(key, found.clone(), g);
        }
        Ok(found)
    }

    /// Whether reads are being kept now, for the readiness report.
    pub fn keeping(&self) -> KeptReads {
        match (self.kept.on, self.kept.changes.current()) {
            (false, _) => KeptReads::Off,
            (true, Some(_)) => KeptReads::Keeping {
                lifetime: self.kept.lifetime,
                from_kept: self.kept.from_kept.get(),
                from_database: self.kept.from_database.get(),
            },
            (true, None) => KeptReads::NotListening,
        }
    }

    /// The count of reads by where their answer came from, for the metrics registry.
    pub fn answered(&self) -> prometheus::IntCounterVec {
        self.kept.answered.clone()
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Ask) -> Result<T, DbError> {
        let stopped = || DbError::Unavailable("the context reader has stopped".into());
        let (reply, answer) = tokio::sync::oneshot::channel();
        let asked = async {
            self.asks.send(make(reply)).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        };
        let away = || DbError::Unavailable("the database is unreachable".into());
        if !self.availability.is_up() {
            return Err(away());
        }
        let mut availability = self.availability.subscribe();
        tokio::select! {
            answered = tokio::time::timeout(self.wait, asked) => match answered {
                Ok(answered) => answered,
                Err(_) => Err(DbError::Unavailable(format!(
                    "no read answered within {} ms",
                    self.wait.as_millis()
                ))),
            },
            _ = availability.wait_for(|up| !*up) => Err(away()),
        }
    }

    /// The patient with this id, with their practice, account there and codes; given up as
    /// unavailable after the pool's wait.
    pub async fn patient_context(&self, id: &str) -> Result<Option<PatientContext>, DbError> {
        self.ask_kept(&self.kept.patients, id.to_owned(), Ask::Patient).await
    }

    /// The practice with this ODS code, read with others.
    pub async fn practice_by_ods(&self, ods: &str) -> Result<Option<PracticeRecord>, DbError> {
        self.ask_kept(&self.kept.practices, ods.to_owned(), Ask::Practice).await
    }

    /// The record holding this identifier (unique across practices), read with others.
    pub async fn patient_by_identifier(
        &self,
        system: PatientIdentifierSystem,
        value: &str,
    ) -> Result<Option<PatientRecord>, DbError> {
        self.ask_kept(
            &self.kept.identified,
            (system, value.to_owned()),
            |(system, value), reply| Ask::Identifier(system, value, reply),
        )
        .await
    }

    /// What [`proxy_contexts`] finds for this proxy, read with others.
    pub async fn proxy_contexts(&self, proxy: &NhsNumber) -> Result<Vec<(ProxyRole, PatientContext)>, DbError> {
        self.ask_kept(&self.kept.roles, proxy.clone(), Ask::ProxyRoles).await
    }

    /// The open reviews of the accounts of the record holding this NHS number, oldest first,
    /// read with others.
    pub async fn open_reviews(&self, nhs: &NhsNumber) -> Result<Vec<OpenReview>, DbError> {
        self.ask_kept(&self.kept.reviews, nhs.clone(), Ask::OpenReviews).await
    }

    /// What [`current_binding`] finds for this token, read with others.
    pub async fn current_binding(&self, key: BindingKey) -> Result<Option<(Binding, PatientContext)>, DbError> {
        self.ask_kept(&self.kept.bindings, key, Ask::Binding).await
    }
}

/// At most this many rows (a role for each code on its patient's record) for one proxy.
const MAX_PROXY_ROWS: i64 = 10_000;

/// Every role a person holds as a proxy, newest first, each with its patient's context: one
/// query keyed by the proxy's NHS number (a scalar parameter, so its plan is prepared once).
pub fn proxy_contexts(conn: &mut DbConnection, proxy: &NhsNumber) -> Result<Vec<(ProxyRole, PatientContext)>, DbError> {
    let rows: Vec<LedRow<RoleRow>> = native!(conn, |c| {
        with_context!(proxy_roles::table.inner_join(patients::table.on(patients::id.eq(proxy_roles::patient_id))))
            .filter(proxy_roles::proxy_nhs_number.eq(proxy.as_str()))
            .order((proxy_roles::created_at.desc(), proxy_roles::id.asc()))
            .limit(MAX_PROXY_ROWS)
            .select((RoleRow::as_select(), context_columns!()))
            .load(c)
    })?;
    let truncated = rows.len() >= usize::try_from(MAX_PROXY_ROWS).unwrap_or(usize::MAX);
    // Rows of one role are adjacent (the order ends on the role's id).
    let mut grouped: Vec<(RoleRow, Vec<Row>)> = vec![];
    for (role, row) in rows {
        match grouped.last_mut() {
            Some((r, rs)) if r.id == role.id => rs.push(row),
            _ => grouped.push((role, vec![row])),
        }
    }
    if truncated {
        // The last role's codes may be cut off: leave it out rather than show it wrongly.
        tracing::warn!(
            rows = MAX_PROXY_ROWS,
            "a proxy's roles exceed the row limit of one read; the last is left out"
        );
        grouped.pop();
    }
    grouped
        .into_iter()
        .filter_map(|(role, rs)| {
            assemble(rs)
                .and_then(|ctx| ctx.map(|ctx| Ok((ProxyRole::try_from(role)?, ctx))).transpose())
                .transpose()
        })
        .collect()
}

/// The same, for the record holding this NHS number.
pub fn patient_context_by_nhs(conn: &mut DbConnection, nhs: &str) -> Result<Option<PatientContext>, DbError> {
    let rows: Vec<Row> = native!(conn, |c| context_query!(
        patients::identifier_system
            .eq(crate::domain::PatientIdentifierSystem::NhsNumber.code())
            .and(patients::identifier_value.eq(nhs))
    )
    .load(c))?;
    assemble(rows)
}

/// A token's binding when it still points at the record that holds its NHS number at the
/// record's practice, with that record's context: the common case, in one query. `None`
/// means look the slow way.
pub fn current_binding(
    conn: &mut DbConnection,
    issuer: &str,
    subject: &str,
    nhs: &str,
) -> Result<Option<(Binding, PatientContext)>, DbError> {
    let rows: Vec<LedRow<Binding>> = native!(conn, |c| {
        with_context!(
            identity_bindings::table.inner_join(
                patients::table.on(patients::id
                    .eq(identity_bindings::patient_id)
                    .and(patients::practice_id.eq(identity_bindings::practice_id))),
            )
        )
        .filter(identity_bindings::issuer.eq(issuer))
        .filter(identity_bindings::subject.eq(subject))
        .filter(identity_bindings::nhs_number.eq(nhs))
        .filter(patients::identifier_system.eq(crate::domain::PatientIdentifierSystem::NhsNumber.code()))
        .filter(patients::identifier_value.eq(nhs))
        .select((Binding::as_select(), context_columns!()))
        .load(c)
    })?;
    let Some(binding) = rows.first().map(|r| r.0.clone()) else {
        return Ok(None);
    };
    let context = assemble(rows.into_iter().map(|(_, row)| row).collect())?;
    Ok(context.map(|ctx| (binding, ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ask_for_a_key_is_answered_and_unasked_finds_are_dropped() {
        let (a, b, c) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
        let asked = tally([&a, &b, &a, &a]);
        let found = [
            (a.clone(), vec![1]),
            (b.clone(), vec![2]),
            (c.clone(), vec![3]),
            (a.clone(), vec![9]),
        ];
        let mut answers = Answers::new(found, &asked);
        assert!(answers.take("c").is_none(), "found but not asked for");
        assert_eq!(answers.take("b"), Some(vec![2]));
        assert_eq!(answers.take("b"), None, "asked for once, answered once");
        // Three asks for `a`: each gets the first value found for it, the last by move.
        for _ in 0..3 {
            assert_eq!(answers.take("a"), Some(vec![1]));
        }
        assert!(answers.0.is_empty());
    }
}
