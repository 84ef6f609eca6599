//! Bulk export of a practice's audit trail for auditors: FHIR Bulk Data `$export` of
//! `AuditEvent` (kick-off, status, files and cancellation, in the Bulk Data Access IG's
//! asynchronous pattern).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, web};

use super::body::resource_id;
use super::error::{ApiError, ErrorCode};
use crate::domain::OdsCode;
use crate::domain::audit::ExportStatus;
use crate::domain::policy::Action;
use crate::fhir::bulk_data::{ExportManifest, FHIR_NDJSON, manifest, status_url};
use crate::fhir::{ODS_SYSTEM, OperationOutcome};
use crate::services::access::{self, Target};
use crate::services::{Caller, audit_export};
use crate::state::AppState;

const KICK_OFF_PARAMS: [&str; 5] = ["_since", "_until", "practice", "_type", "_outputFormat"];
/// How long a client is asked to wait between status polls.
const RETRY_AFTER_SECONDS: &str = "2";

fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSearchParameter, message.into()).at(name.to_owned())
}

/// `_since` and `_until`: a FHIR instant (`2026-12-01T00:00:00Z`) or a date, which stands for
/// its first moment in UTC.
fn instant_param(name: &str, raw: &str) -> Result<chrono::NaiveDateTime, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.naive_utc());
    }
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|_| raw.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| {
            bad(
                name,
                format!("{name} is a FHIR instant (2026-12-01T00:00:00Z) or a date (2026-12-01)"),
            )
        })
}

/// Whether the request says `Prefer: respond-async`, which the Bulk Data kick-off requires.
fn respond_async(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// Export a practice's audit trail for a period (roles allowed to audit at the practice).
///
/// FHIR Bulk Data kick-off: `Prefer: respond-async` is required. Answers 202 with
/// `Content-Location`, the status URL to poll. The export holds the AuditEvents about the
/// practice recorded at or after `_since` and before `_until` (and never later than the
/// kick-off), one per line, split into files of a fixed number of events.
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("_since" = Option<String>, Query, description = "Events recorded at or after this instant (or date, from its start in UTC); from the start of the trail when left out"),
        ("_until" = Option<String>, Query, description = "Events recorded before this instant (or date, from its start in UTC); the kick-off's time when left out or later"),
        ("practice" = Option<String>, Query, description = "The practice's ODS code (or https://fhir.nhs.uk/Id/ods-organization-code|CODE); may be left out by staff who may audit at one practice only"),
        ("_type" = Option<String>, Query, description = "AuditEvent (the only type exported)"),
        ("_outputFormat" = Option<String>, Query, description = "application/fhir+ndjson (also application/ndjson or ndjson)"),
        ("Prefer" = String, Header, description = "respond-async (required)"),
    ),
    responses(
        (status = 202, description = "Accepted: poll the URL in Content-Location",
            headers(("Content-Location" = String, description = "The export's status URL"))),
        (status = 400, description = "No Prefer: respond-async, or a missing, unknown or bad parameter (a period the wrong way round)", body = OperationOutcome),
        (status = 403, description = "The caller may not audit at the practice", body = OperationOutcome),
        (status = 404, description = "No practice has this ODS code", body = OperationOutcome),
        (status = 429, description = "TOO_MANY_REQUESTS: the practice holds as many exports as it may; Retry-After says when the first expires", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent/$export")]
#[tracing::instrument(skip_all)]
pub async fn kick_off(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // Whether the caller may export at all is decided before the request is read.
    access::authorize(&state.core, &caller, Action::ExportAudit, Target::Pending).await?;
    if !respond_async(&req) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "a bulk export runs asynchronously: send Prefer: respond-async",
        ));
    }
    let params = super::search::parse_query(req.query_string(), &KICK_OFF_PARAMS)?;
    if let Some(types) = params.get("_type")
        && types.split(',').any(|t| t.trim() != "AuditEvent")
    {
        return Err(bad("_type", "only AuditEvent is exported here"));
    }
    if let Some(format) = params.get("_outputFormat")
        && !matches!(
            format.as_str(),
            "application/fhir+ndjson" | "application/ndjson" | "ndjson"
        )
    {
        return Err(bad("_outputFormat", "the output format is application/fhir+ndjson"));
    }
    let since = params.get("_since").map(|v| instant_param("_since", v)).transpose()?;
    let until = params.get("_until").map(|v| instant_param("_until", v)).transpose()?;
    let practice = params
        .get("practice")
        .map(|p| {
            let code = p
                .strip_prefix(ODS_SYSTEM)
                .and_then(|c| c.strip_prefix('|'))
                .unwrap_or(p);
            OdsCode::parse(code).map_err(|_| bad("practice", "practice is an ODS code"))
        })
        .transpose()?;
    let request = match req.query_string() {
        "" => format!("{}{}", state.base_url, req.path()),
        q => format!("{}{}?{q}", state.base_url, req.path()),
    };
    let asked = audit_export::ExportRequest {
        practice,
        since,
        until,
        request,
    };
    let export = audit_export::start(&state.core, &caller, asked).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::CONTENT_LOCATION, status_url(&state.base_url, &export.id)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Where a bulk export of the audit trail has got to; its manifest once complete.
