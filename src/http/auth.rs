//! Caller authentication as an extractor that fails closed.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use super::error::{ApiError, ErrorCode};
use super::request_ids::RequestIds;
use crate::audit::Trail;
use crate::identity::{AuthError, Principal};
use crate::services::Caller;
use crate::state::AppState;

/// The request's one verification, shared by every extractor and middleware that needs it.
/// Extractors run concurrently, so the cell is put in place before anything awaits.
#[derive(Clone, Default)]
struct Verified(std::rc::Rc<tokio::sync::OnceCell<Result<Principal, AuthError>>>);

/// The bearer token, from exactly one `Authorization` header and nowhere else. A request that
/// carries a token twice, or in its URL, is ambiguous and refused.
fn bearer(req: &HttpRequest) -> Result<String, AuthError> {
    let query_token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .any(|(name, _)| name.eq_ignore_ascii_case("access_token"));
    if query_token {
        return Err(AuthError::Malformed(
            "send the bearer token in the Authorization header only, never in the URL".into(),
        ));
    }
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Malformed(
            "the request has more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("authorization header is malformed".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("authorization header must be 'Bearer <token>'".into()))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Invalid(
            "authorization header must be 'Bearer <token>'".into(),
        ));
    }
    // Bytes, not chars: a char-set search over an 800-byte token showed in profiles.
    if token.bytes().any(|b| matches!(b, b' ' | b',' | b'\t')) {
        return Err(AuthError::Malformed(
            "the Authorization header carries more than one credential".into(),
        ));
    }
    Ok(token.to_owned())
}

/// Verifies the request's bearer token once per request (later calls reuse the result).
pub async fn authenticate(req: &HttpRequest) -> Result<Principal, AuthError> {
    let cell = {
        let mut extensions = req.extensions_mut();
        match extensions.get::<Verified>() {
            Some(v) => v.clone(),
            None => {
                let v = Verified::default();
                extensions.insert(v.clone());
                v
            }
        }
    };
    cell.0.get_or_init(|| verify_request(req)).await.clone()
}

/// The outcome of authentication, if the request got that far (for the audit middleware).
pub fn outcome(req: &HttpRequest) -> Option<Result<Principal, AuthError>> {
    req.extensions().get::<Verified>().and_then(|v| v.0.get().cloned())
}

async fn verify_request(req: &HttpRequest) -> Result<Principal, AuthError> {
    let result = match (bearer(req), req.app_data::<web::Data<AppState>>()) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(AuthError::IssuerUnavailable("application state missing".into())),
        (Ok(token), Some(state)) => state.verifier.verify(&token).await,
    };
    if let Err(e) = &result {
        // The reason is safe to log (values from the token are escaped); the token never is.
        tracing::info!(reason = %e, "authentication refused");
    }
    result
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::new(ErrorCode::MissingAccessToken, e.to_string()),
            AuthError::Invalid(m) => ApiError::new(ErrorCode::InvalidAccessToken, m),
            AuthError::Malformed(m) => ApiError::new(ErrorCode::InvalidRequest, m).at("Authorization"),
            AuthError::IssuerUnavailable(cause) => ApiError::unavailable(cause),
        }
    }
}

/// The verified caller of a request, with the request's audit trail.
impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let principal = authenticate(&req).await?;
            let trail = req.extensions().get::<Trail>().cloned().unwrap_or_default();
            let request_id = req.extensions().get::<RequestIds>().map(|r| r.request_id.clone());
            Ok(Caller {
                principal,
                trail,
                request_id,
            })
        })
    }
}
