//! Finding a patient, their online account, registering them (the identity, responsibilities,
//! coercion and capacity steps as one form that cannot be skipped), the letter, the
//! record-access codes, and "why can this person see this record?".

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::html::{self, Problem, esc, url_part};
use super::view::{self, param, value};
use super::{Console, Form, Staff, posted, refused_page, respond, signed_in, staff_page};
use crate::domain::record_access::AccessCode;
use crate::fhir::NHS_NUMBER_SYSTEM;
use crate::state::AppState;

const CURRENT: &str = "/console/patients";

#[derive(Deserialize)]
struct FindQuery {
    q: Option<String>,
}

async fn find(console: web::Data<Console>, req: HttpRequest, q: web::Query<FindQuery>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let asked = q.q.as_deref().unwrap_or_default().trim().to_owned();
    let mut problems = Vec::new();
    let mut results = String::new();
    if q.q.is_some() {
        let digits: String = asked.chars().filter(|c| !c.is_whitespace()).collect();
        let path = if asked.is_empty() {
            problems.push(Problem::at("q", "Enter an NHS number or a name"));
            None
        } else if asked.chars().count() > 100 {
            problems.push(Problem::at("q", "Search for at most 100 characters"));
            None
        } else if digits.len() == 10 && digits.chars().all(|c| c.is_ascii_digit()) {
            Some(format!(
                "/Patient?identifier={}&_count=50",
                url_part(&format!("{NHS_NUMBER_SYSTEM}|{digits}"))
            ))
        } else {
            Some(format!("/Patient?name={}&_count=50&_sort=family", url_part(&asked)))
        };
        if let Some(path) = path {
            match console.api.get(&staff.session, &path).await {
                Ok(bundle) => {
                    let rows: Vec<Vec<String>> = view::entries(&bundle)
                        .into_iter()
                        .map(|p| {
                            let id = p["id"].as_str().unwrap_or_default();
                            vec![
                                html::link(&format!("/console/patients/{}", url_part(id)), &view::patient_name(p)),
                                esc(&view::spaced(&view::nhs_number(p))),
                                esc(p["birthDate"].as_str().unwrap_or_default()),
                                esc(p["generalPractitioner"][0]["identifier"]["value"]
                                    .as_str()
                                    .unwrap_or_default()),
                            ]
                        })
                        .collect();
                    let total = bundle["total"].as_i64().unwrap_or(0);
                    results = format!(
                        r#"<p role="status">{total} found{more}.</p>{}"#,
                        html::table(
                            "Patients found",
                            &["Name", "NHS number", "Date of birth", "Practice"],
                            &rows
                        ),
                        more = if total > 50 {
                            "; the first 50 are shown, search more narrowly"
                        } else {
                            ""
                        },
                    );
                }
                Err(r) => problems.push(Problem::at("q", r.plain())),
            }
        }
    }
    let body = format!(
        r#"{summary}<form method="get" action="/console/patients" role="search">{input}<button type="submit" class="button">Search</button></form>{results}"#,
        summary = html::error_summary(&problems),
        input = html::text_input(
            "q",
            "NHS number or name",
            "For example 999 000 0018, or Smith",
            &asked,
            100,
            &problems
        ),
    );
    staff_page(&staff, "Find a patient", CURRENT, &body)
}

/// A patient id from the path, as the API takes it.
fn patient_path(id: &str) -> String {
    format!("/Patient/{}", url_part(id))
}

fn access_rows(group: &Value) -> Vec<(&'static str, String)> {
    let services = param(group, "services");
    let record = param(group, "recordAccess");
    let from = value(param(record, "from"));
    vec![
        ("Appointments", esc(&value(param(services, "appointmentsLevel")))),
        (
            "Repeat prescriptions",
            esc(&value(param(services, "prescriptionsLevel"))),
        ),
        ("Messaging", esc(&value(param(services, "messaging")))),
        (
            "GP record",
            esc(&format!(
                "{}{}",
                value(param(record, "level")),
                if from.is_empty() {
                    String::new()
                } else {
                    format!(" from {from}")
                }
            )),
        ),
    ]
}

