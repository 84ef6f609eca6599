//! The practice console: server-rendered pages at `/console/` for the people who run a
//! practice's online services (find a patient, register them, print the letter, review proxy
//! requests and record reviews, retry provisioning, move to opt-in, search the audit trail).
//!
//! Staff sign in through the staff issuer (authorization code with PKCE; `signin`). The
//! console then acts as the signed-in person through the gateway's own API (`api`): it holds
//! their token on the server and never lets it reach the browser, so every page is decided,
//! refused and audited exactly as the same call from any other client would be. What the
//! console adds is the browser's protection: a server-side session in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` behind TLS), a CSRF token and an origin check on every
//! form, an idle timeout, and a refused form put on the audit trail.

pub mod api;
mod audit_pages;
pub mod html;
mod optin;
mod patients;
mod proxies;
pub mod session;
mod signin;
mod tasks;
mod view;

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::config::Settings;
use crate::domain::audit::Outcome;
use crate::http::request_ids::RequestIds;
use crate::identity::Principal;
use crate::services::access::{Refused, home_practice};
use crate::state::AppState;
use html::{Chrome, Problem};
use session::{Missing, Session, Sessions};
pub use signin::callback_url;

/// The console's state, shared by every worker.
pub struct Console {
    pub sessions: Sessions,
    pub api: api::Api,
    sign_in: signin::SignIn,
    secure: bool,
}

/// The largest form the console takes.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// The longest value of any one field; fields with their own limit check it themselves.
const MAX_FIELD_CHARS: usize = 2000;

impl Console {
    /// `api_base` is where this instance answers on loopback; `key` marks the console's calls.
    pub fn new(settings: &Settings, base_url: &str, api_base: String, key: String) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(
            settings
                .suppliers
                .timeout_seconds
                .saturating_mul(2)
                .max(settings.database.connect_timeout_seconds)
                .max(10),
        );
        Ok(Self {
            sessions: Sessions::new(Duration::from_secs(settings.console.idle_timeout_minutes * 60)),
            api: api::Api::new(api_base, key, timeout)?,
            sign_in: signin::SignIn::new(settings, base_url)?,
            secure: base_url.starts_with("https://"),
        })
    }

    fn cookie_name(&self, req: &HttpRequest) -> &'static str {
        if self.is_secure(req) {
            session::SECURE_COOKIE
        } else {
            session::COOKIE
        }
    }

    /// Whether the browser reached the console over TLS (directly or through a proxy that says so).
    fn is_secure(&self, req: &HttpRequest) -> bool {
        self.secure || req.connection_info().scheme() == "https"
    }

    /// A cookie for the console: `HttpOnly`, path `/`, `Secure` behind TLS.
    fn cookie(&self, req: &HttpRequest, name: &str, value: &str, same_site: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
        if self.is_secure(req) {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        c
    }
}

/// The signed-in member of staff a request comes from.
pub struct Staff {
    pub id: String,
    pub session: Session,
}

impl Staff {
    pub fn chrome(&self) -> Chrome<'_> {
        Chrome {
            name: &self.session.name,
            role: self.session.roles(),
            csrf: &self.session.csrf,
        }
    }
}

