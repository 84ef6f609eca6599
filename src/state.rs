use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::Settings;
use crate::crypto::SecretBox;
use crate::db::DbPool;
use crate::http::middleware::RateLimiter;
use crate::identity::TokenVerifier;
use crate::metrics::Metrics;
use crate::services::provisioning::Provisioner;

/// Everything a request handler needs, built once in `Application::build` and shared through
/// `web::Data`. Nothing here is a global.
pub struct AppState {
    pub settings: Settings,
    pub pool: DbPool,
    pub verifier: TokenVerifier,
    /// Externally visible base URL without a trailing slash.
    pub base_url: String,
    pub metrics: Metrics,
    pub rate_limiter: RateLimiter,
    /// Outbox workers; handlers wake them after committing a job.
    pub provisioner: Arc<Provisioner>,
    /// Encrypts linkage keys at rest.
    pub secrets: Arc<SecretBox>,
    /// Hash-chained audit trail, written in batches.
    pub audit: AuditLog,
}
