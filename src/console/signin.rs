//! Staff sign-in: the console is an OpenID Connect client of the staff issuer, using the
//! authorization-code flow with PKCE (S256), `state` tied to the browser by a short-lived
//! cookie, and a `nonce` checked in the ID token when the issuer sends one. The access token
//! it gets is verified as the API verifies every token, and must be a staff token: the
//! console acts with it on the person's behalf.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::html;
use super::{Console, session};
use crate::config::{IssuerKind, Settings};
use crate::identity::{Principal, send_oidc_request};
use crate::state::AppState;

type StaffClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The staff issuer as an OpenID Connect provider, discovered when first needed.
pub struct SignIn {
    issuer: Option<String>,
    client_id: String,
    client_secret: Option<String>,
    redirect: String,
    ttl: Duration,
    http: reqwest::Client,
    discovered: RwLock<Option<(StaffClient, Instant)>>,
}

impl SignIn {
    pub fn new(settings: &Settings, base_url: &str) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(settings.auth.http_timeout_seconds);
        Ok(Self {
            issuer: settings
                .auth
                .issuers
                .iter()
                .find(|i| i.kind == IssuerKind::Staff)
                .map(|i| i.issuer.clone()),
            client_id: settings.console.client_id.clone(),
            client_secret: settings.console.client_secret.clone(),
            redirect: callback_url(base_url),
            ttl: Duration::from_secs(settings.auth.discovery_ttl_seconds),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(timeout)
                .build()?,
            discovered: RwLock::new(None),
        })
    }

    async fn client(&self) -> Result<StaffClient, String> {
        if let Some((client, at)) = self.discovered.read().await.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(client.clone());
        }
        let issuer = self
            .issuer
            .clone()
            .ok_or_else(|| "no staff issuer is configured, so staff cannot sign in".to_owned())?;
        let http = self.http.clone();
        let send = move |request| {
            let http = http.clone();
            async move { send_oidc_request(&http, request).await }
        };
        let url = IssuerUrl::new(issuer).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(url, &send).await.map_err(|e| {
            tracing::warn!(error = %e, "the staff issuer's discovery document could not be read");
            "the staff sign-in service could not be reached".to_owned()
        })?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect.clone()).map_err(|e| e.to_string())?);
        *self.discovered.write().await = Some((client.clone(), Instant::now()));
        Ok(client)
    }
}

/// Where the staff issuer sends the browser back to.
pub fn callback_url(base_url: &str) -> String {
    format!("{base_url}/console/callback")
}

fn back_home_with(error: &str) -> HttpResponse {
    super::redirect(&format!("/console/?error={}", html::url_part(error)))
}

#[derive(Deserialize)]
pub struct StartQuery {
    /// Passed on to the issuer: who is signing in, when the caller knows (OIDC `login_hint`).
    login_hint: Option<String>,
}

