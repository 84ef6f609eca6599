use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::identity::IssuerStatus;
use crate::services::KeptReads;
use crate::state::AppState;

/// The server's CapabilityStatement (no token needed).
#[utoipa::path(
    tag = "Conformance",
    responses((status = 200, description = "CapabilityStatement", content_type = "application/fhir+json", body = Object))
)]
#[get("/metadata")]
pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::fhir::FHIR_JSON)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(capability_for(&state.base_url))
}

/// The routes the server registers, read from the same registration that serves them.
fn routes() -> &'static [crate::fhir::capability::Route] {
    static ROUTES: std::sync::OnceLock<Vec<crate::fhir::capability::Route>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        let api = super::openapi();
        let mut out = vec![];
        for (path, item) in &api.paths.paths {
            let ops = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let params = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter_map(|p| match p {
                        utoipa::openapi::RefOr::T(p) => Some(p),
                        utoipa::openapi::RefOr::Ref(_) => None,
                    })
                    .filter(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                    .map(|p| (p.name.clone(), p.description.clone().unwrap_or_default()))
                    .collect();
                out.push(crate::fhir::capability::Route {
                    path: path.clone(),
                    method: method.to_owned(),
                    params,
                    summary: op.summary.clone().unwrap_or_default(),
                });
            }
        }
        out
    })
}

/// The CapabilityStatement, built once per base URL.
fn capability_for(base_url: &str) -> actix_web::web::Bytes {
    static BUILT: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, actix_web::web::Bytes>>> =
        std::sync::OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    built
        .entry(base_url.to_owned())
        .or_insert_with(|| {
            let date = crate::fhir::instant(chrono::Utc::now());
            let statement = crate::fhir::capability_statement(base_url, &date, routes());
            actix_web::web::Bytes::from(serde_json::to_vec(&statement).unwrap_or_default())
        })
        .clone()
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// pass | fail
    pub status: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthCheck>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthCheck {
    pub component: String,
    /// pass | fail | warn
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Liveness: the process is running.
#[utoipa::path(tag = "Operations", responses((status = 200, description = "Alive", body = Health)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(Health {
        status: "pass".into(),
        checks: vec![],
    })
}

/// Readiness: the database answers (as last heard, at most a second ago) and the audit trail is writing; a failing check's detail says why. Each identity provider is reported (warn when unreachable)
/// but does not make the gateway unready, so one provider's outage does not take down the rest.
#[utoipa::path(
    tag = "Operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Health),
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let mut checks = Vec::new();
    // From what the database watcher last heard: never a round trip of its own, so the answer
    // comes at once whatever the database is doing.
    let db_problem = state.core.pool.availability().problem();
    let db_ok = db_problem.is_none();
    checks.push(HealthCheck {
        component: "database".into(),
        status: if db_ok { "pass" } else { "fail" }.into(),
        detail: db_problem,
    });
    let audit_ok = state.core.audit.health().is_writing();
    checks.push(HealthCheck {
        component: "audit".into(),
        status: if audit_ok { "pass" } else { "fail" }.into(),
        detail: (!audit_ok).then(|| "the audit trail is not writing; requests that need it are refused".into()),
    });
    // Reported, never a reason to be unready: without kept reads everything is read afresh.
    let (status, detail) = match crate::services::kept_reads(&state.core) {
        KeptReads::Off => ("pass", "off: every read goes to the database".to_owned()),
        KeptReads::Keeping {
            lifetime,
            from_kept,
            from_database,
        } => (
            "pass",
            format!(
                "kept for up to {} s; {from_kept} reads answered from kept, {from_database} from the database",
                lifetime.as_secs()
            ),
        ),
        KeptReads::NotListening => (
            "warn",
            "not listening for changes: nothing is kept, every read goes to the database".to_owned(),
        ),
    };
    checks.push(HealthCheck {
        component: "kept_reads".into(),
        status: status.into(),
        detail: Some(detail),
    });
    for (name, kind, status) in state.verifier.status().await {
        let (s, detail) = match status {
            IssuerStatus::Up { keys } => ("pass", format!("{} issuer, {keys} signing key(s)", kind.as_str())),
            IssuerStatus::Down(_) => ("warn", format!("{} issuer unreachable", kind.as_str())),
        };
        checks.push(HealthCheck {
            component: format!("issuer:{name}"),
            status: s.into(),
            detail: Some(detail),
        });
    }
    let ready = db_ok && audit_ok;
    let body = Health {
        status: if ready { "pass" } else { "fail" }.into(),
        checks,
    };
    if ready {
        HttpResponse::Ok()
            .insert_header(("cache-control", "no-store"))
            .json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("cache-control", "no-store"))
            .json(body)
    }
}

/// Prometheus metrics.
#[utoipa::path(
    tag = "Operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
