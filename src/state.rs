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
    /// The key the practice console's calls to the API carry (`x-gateway-console`): the
    /// browser's request to the console was counted by the rate limit already.
    pub console_key: String,
}

/// The header that marks a call as the practice console's own (see `AppState::console_key`).
pub const CONSOLE_HEADER: &str = "x-gateway-console";

impl AppState {
    /// Whether a request is one the practice console made on a signed-in person's behalf: from
    /// loopback, carrying this instance's console key.
    pub fn is_console_call(
        &self,
        peer: Option<std::net::SocketAddr>,
        headers: &actix_web::http::header::HeaderMap,
    ) -> bool {
        peer.is_some_and(|p| p.ip().is_loopback())
            && headers
                .get(CONSOLE_HEADER)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| crate::crypto::same_secret(v, &self.console_key))
    }
}