/// Sends the browser to the staff issuer.
pub async fn start(console: web::Data<Console>, req: HttpRequest, q: web::Query<StartQuery>) -> HttpResponse {
    let client = match console.sign_in.client().await {
        Ok(c) => c,
        Err(e) => return back_home_with(&format!("Sign-in is not available: {e}.")),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge);
    if let Some(hint) = q
        .login_hint
        .as_deref()
        .filter(|h| !h.is_empty() && h.len() <= 128 && crate::domain::text::forbidden_character(h).is_none())
    {
        request = request.add_extra_param("login_hint", hint.to_owned());
    }
    let (url, state, nonce) = request.url();
    console
        .sessions
        .start_sign_in(state.secret(), verifier.secret().clone(), nonce.secret().clone());
    let name = if console.is_secure(&req) {
        session::SECURE_SIGN_IN_COOKIE
    } else {
        session::SIGN_IN_COOKIE
    };
    // Lax, not Strict: the browser comes back to the callback from the issuer's site.
    let cookie = console.cookie(&req, name, state.secret(), "Lax", Some(600));
    let mut r = HttpResponse::SeeOther();
    r.insert_header(("set-cookie", cookie))
        .insert_header(("location", url.as_str()))
        .insert_header(("cache-control", "no-store"))
        .finish()
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The issuer's answer: exchanges the code, verifies what comes back and opens a session.
pub async fn callback(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    let q = q.into_inner();
    let secure = console.is_secure(&req);
    let cookie_name = if secure {
        session::SECURE_SIGN_IN_COOKIE
    } else {
        session::SIGN_IN_COOKIE
    };
    let cookie_state = session::cookie(&req, cookie_name);
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or(error);
        return back_home_with(&format!(
            "Sign-in did not finish: {}.",
            why.chars().take(200).collect::<String>()
        ));
    }
    let (Some(code), Some(returned)) = (q.code, q.state) else {
        return back_home_with("Sign-in did not finish: the sign-in service sent no code. Try again.");
    };
    // The state must be the one this browser was sent away with, and is used once.
    if !cookie_state.is_some_and(|c| crate::crypto::same_secret(&c, &returned)) {
        return back_home_with("Sign-in did not finish: it was not started from this browser. Try again.");
    }
    let Some(pending) = console.sessions.finish_sign_in(&returned) else {
        return back_home_with("Sign-in took too long or was already used. Try again.");
    };
    let client = match console.sign_in.client().await {
        Ok(c) => c,
        Err(e) => return back_home_with(&format!("Sign-in is not available: {e}.")),
    };
    let http = console.sign_in.http.clone();
    let send = move |request| {
        let http = http.clone();
        async move { send_oidc_request(&http, request).await }
    };
    let exchange = match client.exchange_code(AuthorizationCode::new(code)) {
        Ok(request) => request.set_pkce_verifier(PkceCodeVerifier::new(pending.verifier)),
        Err(_) => return back_home_with("Sign-in is not available: the staff issuer has no token endpoint."),
    };
    let tokens = match exchange.request_async(&send).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the staff issuer refused the console's code exchange");
            return back_home_with("Sign-in did not finish: the sign-in service did not accept it. Try again.");
        }
    };
    // The issuers' algorithms (the verifier alone would take RS256 only).
    let verifier = client.id_token_verifier().set_allowed_algs(vec![
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha512,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    ]);
    if let Some(id_token) = tokens.id_token()
        && let Err(e) = id_token.claims(&verifier, &Nonce::new(pending.nonce))
    {
        tracing::warn!(error = %e, "the staff issuer's ID token did not verify");
        return back_home_with("Sign-in did not finish: the sign-in service's answer did not verify.");
    }
    let token = tokens.access_token().secret().clone();
    let principal = match state.verifier.verify(&token).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "the console's staff token did not verify");
            return back_home_with("Sign-in did not finish: your token was not accepted.");
        }
    };
    let Principal::Staff(staff) = &principal else {
        return back_home_with("The practice console is for practice staff: sign in with a staff account.");
    };
    if staff.roles.is_empty() {
        return back_home_with("Your staff account holds no role at a practice.");
    }
    let claims = payload(&token);
    let name = claims["name"].as_str().unwrap_or(&staff.subject).to_owned();
    // Judged by the wall clock, as the verifier judges the token's `exp` on every API call.
    let now = chrono::Utc::now().timestamp();
    let lifetime = claims["exp"].as_i64().map_or(Duration::from_secs(3600), |exp| {
        Duration::from_secs(u64::try_from(exp - now).unwrap_or(0))
    });
    let id = console.sessions.open(token, name, staff.clone(), lifetime);
    tracing::info!(actor = %principal.caller_key(), "signed in to the practice console");
    let session_cookie = console.cookie(&req, console.cookie_name(&req), &id, "Strict", None);
    let clear = console.cookie(&req, cookie_name, "", "Lax", Some(0));
    // A page, not a redirect: a Strict cookie set in a navigation that began at another site
    // is not sent until the browser navigates from the console's own page.
    let body = r#"<p>You are signed in.</p><p><a class="button" href="/console/" id="continue">Continue to the console</a></p>"#;
    let mut r = HttpResponse::build(StatusCode::OK);
    super::secure_headers(&mut r);
    r.append_header(("set-cookie", session_cookie))
        .append_header(("set-cookie", clear))
        .insert_header(("refresh", "0;url=/console/"))
        .content_type("text/html; charset=utf-8")
        .body(html::page("Signed in", "", None, body))
}

/// The claims of a token already verified (for the name it gives and its expiry).
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Ends the session; its cookie is worth nothing afterwards, even if kept.
pub async fn sign_out(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, _) = match super::posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    console.sessions.end(&staff.id);
    let clear = console.cookie(&req, console.cookie_name(&req), "", "Strict", Some(0));
    let mut r = super::redirect("/console/?signed-out=1");
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&clear) {
        r.headers_mut().append(actix_web::http::header::SET_COOKIE, v);
    }
    r
}
