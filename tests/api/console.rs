//! The practice console, driven as a browser would: sign-in through the dev identity provider,
//! forms with their CSRF tokens, and forged forms.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

/// A browser: its own cookies, following nothing by itself.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

impl Page {
    /// The value of the first hidden input `name`.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page {
            status,
            location,
            set_cookies,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            self.app.url(url)
        };
        let r = self
            .app
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    /// Posts a form as the console's own page would (same origin).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(path, fields, &self.app.base.clone()).await
    }

    async fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: &str) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let r = self
            .app
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.take(r).await
    }

    /// Signs in through the staff issuer as `persona`.
    async fn sign_in(&mut self, persona: &str) -> Page {
        let start = self.get(&format!("/console/sign-in?login_hint={persona}")).await;
        assert_eq!(start.status, StatusCode::SEE_OTHER);
        assert!(
            start.location.contains("code_challenge_method=S256"),
            "{}",
            start.location
        );
        assert!(start.location.contains("nonce="), "{}", start.location);
        let idp = self.get(&start.location).await;
        assert_eq!(idp.status, StatusCode::FOUND, "{}", idp.body);
        self.get(&idp.location).await
    }

    /// A page's CSRF token (every signed-in page carries it in the sign-out form).
    async fn csrf(&mut self) -> String {
        self.get("/console/").await.hidden("csrf")
    }
}

