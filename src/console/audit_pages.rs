//! The audit trail: who did what to whom, and the engine's reason, searched by patient, date,
//! outcome and person.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;

use super::html::{self, Problem, esc, url_part};
use super::view;
use super::{Console, signed_in, staff_page};

const CURRENT: &str = "/console/audit";

#[derive(Deserialize)]
struct AuditQuery {
    patient: Option<String>,
    date: Option<String>,
    outcome: Option<String>,
    agent: Option<String>,
    offset: Option<u32>,
}

const OUTCOMES: &[(&str, &str)] = &[("", "Any outcome"), ("0", "Allowed"), ("4", "Refused"), ("8", "Failed")];

fn detail(event: &Value, kind: &str) -> String {
    event["entity"][0]["detail"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["type"] == kind)
        .and_then(|d| d["valueString"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn search(console: web::Data<Console>, req: HttpRequest, q: web::Query<AuditQuery>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let patient = q.patient.as_deref().unwrap_or_default().trim().to_owned();
    let date = q.date.as_deref().unwrap_or_default().trim().to_owned();
    let outcome = q.outcome.as_deref().unwrap_or_default().to_owned();
    let agent = q.agent.as_deref().unwrap_or_default().trim().to_owned();
    let offset = q.offset.unwrap_or(0).min(100_000);
    let mut problems = Vec::new();
    if !date.is_empty() && crate::fhir::operations::parse_date(&date).is_none() {
        problems.push(Problem::at(
            "date",
            "Enter the date as year-month-day, for example 2026-12-08",
        ));
    }
    if !OUTCOMES.iter().any(|(v, _)| *v == outcome) {
        problems.push(Problem::at("outcome", "Choose an outcome"));
    }
    for (field, v) in [("patient", &patient), ("agent", &agent)] {
        if v.chars().count() > 300 {
            problems.push(Problem::at(field, "Enter at most 300 characters"));
        }
    }
    let mut results = String::new();
    if problems.is_empty() {
        let mut path = format!("/AuditEvent?_count=50&_offset={offset}");
        for (name, v) in [
            ("patient", &patient),
            ("date", &date),
            ("outcome", &outcome),
            ("agent", &agent),
        ] {
            if !v.is_empty() {
                path.push_str(&format!("&{name}={}", url_part(v)));
            }
        }
        match console.api.get(&staff.session, &path).await {
            Ok(bundle) => {
                let rows: Vec<Vec<String>> = view::entries(&bundle)
                    .into_iter()
                    .map(|e| {
                        let target = e["entity"][0]["what"]["reference"].as_str().unwrap_or_default();
                        let target = match target.strip_prefix("Patient/") {
                            Some(p) => html::link(&format!("/console/patients/{}", url_part(p)), p),
                            None => esc(target),
                        };
                        vec![
                            esc(e["recorded"].as_str().unwrap_or_default().get(..19).unwrap_or_default()),
                            esc(e["agent"][0]["who"]["identifier"]["value"].as_str().unwrap_or_default()),
                            esc(e["subtype"][0]["code"].as_str().unwrap_or_default()),
                            target,
                            view::tag(match e["outcome"].as_str() {
                                Some("0") => "allowed",
                                Some("4") => "refused",
                                _ => "failed",
                            }),
                            esc(&format!(
                                "{} {}",
                                e["outcomeDesc"].as_str().unwrap_or_default(),
                                detail(e, "code")
                            )),
                        ]
                    })
                    .collect();
                let total = bundle["total"].as_u64().unwrap_or(0);
                let next = if u64::from(offset) + 50 < total {
                    let mut link = format!("/console/audit?offset={}", offset + 50);
                    for (name, v) in [
                        ("patient", &patient),
                        ("date", &date),
                        ("outcome", &outcome),
                        ("agent", &agent),
                    ] {
                        if !v.is_empty() {
                            link.push_str(&format!("&{name}={}", url_part(v)));
                        }
                    }
                    format!("<p>{}</p>", html::link(&link, "Next 50 events"))
                } else {
                    String::new()
                };
                results = format!(
                    r#"<p role="status">{total} events.</p>{}{next}"#,
                    html::table(
                        "Audit events, newest first",
                        &["When (UTC)", "Who", "Action", "About", "Outcome", "Why"],
                        &rows
                    )
                );
            }
            Err(r) => problems.push(Problem::general(r.plain())),
        }
    }
    let body = format!(
        r#"{summary}<form method="get" action="/console/audit" role="search">{p}{d}{o}{a}<button type="submit" class="button button--secondary">Search</button></form>{results}"#,
        summary = html::error_summary(&problems),
        p = html::text_input(
            "patient",
            "Patient id",
            "As in the patient's page address, for example patient-jane-smith",
            &patient,
            300,
            &problems
        ),
        d = html::text_input("date", "On the day", "For example 2026-12-08", &date, 10, &problems),
        o = html::select("outcome", "Outcome", OUTCOMES, &outcome, &problems),
        a = html::text_input(
            "agent",
            "Who",
            "A caller as the trail shows them",
            &agent,
            300,
            &problems
        ),
    );
    staff_page(&staff, "Audit trail", CURRENT, &body)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(search));
}
