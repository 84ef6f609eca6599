//! `Consent`: proxy roles. Search, read, create, change by JSON Patch, and set what a role
//! grants.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use serde_json::{Value, json};

use super::{Failure, informational, invalid_parameter, media_type, ok, query_pairs, uuid_id};
use crate::domain::policy::Action;
use crate::domain::proxy::{ProxyGrants, RoleStatus};
use crate::domain::{NhsNumber, OdsCode};
use crate::fhir::vrs::{self, Side, TokenError, VrsError};
use crate::fhir::{OperationOutcome, Parameters, consent, json_patch, operations, related_person};
use crate::http::body::RawBody;
use crate::http::error::ApiError;
use crate::services::Caller;
use crate::services::access::{self, Target};
use crate::services::proxy::{self, RoleView};
use crate::state::AppState;

const INCLUDE_PERFORMER: &str = "Consent:performer";
const INCLUDE_PATIENT: &str = "Consent:patient";

/// What a Consent Bundle includes beside each role.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Includes {
    performer: bool,
    patient: bool,
}

impl Includes {
    fn add(&mut self, value: &str) -> Result<(), VrsError> {
        match value {
            INCLUDE_PERFORMER => self.performer = true,
            INCLUDE_PATIENT => self.patient = true,
            _ => return Err(invalid_parameter("_include")),
        }
        Ok(())
    }
}

/// What `GET /Consent` was asked.
#[derive(Debug)]
struct Search {
    performer: Option<NhsNumber>,
    patient: Option<NhsNumber>,
    /// Each `status` parameter is an OR-list; several parameters must all hold.
    statuses: Option<Vec<RoleStatus>>,
    includes: Includes,
}

/// The search's own error table (and its example) answers a malformed identifier on either
/// side with `INVALID_IDENTIFIER_VALUE`; `INVALID_PATIENT_IDENTIFIER_VALUE` is for the patient
/// named in a request body.
fn token_error(e: TokenError) -> VrsError {
    match e {
        TokenError::System => VrsError::invalid_parameter(
            "Invalid request with error - performer:identifier or patient:identifier system parameter is invalid.",
        )
        .with_code("INVALID_IDENTIFIER_SYSTEM"),
        TokenError::Value => VrsError::invalid_parameter(
            "Invalid request with error - performer:identifier or patient:identifier parameter is invalid.",
        )
        .with_code("INVALID_IDENTIFIER_VALUE"),
    }
}

fn parse_search(query: &str) -> Result<Search, VrsError> {
    let mut performer = None;
    let mut patient = None;
    let mut statuses: Option<Vec<RoleStatus>> = None;
    let mut includes = Includes::default();
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "performer:identifier" | "patient:identifier" => {
                let side = if name == "performer:identifier" {
                    Side::Proxy
                } else {
                    Side::Patient
                };
                if value.trim().is_empty() {
                    continue;
                }
                let slot = if side == Side::Proxy {
                    &mut performer
                } else {
                    &mut patient
                };
                if slot.is_some() {
                    return Err(invalid_parameter(&name));
                }
                *slot = Some(vrs::nhs_token(value.trim()).map_err(token_error)?);
            }
            "status" => {
                let any: Vec<RoleStatus> = value
                    .split(',')
                    .map(|s| RoleStatus::parse(s.trim()))
                    .collect::<Option<_>>()
                    .ok_or_else(|| invalid_parameter("status"))?;
                statuses = Some(match statuses {
                    None => any,
                    Some(all) => all.into_iter().filter(|s| any.contains(s)).collect(),
                });
            }
            "_include" => includes.add(&value)?,
            _ => return Err(invalid_parameter(&name)),
        }
    }
    if performer.is_none() && patient.is_none() {
        return Err(VrsError::invalid(
            400,
            "MISSING_IDENTIFIER_VALUE",
            "Required parameter(s) are missing.",
            "Invalid request with error - performer:identifier or patient:identifier parameter not found.",
        ));
    }
    Ok(Search {
        performer,
        patient,
        statuses,
        includes,
    })
}

