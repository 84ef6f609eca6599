//! Proxy roles: requests waiting for the practice, a role with its legal basis and the rules
//! for children, and the decisions (approve, refuse, end, reactivate) as the VRS status
//! changes the API takes.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::html::{self, Problem, esc, url_part};
use super::view;
use super::{Console, Form, Staff, posted, refused_page, signed_in, staff_page};
use crate::domain::proxy::{ADULT_AGE, CHILD_CONSENT_AGE, LegalBasis, RoleStatus, StatusReason, age_on};
use crate::fhir::vrs::{
    GRANTOR_URL, LEGAL_BASIS_SYSTEM, PROXY_ASSESSMENT_URL, STATUS_REASON_SYSTEM, STATUS_REASON_URL,
};
use crate::fhir::{NHS_NUMBER_SYSTEM, ODS_SYSTEM};
use crate::state::AppState;

const CURRENT: &str = "/console/proxies";
/// The oldest requests shown at once; the rest follow as these are decided.
const WAITING_SHOWN: usize = 25;

fn reason_of(role: &Value) -> String {
    role["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == STATUS_REASON_URL)
        .and_then(|e| {
            let c = &e["valueCodeableConcept"];
            c["coding"][0]["display"]
                .as_str()
                .or(c["coding"][0]["code"].as_str())
                .map(|d| match c["text"].as_str() {
                    Some(t) => format!("{d}: {t}"),
                    None => d.to_owned(),
                })
        })
        .unwrap_or_default()
}

/// The roles of a searchset Bundle as a table, each a link to its page.
pub fn role_table(bundle: &Value) -> String {
    let rows: Vec<Vec<String>> = view::entries(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == "Consent")
        .map(|r| {
            let id = r["id"].as_str().unwrap_or_default();
            vec![
                html::link(&format!("/console/proxies/{}", url_part(id)), "Open"),
                esc(&view::spaced(
                    r["performer"][0]["identifier"]["value"].as_str().unwrap_or_default(),
                )),
                esc(&view::spaced(
                    r["patient"]["identifier"]["value"].as_str().unwrap_or_default(),
                )),
                esc(r["policyRule"]["coding"][0]["display"]
                    .as_str()
                    .unwrap_or("not recorded")),
                view::tag(r["status"].as_str().unwrap_or_default()),
                esc(&reason_of(r)),
            ]
        })
        .collect();
    html::table(
        "Proxy roles",
        &[
            "Role",
            "Proxy (NHS number)",
            "Patient (NHS number)",
            "Legal basis",
            "Status",
            "Reason",
        ],
        &rows,
    )
}

#[derive(Deserialize)]
struct ListQuery {
    nhs: Option<String>,
    done: Option<String>,
}

async fn list(console: web::Data<Console>, req: HttpRequest, q: web::Query<ListQuery>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut problems = Vec::new();
    let mut body = q.done.as_deref().map(html::notice).unwrap_or_default();
    let waiting = format!(
        "/Task?owner={}&status=requested&_count=100",
        url_part(staff.session.practice())
    );
    match console.api.get(&staff.session, &waiting).await {
        Ok(bundle) => {
            let waiting: Vec<(String, String)> = view::entries(&bundle)
                .into_iter()
                .filter(|t| t["code"]["coding"][0]["code"] == "proxy-review")
                .filter_map(|t| {
                    let role = t["focus"]["reference"].as_str()?.strip_prefix("Consent/")?;
                    let received = t["authoredOn"]
                        .as_str()
                        .unwrap_or_default()
                        .get(..10)
                        .unwrap_or_default();
                    Some((role.to_owned(), received.to_owned()))
                })
                .take(WAITING_SHOWN)
                .collect();
            let mut rows = Vec::with_capacity(waiting.len());
            for (role, received) in waiting {
                let r = console
                    .api
                    .get(&staff.session, &format!("/Consent/{}", url_part(&role)))
                    .await
                    .ok()
                    .and_then(|b| view::entries(&b).first().copied().cloned())
                    .unwrap_or_default();
                rows.push(vec![
                    html::link(&format!("/console/proxies/{}", url_part(&role)), "Review the request"),
                    esc(&view::spaced(
                        r["performer"][0]["identifier"]["value"].as_str().unwrap_or_default(),
                    )),
                    esc(&view::spaced(
                        r["patient"]["identifier"]["value"].as_str().unwrap_or_default(),
                    )),
                    esc(r["policyRule"]["coding"][0]["display"].as_str().unwrap_or("not stated")),
                    esc(&received),
                ]);
            }
            body.push_str(&html::table(
                "Requests waiting for a decision",
                &[
                    "Request",
                    "Proxy (NHS number)",
                    "Patient (NHS number)",
                    "Legal basis asked for",
                    "Received",
                ],
                &rows,
            ));
        }
        Err(r) => body.push_str(&format!("<p>{}</p>", esc(&r.plain()))),
    }
    let asked: String = q
        .nhs
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut found = String::new();
    if q.nhs.is_some() {
        if asked.len() != 10 || !asked.chars().all(|c| c.is_ascii_digit()) {
            problems.push(Problem::at("nhs", "Enter a 10-digit NHS number"));
        } else {
            for (param, label) in [
                ("patient:identifier", "as the patient"),
                ("performer:identifier", "as the proxy"),
            ] {
                let path = format!("/Consent?{param}={}", url_part(&format!("{NHS_NUMBER_SYSTEM}|{asked}")));
                match console.api.get(&staff.session, &path).await {
                    Ok(bundle) => {
                        found.push_str(&format!("<h3>Roles {label}</h3>"));
                        found.push_str(&role_table(&bundle));
                    }
                    Err(r) => problems.push(Problem::at("nhs", r.plain())),
                }
            }
        }
    }
    body = format!(
        r#"{summary}{body}<h2>Find the roles of a person</h2><form method="get" action="/console/proxies" role="search">{input}<button type="submit" class="button button--secondary">Find</button></form>{found}"#,
        summary = html::error_summary(&problems),
        input = html::text_input(
            "nhs",
            "NHS number of the patient or the proxy",
            "",
            &asked,
            12,
            &problems
        ),
    );
    staff_page(&staff, "Proxy roles", CURRENT, &body)
}

fn child_rules(patient_age: Option<u32>) -> String {
    match patient_age {
        Some(a) if a < ADULT_AGE => format!(
            r#"<div class="card"><h2>The patient is a child ({a})</h2><ul>
<li>The legal basis must be parental responsibility or a court-appointed deputy.</li>
<li>From {CHILD_CONSENT_AGE}, record the child's consent, or why it was not sought.</li>
<li>Roles resting on parental responsibility are suspended for review at the practice's review age (13 unless the practice set another), and end at {ADULT_AGE} unless the young person consents.</li>
</ul></div>"#
        ),
        Some(_) => r#"<div class="card"><h2>The patient is an adult</h2><p>The legal basis is the patient's consent or, for a patient who lacks capacity, a lasting power of attorney, a court-appointed deputy or a best-interest decision.</p></div>"#.to_owned(),
        None => String::new(),
    }
}

struct Role {
    json: Value,
    status: RoleStatus,
    patient_age: Option<u32>,
}

/// The role, and the age of its patient on the gateway's `today` (for the rules shown).
async fn load(
    console: &Console,
    staff: &Staff,
    id: &str,
    today: chrono::NaiveDate,
) -> Result<Role, super::api::Refusal> {
    let bundle = console
        .api
        .get(&staff.session, &format!("/Consent/{}", url_part(id)))
        .await?;
    let json = view::entries(&bundle).first().copied().cloned().unwrap_or_default();
    let status = json["status"]
        .as_str()
        .and_then(RoleStatus::parse)
        .unwrap_or(RoleStatus::Proposed);
    let nhs = json["patient"]["identifier"]["value"].as_str().unwrap_or_default();
    let patient_age = match console
        .api
        .get(
            &staff.session,
            &format!(
                "/Patient?identifier={}",
                url_part(&format!("{NHS_NUMBER_SYSTEM}|{nhs}"))
            ),
        )
        .await
    {
        Ok(b) => view::entries(&b)
            .first()
            .and_then(|p| p["birthDate"].as_str())
            .and_then(crate::fhir::operations::parse_date)
            .map(|birth| age_on(birth, today)),
        Err(_) => None,
    };
    Ok(Role {
        json,
        status,
        patient_age,
    })
}

fn reasons_for(status: RoleStatus) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = vec![("", "Choose a reason")];
    out.extend(
        StatusReason::ALL
            .iter()
            .filter(|r| r.explains(status) && **r != StatusReason::RoleCreated)
            .map(|r| (r.code(), r.display())),
    );
    out
}

