//! Sign-in for the development identity provider: the OAuth 2.0 authorization-code flow with
//! PKCE (RFC 6749 section 4.1, RFC 7636, S256 only) as a patient or staff app uses it, without a
//! password. `login_hint` names who signs in: a persona (`dev-token --list`) or, in the patient
//! realm, any NHS number (with `vot` for the vector of trust); without one, the provider answers
//! a page on which to choose a persona of the realm, as a browser-based client (Swagger UI) has
//! no way to name one. Codes are single use, bound to the client, the redirect URI and the
//! challenge, and expire after a minute.
//!
//! Any client may sign in with a loopback `http` redirect URI. A registered client (the API
//! documentation's) has exactly one redirect URI, which need not be on loopback when the gateway
//! is reached under another name (`public_url`).

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
/// The client id Swagger UI at `/docs/` signs in with.
pub const DOCS_CLIENT_ID: &str = "gp-online-gateway-docs";

/// The codes handed out and not yet exchanged, shared by every worker.
pub struct DevLogin {
    audience: String,
    token_lifetime_seconds: i64,
    /// Registered clients and the one redirect URI each may use.
    clients: HashMap<String, String>,
    pending: Mutex<HashMap<String, Grant>>,
}

struct Grant {
    realm: IssuerKind,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    claims: Value,
    scope: String,
    /// The client's `nonce`, repeated in the ID token.
    nonce: Option<String>,
    expires: Instant,
}

