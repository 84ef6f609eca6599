//! Sign-in for the development identity provider: the OAuth 2.0 authorization-code flow with
//! PKCE (RFC 6749 section 4.1, RFC 7636, S256 only) as a patient or staff app uses it, without a
//! login page. `login_hint` names who signs in: a persona (`dev-token --list`) or, in the patient
//! realm, any NHS number (with `vot` for the vector of trust). Codes are single use, bound to
//! the client, the redirect URI and the challenge, and expire after a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::config::IssuerKind;
use crate::identity::dev_idp::DevIdentityProvider;

const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// NHS login's access-token lifetime, unless the gateway accepts only shorter ones.
const TOKEN_LIFETIME_SECONDS: i64 = 3600;
/// Codes waiting to be exchanged; beyond this, sign-ins are refused until some expire.
const MAX_PENDING: usize = 1000;

/// The codes handed out and not yet exchanged, shared by every worker.
pub struct DevLogin {
    audience: String,
    token_lifetime_seconds: i64,
    pending: Mutex<HashMap<String, Grant>>,
}

struct Grant {
    realm: IssuerKind,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    claims: Value,
    scope: String,
    expires: Instant,
}

impl DevLogin {
    /// Tokens for `audience`, living an hour or the gateway's maximum lifetime if shorter.
    pub fn new(audience: &str, max_token_lifetime_seconds: u64) -> Self {
        let max = i64::try_from(max_token_lifetime_seconds).unwrap_or(i64::MAX);
        Self {
            audience: audience.to_owned(),
            token_lifetime_seconds: TOKEN_LIFETIME_SECONDS.min(max),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    login_hint: Option<String>,
    vot: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(status: actix_web::http::StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("cache-control", "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

fn bad_request(error: &str, description: &str) -> HttpResponse {
    oauth_error(actix_web::http::StatusCode::BAD_REQUEST, error, description)
}

/// Only loopback `http` redirects: the dev provider must not become an open redirector.
fn loopback_redirect(raw: &str) -> Option<url::Url> {
    let url = url::Url::parse(raw).ok()?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    (url.scheme() == "http" && loopback && url.fragment().is_none()).then_some(url)
}

/// PKCE verifiers and challenges: 43 to 128 unreserved characters.
fn pkce_text(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Who `login_hint` names in a realm, as the claims their token carries.
fn claims_for(realm: IssuerKind, hint: &str, vot: Option<&str>) -> Result<Value, String> {
    if let Some(persona) = super::persona(hint) {
        if persona.realm != realm {
            return Err(format!(
                "persona {hint} belongs to the {} realm",
                persona.realm.as_str()
            ));
        }
        return Ok(persona.claims());
    }
    if realm == IssuerKind::Patient {
        let nhs = crate::domain::NhsNumber::parse(hint)
            .map_err(|_| "login_hint must be a persona or a valid NHS number".to_owned())?;
        let vot = vot.unwrap_or("P9.Cp.Cd");
        if !crate::domain::vot_is_well_formed(vot) {
            return Err("vot must be a vector of trust such as P9.Cp.Cd".into());
        }
        return Ok(super::person_claims(
            &format!("nhslogin-sub-{}", nhs.as_str()),
            nhs.as_str(),
            vot,
        ));
    }
    Err(format!("login_hint must name a {} persona", realm.as_str()))
}

async fn authorize(
    login: web::Data<DevLogin>,
    path: web::Path<String>,
    query: web::Query<AuthorizeQuery>,
) -> HttpResponse {
    let realm = match path.as_str() {
        "patient" => IssuerKind::Patient,
        "staff" => IssuerKind::Staff,
        _ => return bad_request("invalid_request", "sign-in is for the patient and staff realms"),
    };
    let q = query.into_inner();
    // Without a client and a redirect URI that can be trusted, nothing is redirected.
    let text = |s: &String, max: usize| s.len() <= max && crate::domain::text::forbidden_character(s).is_none();
    let Some(client_id) = q.client_id.filter(|c| !c.is_empty() && text(c, 128)) else {
        return bad_request("invalid_request", "client_id is required: 1 to 128 characters");
    };
    let Some(mut redirect) = q.redirect_uri.as_deref().and_then(loopback_redirect) else {
        return bad_request(
            "invalid_request",
            "redirect_uri must be an http URL on 127.0.0.1 or localhost",
        );
    };
    let redirect_uri = q.redirect_uri.unwrap_or_default();
    let state = q.state.filter(|s| text(s, 512));
    if q.scope.as_ref().is_some_and(|s| !text(s, 512)) {
        return bad_request("invalid_scope", "scope must be at most 512 characters");
    }
    let fail = |mut redirect: url::Url, error: &str, description: &str| {
        {
            let mut pairs = redirect.query_pairs_mut();
            pairs
                .append_pair("error", error)
                .append_pair("error_description", description);
            if let Some(s) = &state {
                pairs.append_pair("state", s);
            }
        }
        HttpResponse::Found()
            .insert_header(("location", redirect.as_str()))
            .finish()
    };
    if q.response_type.as_deref() != Some("code") {
        return fail(redirect, "unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = q.code_challenge.filter(|c| pkce_text(c)) else {
        return fail(
            redirect,
            "invalid_request",
            "code_challenge is required (PKCE, 43 to 128 characters)",
        );
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return fail(redirect, "invalid_request", "code_challenge_method must be S256");
    }
    let claims = match claims_for(realm, q.login_hint.as_deref().unwrap_or_default(), q.vot.as_deref()) {
        Ok(c) => c,
        Err(why) => return fail(redirect, "access_denied", &why),
    };
    let code = {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    };
    {
        let mut pending = login.pending();
        let now = Instant::now();
        pending.retain(|_, g| g.expires > now);
        if pending.len() >= MAX_PENDING {
            return fail(redirect, "temporarily_unavailable", "too many sign-ins in progress");
        }
        pending.insert(
            code.clone(),
            Grant {
                realm,
                client_id,
                redirect_uri,
                challenge,
                claims,
                scope: q.scope.unwrap_or_else(|| "openid".into()),
                expires: now + CODE_LIFETIME,
            },
        );
    }
    {
        let mut pairs = redirect.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &state {
            pairs.append_pair("state", s);
        }
    }
    HttpResponse::Found()
        .insert_header(("location", redirect.as_str()))
        .finish()
}

async fn token(
    login: web::Data<DevLogin>,
    idp: web::Data<DevIdentityProvider>,
    form: Result<web::Form<TokenForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else {
        return bad_request("invalid_request", "the body must be application/x-www-form-urlencoded");
    };
    let form = form.into_inner();
    if form.grant_type.as_deref() != Some("authorization_code") {
        return bad_request("unsupported_grant_type", "grant_type must be authorization_code");
    }
    let (Some(code), Some(verifier)) = (form.code, form.code_verifier) else {
        return bad_request("invalid_request", "code and code_verifier are required");
    };
    if !pkce_text(&verifier) {
        return bad_request(
            "invalid_request",
            "code_verifier must be 43 to 128 unreserved characters",
        );
    }
    // A code is used once, whatever the outcome.
    let grant = login.pending().remove(&code);
    let Some(grant) = grant.filter(|g| g.expires > Instant::now()) else {
        return bad_request("invalid_grant", "the code is unknown, used or expired");
    };
    if form.client_id.as_deref() != Some(grant.client_id.as_str())
        || form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
    {
        return bad_request(
            "invalid_grant",
            "client_id and redirect_uri must be those the code was issued for",
        );
    }
    let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if computed != grant.challenge {
        return bad_request("invalid_grant", "code_verifier does not match the code_challenge");
    }
    let mut claims = grant.claims;
    if let Some(o) = claims.as_object_mut() {
        o.insert("client_id".into(), json!(grant.client_id));
        o.insert("scope".into(), json!(grant.scope));
    }
    match idp.mint(grant.realm, &login.audience, login.token_lifetime_seconds, &claims) {
        Ok(access_token) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": login.token_lifetime_seconds,
                "scope": grant.scope,
            })),
        Err(e) => oauth_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &e.to_string(),
        ),
    }
}

/// Mounts `/dev-idp/{realm}/authorize` and `/dev-idp/token`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev-idp/{realm}/authorize", web::get().to(authorize))
        .route("/dev-idp/token", web::post().to(token));
}
