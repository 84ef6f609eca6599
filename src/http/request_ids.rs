//! The request's ids (`X-Request-ID`, `X-Correlation-ID`) as the middleware reads them and hands
//! them on in the request's extensions, and the header that marks a replayed answer: what
//! authentication, the audit and the idempotency layer all read.

pub const REQUEST_ID: &str = "x-request-id";
/// The request id header as documents and messages spell it.
pub const REQUEST_ID_HEADER: &str = "X-Request-ID";
pub const CORRELATION_ID: &str = "x-correlation-id";
pub const REPLAYED: &str = "x-idempotent-replay";

/// The ids of the current request, available to handlers through request extensions.
#[derive(Debug, Clone)]
pub struct RequestIds {
    /// The UUID in one spelling (lower case, hyphenated): what replay and the audit trail key
    /// on, so an id sent in capitals is the same request as in lower case.
    pub request_id: String,
    /// The request id exactly as the caller sent it, which is what the response echoes.
    pub echoed_request_id: String,
    pub correlation_id: String,
    /// Whether the caller chose the request id (only then is a write replayable).
    pub client_supplied: bool,
}
