//! Outbox workers: claim due provisioning jobs, call the supplier, and record the outcome.
//! Retries back off exponentially with jitter and reuse the job's idempotency key, so an outage
//! of any length loses nothing and creates nothing twice.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

use super::jobs::JobPayload;
use crate::config::SupplierSettings;
use crate::crypto::SecretBox;
use crate::db::{self, DbError, DbPool};
use crate::domain::account::IssuedCredentials;
use crate::domain::provisioning::OutboxJob;
use crate::domain::{JobKind, JobStatus, Supplier, provisioning::backoff_millis};
use crate::suppliers::{AccountCredentials, CreateAccount, LinkProxy, SupplierError, SupplierRegistry};

/// Jobs one worker claims and runs at once.
const CLAIM_BATCH: usize = 16;

pub struct Provisioner {
    pool: DbPool,
    suppliers: SupplierRegistry,
    secrets: Arc<SecretBox>,
    settings: SupplierSettings,
    instance: String,
    wake: Notify,
}

enum Outcome {
    Credentials(AccountCredentials),
    /// An NHS login account: the supplier's handle, no linkage key.
    Registered(String),
    Linked(String),
    Done,
}

impl Provisioner {
    pub fn new(pool: DbPool, suppliers: SupplierRegistry, secrets: Arc<SecretBox>, settings: SupplierSettings) -> Self {
        Self {
            pool,
            suppliers,
            secrets,
            settings,
            instance: format!("gateway-{}", uuid::Uuid::new_v4().simple()),
            wake: Notify::new(),
        }
    }