async fn patient(console: web::Data<Console>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let notice = super::done_notice(&req);
    render_patient(&console, &staff, &id, &notice, &[]).await
}

async fn render_patient(
    console: &Console,
    staff: &Staff,
    id: &str,
    notice: &str,
    problems: &[Problem],
) -> HttpResponse {
    let base = patient_path(id);
    let patient = match console.api.get(&staff.session, &base).await {
        Ok(p) => p,
        Err(r) => return refused_page(staff, "Patient", CURRENT, &r, CURRENT),
    };
    let name = view::patient_name(&patient);
    let nhs = view::nhs_number(&patient);
    let me = format!("/console/patients/{}", url_part(id));
    let mut body = format!(
        "{}{notice}{}",
        html::error_summary(problems),
        html::summary_list(&[
            ("NHS number", esc(&view::spaced(&nhs))),
            ("Date of birth", esc(patient["birthDate"].as_str().unwrap_or_default())),
            (
                "Practice",
                esc(patient["generalPractitioner"][0]["identifier"]["value"]
                    .as_str()
                    .unwrap_or_default()),
            ),
            (
                "Died",
                esc(patient["deceasedDateTime"]
                    .as_str()
                    .or(patient["deceasedBoolean"].as_bool().filter(|d| *d).map(|_| "yes"))
                    .unwrap_or("no")),
            ),
        ])
    );

    body.push_str("<h2>Online account</h2>");
    let account = console
        .api
        .get(&staff.session, &format!("{base}/$online-account"))
        .await;
    match &account {
        Ok(v) => {
            let a = param(v, "account");
            let mut rows = vec![
                ("Status", view::tag(&value(param(a, "status")))),
                ("Account ID", esc(&value(param(a, "accountId")))),
                ("Identity verified by", esc(&value(param(a, "verificationMethod")))),
            ];
            let reason = value(param(a, "statusReason"));
            if !reason.is_empty() {
                rows.push(("Status reason", esc(&reason)));
            }
            body.push_str(&html::summary_list(&rows));
            body.push_str("<h3>Access in effect</h3>");
            body.push_str(&html::summary_list(&access_rows(param(v, "effectiveAccess"))));
            if !param(a, "pendingAccess").is_null() {
                body.push_str("<h3>Waiting for the supplier to confirm</h3>");
                body.push_str(&html::summary_list(&access_rows(param(a, "pendingAccess"))));
            }
            let codes: Vec<Vec<String>> = view::params(v, "accessCode")
                .map(|c| {
                    let coding = &param(c, "code")["valueCoding"];
                    vec![
                        esc(coding["code"].as_str().unwrap_or_default()),
                        esc(coding["display"].as_str().unwrap_or_default()),
                        esc(&value(param(c, "addedBy"))),
                    ]
                })
                .collect();
            body.push_str(&html::table(
                "Record-access codes",
                &["Code", "Meaning", "Added by"],
                &codes,
            ));
            body.push_str(&format!(
                r#"<div class="actions"><a class="button" href="{me}/letter">Print the registration letter</a>{reset}</div>"#,
                reset = html::form(
                    &format!("{me}/reset"),
                    &staff.session.csrf,
                    "",
                    "Issue a new linkage key",
                    true
                ),
            ));
        }
        Err(r) if r.status == 404 && r.code == "RESOURCE_NOT_FOUND" => {
            body.push_str(&format!(
                r#"<p>No online account.</p><p><a class="button" href="{me}/register">Register for online services</a></p>"#
            ));
        }
        Err(r) => body.push_str(&format!("<p>{}</p>", esc(&r.plain()))),
    }

    // Codes may be added before there is an account (declined, review indicated).
    let options: Vec<(&str, &str)> = AccessCode::ALL.iter().map(|c| (c.code(), c.display())).collect();
    body.push_str("<h2>Record-access codes</h2>");
    body.push_str(&html::form(
        &format!("{me}/codes"),
        &staff.session.csrf,
        &format!(
            "{}{}",
            html::select("code", "Code", &options, "", problems),
            html::select(
                "change",
                "Change",
                &[("add", "Add the code"), ("remove", "Remove the code")],
                "",
                problems
            )
        ),
        "Change the codes",
        true,
    ));

    body.push_str("<h2>Tasks</h2>");
    match console
        .api
        .get(&staff.session, &format!("/Task?patient={}&_count=50", url_part(id)))
        .await
    {
        Ok(bundle) => body.push_str(&super::tasks::task_table(&bundle, &staff.session.csrf)),
        Err(r) => body.push_str(&format!("<p>{}</p>", esc(&r.plain()))),
    }

    body.push_str("<h2>Proxy roles</h2>");
    if !nhs.is_empty() {
        let path = format!(
            "/Consent?patient:identifier={}",
            url_part(&format!("{NHS_NUMBER_SYSTEM}|{nhs}"))
        );
        match console.api.get(&staff.session, &path).await {
            Ok(bundle) => body.push_str(&super::proxies::role_table(&bundle)),
            Err(r) => body.push_str(&format!("<p>{}</p>", esc(&r.plain()))),
        }
    }

    body.push_str(&format!(
        r#"<h2>Who can see this record, and why</h2>
<form method="get" action="{me}/explain">{actor}{action}<button type="submit" class="button button--secondary">Explain</button></form>"#,
        actor = html::text_input(
            "actor",
            "Person (NHS number)",
            "Leave empty to ask about yourself",
            "",
            20,
            &[]
        ),
        action = html::select("action", "Doing what", EXPLAIN_ACTIONS, "read-record", &[]),
    ));
    staff_page(staff, &name, CURRENT, &body)
}

