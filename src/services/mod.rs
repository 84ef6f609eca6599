//! Use cases. Each loads the facts it needs, asks the access-decision engine through
//! `access::authorize` (which also puts the decision on record), and acts. Services take
//! domain types and return `Error`; they know nothing of HTTP or FHIR wire formats.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod audit_export;
mod binding;
pub mod bulk;
pub mod clock;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod leased;
pub mod patients;
pub mod practices;
pub mod provisioning;
pub mod proxy;
pub mod record;
pub mod record_access;
pub mod supplier_sync;
pub mod transactional;
pub mod transitions;

use std::sync::Arc;

pub use crate::db::reads::KeptReads;

pub use clock::Clock;
pub use error::{Error, Reason, Result};

use crate::audit::{AuditLog, Trail};
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::DbPool;
use crate::domain::policy::Policy;
use crate::identity::Principal;
use provisioning::Provisioner;

/// What every use case works with, built once at start.
pub struct Core {
    pub settings: Settings,
    /// The access rules from configuration.
    pub policy: Policy,
    pub pool: DbPool,
    /// Staff reads of one patient, gathered into one query per moment.
    pub reader: Arc<crate::db::reads::ContextReader>,
    /// Encrypts linkage keys at rest.
    pub secrets: Arc<SecretBox>,
    /// Hash-chained audit trail, written in batches.
    pub audit: AuditLog,
    /// Outbox workers; woken after a job is committed.
    pub provisioner: Arc<Provisioner>,
    /// The supplier adapters, for reads made on a request (the record).
    pub suppliers: crate::suppliers::SupplierRegistry,
    pub clock: Arc<Clock>,
    /// This instance's name in leases, claims and heartbeats.
    pub instance: String,
}

/// Who is asking, and where this request's decisions are recorded.
pub struct Caller {
    pub principal: Principal,
    pub trail: Trail,
    pub request_id: Option<String>,
}

impl Caller {
    /// The id a supplier is told this request goes by: the request's own, or (for a caller
    /// without one) a new one from the gateway's clock.
    pub fn supplier_request_id(&self, core: &Core) -> String {
        self.request_id
            .clone()
            .unwrap_or_else(|| crate::domain::ids::time_ordered(core.clock.now()).to_string())
    }
}

/// Whether reads are kept between requests now (for readiness).
pub fn kept_reads(core: &Core) -> KeptReads {
    core.reader.keeping()
}