    /// Wakes an idle worker: a job was just committed.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn spawn_workers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.settings.workers)
            .map(|n| {
                let me = self.clone();
                let name = format!("{}-{n}", me.instance);
                tokio::spawn(async move { me.work(name).await })
            })
            .collect()
    }

    async fn work(self: Arc<Self>, worker: String) {
        let idle = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            match self.run_once(&worker).await {
                Ok(true) => continue,
                Ok(false) => {}
                // An outage is said once by the database watcher, not by every worker's poll.
                Err(e @ DbError::Unavailable(_)) => tracing::debug!(error = %e, "outbox worker could not claim jobs"),
                Err(e) => tracing::warn!(error = %e, "outbox worker could not claim jobs"),
            }
            let _ = tokio::time::timeout(idle, self.wake.notified()).await;
        }
    }

    /// Claims up to a batch of due jobs and processes them together. A claim holds at most one
    /// job per account or role (the next one waits for it), so they never race each other.
    /// Returns whether there were any.
    pub async fn run_once(&self, worker: &str) -> Result<bool, DbError> {
        let now = db::now();
        let lease = now + chrono::Duration::seconds(i64::try_from(self.settings.lease_seconds).unwrap_or(60));
        let worker_id = worker.to_owned();
        let batch = i32::try_from(CLAIM_BATCH).unwrap_or(1);
        let jobs = db::run(&self.pool, move |c| db::outbox::claim(c, &worker_id, now, lease, batch)).await?;
        if jobs.is_empty() {
            return Ok(false);
        }
        // Each supplier's jobs are recorded when that supplier has answered them all: one that
        // is slow or timing out does not hold back the other's outcomes.
        let mut by_supplier: Vec<Vec<OutboxJob>> = Vec::new();
        for job in jobs {
            match by_supplier.iter_mut().find(|g| g[0].supplier == job.supplier) {
                Some(group) => group.push(job),
                None => by_supplier.push(vec![job]),
            }
        }
        let recorded = futures_util::future::join_all(by_supplier.into_iter().map(|group| async move {
            let results = futures_util::future::join_all(group.into_iter().map(|job| self.attempt(job))).await;
            self.record(worker, results).await
        }))
        .await;
        recorded.into_iter().collect::<Result<Vec<()>, DbError>>()?;
        Ok(true)
    }

    /// Calls the supplier for one job and decides what its outcome means for the job.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, kind = job.kind.as_str(), attempt = job.attempts))]
    async fn attempt(&self, job: OutboxJob) -> Attempt {
        let result = match self.call_supplier(&job).await {
            Ok(outcome) => {
                tracing::info!("provisioning job completed");
                Ok(outcome)
            }
            Err(e) => {
                // The supplier's or a library's own words go to the log only; the Task and the
                // account get the gateway's stable code and description.
                tracing::warn!(error = %e, "provisioning attempt failed");
                let message = e.summary();
                let retry = e.is_retryable() && job.attempts < job.max_attempts;
                let (status, next) = if retry {
                    let attempt = u32::try_from(job.attempts).unwrap_or(1);
                    let delay = backoff_millis(
                        attempt,
                        self.settings.backoff_base_ms,
                        self.settings.backoff_cap_seconds * 1000,
                        rand::thread_rng().r#gen::<f64>(),
                    );
                    (
                        JobStatus::Queued,
                        db::now() + chrono::Duration::milliseconds(i64::try_from(delay).unwrap_or(i64::MAX / 2)),
                    )
                } else {
                    (JobStatus::Failed, db::now())
                };
                let message = if e.is_retryable() && !retry {
                    format!("dead-lettered after {} attempts; last error {message}", job.attempts)
                } else {
                    message
                };
                tracing::warn!(code = e.code(), retry, "provisioning attempt failed");
                Err(Failure {
                    error: e,
                    message,
                    status,
                    next,
                })
            }
        };
        Attempt { job, result }
    }

    /// Records a batch's outcomes in one transaction, so that a batch costs one commit rather
    /// than one per job. If that transaction fails (an outcome the database refuses, a deadlock
    /// with a request, a lost connection), each outcome is recorded in a transaction of its
    /// own, so that one job's trouble holds back only that job: it stays claimed until its
    /// lease runs out and is then done again.
    async fn record(&self, worker: &str, attempts: Vec<Attempt>) -> Result<(), DbError> {
        let attempts = Arc::new(attempts);
        let (owner, secrets, settings, all) = (
            worker.to_owned(),
            self.secrets.clone(),
            self.settings.clone(),
            attempts.clone(),
        );
        let together = db::run(&self.pool, move |c| {
            db::write_transaction(c, |c| {
                all.iter().try_for_each(|a| a.record(c, &owner, &secrets, &settings))
            })
        })
        .await;
        let Err(e) = together else {
            return Ok(());
        };
        if attempts.len() == 1 {
            return Err(e);
        }
        tracing::warn!(error = %e, "a batch of provisioning outcomes could not be recorded together; recording each alone");
        let mut first = None;
        for i in 0..attempts.len() {
            let (owner, secrets, settings, all) = (
                worker.to_owned(),
                self.secrets.clone(),
                self.settings.clone(),
                attempts.clone(),
            );
            let alone = db::run(&self.pool, move |c| {
                db::write_transaction(c, |c| all[i].record(c, &owner, &secrets, &settings))
            })
            .await;
            if let Err(e) = alone {
                tracing::warn!(job_id = %attempts[i].job.id, error = %e, "could not record a provisioning outcome");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn call_supplier(&self, job: &OutboxJob) -> Result<Outcome, SupplierError> {
        let supplier = Supplier::parse(&job.supplier).ok_or_else(|| SupplierError::Rejected {
            code: "UNKNOWN_SUPPLIER".into(),
            message: format!("no supplier called {}", job.supplier),
        })?;
        let adapter = self
            .suppliers
            .get(supplier)
            .ok_or_else(|| SupplierError::Unavailable(format!("no {} adapter is configured", job.supplier)))?;
        let payload: JobPayload = serde_json::from_value(job.payload.clone()).map_err(|e| {
            tracing::error!(error = %e, "a stored provisioning job could not be read");
            SupplierError::Rejected {
                code: "BAD_PAYLOAD".into(),
                message: "the stored job could not be read".into(),
            }
        })?;
        let key = job.idempotency_key.as_str();
        let unavailable = |e: DbError| {
            tracing::warn!(error = %e, "database unavailable while calling a supplier");
            SupplierError::Unavailable("the gateway's database is unavailable".into())
        };
        let supplier_ref = || async {
            let account_id = job.account_id.clone().unwrap_or_default();
            let account = db::run(&self.pool, move |c| db::accounts::find(c, &account_id))
                .await
                .map_err(unavailable)?;
            account
                .and_then(|a| a.supplier_ref)
                .ok_or_else(|| SupplierError::Rejected {
                    code: "NO_SUPPLIER_ACCOUNT".into(),
                    message: "the account was never created at the supplier".into(),
                })
        };
        let link_ref = || async {
            let role_id = job.role_id.clone().unwrap_or_default();
            let role = db::run(&self.pool, move |c| db::proxy_roles::find(c, &role_id))
                .await
                .map_err(unavailable)?;
            role.and_then(|r| r.supplier_ref)
                .ok_or_else(|| SupplierError::Rejected {
                    code: "NO_PROXY_LINK".into(),
                    message: "the proxy was never linked at the supplier".into(),
                })
        };
        match payload {
            JobPayload::CreateAccount {
                patient_identifier,
                ods_code,
                email,
                family_name,
                birth_date,
                access,
                nhs_login,
            } => {
                let request = CreateAccount {
                    patient_identifier,
                    ods_code,
                    email,
                    family_name,
                    birth_date,
                    access,
                };
                if nhs_login {
                    adapter.register_nhs_login(key, &request).await.map(Outcome::Registered)
                } else {
                    adapter.create_account(key, &request).await.map(Outcome::Credentials)
                }
            }
            JobPayload::SetAccess { access, .. } => {
                let r = supplier_ref().await?;
                adapter.set_access(key, &r, &access).await.map(|_| Outcome::Done)
            }
            JobPayload::ResetLinkageKey => {
                let r = supplier_ref().await?;
                adapter.reset_linkage_key(key, &r).await.map(Outcome::Credentials)
            }
            JobPayload::SetAccountStatus { enabled, reason } => {
                let r = supplier_ref().await?;
                adapter
                    .set_account_enabled(key, &r, enabled, reason.as_deref())
                    .await
                    .map(|_| Outcome::Done)
            }
            JobPayload::LinkProxy {
                patient_identifier,
                proxy_nhs_number,
                ods_code,
                relationship,
                access,
                end_date,
            } => {
                let request = LinkProxy {
                    patient_identifier,
                    proxy_nhs_number,
                    ods_code,
                    relationship,
                    access,
                    end_date,
                };
                adapter.link_proxy(key, &request).await.map(Outcome::Linked)
            }
            JobPayload::SetProxyAccess { access } => {
                let r = link_ref().await?;
                adapter.set_proxy_access(key, &r, &access).await.map(|_| Outcome::Done)
            }
            JobPayload::RevokeProxy { reason } => {
                let r = link_ref().await?;
                adapter.revoke_proxy(key, &r, &reason).await.map(|_| Outcome::Done)
            }
        }
    }
}

/// A job with what its supplier call came to.
struct Attempt {
    job: OutboxJob,
    result: Result<Outcome, Failure>,
}

/// A failed supplier call and what it means for the job: tried again later, or not.
struct Failure {
    error: SupplierError,
    message: String,
    status: JobStatus,
    next: chrono::NaiveDateTime,
}

impl Attempt {
    /// Finishes the job as this worker's and applies its outcome. A job whose lease ran out
    /// belongs to another worker now, which redoes the call with the same idempotency key and
    /// records that.
    fn record(
        &self,
        c: &mut db::DbConnection,
        worker: &str,
        secrets: &SecretBox,
        settings: &SupplierSettings,
    ) -> Result<(), DbError> {
        let now = db::now();
        let job = &self.job;
        match &self.result {
            Ok(outcome) => {
                if db::outbox::finish(c, &job.id, worker, JobStatus::Completed, now, None, now)? {
                    apply_success(c, job, outcome, secrets)?;
                    // An account that became active or had a change confirmed gives the patient
                    // new access in effect, and with it what their proxies' links may give.
                    if job.account_id.is_some()
                        && matches!(
                            job.kind,
                            JobKind::CreateAccount | JobKind::SetAccess | JobKind::SetAccountStatus
                        )
                    {
                        super::proxy::sync_links(c, settings, &job.patient_id, now.date(), super::proxy::Links::All)?;
                    }
                }
            }
            Err(f) => {
                if db::outbox::finish(c, &job.id, worker, f.status, f.next, Some(&f.message), now)? {
                    record_failure(c, job, &f.error, &f.message, f.status == JobStatus::Failed)?;
                }
            }
        }
        Ok(())
    }
}

fn apply_success(
    c: &mut db::DbConnection,
    job: &OutboxJob,
    outcome: &Outcome,
    secrets: &SecretBox,
) -> Result<(), DbError> {
    if let Some(role_id) = &job.role_id {
        return match outcome {
            Outcome::Linked(link) => db::proxy_roles::set_supplier_ref(c, role_id, Some(link)),
            _ if job.kind == JobKind::RevokeProxy => db::proxy_roles::set_supplier_ref(c, role_id, None),
            _ => Ok(()),
        };
    }
    let Some(account_id) = &job.account_id else {
        return Ok(());
    };
    let now = db::now();
    let sealed = match outcome {
        Outcome::Credentials(creds) => Some(secrets.seal(&creds.linkage_key, account_id)),
        _ => None,
    };
    let grant = match serde_json::from_value(job.payload.clone()) {
        Ok(JobPayload::SetAccess { grant, .. }) => grant,
        _ => None,
    };
    change_account(c, account_id, |account| match (job.kind, outcome) {
        (JobKind::CreateAccount | JobKind::ResetLinkageKey, Outcome::Credentials(creds)) => {
            account.credentials_issued(
                IssuedCredentials {
                    supplier_ref: creds.supplier_ref.clone(),
                    account_id: creds.account_id.clone(),
                    linkage_key_sealed: sealed.clone().unwrap_or_default(),
                },
                now,
            );
        }
        (JobKind::CreateAccount, Outcome::Registered(supplier_ref)) => account.registered(supplier_ref.clone()),
        (JobKind::SetAccess, _) => {
            if let Some(grant) = &grant {
                account.access_confirmed(grant.clone());
            }
            account.last_error = None;
        }
        _ => account.last_error = None,
    })
}

/// Applies `change` to the stored account and saves it; if a request changed the account at the
/// same moment, reads it again and applies the change to that.
fn change_account(
    c: &mut db::DbConnection,
    account_id: &str,
    change: impl Fn(&mut crate::domain::OnlineAccount),
) -> Result<(), DbError> {
    for _ in 0..5 {
        let Some(mut account) = db::accounts::find(c, account_id)? else {
            return Ok(());
        };
        change(&mut account);
        if db::accounts::save(c, &mut account)? {
            return Ok(());
        }
    }
    Err(DbError::Query(
        "online account kept changing while a job completed".into(),
    ))
}

fn record_failure(
    c: &mut db::DbConnection,
    job: &OutboxJob,
    e: &SupplierError,
    message: &str,
    final_failure: bool,
) -> Result<(), DbError> {
    // A proxy job's failure shows on its Task; the role itself stays as staff left it.
    let Some(account_id) = &job.account_id else {
        return Ok(());
    };
    let grant = match serde_json::from_value(job.payload.clone()) {
        Ok(JobPayload::SetAccess { grant, .. }) => grant,
        _ => None,
    };
    change_account(c, account_id, |account| {
        account.last_error = Some(message.to_owned());
        if final_failure && !e.is_retryable() && job.kind == JobKind::CreateAccount {
            account.creation_refused(e.code(), e.description());
        }
        // A change that will not happen leaves the confirmed access as it was.
        if final_failure && let Some(grant) = &grant {
            account.access_refused(grant);
        }
    })
}