const EXPLAIN_ACTIONS: &[(&str, &str)] = &[
    ("read-record", "See the GP record"),
    ("use-appointments", "Book and manage appointments"),
    ("use-prescriptions", "Order repeat prescriptions"),
    ("use-messaging", "Message the practice"),
    ("read-patient", "Read the patient's details"),
];

#[derive(Deserialize)]
struct ExplainQuery {
    actor: Option<String>,
    action: Option<String>,
}

async fn explain(
    console: web::Data<Console>,
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<ExplainQuery>,
) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let action = q.action.as_deref().unwrap_or("read-record");
    let actor: String = q
        .actor
        .as_deref()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut path = format!("/$explain-access?patient={}&action={}", url_part(&id), url_part(action));
    if !actor.is_empty() {
        path.push_str(&format!("&actor={}", url_part(&actor)));
    }
    let answer = match console.api.get(&staff.session, &path).await {
        Ok(v) => v,
        Err(r) => {
            let problems = [Problem::at("actor", r.plain())];
            return render_patient(&console, &staff, &id, "", &problems).await;
        }
    };
    let allowed = value(param(&answer, "allowed")) == "yes";
    let rules: Vec<Vec<String>> = view::params(&answer, "rule")
        .map(|r| {
            vec![
                esc(&value(param(r, "name"))),
                view::tag(&value(param(r, "result"))),
                esc(&value(param(r, "detail"))),
            ]
        })
        .collect();
    let who = if actor.is_empty() {
        "You".to_owned()
    } else {
        format!("NHS number {}", view::spaced(&actor))
    };
    let body = format!(
        r#"<p class="lead"><strong>{who} {verdict}</strong> ({action}).</p>{reason}{table}<p>{back}</p>"#,
        who = esc(&who),
        verdict = if allowed { "may do this" } else { "may not do this" },
        action = esc(action),
        reason = {
            let r = value(param(&answer, "reason"));
            if r.is_empty() {
                String::new()
            } else {
                format!(
                    "<p>Deciding rule: {} - {}</p>",
                    esc(&value(param(&answer, "decidingRule"))),
                    esc(&r)
                )
            }
        },
        table = html::table("Every rule consulted", &["Rule", "Result", "Why"], &rules),
        back = html::link(&me, "Back to the patient"),
    );
    staff_page(&staff, "Why this person can or cannot", CURRENT, &body)
}