fn page(staff: &Staff, id: &str, role: &Role, form: Option<&Form>, problems: &[Problem], notice: &str) -> String {
    let r = &role.json;
    let me = format!("/console/proxies/{}", url_part(id));
    let get = |k: &str| form.map(|f| f.get(k).to_owned()).unwrap_or_default();
    let grants: Vec<(&str, String)> = r["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["url"] == crate::fhir::vrs::PROXY_ACCESS_URL)
        .and_then(|e| e["extension"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let name = g["url"].as_str()?;
            let label = match name {
                "appointmentsLevel" => "Appointments",
                "prescriptionsLevel" => "Repeat prescriptions",
                "messaging" => "Messaging",
                "recordAccess" => "GP record",
                _ => return None,
            };
            let shown = g["valueCode"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    g["valueBoolean"]
                        .as_bool()
                        .map(|b| if b { "yes".into() } else { "no".into() })
                })
                .unwrap_or_default();
            Some((label, esc(&shown)))
        })
        .collect();
    let mut rows = vec![
        ("Status", view::tag(role.status.code())),
        ("Reason", esc(&reason_of(r))),
        (
            "Proxy (NHS number)",
            esc(&view::spaced(
                r["performer"][0]["identifier"]["value"].as_str().unwrap_or_default(),
            )),
        ),
        (
            "Patient (NHS number)",
            esc(&view::spaced(
                r["patient"]["identifier"]["value"].as_str().unwrap_or_default(),
            )),
        ),
        (
            "Legal basis",
            esc(r["policyRule"]["coding"][0]["display"]
                .as_str()
                .unwrap_or("not recorded yet")),
        ),
        (
            "Since",
            esc(r["provision"]["period"]["start"]
                .as_str()
                .or(r["dateTime"].as_str())
                .unwrap_or_default()
                .get(..10)
                .unwrap_or_default()),
        ),
    ];
    rows.extend(grants);
    let mut body = format!(
        "{}{notice}{}{}",
        html::error_summary(problems),
        html::summary_list(&rows),
        child_rules(role.patient_age)
    );
    let bases: Vec<(&str, &str)> = std::iter::once(("", "Choose the legal basis"))
        .chain(
            LegalBasis::ALL
                .iter()
                .filter(|b| **b != LegalBasis::Unknown)
                .map(|b| (b.code(), b.display())),
        )
        .collect();
    let current_basis = r["policyRule"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let child = role
        .patient_age
        .is_some_and(|a| (CHILD_CONSENT_AGE..ADULT_AGE).contains(&a));
    let approve_fields = format!(
        "{basis}{child}{coercion}",
        basis = html::select(
            "basis",
            "Legal basis",
            &bases,
            &if get("basis").is_empty() {
                current_basis
            } else {
                get("basis")
            },
            problems
        ),
        child = if child {
            format!(
                "{}{}",
                html::select(
                    "child_consent",
                    "The child's view (required from 11)",
                    &[
                        ("", "Choose"),
                        ("given", "The child consents"),
                        ("not-sought", "Not sought (say why)")
                    ],
                    &get("child_consent"),
                    problems
                ),
                html::textarea(
                    "child_reason",
                    "Why the child's consent was not sought",
                    &get("child_reason"),
                    500,
                    problems
                )
            )
        } else {
            String::new()
        },
        coercion = html::confirm(
            "safeguarding",
            "Coercion and safeguarding",
            "I have checked the evidence of the relationship and considered coercion and safeguarding",
            form.is_some_and(|f| f.checked("safeguarding")),
            problems
        ),
    );
    match role.status {
        RoleStatus::Proposed => {
            body.push_str("<h2>Approve</h2>");
            body.push_str(&html::form(
                &format!("{me}/approve"),
                &staff.session.csrf,
                &approve_fields,
                "Approve the request",
                false,
            ));
            body.push_str("<h2>Refuse</h2>");
            body.push_str(&decision_form(
                staff,
                &me,
                "refuse",
                RoleStatus::Rejected,
                &get,
                problems,
                "Refuse the request",
            ));
        }
        RoleStatus::Active => {
            body.push_str("<h2>End the role</h2>");
            body.push_str(&decision_form(
                staff,
                &me,
                "end",
                RoleStatus::Inactive,
                &get,
                problems,
                "End the role",
            ));
        }
        RoleStatus::Inactive => {
            body.push_str("<h2>Reactivate</h2>");
            body.push_str(&html::form(
                &format!("{me}/reactivate"),
                &staff.session.csrf,
                &approve_fields,
                "Reactivate the role",
                false,
            ));
        }
        _ => {}
    }
    body.push_str(&format!("<p>{}</p>", html::link(CURRENT, "Back to proxy roles")));
    body
}

fn decision_form(
    staff: &Staff,
    me: &str,
    verb: &str,
    to: RoleStatus,
    get: &dyn Fn(&str) -> String,
    problems: &[Problem],
    button: &str,
) -> String {
    let fields = format!(
        "{}{}",
        html::select("reason", "Reason", &reasons_for(to), &get("reason"), problems),
        html::textarea(
            "reason_text",
            "Details (required for Other reason)",
            &get("reason_text"),
            500,
            problems
        ),
    );
    html::form(&format!("{me}/{verb}"), &staff.session.csrf, &fields, button, true)
}

async fn show(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let role = match load(&console, &staff, &id, state.core.clock.today()).await {
        Ok(r) => r,
        Err(r) => return refused_page(&staff, "Proxy role", CURRENT, &r, CURRENT),
    };
    let notice = super::done_notice(&req);
    let body = page(&staff, &id, &role, None, &[], &notice);
    staff_page(&staff, "Proxy role", CURRENT, &body)
}

fn reason_extension(reason: StatusReason, text: &str) -> Value {
    let mut concept = json!({"coding": [{"system": STATUS_REASON_SYSTEM, "code": reason.code()}]});
    if !text.is_empty() {
        concept["text"] = json!(text);
    }
    json!({"url": STATUS_REASON_URL, "valueCodeableConcept": concept})
}

async fn decide(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, form) = match posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (id, verb) = path.into_inner();
    let role = match load(&console, &staff, &id, state.core.clock.today()).await {
        Ok(r) => r,
        Err(r) => return refused_page(&staff, "Proxy role", CURRENT, &r, CURRENT),
    };
    let mut problems = Vec::new();
    let patch = match verb.as_str() {
        "approve" | "reactivate" => {
            let basis = LegalBasis::parse(form.get("basis")).filter(|b| *b != LegalBasis::Unknown);
            if basis.is_none() {
                problems.push(Problem::at("basis", "Choose the legal basis"));
            }
            if !form.checked("safeguarding") {
                problems.push(Problem::at(
                    "safeguarding",
                    "Confirm you have considered coercion and safeguarding",
                ));
            }
            let child = role
                .patient_age
                .is_some_and(|a| (CHILD_CONSENT_AGE..ADULT_AGE).contains(&a));
            let mut assessment = None;
            if child {
                match form.get("child_consent") {
                    "given" => assessment = Some(json!([{"url": "childConsent", "valueCode": "given"}])),
                    "not-sought" => {
                        let why = form.text(
                            "child_reason",
                            "why the child's consent was not sought",
                            500,
                            true,
                            &mut problems,
                        );
                        assessment = Some(json!([{"url": "childConsent", "valueCode": "not-sought"},
                            {"url": "childConsentNotSoughtReason", "valueString": why}]));
                    }
                    _ => problems.push(Problem::at(
                        "child_consent",
                        "Record the child's view, or why it was not sought",
                    )),
                }
            }
            let reason = if verb == "approve" {
                StatusReason::RoleActivated
            } else {
                StatusReason::RoleReactivated
            };
            let mut extensions = vec![reason_extension(reason, "")];
            let has_grantor = role.json["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["url"] == GRANTOR_URL);
            if !has_grantor {
                extensions.push(json!({"url": GRANTOR_URL, "valueReference": {"identifier": {
                    "system": ODS_SYSTEM, "value": staff.session.practice()}}}));
            }
            if let Some(a) = assessment {
                extensions.push(json!({"url": PROXY_ASSESSMENT_URL, "extension": a}));
            }
            let basis = basis.unwrap_or(LegalBasis::Consent);
            json!([
                {"op": "replace", "path": "/status", "value": "active"},
                {"op": "add", "path": "/extension/-", "value": extensions},
                {"op": "add", "path": "/policyRule", "value": {"coding": [{"system": LEGAL_BASIS_SYSTEM, "code": basis.code(), "display": basis.display()}]}}
            ])
        }
        "refuse" | "end" => {
            let to = if verb == "refuse" {
                RoleStatus::Rejected
            } else {
                RoleStatus::Inactive
            };
            let reason =
                StatusReason::parse(form.get("reason")).filter(|r| reasons_for(to).iter().any(|(c, _)| *c == r.code()));
            let text = form.text(
                "reason_text",
                "the details",
                500,
                reason == Some(StatusReason::Other),
                &mut problems,
            );
            if reason.is_none() {
                problems.push(Problem::at("reason", "Choose a reason"));
            }
            json!([
                {"op": "replace", "path": "/status", "value": to.code()},
                {"op": "add", "path": "/extension/-", "value": [reason_extension(reason.unwrap_or(StatusReason::Other), &text)]}
            ])
        }
        _ => return super::redirect(&format!("/console/proxies/{}", url_part(&id))),
    };
    let title = "Proxy role";
    if !problems.is_empty() {
        super::incomplete_on_record(&state, &req, &staff, &problems).await;
        let body = page(&staff, &id, &role, Some(&form), &problems, "");
        return super::respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            html::page(title, CURRENT, Some(&staff.chrome()), &body),
        );
    }
    match console
        .api
        .send(
            &staff.session,
            Method::PATCH,
            &format!("/Consent/{}", url_part(&id)),
            "application/json-patch+json",
            &patch,
            &form.request_id(),
        )
        .await
    {
        Ok(_) => {
            let done = match verb.as_str() {
                "approve" => "The request was approved: the role is active and the supplier is being told.",
                "reactivate" => "The role is active again.",
                "refuse" => "The request was refused.",
                _ => "The role has ended.",
            };
            super::redirect(&format!("/console/proxies/{}?done={}", url_part(&id), url_part(done)))
        }
        Err(r) => {
            let field = match r.code.as_str() {
                c if c.contains("LEGAL_BASIS") => Some("basis"),
                c if c.contains("REASON") || c.contains("FREE_TEXT") => Some("reason"),
                _ => None,
            };
            let problem = match field {
                Some(f) => Problem::at(f, r.plain()),
                None => Problem::general(r.plain()),
            };
            let body = page(&staff, &id, &role, Some(&form), &[problem], "");
            super::respond(
                r.status_code(),
                html::page(title, CURRENT, Some(&staff.chrome()), &body),
            )
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/proxies", web::get().to(list))
        .route("/proxies/{id}", web::get().to(show))
        .route("/proxies/{id}/{decision}", web::post().to(decide));
}
