//! The practice's access model, and the move to opt-in as a job with a live progress bar. The
//! job runs in the gateway, resumes after a restart on any instance, and this page picks it up
//! again whenever it is opened.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::html::{self, Problem, esc, url_part};
use super::view;
use super::{Console, Staff, posted, signed_in, staff_page};
use crate::domain::record_access::OPT_IN_JOB;
use crate::state::AppState;

const CURRENT: &str = "/console/opt-in";

fn output(task: &Value, name: &str) -> i64 {
    view::task_value(task, name)["valueInteger"].as_i64().unwrap_or(0)
}

fn finished(task: &Value) -> bool {
    matches!(task["status"].as_str(), Some("completed" | "failed" | "cancelled"))
}

fn progress_text(task: &Value) -> String {
    let (processed, total) = (output(task, "processed"), output(task, "total"));
    if finished(task) {
        format!(
            "Finished: {processed} of {total} patients checked; {} given the review code, {} already had it, {} accounts' automatic record access withdrawn.",
            output(task, "coded"),
            output(task, "alreadyCoded"),
            output(task, "revoked")
        )
    } else {
        format!("{processed} of {total} patients checked so far.")
    }
}

struct Practice {
    id: String,
    name: String,
    model: String,
}

async fn practice(console: &Console, staff: &Staff) -> Result<Practice, super::api::Refusal> {
    let path = format!("/Organization?identifier={}", url_part(staff.session.practice()));
    let bundle = console.api.get(&staff.session, &path).await?;
    let org = view::entries(&bundle).first().copied().cloned().unwrap_or_default();
    let model = org["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extension"].as_array())
        .flatten()
        .find(|e| e["url"] == "accessModel")
        .and_then(|e| e["valueCode"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    Ok(Practice {
        id: org["id"].as_str().unwrap_or_default().to_owned(),
        name: org["name"].as_str().unwrap_or_default().to_owned(),
        model,
    })
}

/// The practice's newest opt-in job, if any.
async fn latest_job(console: &Console, staff: &Staff) -> Option<Value> {
    let path = format!("/Task?owner={}&_count=100", url_part(staff.session.practice()));
    let bundle = console.api.get(&staff.session, &path).await.ok()?;
    view::entries(&bundle)
        .into_iter()
        .filter(|t| t["code"]["coding"][0]["code"] == OPT_IN_JOB)
        .max_by(|a, b| a["authoredOn"].as_str().cmp(&b["authoredOn"].as_str()))
        .cloned()
}

async fn render(console: &Console, staff: &Staff, problems: &[Problem], status: StatusCode) -> HttpResponse {
    let p = match practice(console, staff).await {
        Ok(p) => p,
        Err(r) => return super::refused_page(staff, "Access model", CURRENT, &r, "/console/"),
    };
    let mut body = format!(
        "{}{}",
        html::error_summary(problems),
        html::summary_list(&[
            ("Practice", esc(&format!("{} ({})", p.name, staff.session.practice()))),
            ("Record access model", view::tag(&p.model)),
        ])
    );
    let job = latest_job(console, staff).await;
    if let Some(task) = &job {
        let id = task["id"].as_str().unwrap_or_default();
        let (processed, total) = (output(task, "processed"), output(task, "total"));
        let running = !finished(task);
        body.push_str(&format!(
            r#"<h2>{heading}</h2><div class="card" {attr}><label for="opt-in-progress">Progress of the move to opt-in</label>
<progress id="opt-in-progress" max="{max}" value="{processed}">{percent}%</progress>
<p data-progress-text aria-live="polite">{text}</p>{refresh}</div>"#,
            heading = if running { "The move is running" } else { "The last move" },
            attr = if running {
                format!(r#"data-progress-url="/console/opt-in/progress?task={}""#, esc(&url_part(id)))
            } else {
                String::new()
            },
            max = total.max(1),
            percent = if total > 0 { processed * 100 / total } else { 100 },
            text = esc(&progress_text(task)),
            refresh = if running {
                r#"<p class="hint">It goes on by itself, even if you close this page or the gateway restarts. <a href="/console/opt-in">Refresh</a></p>"#
            } else {
                ""
            },
        ));
    }
    let running = job.as_ref().is_some_and(|t| !finished(t));
    // A running move goes on by itself; one that failed can be run again (it picks up where it
    // stopped, and what it did already is not done twice).
    let failed = job.as_ref().is_some_and(|t| t["status"] == "failed");
    if (p.model != "opt-in" && !running) || failed {
        let fields = format!(
            "{}{}",
            html::text_input(
                "days",
                "Also code patients turning 16 within this many days",
                "0 to 365; 0 codes only those who are 16 or over now",
                "0",
                3,
                problems
            ),
            html::confirm(
                "confirm",
                "Confirm the move",
                "Move the practice to opt-in: patients without record access get 1364731000000104, and accounts given record access automatically are told to give none until the patient opts in",
                false,
                problems
            ),
        );
        body.push_str(&format!(
            "<h2>{}</h2>{}",
            if failed { "Run the move again" } else { "Move to opt-in" },
            html::form(
                CURRENT,
                &staff.session.csrf,
                &fields,
                if failed { "Run the move again" } else { "Start the move" },
                false
            )
        ));
    }
    let mut page = staff_page(staff, "Access model", CURRENT, &body);
    *page.status_mut() = status;
    page
}

async fn show(console: web::Data<Console>, req: HttpRequest) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    render(&console, &staff, &[], StatusCode::OK).await
}

async fn start(
    console: web::Data<Console>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (staff, form) = match posted(&console, &state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut problems = Vec::new();
    let days = form.get("days").trim();
    let days: u32 = if days.is_empty() {
        0
    } else {
        match days.parse::<u32>() {
            Ok(d) if d <= 365 => d,
            _ => {
                problems.push(Problem::at("days", "Enter a whole number of days from 0 to 365"));
                0
            }
        }
    };
    if !form.checked("confirm") {
        problems.push(Problem::at("confirm", "Confirm the move to opt-in"));
    }
    if !problems.is_empty() {
        super::incomplete_on_record(&state, &req, &staff, &problems).await;
        return render(&console, &staff, &problems, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let p = match practice(&console, &staff).await {
        Ok(p) => p,
        Err(r) => {
            return render(
                &console,
                &staff,
                &[Problem::general(r.plain())],
                StatusCode::BAD_GATEWAY,
            )
            .await;
        }
    };
    let body = json!({"resourceType": "Parameters", "parameter": [{"name": "turningSixteenWithinDays", "valueInteger": days}]});
    let path = format!("/Organization/{}/$apply-opt-in-model", url_part(&p.id));
    match console.api.post(&staff.session, &path, &body, &form.request_id()).await {
        Ok(_) => super::redirect(CURRENT),
        Err(r) => {
            let status = r.status_code();
            render(&console, &staff, &[Problem::at("confirm", r.plain())], status).await
        }
    }
}

#[derive(Deserialize)]
struct ProgressQuery {
    task: String,
}

/// The job's progress for the page's script.
async fn progress(console: web::Data<Console>, req: HttpRequest, q: web::Query<ProgressQuery>) -> HttpResponse {
    let staff = match signed_in(&console, &req).await {
        Ok(s) => s,
        Err(_) => return HttpResponse::Unauthorized().json(json!({"error": "signed out"})),
    };
    match console
        .api
        .get(&staff.session, &format!("/Task/{}", url_part(&q.task)))
        .await
    {
        Ok(task) => HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(json!({
                "processed": output(&task, "processed"),
                "total": output(&task, "total"),
                "finished": finished(&task),
                "text": progress_text(&task),
            })),
        Err(r) => HttpResponse::build(r.status_code()).json(json!({"error": r.plain()})),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/opt-in", web::get().to(show))
        .route("/opt-in", web::post().to(start))
        .route("/opt-in/progress", web::get().to(progress));
}