/// Where the API's `expression` points, as a field of the registration form.
fn registration_field(expression: &str) -> &'static str {
    match expression {
        e if e.contains("method") => "method",
        e if e.contains("document") => "document",
        e if e.contains("verifiedBy") => "verified_by",
        e if e.contains("email") => "email",
        e if e.contains("responsibilities") => "responsibilities",
        e if e.contains("coercion") => "coercion",
        e if e.contains("capacity") => "capacity",
        e if e.contains("recordAccess") => "record",
        e if e.contains("services") => "appointments",
        _ => "method",
    }
}

const METHODS: &[(&str, &str)] = &[
    ("", "Choose how the identity was checked"),
    ("documents-in-person", "Photo ID and proof of address, seen in person"),
    ("vouching", "Vouched for by a member of staff who knows the patient"),
    (
        "vouching-with-record-confirmation",
        "Vouched for, with questions about the record",
    ),
    ("nhs-login-p9", "NHS login at P9 (high assurance)"),
];
const LEVELS: &[(&str, &str)] = &[
    ("none", "No record access"),
    ("summary", "Summary information (medications, allergies)"),
    ("detailed-coded", "Detailed coded record"),
    ("documents", "Detailed coded record and documents"),
    ("full", "Full record, including free text"),
];
const SERVICE_LEVELS: &[(&str, &str)] = &[
    ("manage", "See, book and cancel / order"),
    ("view", "See only"),
    ("none", "Not switched on"),
];

fn registration_form(staff: &Staff, me: &str, name: &str, form: Option<&Form>, problems: &[Problem]) -> String {
    let get = |k: &str| form.map(|f| f.get(k).to_owned()).unwrap_or_default();
    let checked = |k: &str| form.is_some_and(|f| f.checked(k));
    let or = |v: String, d: &str| if v.is_empty() { d.to_owned() } else { v };
    let fields = format!(
        r#"<h2>1. Identity</h2>{method}{document}{verified_by}
<h2>2. Contact</h2>{email}
<h2>3. Before switching anything on</h2>{responsibilities}{coercion}{capacity}
<h2>4. What to switch on</h2>{appointments}{prescriptions}{record}{from}"#,
        method = html::select(
            "method",
            "How was the patient's identity checked?",
            METHODS,
            &get("method"),
            problems
        ),
        document = html::text_input(
            "document",
            "Documents seen",
            "For example: passport, council tax bill",
            &get("document"),
            200,
            problems
        ),
        verified_by = html::text_input(
            "verified_by",
            "Checked by",
            "Leave empty if you checked it yourself",
            &get("verified_by"),
            200,
            problems
        ),
        email = html::text_input("email", "Email address (optional)", "", &get("email"), 254, problems),
        responsibilities = html::confirm(
            "responsibilities",
            "Responsibilities",
            "The patient has been told what online access means and their responsibilities (keeping details safe, what the record may show)",
            checked("responsibilities"),
            problems
        ),
        coercion = html::confirm(
            "coercion",
            "Coercion",
            "I have considered whether the patient may be under pressure from someone else to share their record",
            checked("coercion"),
            problems
        ),
        capacity = html::confirm(
            "capacity",
            "Capacity",
            "I have considered whether the patient has the capacity to manage online access",
            checked("capacity"),
            problems
        ),
        appointments = html::select(
            "appointments",
            "Appointments",
            SERVICE_LEVELS,
            &or(get("appointments"), "manage"),
            problems
        ),
        prescriptions = html::select(
            "prescriptions",
            "Repeat prescriptions",
            SERVICE_LEVELS,
            &or(get("prescriptions"), "manage"),
            problems
        ),
        record = html::select("record", "GP record", LEVELS, &or(get("record"), "summary"), problems),
        from = html::text_input(
            "from",
            "Record access from (optional)",
            "Full record access only: a date as 2026-12-08 for entries from then; leave empty for from today",
            &get("from"),
            10,
            problems
        ),
    );
    format!(
        r#"{summary}<p>Registering <strong>{name}</strong>. Every step must be completed: the gateway refuses a registration without them.</p>{form}<p>{back}</p>"#,
        summary = html::error_summary(problems),
        name = esc(name),
        form = html::form(
            &format!("{me}/register"),
            &staff.session.csrf,
            &fields,
            "Register and create the account",
            false
        ),
        back = html::link(me, "Cancel"),
    )
}