/// A posted form's fields, in order, with repeats.
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// The field trimmed; a problem if it is empty (when required) or longer than `max`.
    pub fn text(&self, name: &str, label: &str, max: usize, required: bool, problems: &mut Vec<Problem>) -> String {
        let v = self.get(name).trim().to_owned();
        if required && v.is_empty() {
            problems.push(Problem::at(name, format!("Enter {label}")));
        } else if v.chars().count() > max {
            problems.push(Problem::at(
                name,
                format!("{} must be {max} characters or fewer", capital(label)),
            ));
        } else if crate::domain::text::forbidden_character(&v).is_some() {
            problems.push(Problem::at(
                name,
                format!("{} contains a character that cannot be kept", capital(label)),
            ));
        }
        v
    }

    pub fn checked(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// The request id the form was rendered with: sent twice, the form acts once.
    pub fn request_id(&self) -> String {
        uuid::Uuid::parse_str(self.get("request")).map_or_else(|_| uuid::Uuid::new_v4().to_string(), |u| u.to_string())
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// A page with the console's security headers: nothing cached, nothing framed, scripts and
/// styles from the console only.
pub fn respond(status: StatusCode, body: String) -> HttpResponse {
    let mut r = HttpResponse::build(status);
    secure_headers(&mut r);
    r.content_type("text/html; charset=utf-8").body(body)
}

pub(crate) fn secure_headers(r: &mut actix_web::HttpResponseBuilder) {
    r.insert_header((
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    .insert_header((header::CACHE_CONTROL, "no-store"))
    .insert_header((header::REFERRER_POLICY, "same-origin"))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
}

/// See Other: after a form, the browser asks for the result page.
pub fn redirect(to: &str) -> HttpResponse {
    let mut r = HttpResponse::SeeOther();
    secure_headers(&mut r);
    r.insert_header((header::LOCATION, to)).finish()
}

/// The confirmation a form's redirect carries (`?done=`), as a notice.
pub fn done_notice(req: &HttpRequest) -> String {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "done")
        .map(|(_, v)| html::notice(&v))
        .unwrap_or_default()
}

/// A page for a signed-in member of staff.
pub fn staff_page(staff: &Staff, title: &str, current: &str, body: &str) -> HttpResponse {
    respond(StatusCode::OK, html::page(title, current, Some(&staff.chrome()), body))
}

/// A page for a refused or failed call: the API's reason in plain words.
pub fn refused_page(staff: &Staff, title: &str, current: &str, refusal: &api::Refusal, back: &str) -> HttpResponse {
    let status = refusal.status_code();
    let body = format!(
        "{}<p>{}</p>",
        html::error_summary(&[Problem::general(refusal.plain())]),
        html::link(back, "Go back")
    );
    respond(status, html::page(title, current, Some(&staff.chrome()), &body))
}

/// The session the request's cookie names, or the answer for a browser without one: the
/// sign-in page, saying why.
pub async fn signed_in(console: &Console, req: &HttpRequest) -> Result<Staff, HttpResponse> {
    let Some(id) = session::cookie(req, console.cookie_name(req)) else {
        return Err(redirect("/console/"));
    };
    match console.sessions.touch(&id) {
        Ok(session) => Ok(Staff { id, session }),
        Err(Missing::Ended) => Err(redirect("/console/?ended=1")),
        Err(Missing::None) => Err(redirect("/console/")),
    }
}

/// Whether a form comes from the console's own pages: the `Origin` (or, without one, the
/// `Referer`) names this host, and the browser does not call it cross-site.
fn same_origin(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_owned();
    let names_us = |raw: &str| url::Url::parse(raw).ok().is_some_and(|u| u.authority() == host);
    if let Some(site) = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => names_us(origin),
        None => req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .is_none_or(names_us),
    }
}

/// A posted form from a signed-in member of staff, checked: the session is live, the form
/// comes from the console's pages and carries the session's CSRF token. Anything else is
/// refused with a page that says why, changes nothing, and is put on the audit trail.
pub async fn posted(
    console: &Console,
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(Staff, Form), HttpResponse> {
    let staff = match session::cookie(req, console.cookie_name(req)) {
        Some(id) => console.sessions.touch(&id).ok().map(|session| Staff { id, session }),
        None => None,
    };
    let Some(staff) = staff else {
        refusal_on_record(
            state,
            req,
            None,
            "SESSION_ENDED",
            "a console form was sent without a live session",
        )
        .await;
        let body = format!(
            "{}<p>{}</p>",
            html::error_summary(&[Problem::general(
                "Your session has ended, so nothing was changed. Sign in again and repeat what you were doing."
            )]),
            html::link("/console/", "Sign in")
        );
        return Err(respond(
            StatusCode::UNAUTHORIZED,
            html::page("Session ended", "", None, &body),
        ));
    };
    let refuse = |message: &str| {
        let body = format!(
            "{}<p>{}</p>",
            html::error_summary(&[Problem::general(message)]),
            html::link("/console/", "Go to the console's home page")
        );
        respond(
            StatusCode::FORBIDDEN,
            html::page("Form refused", "", Some(&staff.chrome()), &body),
        )
    };
    if !same_origin(req) {
        refusal_on_record(
            state,
            req,
            Some(&staff.session),
            "ORIGIN_REFUSED",
            "a console form was sent from another site",
        )
        .await;
        return Err(refuse("This form was sent from another site, so nothing was changed."));
    }
    let form = Form(
        url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    if !crate::crypto::same_secret(form.get("csrf"), &staff.session.csrf) {
        refusal_on_record(
            state,
            req,
            Some(&staff.session),
            "CSRF_TOKEN_INVALID",
            "a console form was sent without this session's CSRF token",
        )
        .await;
        return Err(refuse(
            "This form could not be accepted (it is out of date or did not come from the console), so nothing was changed. Go back, reload the page and try again.",
        ));
    }
    if body.len() > MAX_FORM_BYTES || form.0.iter().any(|(_, v)| v.chars().count() > MAX_FIELD_CHARS) {
        refusal_on_record(
            state,
            req,
            Some(&staff.session),
            "FORM_INVALID",
            "a console form or one of its fields was too long",
        )
        .await;
        return Err(refuse(
            "The form or one of its fields is too long, so nothing was changed.",
        ));
    }
    Ok((staff, form))
}

/// Puts a form the console refused before asking the API (a required step left out, a field
/// too long) on the audit trail, with the fields it concerned.
pub async fn incomplete_on_record(state: &AppState, req: &HttpRequest, staff: &Staff, problems: &[Problem]) {
    let fields: Vec<&str> = problems.iter().filter_map(|p| p.field.as_deref()).collect();
    let reason = format!("a console form was incomplete or invalid: {}", fields.join(", "));
    refusal_on_record(state, req, Some(&staff.session), "FORM_INVALID", &reason).await;
}

/// Puts a refused console form on the audit trail: who (if a session said), what and why, on
/// their practice's trail when they work at one.
async fn refusal_on_record(state: &AppState, req: &HttpRequest, session: Option<&Session>, code: &str, reason: &str) {
    let principal = session.map(|s| Principal::Staff(s.staff.clone()));
    let refused = Refused {
        principal: principal.as_ref(),
        action: "console-form",
        outcome: Outcome::Denied,
        rule: "console-form",
        code: Some(code),
        reason: Some(format!("{reason} ({} {})", req.method(), req.path())),
        practice: principal.as_ref().and_then(home_practice),
        request_id: req.extensions().get::<RequestIds>().map(|ids| ids.request_id.clone()),
    };
    if let Err(e) = state.core.audit.record(refused.record()).await {
        tracing::error!(error = %e, "a refused console form could not be put on the audit trail");
    }
}

async fn home(console: web::Data<Console>, req: HttpRequest, q: web::Query<HomeQuery>) -> HttpResponse {
    match signed_in(&console, &req).await {
        Ok(staff) => {
            let body = format!(
                r#"<p>Signed in as {name} ({roles}) at {practice}. What you can do here is what your role allows: the gateway decides and records every action.</p>
<ul class="links">
<li>{find}: search by NHS number or name, register for online services, print the letter, record-access codes, who can see the record and why</li>
<li>{proxies}: proxy requests waiting for a decision; approve, refuse or end a role</li>
<li>{tasks}: provisioning at the supplier (retry what failed) and record reviews (approve or decline)</li>
<li>{optin}: move the practice to the opt-in model and follow the move</li>
<li>{audit}: who did what, and why someone can or cannot see a record</li>
</ul>"#,
                name = html::esc(&staff.session.name),
                roles = html::esc(&staff.session.roles()),
                practice = html::esc(staff.session.practice()),
                find = html::link("/console/patients", "Find a patient"),
                proxies = html::link("/console/proxies", "Proxy roles"),
                tasks = html::link("/console/tasks", "Tasks and reviews"),
                optin = html::link("/console/opt-in", "Access model"),
                audit = html::link("/console/audit", "Audit trail"),
            );
            staff_page(&staff, "Practice console", "/console/", &body)
        }
        Err(_) => {
            let mut body = String::new();
            if q.ended.is_some() {
                body.push_str(&html::error_summary(&[Problem::general(
                    "Your session ended because it was not used for a while, or your sign-in expired. Sign in again.",
                )]));
            }
            if let Some(e) = &q.error {
                body.push_str(&html::error_summary(&[Problem::general(e.clone())]));
            }
            if q.signed_out.is_some() {
                body.push_str(&html::notice("You have signed out."));
            }
            body.push_str(
                r#"<p>For practice staff: sign in with your staff account (NHS Care Identity Service 2 or the practice's own identity provider).</p>
<p><a class="button" href="/console/sign-in">Sign in</a></p>"#,
            );
            respond(
                StatusCode::OK,
                html::page("Sign in to the practice console", "", None, &body),
            )
        }
    }
}

#[derive(serde::Deserialize)]
struct HomeQuery {
    ended: Option<String>,
    error: Option<String>,
    #[serde(rename = "signed-out")]
    signed_out: Option<String>,
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match name.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript; charset=utf-8"),
        _ => {
            return respond(
                StatusCode::NOT_FOUND,
                html::page("Page not found", "", None, "<p>There is no such page.</p>"),
            );
        }
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

async fn not_found() -> HttpResponse {
    respond(
        StatusCode::NOT_FOUND,
        html::page(
            "Page not found",
            "",
            None,
            r#"<p>There is no such page in the console.</p><p><a href="/console/">Go to the console's home page</a></p>"#,
        ),
    )
}

/// Mounts the console under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(|| async { redirect("/console/") }))
        .service(
            web::scope("/console")
                .route("/", web::get().to(home))
                .route("/assets/{name}", web::get().to(asset))
                .route("/sign-in", web::get().to(signin::start))
                .route("/callback", web::get().to(signin::callback))
                .route("/sign-out", web::post().to(signin::sign_out))
                .configure(patients::configure)
                .configure(proxies::configure)
                .configure(tasks::configure)
                .configure(optin::configure)
                .configure(audit_pages::configure)
                .default_service(web::to(not_found)),
        );
}
