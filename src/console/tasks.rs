//! The practice's worklist: provisioning at the supplier (retry what failed), record reviews
//! (approve, or decline with a reason) and proxy requests waiting for a decision.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::html::{self, Problem, esc, url_part};
use super::view;
use super::{Console, Staff, posted, signed_in, staff_page};
use crate::state::AppState;

const CURRENT: &str = "/console/tasks";

/// A Task's input or output as text.
fn input(task: &Value, name: &str) -> String {
    let v = view::task_value(task, name);
    v["valueString"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| v["valueInteger"].as_i64().map(|n| n.to_string()))
        .unwrap_or_default()
}

/// The Tasks of a searchset Bundle as a table, with the action each allows.
pub fn task_table(bundle: &Value, csrf: &str) -> String {
    let rows: Vec<Vec<String>> = view::entries(bundle)
        .into_iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap_or_default();
            let kind = t["code"]["coding"][0]["code"].as_str().unwrap_or_default();
            let status = t["status"].as_str().unwrap_or_default();
            let patient = t["for"]["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/"))
                .map(|p| html::link(&format!("/console/patients/{}", url_part(p)), "Patient"))
                .unwrap_or_else(|| "Practice".into());
            let mut detail = t["businessStatus"]["text"].as_str().unwrap_or_default().to_owned();
            let error = input(t, "lastError");
            if !error.is_empty() {
                detail = format!("{detail} Last error: {error}");
            }
            let action = match (kind, status) {
                (_, "failed") if !kind.contains("review") && kind != "apply-opt-in-model" => html::form(
                    &format!("/console/tasks/{}/retry", url_part(id)),
                    csrf,
                    "",
                    "Retry",
                    true,
                ),
                ("record-review", "requested") => review_form(id, csrf),
                ("proxy-review", "requested") => t["focus"]["reference"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("Consent/"))
                    .map(|role| html::link(&format!("/console/proxies/{}", url_part(role)), "Decide"))
                    .unwrap_or_default(),
                ("apply-opt-in-model", _) => html::link("/console/opt-in", "Follow"),
                _ => String::new(),
            };
            vec![
                esc(t["code"]["coding"][0]["display"].as_str().unwrap_or(kind)),
                patient,
                view::tag(status),
                esc(detail.trim()),
                esc(t["authoredOn"]
                    .as_str()
                    .unwrap_or_default()
                    .get(..16)
                    .unwrap_or_default()),
                action,
            ]
        })
        .collect();
    html::table(
        "Tasks",
        &["Task", "For", "Status", "Detail", "Created", "Action"],
        &rows,
    )
}

fn review_form(id: &str, csrf: &str) -> String {
    let fields = format!(
        "{}{}",
        html::select(
            &format!("decision-{id}"),
            "Decision",
            &[("approve", "Approve: switch the access on"), ("decline", "Decline")],
            "approve",
            &[]
        ),
        html::textarea(&format!("reason-{id}"), "Note, or reason for declining", "", 2000, &[]),
    );
    html::form(
        &format!("/console/tasks/{}/review", url_part(id)),
        csrf,
        &fields,
        "Record the decision",
        true,
    )
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    done: Option<String>,
}

const STATUSES: &[(&str, &str)] = &[
    ("", "Everything open"),
    ("requested", "Waiting"),
    ("in-progress", "In progress"),
    ("failed", "Failed"),
];

async fn render(console: &Console, staff: &Staff, status: &str, notice: &str, problems: &[Problem]) -> HttpResponse {
    let mut path = format!("/Task?owner={}&_count=100", url_part(staff.session.practice()));
    if !status.is_empty() {
        path.push_str(&format!("&status={}", url_part(status)));
    }
    let table = match console.api.get(&staff.session, &path).await {
        Ok(bundle) => task_table(&bundle, &staff.session.csrf),
        Err(r) => format!("<p>{}</p>", esc(&r.plain())),
    };
    let body = format!(
        r#"{summary}{notice}<form method="get" action="/console/tasks">{select}<button type="submit" class="button button--secondary">Show</button></form>{table}"#,
        summary = html::error_summary(problems),
        select = html::select("status", "Show", STATUSES, status, &[]),
    );
    staff_page(staff, "Tasks and reviews", CURRENT, &body)
}

async fn list(console: web::Data<Console>, req: HttpRequest, q: web::Query<ListQuery>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let status = q
        .status
        .as_deref()
        .filter(|s| STATUSES.iter().any(|(v, _)| v == s))
        .unwrap_or_default();
    let notice = q.done.as_deref().map(html::notice).unwrap_or_default();
    render(&console, &staff, status, &notice, &[]).await
}

async fn retry(
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
    let path = format!("/Task/{}/$retry", url_part(&id));
    match console
        .api
        .post(
            &staff.session,
            &path,
            &json!({"resourceType": "Parameters"}),
            &form.request_id(),
        )
        .await
    {
        Ok(_) => super::redirect(&format!("{CURRENT}?done={}", url_part("The Task was queued again."))),
        Err(r) => failed(&console, &staff, &r).await,
    }
}

async fn failed(console: &Console, staff: &Staff, r: &super::api::Refusal) -> HttpResponse {
    let mut page = render(console, staff, "", "", &[Problem::general(r.plain())]).await;
    *page.status_mut() = r.status_code();
    page
}

async fn review(
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
    let decision_field = format!("decision-{id}");
    let reason_field = format!("reason-{id}");
    let mut problems = Vec::new();
    let reason = form.text(
        &reason_field,
        "a reason",
        2000,
        form.get(&decision_field) == "decline",
        &mut problems,
    );
    let parameter = match form.get(&decision_field) {
        "approve" if reason.is_empty() => vec![],
        "approve" => vec![json!({"name": "note", "valueString": reason})],
        "decline" => vec![
            json!({"name": "decision", "valueCode": "decline"}),
            json!({"name": "reason", "valueString": reason}),
        ],
        _ => {
            problems.push(Problem::at(&decision_field, "Choose approve or decline"));
            vec![]
        }
    };
    if !problems.is_empty() {
        super::incomplete_on_record(&state, &req, &staff, &problems).await;
        let mut page = render(&console, &staff, "", "", &problems).await;
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        return page;
    }
    let path = format!("/Task/{}/$complete", url_part(&id));
    let body = json!({"resourceType": "Parameters", "parameter": parameter});
    match console.api.post(&staff.session, &path, &body, &form.request_id()).await {
        Ok(_) => super::redirect(&format!(
            "{CURRENT}?done={}",
            url_part("The review decision was recorded.")
        )),
        Err(r) => failed(&console, &staff, &r).await,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tasks", web::get().to(list))
        .route("/tasks/{id}/retry", web::post().to(retry))
        .route("/tasks/{id}/review", web::post().to(review));
}