impl DevLogin {
    /// Tokens for `audience`, living an hour or the gateway's maximum lifetime if shorter.
    pub fn new(audience: &str, max_token_lifetime_seconds: u64) -> Self {
        let max = i64::try_from(max_token_lifetime_seconds).unwrap_or(i64::MAX);
        Self {
            audience: audience.to_owned(),
            token_lifetime_seconds: TOKEN_LIFETIME_SECONDS.min(max),
            clients: HashMap::new(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Registers `client_id`: from now on it may sign in only with `redirect_uri`, exactly.
    pub fn with_client(mut self, client_id: &str, redirect_uri: &str) -> Self {
        self.clients.insert(client_id.to_owned(), redirect_uri.to_owned());
        self
    }

    /// Where a sign-in for `client_id` may return to: its registered URI, or for any other
    /// client a loopback one.
    fn redirect_for(&self, client_id: &str, raw: &str) -> Option<url::Url> {
        match self.clients.get(client_id) {
            Some(registered) if registered == raw => url::Url::parse(raw).ok(),
            Some(_) => None,
            None => loopback_redirect(raw),
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
    nonce: Option<String>,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    scope: Option<String>,
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
    let Some(mut redirect) = q
        .redirect_uri
        .as_deref()
        .and_then(|raw| login.redirect_for(&client_id, raw))
    else {
        let why = if login.clients.contains_key(&client_id) {
            "redirect_uri must be the one registered for this client"
        } else {
            "redirect_uri must be an http URL on 127.0.0.1 or localhost"
        };
        return bad_request("invalid_request", why);
    };
    let redirect_uri = q.redirect_uri.unwrap_or_default();
    let state = q.state.filter(|s| text(s, 512));
    if q.scope.as_ref().is_some_and(|s| !text(s, 512)) {
        return bad_request("invalid_scope", "scope must be at most 512 characters");
    }
    if q.nonce.as_ref().is_some_and(|n| !text(n, 512)) {
        return bad_request("invalid_request", "nonce must be at most 512 characters");
    }
    let refusal = |mut redirect: url::Url, error: &str, description: &str| {
        {
            let mut pairs = redirect.query_pairs_mut();
            pairs
                .append_pair("error", error)
                .append_pair("error_description", description);
            if let Some(s) = &state {
                pairs.append_pair("state", s);
            }
        }
        redirect
    };
    let fail = |redirect: url::Url, error: &str, description: &str| {
        HttpResponse::Found()
            .insert_header(("location", refusal(redirect, error, description).as_str()))
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
    let Some(hint) = q.login_hint.as_deref().filter(|h| !h.is_empty()) else {
        let cancel = refusal(redirect, "access_denied", "sign-in was cancelled");
        let carried = [
            ("response_type", q.response_type.as_deref()),
            ("client_id", Some(client_id.as_str())),
            ("redirect_uri", Some(redirect_uri.as_str())),
            ("scope", q.scope.as_deref()),
            ("state", state.as_deref()),
            ("code_challenge", Some(challenge.as_str())),
            ("code_challenge_method", q.code_challenge_method.as_deref()),
            ("nonce", q.nonce.as_deref()),
        ];
        return chooser(realm, &carried, cancel.as_str());
    };
    let claims = match claims_for(realm, hint, q.vot.as_deref()) {
        Ok(c) => c,
        Err(why) => return fail(redirect, "access_denied", &why),
    };
    let code = crate::crypto::random_token();
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
                nonce: q.nonce,
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

/// The page a sign-in without `login_hint` gets: the realm's personas, each a button that asks
/// again with the same parameters and that persona as `login_hint` (in the patient realm also
/// any NHS number), and a way back to the client without signing in.
fn chooser(realm: IssuerKind, carried: &[(&str, Option<&str>)], cancel: &str) -> HttpResponse {
    let hidden: String = carried
        .iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{name}" value="{}">"#,
                crate::console::html::esc(value)
            )
        })
        .collect();
    let personas: String = super::PERSONAS
        .iter()
        .filter(|p| p.realm == realm)
        .map(|p| {
            format!(
                r#"<li><button type="submit" name="login_hint" value="{name}">{name}</button> {}</li>"#,
                crate::console::html::esc(p.description),
                name = p.name,
            )
        })
        .collect();
    let anyone = if realm == IssuerKind::Patient {
        format!(
            r#"<h2>Anyone else</h2><form method="get">{hidden}<p><label>NHS number <input name="login_hint" inputmode="numeric" pattern="[0-9]{{10}}" required></label> <label>Vector of trust <input name="vot" value="P9.Cp.Cd"></label> <button type="submit">Sign in</button></p></form>"#
        )
    } else {
        String::new()
    };
    let realm = realm.as_str();
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in ({realm}): development identity provider</title>
<style>body{{font-family:Arial,sans-serif;margin:24px;line-height:1.5;color:#212b32}}li{{margin:12px 0}}button{{min-height:44px;min-width:44px;padding:8px 16px;font:inherit;font-weight:bold}}input{{min-height:40px;font:inherit}}a{{color:#005eb8}}:focus{{outline:4px solid #ffeb3b;box-shadow:0 4px #212b32}}</style></head>
<body><main><h1>Sign in to the {realm} realm</h1>
<p>The development identity provider asks for no password: choose who signs in.</p>
<form method="get">{hidden}<ul>{personas}</ul></form>{anyone}
<p><a href="{cancel}">Cancel</a></p></main></body></html>
"#,
        cancel = crate::console::html::esc(cancel),
    );
    HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        // Its own policy: the one inline style sheet above, nothing else.
        .insert_header((
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'",
        ))
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The client id of HTTP Basic client authentication (RFC 6749 section 2.3.1), if given.
fn basic_client_id(req: &actix_web::HttpRequest) -> Option<String> {
    let header = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let id = decoded.split_once(':').map_or(decoded.as_str(), |(id, _)| id);
    url::form_urlencoded::parse(format!("id={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// The client credentials grant (RFC 6749 section 4.4) in the system realm: the client is one of
/// the system personas, known by the `client_id` its tokens carry. The dev provider checks no
/// secret, as `dev-token` asks none. A requested scope narrows what the persona holds.
fn client_credentials(
    login: &DevLogin,
    idp: &DevIdentityProvider,
    client_id: Option<String>,
    scope: Option<String>,
) -> HttpResponse {
    let persona = client_id.as_deref().and_then(|id| {
        super::PERSONAS
            .iter()
            .find(|p| p.realm == IssuerKind::System && p.claims()["client_id"] == id)
    });
    let Some(persona) = persona else {
        let known: Vec<String> = super::PERSONAS
            .iter()
            .filter(|p| p.realm == IssuerKind::System)
            .filter_map(|p| p.claims()["client_id"].as_str().map(str::to_owned))
            .collect();
        return oauth_error(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!(
                "the client must be one of the system personas' clients: {}",
                known.join(", ")
            ),
        );
    };
    let mut claims = persona.claims();
    let held = claims["scope"].as_str().unwrap_or_default().to_owned();
    if let Some(requested) = scope.filter(|s| !s.trim().is_empty()) {
        let granted: Vec<&str> = requested
            .split_whitespace()
            .filter(|s| held.split_whitespace().any(|h| h == *s))
            .collect();
        if granted.is_empty() {
            return bad_request("invalid_scope", &format!("this client holds only: {held}"));
        }
        claims["scope"] = json!(granted.join(" "));
    }
    let scope = claims["scope"].clone();
    match idp.mint(
        IssuerKind::System,
        &login.audience,
        login.token_lifetime_seconds,
        &claims,
    ) {
        Ok(access_token) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": login.token_lifetime_seconds,
                "scope": scope,
            })),
        Err(e) => oauth_error(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &e.to_string(),
        ),
    }
}

async fn token(
    req: actix_web::HttpRequest,
    login: web::Data<DevLogin>,
    idp: web::Data<DevIdentityProvider>,
    form: Result<web::Form<TokenForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else {
        return bad_request("invalid_request", "the body must be application/x-www-form-urlencoded");
    };
    let form = form.into_inner();
    match form.grant_type.as_deref() {
        Some("authorization_code") => {}
        Some("client_credentials") => {
            let client_id = basic_client_id(&req).or(form.client_id);
            return client_credentials(&login, &idp, client_id, form.scope);
        }
        _ => {
            return bad_request(
                "unsupported_grant_type",
                "grant_type must be authorization_code or client_credentials",
            );
        }
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
    // An OpenID Connect sign-in also gets an ID token: for the client, carrying its nonce.
    let id_token = if grant.scope.split(' ').any(|s| s == "openid") {
        let mut id_claims = grant.claims.clone();
        if let (Some(o), Some(nonce)) = (id_claims.as_object_mut(), &grant.nonce) {
            o.insert("nonce".into(), json!(nonce));
        }
        match idp.mint(grant.realm, &grant.client_id, login.token_lifetime_seconds, &id_claims) {
            Ok(t) => Some(t),
            Err(e) => {
                return oauth_error(
                    actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    &e.to_string(),
                );
            }
        }
    } else {
        None
    };
    let mut claims = grant.claims;
    if let Some(o) = claims.as_object_mut() {
        o.insert("client_id".into(), json!(grant.client_id));
        o.insert("scope".into(), json!(grant.scope));
    }
    match idp.mint(grant.realm, &login.audience, login.token_lifetime_seconds, &claims) {
        Ok(access_token) => {
            let mut answer = json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": login.token_lifetime_seconds,
                "scope": grant.scope,
            });
            if let Some(t) = id_token {
                answer["id_token"] = json!(t);
            }
            HttpResponse::Ok()
                .insert_header(("cache-control", "no-store"))
                .json(answer)
        }
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

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    #[test]
    fn a_registered_client_returns_only_to_its_own_uri() {
        let login = DevLogin::new("gp-online-gateway", 3600)
            .with_client(DOCS_CLIENT_ID, "https://gateway.example.org/docs/oauth2-redirect.html");
        assert!(
            login
                .redirect_for(DOCS_CLIENT_ID, "https://gateway.example.org/docs/oauth2-redirect.html")
                .is_some()
        );
        for elsewhere in [
            "http://127.0.0.1:8080/docs/oauth2-redirect.html",
            "https://gateway.example.org/docs/oauth2-redirect.html?x=1",
            "https://gateway.example.org/other",
        ] {
            assert!(login.redirect_for(DOCS_CLIENT_ID, elsewhere).is_none(), "{elsewhere}");
        }
        // Any other client: loopback http only.
        assert!(login.redirect_for("my-app", "http://127.0.0.1:8765/cb").is_some());
        assert!(login.redirect_for("my-app", "http://localhost/cb").is_some());
        assert!(
            login
                .redirect_for("my-app", "https://gateway.example.org/docs/oauth2-redirect.html")
                .is_none()
        );
        assert!(login.redirect_for("my-app", "http://127.0.0.1/cb#frag").is_none());
    }

    #[test]
    fn the_chooser_escapes_what_it_repeats() {
        assert_eq!(
            crate::console::html::esc(r#"a"b<c>&'d"#),
            "a&quot;b&lt;c&gt;&amp;&#39;d"
        );
        let page = chooser(
            IssuerKind::Staff,
            &[("state", Some(r#""><script>x</script>"#)), ("scope", None)],
            "http://127.0.0.1:9/cb?error=access_denied&state=%22",
        );
        let body = match page.into_body().try_into_bytes() {
            Ok(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            Err(_) => panic!("a complete body"),
        };
        assert!(!body.contains("<script>"));
        assert!(
            body.contains(r#"<input type="hidden" name="state" value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">"#)
        );
        assert!(!body.contains(r#"name="scope""#), "absent parameters stay absent");
        assert!(body.contains(r#"href="http://127.0.0.1:9/cb?error=access_denied&amp;state=%22""#));
        assert!(body.contains(r#"value="staff-emis""#) && !body.contains(r#"value="patient-p9""#));
    }
}