/// The `state` a sign-in sent the browser away with.
fn start_state(authorize: &str) -> String {
    url::Url::parse(authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

/// A registration form with every step completed.
const REGISTRATION: [(&str, &str); 8] = [
    ("method", "documents-in-person"),
    ("document", "passport"),
    ("appointments", "manage"),
    ("prescriptions", "manage"),
    ("record", "summary"),
    ("responsibilities", "yes"),
    ("coercion", "yes"),
    ("capacity", "yes"),
];

/// `REGISTRATION` with this CSRF token, without the fields named in `leaving_out`.
fn registration<'a>(csrf: &'a str, leaving_out: &[&str]) -> Vec<(&'a str, &'a str)> {
    std::iter::once(("csrf", csrf))
        .chain(REGISTRATION.into_iter().filter(|(k, _)| !leaving_out.contains(k)))
        .collect()
}

async fn has_account(app: &TestApp, patient: &str) -> bool {
    let (s, _, _) = app
        .get(&format!("/Patient/{patient}/$online-account"), &app.token("staff-emis"))
        .await;
    s == StatusCode::OK
}

async fn console_refusals(app: &TestApp) -> Vec<Value> {
    let (s, _, bundle) = app
        .get(
            "/AuditEvent?subtype=console-form&_count=100",
            &app.token("clinician-emis"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn staff_sign_in_with_pkce_and_the_session_ends_at_sign_out() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let home = browser.get("/console/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("/console/sign-in"), "{}", home.body);
    // Without a session every page sends the browser to sign in.
    assert_eq!(browser.get("/console/patients").await.location, "/console/");

    let signed_in = browser.sign_in("staff-emis").await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let session = signed_in
        .set_cookies
        .iter()
        .find(|c| c.starts_with("gp-console="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "no TLS here: {session}");
    let home = browser.get("/console/").await;
    assert!(home.body.contains("Sam Patel"), "{}", home.body);
    assert!(home.body.contains("R8008 at A81001"), "{}", home.body);
    let csp = browser
        .app
        .client
        .get(app.url("/console/"))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    let policy = csp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(csp.headers()["cache-control"], "no-store");

    let kept = browser.cookies.clone();
    let csrf = home.hidden("csrf");
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!browser.cookies.contains_key("gp-console"));
    // The old cookie is worth nothing.
    browser.cookies = kept;
    assert_eq!(browser.get("/console/patients").await.location, "/console/");
}

#[tokio::test]
async fn sign_in_refuses_a_return_the_browser_did_not_start_and_anyone_but_staff() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let start = browser.get("/console/sign-in?login_hint=staff-emis").await;
    let idp = browser.get(&start.location).await;
    // Another browser (no sign-in cookie) arriving with this code gets no session.
    let mut other = Browser::new(&app);
    let page = other.get(&idp.location).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.starts_with("/console/?error="), "{}", page.location);
    assert!(!other.cookies.contains_key("gp-console"));
    // The browser that started it still signs in, once.
    let page = browser.get(&idp.location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let mut replay = Browser::new(&app);
    replay
        .cookies
        .insert("gp-console-sign-in".into(), start_state(&start.location));
    let page = replay.get(&idp.location).await;
    assert!(page.location.starts_with("/console/?error="), "{}", page.location);
    assert!(!replay.cookies.contains_key("gp-console"));

    // A patient persona cannot sign in through the staff issuer.
    let mut patient = Browser::new(&app);
    let start = patient.get("/console/sign-in?login_hint=patient-p9").await;
    let idp = patient.get(&start.location).await;
    let back = patient.get(&idp.location).await;
    assert!(back.location.starts_with("/console/?error="), "{}", back.location);
    assert!(!patient.cookies.contains_key("gp-console"));
}

#[tokio::test]
async fn a_registration_cannot_skip_a_step_and_ends_with_a_printable_letter() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("staff-emis").await;
    let form = browser.get("/console/patients/patient-lucy-evans/register").await;
    assert_eq!(form.status, StatusCode::OK);
    for label in ["responsibilities", "coercion", "capacity"] {
        assert!(form.body.contains(&format!("<label for=\"{label}\">")), "{label}");
    }
    let csrf = form.hidden("csrf");
    let mut fields = registration(&csrf, &["coercion"]);
    let skipped = browser
        .post("/console/patients/patient-lucy-evans/register", &fields)
        .await;
    assert_eq!(skipped.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(skipped.body.contains("href=\"#coercion\""), "{}", skipped.body);
    assert!(skipped.body.contains("aria-invalid=\"true\""));
    assert!(skipped.body.contains("value=\"passport\""), "what was typed stays");
    assert!(!has_account(&app, "patient-lucy-evans").await, "nothing changed");
    let refused = console_refusals(&app).await;
    assert!(
        refused.iter().any(|e| e["resource"]["outcomeDesc"]
            .as_str()
            .is_some_and(|d| d.contains("incomplete or invalid: coercion"))),
        "the attempt is on the trail: {refused:?}"
    );

    fields.push(("coercion", "yes"));
    let request = uuid::Uuid::new_v4().to_string();
    fields.push(("request", &request));
    let done = browser
        .post("/console/patients/patient-lucy-evans/register", &fields)
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(has_account(&app, "patient-lucy-evans").await);
    // The same form sent again registers once.
    let again = browser
        .post("/console/patients/patient-lucy-evans/register", &fields)
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);

    let patient = browser.get(&done.location).await;
    assert!(patient.body.contains("Registered."), "{}", patient.body);
    let letter = browser.get("/console/patients/patient-lucy-evans/letter").await;
    assert_eq!(letter.status, StatusCode::OK);
    assert!(letter.body.contains("<dd class=\"key\">A81001</dd>"), "{}", letter.body);
    assert!(letter.body.contains("Linkage Key"));
    let pdf = browser.get("/console/patients/patient-lucy-evans/letter.pdf").await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert!(pdf.body.starts_with("%PDF"));

    // The registration is on the trail under the member of staff's own name.
    let (_, _, trail) = app
        .get(
            "/AuditEvent?patient=patient-lucy-evans&subtype=register-online-services",
            &app.token("clinician-emis"),
        )
        .await;
    assert_eq!(trail["total"], 1, "{trail}");
    assert!(
        trail["entry"][0]["resource"]["agent"][0]["who"]["identifier"]["value"]
            .as_str()
            .unwrap()
            .ends_with("staff-0001-riverside")
    );
}

#[tokio::test]
async fn forged_forms_change_nothing_and_are_put_on_the_trail() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("staff-emis").await;
    let csrf = browser.csrf().await;
    let fields = REGISTRATION;
    let path = "/console/patients/patient-grace-okafor/register";

    let no_token = browser.post(path, &fields).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(no_token.body.contains("nothing was changed"), "{}", no_token.body);

    let with_token = registration(&csrf, &[]);
    let elsewhere = browser.post_from(path, &with_token, "http://evil.example").await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let wrong: Vec<(&str, &str)> = with_token
        .iter()
        .map(|(k, v)| if *k == "csrf" { (*k, "not-the-token") } else { (*k, *v) })
        .collect();
    assert_eq!(browser.post(path, &wrong).await.status, StatusCode::FORBIDDEN);

    let mut stranger = Browser::new(&app);
    let ended = stranger.post(path, &with_token).await;
    assert_eq!(ended.status, StatusCode::UNAUTHORIZED);
    assert!(ended.body.contains("Your session has ended"), "{}", ended.body);

    assert!(!has_account(&app, "patient-grace-okafor").await);
    let refusals = console_refusals(&app).await;
    let codes: Vec<&str> = refusals
        .iter()
        .flat_map(|e| e["resource"]["entity"][0]["detail"].as_array().unwrap())
        .filter(|d| d["type"] == "code")
        .map(|d| d["valueString"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"CSRF_TOKEN_INVALID"), "{refusals:?}");
    assert!(codes.contains(&"ORIGIN_REFUSED"), "{refusals:?}");
    assert!(refusals.iter().all(|e| e["resource"]["outcome"] == "4"));
}

#[tokio::test]
async fn a_receptionist_sees_the_refusal_in_plain_words_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("reception-emis").await;
    let found = browser.get("/console/patients?q=okafor").await;
    assert!(
        found.body.contains("/console/patients/patient-grace-okafor"),
        "{}",
        found.body
    );
    let csrf = browser.csrf().await;
    let page = browser
        .post(
            "/console/patients/patient-grace-okafor/register",
            &registration(&csrf, &[]),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("Your role does not allow this"), "{}", page.body);
    assert!(!has_account(&app, "patient-grace-okafor").await);
    let (_, _, trail) = app
        .get(
            &format!(
                "/AuditEvent?subtype=register-online-services&outcome=4&agent={}",
                url::form_urlencoded::byte_serialize(
                    format!("staff|{}/dev-idp/staff|staff-0005-riverside", app.base).as_bytes()
                )
                .collect::<String>()
            ),
            &app.token("clinician-emis"),
        )
        .await;
    assert_eq!(trail["total"], 1, "{trail}");
}