async fn name_of(console: &Console, staff: &Staff, id: &str) -> String {
    console
        .api
        .get(&staff.session, &patient_path(id))
        .await
        .map(|p| view::patient_name(&p))
        .unwrap_or_default()
}

async fn register_form(console: web::Data<Console>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let patient = match console.api.get(&staff.session, &patient_path(&id)).await {
        Ok(p) => p,
        Err(r) => return refused_page(&staff, "Register for online services", CURRENT, &r, CURRENT),
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let body = registration_form(&staff, &me, &view::patient_name(&patient), None, &[]);
    staff_page(&staff, "Register for online services", CURRENT, &body)
}

async fn register(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, form) = match posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let mut problems = Vec::new();
    let method = form.get("method");
    if !METHODS.iter().any(|(v, _)| !v.is_empty() && *v == method) {
        problems.push(Problem::at("method", "Choose how the patient's identity was checked"));
    }
    let document = form.text(
        "document",
        "the documents seen",
        200,
        method == "documents-in-person",
        &mut problems,
    );
    let verified_by = form.text("verified_by", "who checked", 200, false, &mut problems);
    let email = form.text("email", "the email address", 254, false, &mut problems);
    for (field, what) in [
        (
            "responsibilities",
            "Confirm the patient has been told their responsibilities",
        ),
        ("coercion", "Confirm you have considered coercion"),
        ("capacity", "Confirm you have considered the patient's capacity"),
    ] {
        if !form.checked(field) {
            problems.push(Problem::at(field, what));
        }
    }
    let level = |field: &str, list: &[(&str, &str)], problems: &mut Vec<Problem>| {
        let v = form.get(field).to_owned();
        if !list.iter().any(|(c, _)| *c == v) {
            problems.push(Problem::at(field, "Choose one of the options"));
        }
        v
    };
    let appointments = level("appointments", SERVICE_LEVELS, &mut problems);
    let prescriptions = level("prescriptions", SERVICE_LEVELS, &mut problems);
    let record = level("record", LEVELS, &mut problems);
    let from = form.text("from", "the date", 10, false, &mut problems);
    if !from.is_empty() && crate::fhir::operations::parse_date(&from).is_none() {
        problems.push(Problem::at(
            "from",
            "Enter the date as year-month-day, for example 2026-12-08",
        ));
    }
    if !problems.is_empty() {
        super::incomplete_on_record(&state, &req, &staff, &problems).await;
        let who = name_of(&console, &staff, &id).await;
        let page = registration_form(&staff, &me, &who, Some(&form), &problems);
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            html::page("Register for online services", CURRENT, Some(&staff.chrome()), &page),
        );
    }
    let mut verification = vec![json!({"name": "method", "valueCode": method})];
    if !document.is_empty() {
        verification.push(json!({"name": "document", "valueString": document}));
    }
    if !verified_by.is_empty() {
        verification.push(json!({"name": "verifiedBy", "valueString": verified_by}));
    }
    let mut record_parts = vec![json!({"name": "level", "valueCode": record})];
    if !from.is_empty() {
        record_parts.push(json!({"name": "from", "valueDate": from}));
    }
    let mut parameter = vec![
        json!({"name": "identityVerification", "part": verification}),
        json!({"name": "responsibilitiesAcknowledged", "valueBoolean": true}),
        json!({"name": "coercionConsidered", "valueBoolean": true}),
        json!({"name": "capacityConsidered", "valueBoolean": true}),
        json!({"name": "services", "part": [
            {"name": "appointments", "valueCode": appointments},
            {"name": "prescriptions", "valueCode": prescriptions}]}),
        json!({"name": "recordAccess", "part": record_parts}),
    ];
    if !email.is_empty() {
        parameter.push(json!({"name": "email", "valueString": email}));
    }
    let body = json!({"resourceType": "Parameters", "parameter": parameter});
    let path = format!("{}/$register-online-services", patient_path(&id));
    match console.api.post(&staff.session, &path, &body, &form.request_id()).await {
        Ok(_) => super::redirect(&format!(
            "{me}?done={}",
            url_part("Registered. The account is being created at the supplier; print the letter for the patient.")
        )),
        Err(r) => {
            // A refusal about a field is shown at it; any other (a role, an outage) above the form.
            let problems = vec![match r.field.as_deref() {
                Some(expression) => Problem::at(registration_field(expression), r.plain()),
                None => Problem::general(r.plain()),
            }];
            let who = name_of(&console, &staff, &id).await;
            let page = registration_form(&staff, &me, &who, Some(&form), &problems);
            let status = r.status_code();
            respond(
                status,
                html::page("Register for online services", CURRENT, Some(&staff.chrome()), &page),
            )
        }
    }
}

