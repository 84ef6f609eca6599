use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};

use super::body::{Paging, RawBody, if_match, if_none_match, not_modified, resource, resource_id};
use super::error::{ApiError, ErrorCode};
use super::search::{parse_query, searchset};
use crate::domain::PatientIdentifierSystem;
use crate::domain::policy::Action;
use crate::fhir::{Bundle, OperationOutcome, Patient};
use crate::services::Caller;
use crate::services::access::{self, Target};
use crate::services::patients::{self, Created, PatientQuery};
use crate::state::AppState;

const SEARCH_PARAMS: [&str; 17] = [
    "identifier",
    "family",
    "family:exact",
    "given",
    "name",
    "birthdate",
    "organization",
    "_id",
    "_sort",
    "_count",
    "_offset",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "general-practitioner",
    "_lastUpdated",
];

/// The search parameters as given, with `birthdate` (which may repeat, for a range) apart.
pub struct SearchParams {
    pub single: std::collections::BTreeMap<String, String>,
    pub birthdates: Vec<String>,
}

/// With `strict`, a parameter the server does not support is an error; without, it is ignored.
pub fn search_params(query: &str, strict: bool) -> Result<SearchParams, ApiError> {
    let mut single = std::collections::BTreeMap::new();
    let mut birthdates = vec![];
    for (name, value) in super::search::parse_pairs_with(query, &SEARCH_PARAMS, strict)? {
        if name == "birthdate" {
            birthdates.push(value);
            continue;
        }
        if name == "_lastUpdated" {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "_lastUpdated is a sort key here (_sort=_lastUpdated), not a filter",
            ));
        }
        let name = if name == "general-practitioner" {
            "organization".to_owned()
        } else {
            name
        };
        if single.insert(name.clone(), value).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!("search parameter '{name}' may be given only once"),
            ));
        }
    }
    if let Some(b) = birthdates.first() {
        single.insert("birthdate".into(), b.clone());
    }
    Ok(SearchParams { single, birthdates })
}

fn patient_query(p: &SearchParams) -> Result<PatientQuery, ApiError> {
    let params = &p.single;
    let bad = |m: &str| ApiError::new(ErrorCode::InvalidSearchParameter, m.to_owned());
    let identifier = match params.get("identifier") {
        None => None,
        Some(raw) => Some(match raw.split_once('|') {
            Some((system, value)) => {
                let system = PatientIdentifierSystem::from_uri(system)
                    .map_err(|_| bad("identifier system must be the NHS number, CHI number or H&C number system"))?;
                (Some(system), value.trim().to_owned())
            }
            None => (None, raw.trim().to_owned()),
        }),
    };
    if identifier.as_ref().is_some_and(|(_, v)| v.is_empty()) {
        return Err(bad("identifier needs a value (system|value)"));
    }
    let mut birth_ranges = vec![];
    for raw in &p.birthdates {
        let d = super::search::parse_date_param("birthdate", raw)?;
        let (lower, upper) = d.bounds();
        let day = |t: chrono::NaiveDateTime| t.date();
        birth_ranges.push((
            lower.map(day),
            upper.map(day),
            d.prefix == super::search::DatePrefix::Ne,
        ));
    }
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match params.get(name).map(|f| f.trim().to_owned()) {
            Some(f) if f.is_empty() || f.chars().count() > 100 => {
                Err(bad(&format!("{name} must be 1 to 100 characters")).at(name.to_owned()))
            }
            other => Ok(other),
        }
    };
    let ids = match params.get("_id") {
        None => vec![],
        Some(raw) => raw
            .split(',')
            .map(|id| resource_id(id.trim()).map_err(|_| bad("_id is a comma-separated list of ids").at("_id")))
            .collect::<Result<_, _>>()?,
    };
    let sort = match params.get("_sort") {
        None => vec![],
        Some(raw) => raw
            .split(',')
            .map(|key| {
                let (desc, name) = match key.trim().strip_prefix('-') {
                    Some(n) => (true, n),
                    None => (false, key.trim()),
                };
                use crate::services::patients::PatientSort as S;
                let k = match name {
                    "family" | "name" => S::Family,
                    "given" => S::Given,
                    "birthdate" => S::BirthDate,
                    "_lastUpdated" => S::LastUpdated,
                    "_id" => S::Id,
                    _ => {
                        return Err(bad(
                            "_sort takes family, given, birthdate, _lastUpdated or _id (prefix - for descending)",
                        )
                        .at("_sort"));
                    }
                };
                Ok((k, desc))
            })
            .collect::<Result<_, _>>()?,
    };
    if let Some(t) = params.get("_total")
        && !["none", "estimate", "accurate"].contains(&t.as_str())
    {
        return Err(bad("_total is none, estimate or accurate").at("_total"));
    }
    if let Some(s) = params.get("_summary")
        && !["true", "false", "text", "data", "count"].contains(&s.as_str())
    {
        return Err(bad("_summary is true, false, text, data or count").at("_summary"));
    }
    Ok(PatientQuery {
        identifier,
        family: text("family")?,
        family_exact: params.get("family:exact").cloned(),
        given: text("given")?,
        name: text("name")?,
        birth_date: None,
        birth_ranges,
        ids,
        sort,
        organization: params.get("organization").cloned(),
    })
}