///
/// 202 with `X-Progress` and `Retry-After` while it runs; 200 with the manifest (each file's
/// URL and count) when complete; an OperationOutcome when it failed. For staff allowed to audit
/// at the export's practice.
#[utoipa::path(
    tag = "AuditEvent",
    params(("id" = String, Path, description = "The export's id, from the kick-off's Content-Location")),
    responses(
        (status = 200, description = "Complete: the Bulk Data manifest", body = ExportManifest, content_type = "application/json"),
        (status = 202, description = "In progress: poll again after Retry-After",
            headers(("X-Progress" = String, description = "Events and files written so far"), ("Retry-After" = String, description = "Seconds to wait before polling again"))),
        (status = 404, description = "No export the caller may see has this id (or it expired, or was cancelled)", body = OperationOutcome),
        (status = 422, description = "The export failed: BUSINESS_RULE_VIOLATION says why (a period holding more events than one export may)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent/$export/{id}")]
#[tracing::instrument(skip_all)]
pub async fn export_status(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    let (export, files) = audit_export::status(&state.core, &caller, &id).await?;
    match export.status {
        ExportStatus::Completed => {
            let expires = std::time::SystemTime::from(export.expires_at.and_utc());
            Ok(HttpResponse::Ok()
                .content_type("application/json")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header(header::Expires(expires.into()))
                .json(manifest(&state.base_url, &export, &files)))
        }
        ExportStatus::InProgress => Ok(HttpResponse::Accepted()
            .insert_header((
                "x-progress",
                format!("{} events in {} files", export.exported, export.files),
            ))
            .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECONDS))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish()),
        ExportStatus::Failed => Err(ApiError::new(
            ErrorCode::BusinessRule,
            export.error.unwrap_or_else(|| "the export did not complete".to_owned()),
        )),
    }
}

/// Cancel a bulk export of the audit trail, running or complete: it and its files are removed.
#[utoipa::path(
    tag = "AuditEvent",
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 202, description = "Cancelled: the status and file URLs now answer 404"),
        (status = 404, description = "No export the caller may see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[delete("/AuditEvent/$export/{id}")]
#[tracing::instrument(skip_all)]
pub async fn cancel_export(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    audit_export::cancel(&state.core, &caller, &id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// One file of a completed bulk export: NDJSON, one AuditEvent per line.
///
/// Each line is the AuditEvent `GET /AuditEvent` returns, with the four entity details an
/// archive line carries (`recordedAt`, `outcome`, `prevHash`, `hash`). For the same callers as
/// the status.
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("id" = String, Path, description = "The export's id"),
        ("part" = i64, Path, description = "The file's number, from 1, as the manifest's url gives it"),
    ),
    responses(
        (status = 200, description = "The file", body = String, content_type = "application/fhir+ndjson"),
        (status = 404, description = "No such file of an export the caller may see (or the export is not complete)", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent/$export/{id}/{part}")]
#[tracing::instrument(skip_all)]
pub async fn export_file(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, part) = path.into_inner();
    let id = resource_id(&id)?;
    // A part that is not a file number is no file: refused after the decision, like any other.
    let part = part.parse::<i64>().ok().filter(|p| *p >= 1);
    let content = audit_export::file(&state.core, &caller, &id, part).await?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_NDJSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(content))
}