/// `X-IM1-Connection-Params: <IM1 connection token>;<ODS code>`: the practice the caller is
/// connected to, whose roles alone are wanted.
fn im1_practice(req: &HttpRequest) -> Result<Option<OdsCode>, VrsError> {
    let Some(value) = req.headers().get("x-im1-connection-params") else {
        return Ok(None);
    };
    let bad = || {
        VrsError::invalid(
            400,
            "INVALID_VALUE",
            "Required parameter(s) are invalid.",
            "X-IM1-Connection-Params must be '<IM1 connection token>;<ODS code>'",
        )
    };
    let raw = value.to_str().map_err(|_| bad())?;
    let (token, ods) = raw.split_once(';').ok_or_else(bad)?;
    if token.trim().is_empty() || ods.contains(';') {
        return Err(bad());
    }
    OdsCode::parse(ods.trim()).map(Some).map_err(|_| bad())
}

/// A Consent Bundle: for each role, with `Consent:performer` the proxy as a `Patient` and as a
/// `RelatedPerson`, with `Consent:patient` the patient (once however many roles share them),
/// then the Consent itself.
fn bundle(base: &str, self_link: &str, found: &[RoleView], includes: Includes) -> Value {
    let mut entries = vec![];
    let mut patients: Vec<String> = vec![];
    let mut proxies: Vec<&str> = vec![];
    for view in found {
        let role = &view.role;
        if includes.performer {
            if !proxies.contains(&role.proxy_nhs_number.as_str()) {
                proxies.push(role.proxy_nhs_number.as_str());
                entries.push(vrs::patient_entry(base, &role.proxy_nhs_number, view.proxy.as_ref()));
            }
            entries.push(json!({
                "fullUrl": format!("{base}/RelatedPerson/{}", role.id),
                "resource": related_person::related_person(role, None),
                "search": {"mode": "include"},
            }));
        }
        if includes.patient && !patients.contains(&role.patient_id) {
            patients.push(role.patient_id.clone());
            entries.push(vrs::patient_entry(
                base,
                &role.patient_nhs_number,
                view.patient.as_ref(),
            ));
        }
        entries.push(json!({
            "fullUrl": format!("{base}/Consent/{}", role.id),
            "resource": consent::to_consent(role),
            "search": {"mode": "match"},
        }));
    }
    vrs::searchset(self_link, found.len(), entries, true)
}

fn self_link(base: &str, path: &str, query: &str) -> String {
    match query {
        "" => format!("{base}{path}"),
        q => format!("{base}{path}?{q}"),
    }
}

