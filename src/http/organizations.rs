use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, put, web};

use super::body::{Paging, RawBody, if_match, resource, resource_id};
use super::error::{ApiError, ErrorCode};
use super::search::{parse_query, searchset};
use crate::domain::policy::Action;
use crate::domain::{OdsCode, PracticeRef};
use crate::fhir::{Bundle, ODS_SYSTEM, OperationOutcome, Organization};
use crate::services::access::{self, Target};
use crate::services::{Caller, practices};
use crate::state::AppState;

/// Read a practice.
#[utoipa::path(
    tag = "Organization",
    params(("id" = String, Path, description = "Logical id of the practice")),
    responses(
        (status = 200, description = "The practice", body = Organization, content_type = "application/fhir+json"),
        (status = 401, description = "No valid bearer token", body = OperationOutcome),
        (status = 404, description = "No such practice", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Organization/{id}")]
#[tracing::instrument(skip_all)]
pub async fn read_organization(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Practice details are public directory information: any authenticated caller may read them.
    let id = resource_id(&id)?;
    let permit = access::authorize(
        &state.core,
        &caller,
        Action::ReadPractice,
        Target::Practice(PracticeRef::Id(id)),
    )
    .await?;
    let record = permit.practice()?;
    Ok(resource(
        StatusCode::OK,
        &Organization::from_record(record),
        Some(record.version),
        Some(record.last_updated),
    ))
}

/// Search practices by ODS code.
#[utoipa::path(
    tag = "Organization",
    params(
        ("identifier" = Option<String>, Query, description = "ODS code: https://fhir.nhs.uk/Id/ods-organization-code|A81001 or A81001"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query, description = "Results to skip"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "Unsupported or malformed parameter", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Organization")]
#[tracing::instrument(skip_all)]
pub async fn search_organizations(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::SearchPractices, Target::None).await?;
    let params = parse_query(req.query_string(), &["identifier", "_count", "_offset"])?;
    let ods = match params.get("identifier") {
        None => None,
        Some(raw) => {
            let value = match raw.split_once('|') {
                Some((system, value)) if system == ODS_SYSTEM => value,
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidSearchParameter,
                        "identifier system must be the ODS code system",
                    ));
                }
                None => raw.as_str(),
            };
            Some(OdsCode::parse(value).map_err(|e| ApiError::new(ErrorCode::InvalidSearchParameter, e.to_string()))?)
        }
    };
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
        super::search::strict_handling(&req),
    )?;
    let (total, records) = practices::search(&state.core, ods, paging.offset, paging.count).await?;
    let resources = records
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                serde_json::to_value(Organization::from_record(r)).unwrap_or_default(),
            )
        })
        .collect();
    Ok(resource(
        StatusCode::OK,
        &searchset(&state.base_url, "Organization", &params, &paging, total, resources),
        None,
        None,
    ))
}

/// Update a practice's name, address, telephone and online-services settings (staff of that
/// practice with `edit-practice`). As with any FHIR update, the body replaces the practice: an
/// address or telephone left out is removed.
#[utoipa::path(
    tag = "Organization",
    request_body(content = Organization, content_type = "application/fhir+json"),
    params(
        ("id" = String, Path, description = "Logical id of the practice"),
        ("If-Match" = String, Header, description = "The ETag last read, e.g. W/\"1\""),
    ),
    responses(
        (status = 200, description = "Updated", body = Organization, content_type = "application/fhir+json"),
        (status = 400, description = "Invalid resource", body = OperationOutcome),
        (status = 403, description = "Not staff of this practice", body = OperationOutcome),
        (status = 409, description = "Stale ETag", body = OperationOutcome),
        (status = 412, description = "If-Match missing", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[put("/Organization/{id}")]
#[tracing::instrument(skip_all)]
pub async fn update_organization(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    let permit = access::authorize(
        &state.core,
        &caller,
        Action::UpdatePractice,
        Target::Practice(PracticeRef::Id(id.clone())),
    )
    .await?;
    let expected = if_match(&req)?;
    let body: Organization = body.resource("Organization")?;
    if body.id.as_deref().is_some_and(|b| b != id) {
        return Err(ApiError::invalid_resource(
            "id in the body does not match the URL",
            "Organization.id",
        ));
    }
    let changes = body.parse_update(permit.practice()?)?;
    let record = practices::update(&state.core, permit, expected, changes).await?;
    Ok(resource(
        StatusCode::OK,
        &Organization::from_record(&record),
        Some(record.version),
        Some(record.last_updated),
    ))
}