/// `_elements`: only the listed top-level elements (and those every resource keeps), marked
/// as a subset.
fn elements(resource: serde_json::Value, keep: Option<&str>) -> serde_json::Value {
    let Some(list) = keep else {
        return resource;
    };
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    let serde_json::Value::Object(map) = resource else {
        return resource;
    };
    let mut out: serde_json::Map<String, serde_json::Value> = map
        .into_iter()
        .filter(|(k, _)| ["resourceType", "id", "meta"].contains(&k.as_str()) || wanted.contains(&k.as_str()))
        .collect();
    let meta = out.entry("meta").or_insert_with(|| serde_json::json!({}));
    meta["tag"] = serde_json::json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]);
    serde_json::Value::Object(out)
}

/// Read a patient record.
#[utoipa::path(
    tag = "Patient",
    params(
        ("id" = String, Path, description = "Logical id of the patient record"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag last read, e.g. W/\"1\": 304 if it is still current"),
    ),
    responses(
        (status = 200, description = "The patient", body = Patient, content_type = "application/fhir+json",
            headers(("ETag" = String, description = "W/\"version\""))),
        (status = 304, description = "If-None-Match names the current version: the caller's copy is current",
            headers(("ETag" = String, description = "W/\"version\""))),
        (status = 401, description = "No valid bearer token", body = OperationOutcome),
        (status = 403, description = "Not allowed to see this record", body = OperationOutcome),
        (status = 404, description = "No such record", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}")]
#[tracing::instrument(skip_all)]
pub async fn read_patient(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    // Decided and audited whether or not the caller's copy is current: a 304 is a read too.
    let permit = access::authorize(&state.core, &caller, Action::ReadPatient, Target::Patient(id)).await?;
    let record = permit.patient()?;
    if if_none_match(&req, record.version) {
        return Ok(not_modified(record.version, Some(record.last_updated)));
    }
    Ok(patient_response(StatusCode::OK, record))
}

/// Read a specific version of a patient record: the current one or any version a change
/// replaced (`meta.versionId`, as `_history` lists them).
#[utoipa::path(
    tag = "Patient",
    params(
        ("id" = String, Path, description = "Logical id of the patient record"),
        ("vid" = String, Path, description = "Version id (meta.versionId)"),
    ),
    responses(
        (status = 200, description = "The patient at that version", body = Patient, content_type = "application/fhir+json"),
        (status = 404, description = "No such record or version", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/_history/{vid}")]
#[tracing::instrument(skip_all)]
pub async fn vread_patient(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, vid) = path.into_inner();
    let id = resource_id(&id)?;
    let permit = access::authorize(&state.core, &caller, Action::ReadPatient, Target::Patient(id)).await?;
    let no_version = || ApiError::new(ErrorCode::ResourceNotFound, "this record has no such version");
    let vid: i64 = vid.parse().map_err(|_| no_version())?;
    let record = patients::version(&state.core, &permit, vid)
        .await?
        .ok_or_else(no_version)?;
    Ok(patient_response(StatusCode::OK, &record))
}

/// The history of a patient record: every version, newest first, as a FHIR `history` Bundle.
#[utoipa::path(
    tag = "Patient",
    params(("id" = String, Path, description = "Logical id of the patient record")),
    responses(
        (status = 200, description = "A history Bundle: each version with the request that made it", body = Bundle, content_type = "application/fhir+json"),
        (status = 404, description = "No such record", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/_history")]
#[tracing::instrument(skip_all)]
pub async fn history_patient(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    let permit = access::authorize(&state.core, &caller, Action::ReadPatient, Target::Patient(id)).await?;
    let versions = patients::history(&state.core, &permit).await?;
    let base = &state.base_url;
    let entries: Vec<serde_json::Value> = versions
        .iter()
        .map(|r| {
            let (method, url, status) = if r.version == 1 {
                ("POST", "Patient".to_owned(), "201 Created")
            } else {
                ("PUT", format!("Patient/{}", r.id), "200 OK")
            };
            serde_json::json!({
                "fullUrl": format!("{base}/Patient/{}", r.id),
                "resource": Patient::from_record(r),
                "request": {"method": method, "url": url},
                "response": {
                    "status": status,
                    "etag": format!("W/\"{}\"", r.version),
                    "lastModified": r.last_updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                },
            })
        })
        .collect();
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{base}/Patient/{}/_history", permit.patient()?.id)}],
        "entry": entries,
    });
    Ok(resource(StatusCode::OK, &bundle, None, None))
}

/// Search patient records.
///
/// Staff searches are confined to their own practice; a patient sees only their own record.
#[utoipa::path(
    tag = "Patient",
    params(
        ("identifier" = Option<String>, Query, description = "system|value, e.g. https://fhir.nhs.uk/Id/nhs-number|9990000018, or the value alone"),
        ("_id" = Option<String>, Query, description = "One id or a comma-separated list"),
        ("family" = Option<String>, Query, description = "Family name (starts with, case-insensitive)"),
        ("family:exact" = Option<String>, Query, description = "The whole family name, exactly as written"),
        ("given" = Option<String>, Query, description = "A given name (starts with, case-insensitive)"),
        ("name" = Option<String>, Query, description = "The family name or a given name (starts with, case-insensitive)"),
        ("birthdate" = Option<String>, Query, description = "Date of birth with an optional prefix eq, ne, lt, gt, le, ge, sa, eb (YYYY, YYYY-MM or YYYY-MM-DD); repeat for a range"),
        ("organization" = Option<String>, Query, description = "Registered practice: Organization/{id}, {id} or ODS code (also general-practitioner)"),
        ("_sort" = Option<String>, Query, description = "family, given, birthdate, _lastUpdated or _id, comma-separated; - for descending"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query, description = "Results to skip (from a next link)"),
        ("_total" = Option<String>, Query, description = "none, estimate or accurate (the total is always exact)"),
        ("_summary" = Option<String>, Query, description = "count: the total only; true, text, data, false: the whole resources"),
        ("_elements" = Option<String>, Query, description = "Top-level elements to return, comma-separated (marked SUBSETTED)"),
        ("_format" = Option<String>, Query, description = "json (anything else is 406)"),
        ("Prefer" = Option<String>, Header, description = "handling=strict: an unsupported parameter is 400 instead of being ignored (and left out of the self link)"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "A malformed parameter; an unsupported one with Prefer: handling=strict", body = OperationOutcome),
        (status = 401, description = "No valid bearer token", body = OperationOutcome),
        (status = 403, description = "Not allowed", body = OperationOutcome),
        (status = 406, description = "A format other than JSON was asked for", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient")]
#[tracing::instrument(skip_all)]
pub async fn search_patients(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Whether the caller may search at all is decided before the query is read.
    access::authorize(&state.core, &caller, Action::SearchPatients, Target::Pending).await?;
    let parsed = search_params(req.query_string(), super::search::strict_handling(&req))?;
    let query = patient_query(&parsed)?;
    let params = parsed.single;
    let count_only = params.get("_summary").is_some_and(|s| s == "count");
    let paging = Paging::parse(
        if count_only {
            Some("0")
        } else {
            params.get("_count").map(String::as_str)
        },
        params.get("_offset").map(String::as_str),
        super::search::strict_handling(&req),
    )?;
    let (total, records) = patients::search(&state.core, &caller, query, paging.offset, paging.count).await?;
    let keep = params.get("_elements").map(String::as_str);
    let resources = records
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                elements(serde_json::to_value(Patient::from_record(r)).unwrap_or_default(), keep),
            )
        })
        .collect();
    let bundle = searchset(&state.base_url, "Patient", &params, &paging, total, resources);
    Ok(resource(StatusCode::OK, &bundle, None, None))
}

/// Create a patient record at the caller's practice.
///
/// With `If-None-Exist: identifier=system|value`, an existing match is returned (200) instead
/// of creating a duplicate; several matches give 412.
#[utoipa::path(
    tag = "Patient",
    request_body(content = Patient, content_type = "application/fhir+json"),
    params(
        ("If-None-Exist" = Option<String>, Header, description = "Conditional create, e.g. identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"),
        ("X-Request-ID" = Option<String>, Header, description = "UUID; a completed write repeated with the same id returns the first response"),
    ),
    responses(
        (status = 201, description = "Created", body = Patient, content_type = "application/fhir+json",
            headers(("Location" = String), ("ETag" = String))),
        (status = 200, description = "Conditional create matched an existing record", body = Patient),
        (status = 400, description = "Invalid resource", body = OperationOutcome),
        (status = 403, description = "Outside the caller's practice", body = OperationOutcome),
        (status = 409, description = "Already registered", body = OperationOutcome),
        (status = 412, description = "Condition matched several records", body = OperationOutcome),
        (status = 415, description = "Not application/fhir+json", body = OperationOutcome),
        (status = 422, description = "Unknown practice", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient")]
#[tracing::instrument(skip_all)]
pub async fn create_patient(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    // The body names the practice: first decide whether the caller may create records at all.
    access::authorize(&state.core, &caller, Action::CreatePatient, Target::Pending).await?;
    let parsed = body.resource::<Patient>("Patient")?.parse(state.core.clock.today())?;
    let condition = match req.headers().get("if-none-exist") {
        None => None,
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| ApiError::invalid("If-None-Exist is malformed"))?;
            let raw = raw.trim_start_matches("Patient?").trim_start_matches('?');
            // A condition is never widened by ignoring part of it.
            let params = search_params(raw, true)?;
            if params.single.is_empty() {
                return Err(ApiError::invalid("If-None-Exist needs at least one search parameter"));
            }
            // Evaluated as a search at the practice the record is created at (the service
            // scopes it): other practices' records are not the caller's to match. A national
            // identifier registered elsewhere is still refused as a duplicate.
            Some(patient_query(&params)?.unscoped_filter())
        }
    };
    match patients::create(&state.core, &caller, parsed, condition).await? {
        Created::New(record) => Ok(created_response(&state.base_url, &record)),
        Created::Existing(record) => Ok(patient_response(StatusCode::OK, &record)),
    }
}

/// Update a patient record. With `If-Match` (`W/"3"`, or `*`) the update applies only to that
/// version: a stale one is 412. Without it, the current version is replaced. A record moves
/// practice only for a caller who may update records at the practice the body names.
#[utoipa::path(
    tag = "Patient",
    request_body(content = Patient, content_type = "application/fhir+json"),
    params(
        ("id" = String, Path, description = "Logical id of the patient record"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read, e.g. W/\"1\", or *"),
    ),
    responses(
        (status = 200, description = "Updated", body = Patient, content_type = "application/fhir+json", headers(("ETag" = String))),
        (status = 400, description = "Invalid resource", body = OperationOutcome),
        (status = 403, description = "Outside the caller's practice, or a move to a practice where the caller may not update records", body = OperationOutcome),
        (status = 404, description = "No such record", body = OperationOutcome),
        (status = 409, description = "Changed at the same moment by another request", body = OperationOutcome),
        (status = 412, description = "PRECONDITION_FAILED: If-Match names an older version", body = OperationOutcome),
        (status = 422, description = "generalPractitioner names a practice the gateway does not know", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[put("/Patient/{id}")]
#[tracing::instrument(skip_all)]
pub async fn update_patient(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    let id = resource_id(&id)?;
    let permit = access::authorize(&state.core, &caller, Action::UpdatePatient, Target::Patient(id)).await?;
    let expected = if_match(&req)?;
    let parsed = body.resource::<Patient>("Patient")?.parse(state.core.clock.today())?;
    let record = patients::update(&state.core, &caller, permit, expected, parsed).await?;
    Ok(patient_response(StatusCode::OK, &record))
}

/// Conditional update: the query is a search at the practice the body names. No match creates
/// the record (201), one match is updated (200; `If-Match` applies to it), several are 412.
#[utoipa::path(
    tag = "Patient",
    request_body(content = Patient, content_type = "application/fhir+json"),
    params(
        ("identifier" = Option<String>, Query, description = "e.g. https://fhir.nhs.uk/Id/nhs-number|9990000018; any Patient search parameter may be used"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read of the matching record, e.g. W/\"1\""),
    ),
    responses(
        (status = 200, description = "The one matching record, updated", body = Patient, content_type = "application/fhir+json", headers(("ETag" = String))),
        (status = 201, description = "Nothing matched: created", body = Patient, content_type = "application/fhir+json", headers(("Location" = String), ("ETag" = String))),
        (status = 400, description = "No condition, an unsupported parameter or an invalid resource", body = OperationOutcome),
        (status = 409, description = "A duplicate national identifier, or changed at the same moment", body = OperationOutcome),
        (status = 412, description = "MULTIPLE_MATCHES, or If-Match names an older version", body = OperationOutcome),
        (status = 422, description = "Unknown practice", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[put("/Patient")]
#[tracing::instrument(skip_all)]
pub async fn conditional_update_patient(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: RawBody,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::UpdatePatient, Target::Pending).await?;
    // A condition is never widened by ignoring part of it.
    let params = search_params(req.query_string(), true)?;
    if params.single.is_empty() && params.birthdates.is_empty() {
        return Err(ApiError::invalid(
            "a conditional update needs search parameters, e.g. ?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
        ));
    }
    let condition = patient_query(&params)?.unscoped_filter();
    let expected = if_match(&req)?;
    let parsed = body.resource::<Patient>("Patient")?.parse(state.core.clock.today())?;
    Ok(
        match patients::conditional_update(&state.core, &caller, condition, expected, parsed).await? {
            patients::Upserted::Created(r) => created_response(&state.base_url, &r),
            patients::Upserted::Updated(r) => patient_response(StatusCode::OK, &r),
        },
    )
}

/// Whether the caller may use one online service for a patient: their own record through their
/// online account, or another patient's through an active proxy role that grants it. Patient
/// apps ask before offering the service; the decision is the engine's and is audited.
#[utoipa::path(
    tag = "Patient access",
    params(
        ("id" = String, Path, description = "Logical id of the patient record"),
        ("service" = String, Query, description = "appointments, prescriptions, messaging or record"),
    ),
    responses(
        (status = 200, description = "Allowed: Parameters naming the service, how it is reached (own account or proxy role), for the record the level in effect and its `from` date (`recordFrom`), and the `basis` the entitlements model gives for it", content_type = "application/fhir+json"),
        (status = 400, description = "No or an unknown service", body = OperationOutcome),
        (status = 403, description = "PROXY_ROLE_NOT_ACTIVE, SERVICE_NOT_GRANTED, NO_ACTIVE_ONLINE_ACCOUNT or an identity-assurance refusal", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Patient/{id}/$service-access")]
#[tracing::instrument(skip_all)]
pub async fn service_access(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = parse_query(req.query_string(), &["service"])?;
    let service = params
        .get("service")
        .and_then(|s| crate::domain::policy::Service::parse(s))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "service must be one of appointments, prescriptions, messaging, record",
            )
            .at("service")
        })?;
    let id = resource_id(&id)?;
    let permit = access::authorize(&state.core, &caller, service.action(), Target::Patient(id)).await?;
    let patient = permit.patient()?;
    let entitlements = permit
        .entitlements
        .as_ref()
        .ok_or_else(|| crate::services::Error::internal("a service decision without entitlements"))?;
    Ok(resource(
        StatusCode::OK,
        &crate::fhir::operations::service_access(&patient.id, service, entitlements),
        None,
        None,
    ))
}

/// A newly created record: 201 with `Location` naming its first version.
fn created_response(base_url: &str, record: &crate::domain::PatientRecord) -> HttpResponse {
    let mut response = patient_response(StatusCode::CREATED, record);
    let location = format!("{base_url}/Patient/{}/_history/{}", record.id, record.version);
    if let Ok(v) = header::HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A patient record as a FHIR resource, with its version as the ETag.
fn patient_response(status: StatusCode, record: &crate::domain::PatientRecord) -> HttpResponse {
    resource(
        status,
        &Patient::from_record(record),
        Some(record.version),
        Some(record.last_updated),
    )
}
