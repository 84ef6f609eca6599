//! Caller authentication as an extractor that fails closed.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::error::{ApiError, ErrorCode};
use crate::identity::{AuthError, Principal};
use crate::state::AppState;

/// A verified caller. Any handler that takes this refuses requests without a valid token.
pub struct Authenticated(pub Principal);

/// The request's one verification, shared by every extractor that needs it. Extractors run
/// concurrently, so the cell is put in place before anything awaits.
#[derive(Clone, Default)]
struct Verified(std::rc::Rc<tokio::sync::OnceCell<Result<Principal, AuthError>>>);

fn bearer(req: &HttpRequest) -> Result<String, AuthError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value
        .to_str()
        .map_err(|_| AuthError::Invalid("authorization header is malformed".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("authorization header must be 'Bearer <token>'".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid(
            "authorization header must be 'Bearer <token>'".into(),
        ));
    }
    Ok(token.trim().to_owned())
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

async fn verify_request(req: &HttpRequest) -> Result<Principal, AuthError> {
    let result = match (bearer(req), req.app_data::<web::Data<AppState>>()) {
        (Err(e), _) => Err(e),
        (Ok(_), None) => Err(AuthError::IssuerUnavailable("application state missing".into())),
        (Ok(token), Some(state)) => state.verifier.verify(&token).await,
    };
    if let Err(e) = &result {
        // The reason is safe to log; the token never is.
        tracing::info!(reason = %e, "authentication refused");
        if let Some(state) = req.app_data::<web::Data<AppState>>() {
            let outcome = match e {
                AuthError::IssuerUnavailable(_) => crate::audit::Outcome::Error,
                _ => crate::audit::Outcome::Denied,
            };
            super::audit::record(state, req, None, "authenticate", None, outcome, Some(e.to_string())).await;
        }
    }
    result
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => ApiError::new(ErrorCode::MissingAccessToken, e.to_string()),
            AuthError::Invalid(m) => ApiError::new(ErrorCode::InvalidAccessToken, m),
            AuthError::IssuerUnavailable(cause) => ApiError::unavailable(cause),
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(Authenticated(authenticate(&req).await?)) })
    }
}