async fn letter(console: web::Data<Console>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let l = match console
        .api
        .get(&staff.session, &format!("{}/$registration-letter", patient_path(&id)))
        .await
    {
        Ok(l) => l,
        Err(r) => return refused_page(&staff, "Registration letter", CURRENT, &r, &me),
    };
    let s = |k: &str| esc(l[k].as_str().unwrap_or_default());
    let lines = |k: &str| {
        l[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(esc)
            .collect::<Vec<_>>()
    };
    let body = format!(
        r#"<div class="actions no-print"><button type="button" class="button" data-print hidden>Print this letter</button><a class="button button--secondary" href="{me}/letter.pdf">Download as PDF</a>{back}</div>
<article class="letter" aria-label="Registration letter">
<p>{practice}<br>{address}<br>{telephone}</p>
<p>Dear {patient},</p>
<p>You are registered for GP online services. Use these details to link your GP practice to the NHS App or your online services app.</p>
<dl class="summary">
<div><dt>Practice ID (ODS code)</dt><dd class="key">{practice_id}</dd></div>
<div><dt>Account ID</dt><dd class="key">{account_id}</dd></div>
<div><dt>Linkage Key</dt><dd class="key">{key}</dd></div>
<div><dt>{id_label}</dt><dd>{nhs}</dd></div>
<div><dt>Printed on</dt><dd>{printed}</dd></div>
<div><dt>Valid until</dt><dd>{expires}</dd></div>
</dl>
<h2>Switched on for you</h2><ul>{on}</ul>
<h2>Keeping your account safe</h2><ul>{guidance}</ul>
</article>"#,
        back = html::link(&me, "Back to the patient"),
        practice = s("practiceName"),
        address = lines("practiceAddress").join("<br>"),
        telephone = s("practiceTelephone"),
        patient = s("patientName"),
        practice_id = s("practiceId"),
        account_id = s("accountId"),
        key = s("linkageKey"),
        id_label = esc(l["patientIdentifier"]["label"].as_str().unwrap_or("NHS number")),
        nhs = esc(&view::spaced(
            l["patientIdentifier"]["value"].as_str().unwrap_or_default()
        )),
        printed = s("printedOn"),
        expires = s("expiresOn"),
        on = lines("switchedOn")
            .iter()
            .map(|x| format!("<li>{x}</li>"))
            .collect::<String>(),
        guidance = lines("guidance")
            .iter()
            .map(|x| format!("<li>{x}</li>"))
            .collect::<String>(),
    );
    staff_page(&staff, "Registration letter", CURRENT, &body)
}

async fn letter_pdf(console: web::Data<Console>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    match console
        .api
        .get_as(
            &staff.session,
            &format!("{}/$registration-letter", patient_path(&id)),
            "application/pdf",
        )
        .await
    {
        Ok(a) if a.content_type.starts_with("application/pdf") => HttpResponse::Ok()
            .content_type("application/pdf")
            .insert_header(("cache-control", "no-store"))
            .insert_header(("content-disposition", "inline; filename=\"registration-letter.pdf\""))
            .body(a.bytes),
        Ok(_) => refused_page(
            &staff,
            "Registration letter",
            CURRENT,
            &super::api::Refusal {
                status: 502,
                code: String::new(),
                text: "the letter did not come as a PDF".into(),
                field: None,
            },
            &me,
        ),
        Err(r) => refused_page(&staff, "Registration letter", CURRENT, &r, &me),
    }
}

async fn codes(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, form) = match posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let code = AccessCode::parse(form.get("code"));
    let operation = match form.get("change") {
        "add" => Some("$add-record-access-code"),
        "remove" => Some("$remove-record-access-code"),
        _ => None,
    };
    let (Some(code), Some(operation)) = (code, operation) else {
        let mut problems = Vec::new();
        if code.is_none() {
            problems.push(Problem::at("code", "Choose a code"));
        }
        if operation.is_none() {
            problems.push(Problem::at("change", "Choose add or remove"));
        }
        super::incomplete_on_record(&state, &req, &staff, &problems).await;
        let mut page = render_patient(&console, &staff, &id, "", &problems).await;
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return page;
    };
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "code", "valueCoding": {"system": "http://snomed.info/sct", "code": code.code()}}]});
    let path = format!("{}/{operation}", patient_path(&id));
    match console.api.post(&staff.session, &path, &body, &form.request_id()).await {
        Ok(_) => super::redirect(&format!(
            "{me}?done={}",
            url_part("The record-access codes were changed.")
        )),
        Err(r) => {
            let problem = match r.field {
                Some(_) => Problem::at("code", r.plain()),
                None => Problem::general(r.plain()),
            };
            let mut page = render_patient(&console, &staff, &id, "", &[problem]).await;
            *page.status_mut() = r.status_code();
            page
        }
    }
}

async fn reset(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, form) = match posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let me = format!("/console/patients/{}", url_part(&id));
    let path = format!("{}/$reset-online-account", patient_path(&id));
    let body = json!({"resourceType": "Parameters"});
    match console.api.post(&staff.session, &path, &body, &form.request_id()).await {
        Ok(_) => super::redirect(&format!(
            "{me}?done={}",
            url_part("A new linkage key was issued; the old one no longer works. Print a new letter.")
        )),
        Err(r) => {
            let mut page = render_patient(&console, &staff, &id, "", &[Problem::general(r.plain())]).await;
            *page.status_mut() = r.status_code();
            page
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/patients", web::get().to(find))
        .route("/patients/{id}", web::get().to(patient))
        .route("/patients/{id}/register", web::get().to(register_form))
        .route("/patients/{id}/register", web::post().to(register))
        .route("/patients/{id}/letter", web::get().to(letter))
        .route("/patients/{id}/letter.pdf", web::get().to(letter_pdf))
        .route("/patients/{id}/codes", web::post().to(codes))
        .route("/patients/{id}/reset", web::post().to(reset))
        .route("/patients/{id}/explain", web::get().to(explain));
}
