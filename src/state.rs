use crate::identity::TokenVerifier;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::ratelimit::forwarded::TrustedProxies;
use crate::services::Core;

/// Everything a request handler needs, built once in `Application::build` and shared through
/// `web::Data`. Nothing here is a global.
pub struct AppState {
    /// What the use cases work with: pool, settings, policy, secrets, audit log, outbox.
    pub core: Core,
    pub verifier: TokenVerifier,
    /// Externally visible base URL without a trailing slash.
    pub base_url: String,
    pub metrics: Metrics,
    pub rate_limiter: RateLimiter,
    /// Whose `X-Forwarded-For` names the client the rate limit counts.
    pub trusted_proxies: TrustedProxies,
}
