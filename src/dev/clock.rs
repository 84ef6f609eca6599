//! The dev profile's clock control: `GET /dev/clock` tells the gateway's idea of now;
//! `PUT /dev/clock` with `{"now": "2031-04-10T09:00:00Z"}` (or `{"offsetDays": 365}`) moves it,
//! so age-based rules (a child turning 11, the review age, 16) can be tried; `DELETE` puts it
//! back. Only the dev profile serves these paths; production refuses the dev profile.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Move {
    now: Option<String>,
    offset_days: Option<i64>,
}

fn shown(state: &AppState) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "now": crate::fhir::instant(state.core.clock.now().and_utc()),
        "offsetSeconds": (state.core.clock.now() - crate::db::now()).num_seconds(),
    }))
}

fn refused(message: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": message}))
}

async fn read(state: web::Data<AppState>) -> HttpResponse {
    shown(&state)
}

async fn set(state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let Ok(m) = serde_json::from_slice::<Move>(&body) else {
        return refused("send {\"now\": \"<RFC 3339 time>\"} or {\"offsetDays\": <days>}");
    };
    let offset = match (m.now, m.offset_days) {
        (Some(now), None) => match chrono::DateTime::parse_from_rfc3339(&now) {
            Ok(t) => t.with_timezone(&chrono::Utc).naive_utc() - crate::db::now(),
            Err(_) => return refused("now must be an RFC 3339 time such as 2031-04-10T09:00:00Z"),
        },
        (None, Some(days)) if days.abs() <= 365 * 200 => chrono::Duration::days(days),
        _ => return refused("send exactly one of now and offsetDays (at most 200 years)"),
    };
    state.core.clock.set_offset(offset);
    tracing::warn!(offset_seconds = offset.num_seconds(), "the dev clock was moved");
    shown(&state)
}

async fn reset(state: web::Data<AppState>) -> HttpResponse {
    state.core.clock.set_offset(chrono::Duration::zero());
    shown(&state)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dev/clock", web::get().to(read))
        .route("/dev/clock", web::put().to(set))
        .route("/dev/clock", web::delete().to(reset));
}