#[tokio::test]
async fn proxy_requests_are_approved_and_refused_from_the_worklist() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("staff-vrs").await;
    let list = browser.get("/console/proxies").await;
    let roles: Vec<String> = list
        .body
        .match_indices("href=\"/console/proxies/")
        .map(|(i, m)| list.body[i + m.len()..].split('"').next().unwrap().to_owned())
        .collect();
    assert!(roles.len() >= 2, "{}", list.body);
    let csrf = list.hidden("csrf");

    let approve = format!("/console/proxies/{}/approve", roles[0]);
    let missing = browser.post(&approve, &[("csrf", &csrf), ("basis", "consent")]).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.body.contains("href=\"#safeguarding\""), "{}", missing.body);
    let done = browser
        .post(
            &approve,
            &[("csrf", &csrf), ("basis", "consent"), ("safeguarding", "yes")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let role = browser.get(&done.location).await;
    assert!(role.body.contains("tag--green\">active"), "{}", role.body);

    let refuse = format!("/console/proxies/{}/refuse", roles[1]);
    let done = browser
        .post(
            &refuse,
            &[("csrf", &csrf), ("reason", "APPLICATION_REJECTED_NO_LEGAL_BASIS")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let role = browser.get(&done.location).await;
    assert!(role.body.contains("tag--red\">rejected"), "{}", role.body);
    let after = browser.get("/console/proxies").await;
    assert!(!after.body.contains(&roles[0]) && !after.body.contains(&roles[1]));
}

#[tokio::test]
async fn the_opt_in_move_runs_from_the_console_to_the_end() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("staff-emis").await;
    let page = browser.get("/console/opt-in").await;
    assert!(page.body.contains("opt-out"), "{}", page.body);
    let csrf = page.hidden("csrf");
    let unconfirmed = browser.post("/console/opt-in", &[("csrf", &csrf), ("days", "0")]).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let started = browser
        .post(
            "/console/opt-in",
            &[("csrf", &csrf), ("days", "30"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.body);
    let running = browser.get("/console/opt-in").await;
    assert!(running.body.contains("<progress"), "{}", running.body);
    let mut finished = false;
    for _ in 0..100 {
        let page = browser.get("/console/opt-in").await;
        if page.body.contains("Finished:") {
            assert!(
                page.body.contains("tag--grey\">opt-in") || page.body.contains(">opt-in<"),
                "{}",
                page.body
            );
            finished = true;
            break;
        }
        let url = page
            .body
            .split("data-progress-url=\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"));
        if let Some(url) = url {
            let p = browser.get(&url).await;
            assert_eq!(p.status, StatusCode::OK, "{}", p.body);
            let progress: Value = serde_json::from_str(&p.body).unwrap();
            assert!(progress["total"].as_i64().unwrap() > 0, "{progress}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(finished, "the move finished");
}

#[tokio::test]
async fn what_a_page_repeats_is_escaped() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in("staff-emis").await;
    let page = browser
        .get("/console/patients?q=%3Cscript%3Ealert(1)%3C/script%3E")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page.body.contains("&lt;script&gt;alert(1)"));
    let unknown = browser.get("/console/nowhere").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("There is no such page"));
}

#[tokio::test]
async fn a_practice_worklist_is_for_its_own_staff() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let (s, _, bundle) = app.get("/Task?owner=G8101234&status=requested", &staff).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    assert!(bundle["total"].as_i64().unwrap() >= 2, "{bundle}");
    assert!(
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["status"] == "requested")
    );
    let (s, _, _) = app.get("/Task?owner=G8101234", &app.token("staff-emis")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app
        .get("/Task?owner=Organization/practice-a81001", &app.token("staff-emis"))
        .await;
    assert_eq!(s, StatusCode::OK);
    for query in [
        "/Task",
        "/Task?owner=A81001&patient=patient-jane-smith",
        "/Task?owner=%20",
    ] {
        let (s, _, b) = app.get(query, &app.token("staff-emis")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {b}");
    }
}