/// Search proxy roles by proxy (`performer:identifier`) and/or patient
/// (`patient:identifier`), optionally by `status`, with the proxy and patient included on
/// request.
///
/// `status` takes a comma-separated OR-list (`status=active,proposed`); repeating the
/// parameter requires every repetition to hold. Roles marked entered-in-error are listed only
/// when asked for by status. A patient or proxy sees only roles they are part of; staff only
/// those at their practices. `X-IM1-Connection-Params` narrows the search to the practice it
/// names.
#[utoipa::path(
    tag = "Proxy access",
    params(
        ("performer:identifier" = Option<String>, Query, description = "The proxy's NHS number"),
        ("patient:identifier" = Option<String>, Query, description = "The patient's NHS number (at least one of the two is required)"),
        ("status" = Option<String>, Query, description = "proposed, active, rejected, inactive, entered-in-error; comma-separated for any of them"),
        ("_include" = Option<String>, Query, description = "Consent:performer and/or Consent:patient (repeat the parameter for both)"),
        ("X-IM1-Connection-Params" = Option<String>, Header, description = "`<IM1 connection token>;<ODS code>`"),
    ),
    responses(
        (status = 200, description = "Searchset Bundle of Consent (empty when nothing matches)", content_type = "application/fhir+json"),
        (status = 400, description = "MISSING_VALUE (no X-Request-ID), MISSING_IDENTIFIER_VALUE, or INVALID_VALUE for a malformed X-IM1-Connection-Params", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN", body = OperationOutcome),
        (status = 404, description = "GP_PRACTICE_NOT_FOUND: X-IM1-Connection-Params names a practice the gateway does not serve", body = OperationOutcome),
        (status = 422, description = "INVALID_IDENTIFIER_VALUE (a malformed performer:identifier or patient:identifier), INVALID_IDENTIFIER_SYSTEM or INVALID_PARAMETER", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Consent")]
#[tracing::instrument(skip_all)]
pub async fn search(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::SearchProxyRoles, Target::Pending).await?;
    let query = parse_search(req.query_string())?;
    let practice = im1_practice(&req)?;
    let found = proxy::consents(
        &state.core,
        &caller,
        query.performer,
        query.patient,
        query.statuses,
        practice,
    )
    .await?;
    let link = self_link(&state.base_url, "/Consent", req.query_string());
    Ok(ok(
        StatusCode::OK,
        &bundle(&state.base_url, &link, &found, query.includes),
    ))
}

fn role_id(raw: &str) -> Result<String, VrsError> {
    uuid_id(raw).ok_or_else(|| {
        VrsError::invalid(
            400,
            "INVALID_ID_VALUE",
            "Required parameter(s) are invalid.",
            "Invalid request with error - ID must be a valid UUID.",
        )
    })
}

/// Read one proxy role: a searchset Bundle holding the Consent and, with `_include`, its
/// proxy and patient.
#[utoipa::path(
    tag = "Proxy access",
    params(
        ("id" = String, Path, description = "The role id (a UUID)"),
        ("_include" = Option<String>, Query, description = "Consent:performer and/or Consent:patient"),
    ),
    responses(
        (status = 200, description = "Searchset Bundle with the Consent", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_ID_VALUE: the id is not a UUID; MISSING_VALUE: no X-Request-ID", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: only staff and systems read roles by id", body = OperationOutcome),
        (status = 404, description = "RESOURCE_NOT_FOUND (no role the caller may see has this id) or INVALIDATED_RESOURCE (entered in error)", body = OperationOutcome),
        (status = 422, description = "INVALID_PARAMETER", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Consent/{id}")]
#[tracing::instrument(skip_all)]
pub async fn read(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::ReadProxyRole, Target::Pending).await?;
    let id = role_id(&id)?;
    let mut includes = Includes::default();
    for (name, value) in query_pairs(req.query_string())? {
        match name.as_str() {
            "_include" => includes.add(&value)?,
            _ => return Err(invalid_parameter(&name).into()),
        }
    }
    let permit = access::authorize(
        &state.core,
        &caller,
        Action::ReadProxyRole,
        Target::ProxyRole(id.clone()),
    )
    .await?;
    let view = proxy::consent(&state.core, &permit).await?;
    let link = self_link(&state.base_url, &format!("/Consent/{id}"), req.query_string());
    Ok(ok(StatusCode::OK, &bundle(&state.base_url, &link, &[view], includes)))
}

/// Create a proxy role, `proposed` or `active`, for a patient of the caller's practice.
///
/// An active role needs the grantor (the patient's practice), a legal basis that fits the
/// patient's age and capacity, and (from 11) the child's consent or why it was not sought.
/// Creating it active records that the member of staff considered coercion and safeguarding,
/// and links the proxy at the practice's clinical system. A new role grants appointments and
/// repeat prescriptions; record access only when the request's `proxy-access` extension asks
/// for it, and never beyond the patient's own.
#[utoipa::path(
    tag = "Proxy access",
    request_body(content = String, content_type = "application/fhir+json", description = "A Consent, as in the VRS examples"),
    responses(
        (status = 201, description = "Created: an informational OperationOutcome; `Location: /Consent/{id}`", body = OperationOutcome),
        (status = 400, description = "BAD_REQUEST, MISSING_* (status, scope, category, patient, performer, dateTime, identifiers, status reason, grantor and its parts), MISSING_FREE_TEXT_FOR_OTHER, MISSING_STATUS_REASON, MISSING_VALUE (no X-Request-ID)", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: only staff allowed to manage proxies, and systems with proxy:write", body = OperationOutcome),
        (status = 409, description = "DUPLICATE_RELATIONSHIP", body = OperationOutcome),
        (status = 415, description = "UNSUPPORTED_MEDIA: the body is not application/fhir+json", body = OperationOutcome),
        (status = 422, description = "INVALID_* (identifier value or system, patient identifier value, patient, status, scope, category, dateTime, extension, status reason, grantor value or system, legal basis code, end date); INVALID_PROVISION: `provision.type` other than `permit`, an actor other than the performer, or a malformed period", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Consent")]
#[tracing::instrument(skip_all)]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: RawBody) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::CreateProxyRole, Target::Pending).await?;
    media_type(body.content_type(), &["application/fhir+json"])?;
    let request = consent::role_request(body.bytes())?;
    let role = proxy::create(&state.core, &caller, request).await?;
    let mut response = ok(StatusCode::CREATED, &informational(None));
    if let Ok(v) = header::HeaderValue::from_str(&format!("{}/Consent/{}", state.base_url, role.id)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Change a proxy role with a JSON Patch on `/status`, `/extension/-`,
/// `/provision/period/end` and `/policyRule`.
///
/// `/provision/actor` (who the proxy is) cannot be changed: a role for another proxy is a new
/// role, with its own checks and its own link at the supplier.
///
/// A status change carries a status-reason extension in the same patch (`OTHER` with free
/// text). Allowed: proposed to active or rejected, active to inactive and back, anything to
/// entered-in-error. The role's patient or proxy may only end it (inactive, or rejected while
/// proposed). A change to what an active role grants, or its ending, is forwarded to the
/// practice's clinical system.
#[utoipa::path(
    tag = "Proxy access",
    params(("id" = String, Path, description = "The role id (a UUID)")),
    request_body(content = String, content_type = "application/json-patch+json", description = "A JSON Patch document"),
    responses(
        (status = 200, description = "Changed: an informational OperationOutcome", body = OperationOutcome),
        (status = 400, description = "INVALID_PATCH_FORMAT, INVALID_PATCH_PATH (a path outside the allowed ones, or any operation on /provision/actor), MISSING_STATUS_REASON, MISSING_FREE_TEXT_FOR_OTHER, MISSING_GRANTOR (and its parts), INVALID_ID_VALUE, MISSING_VALUE (no X-Request-ID)", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: a patient or proxy may only end a role that concerns them", body = OperationOutcome),
        (status = 404, description = "RESOURCE_NOT_FOUND or INVALIDATED_RESOURCE", body = OperationOutcome),
        (status = 409, description = "DUPLICATE_PATCHES", body = OperationOutcome),
        (status = 415, description = "UNSUPPORTED_MEDIA: the body is not application/json-patch+json", body = OperationOutcome),
        (status = 422, description = "INVALID_STATUS_CODE, INVALID_STATUS_REASON, INVALID_STATE_TRANSITION, INVALID_LEGAL_BASIS_CODE, INVALID_END_DATE, INVALID_GRANTOR_VALUE, INVALID_GRANTOR_SYSTEM, INVALID_EXTENSION", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[patch("/Consent/{id}")]
#[tracing::instrument(skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::UpdateProxyRole, Target::Pending).await?;
    let id = role_id(&id)?;
    let permit = access::authorize(&state.core, &caller, Action::UpdateProxyRole, Target::ProxyRole(id)).await?;
    media_type(body.content_type(), &["application/json-patch+json"])?;
    let changes = json_patch::role_changes(body.bytes())?;
    proxy::update(&state.core, &caller, permit, changes).await?;
    Ok(ok(StatusCode::OK, &informational(None)))
}

/// Set what a proxy role grants: the services (appointments, prescriptions, messaging) and
/// the record access level with its `from` date.
///
/// Record access is never beyond the patient's own. For an active role the change is
/// forwarded to the practice's clinical system. Answers the role as a Consent.
#[utoipa::path(
    tag = "Proxy access",
    params(("id" = String, Path, description = "The role id (a UUID)")),
    request_body(content = Parameters, content_type = "application/fhir+json", example = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "services", "part": [
                {"name": "appointments", "valueBoolean": true},
                {"name": "prescriptions", "valueBoolean": true},
                {"name": "messaging", "valueBoolean": false}
            ]},
            {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}
        ]
    })),
    responses(
        (status = 200, description = "The role as a Consent", content_type = "application/fhir+json"),
        (status = 400, description = "The Parameters are malformed, or the access goes beyond the patient's own; MISSING_VALUE: no X-Request-ID", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: only staff allowed to manage proxies, and systems with proxy:write", body = OperationOutcome),
        (status = 404, description = "RESOURCE_NOT_FOUND or INVALIDATED_RESOURCE", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Consent/{id}/$set-proxy-access")]
#[tracing::instrument(skip_all)]
pub async fn set_access(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: RawBody,
) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::SetProxyAccess, Target::Pending).await?;
    let id = role_id(&id)?;
    let permit = access::authorize(&state.core, &caller, Action::SetProxyAccess, Target::ProxyRole(id)).await?;
    let access = operations::access(&body.parameters()?).map_err(|e| Failure::Api(ApiError::from(e)))?;
    let role = proxy::set_access(
        &state.core,
        &caller,
        permit,
        ProxyGrants {
            services: access.services,
            record_level: access.record_level,
            record_from: access.record_from,
        },
    )
    .await?;
    Ok(ok(StatusCode::OK, &consent::to_consent(&role)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches() {
        let code = |q: &str| parse_search(q).map(|_| "OK").unwrap_or_else(|e| e.code);
        assert_eq!(code(""), "MISSING_IDENTIFIER_VALUE");
        assert_eq!(code("performer:identifier=900000000"), "INVALID_IDENTIFIER_VALUE");
        assert_eq!(code("patient:identifier=9000000012"), "INVALID_IDENTIFIER_VALUE");
        assert_eq!(code("patient:identifier=900000000"), "INVALID_IDENTIFIER_VALUE");
        assert!(parse_search("patient:identifier=9000000012").is_err_and(|e| e.status == 422));
        assert_eq!(
            code("performer:identifier=invalid%7C9000000009"),
            "INVALID_IDENTIFIER_SYSTEM"
        );
        assert_eq!(code("performer:identifier=9000000017&status=test"), "INVALID_PARAMETER");
        assert_eq!(
            code("performer:identifier=9000000017&_include=test"),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            code("performer:identifier=9000000017&_include=Consent:patient,Consent:performer"),
            "INVALID_PARAMETER"
        );
        assert_eq!(code("performer:identifier=9000000017&_unknown=1"), "INVALID_PARAMETER");
        let s = parse_search("performer:identifier=9000000017&status=active,proposed&status=inactive").unwrap();
        assert_eq!(s.statuses, Some(vec![]), "AND of ORs");
        let s = parse_search("performer:identifier=9000000017&status=active,proposed&status=proposed").unwrap();
        assert_eq!(s.statuses, Some(vec![RoleStatus::Proposed]));
        let s =
            parse_search("patient:identifier=9000000009&_include=Consent:performer&_include=Consent:patient").unwrap();
        assert_eq!(
            s.includes,
            Includes {
                performer: true,
                patient: true
            }
        );
    }
}
