//! The HTTP surface: handlers, extractors, middleware and the one OpenAPI registration path.

mod accounts;
pub mod audit;
mod audit_events;
mod audit_export;
pub mod auth;
pub mod body;
pub mod error;
mod identity;
pub mod middleware;
mod operations;
mod organizations;
mod patients;
pub mod proxy;
mod record;
mod record_access;
pub mod request_ids;
mod search;
mod transactional;

use actix_web::{App, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::config::{IssuerKind, IssuerSettings};
use error::{ApiError, ErrorCode};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "GP Online Services Gateway",
        description = "FHIR R4-style gateway for GP online services: practices, patients, caller authentication. \
Every endpoint except /metadata, /health/*, /metrics, /openapi.json and /docs needs a bearer token from a trusted issuer. \
Errors are OperationOutcome resources with a stable code from the gateway's CodeSystem.",
        license(name = "MIT")
    ),
    components(schemas(crate::fhir::OperationOutcome)),
    modifiers(&BearerAuth),
    tags(
        (name = "Patient", description = "Practice patient records"),
        (name = "Organization", description = "GP practices and their online-services settings"),
        (name = "Online accounts", description = "Registration for online services, access, linkage keys and the registration letter"),
        (name = "Task", description = "Provisioning jobs at suppliers and record reviews"),
        (name = "Patient access", description = "For patient apps presenting an NHS login-like token"),
        (name = "Identity provider", description = "For NHS login-like identity providers (system tokens)"),
        (name = "Proxy access", description = "Proxy relationships, wire-compatible with NHS England's Validated Relationships Service: access requests (QuestionnaireResponse), relationships (RelatedPerson) and proxy roles (Consent). Errors use the VRS codes and OperationOutcome shape."),
        (name = "Appointments", description = "Free slots, booking and cancelling, for the patient and their proxies (GP Connect Appointment Management, in R4)"),
        (name = "Prescriptions", description = "Repeat medications that may be requested, and requests made (GP Connect Prescriptions, in R4)"),
        (name = "AuditEvent", description = "The hash-chained audit trail"),
        (name = "Conformance", description = "What the server supports"),
        (name = "Operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from any trusted issuer, pasted as is (in the dev profile: \
                         `gp-online-gateway dev-token --persona NAME`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Registers every documented endpoint. Used both to serve and to generate the spec.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(operations::metadata)
        .service(operations::live)
        .service(operations::ready)
        .service(operations::metrics)
        // Before the Patient routes: `$gpc.getstructuredrecord` is not a patient id.
        .service(record::structured)
        .service(record::allergies)
        .service(record::medication_statements)
        .service(transactional::search_medication_requests)
        .service(transactional::request_repeats)
        .service(transactional::search_slots)
        .service(transactional::search_appointments)
        .service(transactional::book_appointment)
        .service(transactional::cancel_appointment)
        .service(record::conditions)
        .service(record::immunizations)
        .service(record::observations)
        .service(record::encounters)
        .service(record::service_requests)
        .service(record::document_references)
        .service(record::binary)
        .service(patients::search_patients)
        .service(patients::create_patient)
        .service(patients::read_patient)
        .service(patients::vread_patient)
        .service(patients::history_patient)
        .service(patients::update_patient)
        .service(patients::conditional_update_patient)
        .service(organizations::search_organizations)
        .service(organizations::read_organization)
        .service(organizations::update_organization)
        .service(accounts::register)
        .service(accounts::set_access)
        .service(accounts::reset)
        .service(accounts::disable)
        .service(accounts::enable)
        .service(accounts::account)
        .service(accounts::letter)
        .service(accounts::search_tasks)
        .service(accounts::read_task)
        .service(accounts::complete_task)
        .service(accounts::retry_task)
        .service(identity::my_access)
        .service(identity::verify_linkage)
        .service(identity::link_identity)
        .service(audit_events::verify_audit)
        // Before the AuditEvent search: `$export` is not a search.
        .service(audit_export::kick_off)
        .service(audit_export::export_status)
        .service(audit_export::cancel_export)
        .service(audit_export::export_file)
        .service(audit_events::search_audit)
        .service(audit_events::explain_access)
        .service(proxy::questionnaire_response::submit)
        .service(proxy::questionnaire_response::read)
        .service(proxy::related_person::search)
        .service(proxy::consent::search)
        .service(proxy::consent::create)
        .service(proxy::consent::read)
        .service(proxy::consent::update)
        .service(proxy::consent::set_access)
        .service(patients::service_access)
        .service(record_access::add_code)
        .service(record_access::remove_code)
        .service(record_access::register_self)
        .service(record_access::request_record_access)
        .service(record_access::apply_opt_in_model)
        .service(record_access::run_transitions)
        .service(record_access::registration_event);
}

/// The OpenAPI document as a gateway with the default settings serves it: the dev profile on
/// `127.0.0.1:8080`, whose issuers the security schemes name. This is the committed
/// `openapi/openapi.json`; a running gateway serves [`openapi_for`] its own issuers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let settings = crate::config::Settings::default();
    openapi_for(&crate::identity::dev_idp::issuers(&settings.base_url(settings.bind)))
}

/// The OpenAPI document, generated from the same registration the server uses, declaring how
/// to sign in with each of `issuers`.
pub fn openapi_for(issuers: &[IssuerSettings]) -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document_common_responses(&mut api);
    document_vrs_request_id(&mut api);
    document_sign_in(&mut api, issuers);
    attach_examples(&mut api);
    api
}

/// One OpenID Connect scheme per trusted issuer, named as the issuer is configured, pointing at
/// its discovery document: a client (Swagger UI's Authorize among them) finds the endpoints and
/// grants there, and signs in (people with the authorization-code flow and PKCE, systems with
/// client credentials). Every operation that takes a token accepts one from any of them, or a
/// pasted bearer token.
fn document_sign_in(api: &mut utoipa::openapi::OpenApi, issuers: &[IssuerSettings]) {
    use utoipa::openapi::security::{OpenIdConnect, SecurityRequirement};

    let components = api.components.get_or_insert_with(Default::default);
    for issuer in issuers {
        let who = match issuer.kind {
            IssuerKind::Staff => "Practice staff (CIS2-like issuer: organisation and roles)",
            IssuerKind::Patient => "Patients and their proxies (NHS login-like issuer)",
            IssuerKind::System => "Systems with client credentials: identity providers, suppliers, applications",
        };
        components.add_security_scheme(
            issuer.name.clone(),
            SecurityScheme::OpenIdConnect(OpenIdConnect::with_description(
                format!(
                    "{}/.well-known/openid-configuration",
                    issuer.issuer.trim_end_matches('/')
                ),
                format!("{who}: tokens from {}", issuer.issuer),
            )),
        );
    }
    let operations = api.paths.paths.values_mut().flat_map(|item| {
        [
            item.get.as_mut(),
            item.head.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ]
    });
    for op in operations.flatten() {
        if let Some(security) = op.security.as_mut().filter(|s| !s.is_empty()) {
            security.extend(
                issuers
                    .iter()
                    .map(|issuer| SecurityRequirement::new(issuer.name.clone(), Vec::<String>::new())),
            );
        }
    }
}

/// The VRS spec marks `X-Request-ID` required on its resources, and the gateway refuses a call
/// there without one: each of their operations lists it.
fn document_vrs_request_id(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, Required, SchemaFormat, Type};

    for (_, item) in api.paths.paths.iter_mut().filter(|(path, _)| proxy::is_vrs(path)) {
        let operations = [
            item.get.as_mut(),
            item.post.as_mut(),
            item.put.as_mut(),
            item.patch.as_mut(),
            item.delete.as_mut(),
        ];
        for op in operations.into_iter().flatten() {
            let request_id = ParameterBuilder::new()
                .name("X-Request-ID")
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(
                    "A UUID for the request. Required on the proxy (VRS) resources: without it the \
                     call is 400 MISSING_VALUE. Echoed exactly as sent; a completed write repeated \
                     with the same id (in either case) returns the first response.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::Custom("uuid".into()))),
                ))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(request_id));
        }
    }
}

/// Request and response examples captured from the running dev profile
/// (`openapi/capture_examples.py`), keyed by `METHOD /path`.
const EXAMPLES: &str = include_str!("../../openapi/examples.json");

/// Puts each captured example on its operation: the request body's and the response's first
/// content type. An example for an operation the document does not have is a stale capture
/// and is left out (the spec test then shows the difference).
fn attach_examples(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    let Ok(serde_json::Value::Object(examples)) = serde_json::from_str::<serde_json::Value>(EXAMPLES) else {
        tracing::warn!("openapi/examples.json is not a JSON object; the document has no captured examples");
        return;
    };
    for (key, example) in examples {
        let Some((method, path)) = key.split_once(' ') else {
            continue;
        };
        let Some(item) = api.paths.paths.get_mut(path) else {
            continue;
        };
        let op = match method {
            "GET" => item.get.as_mut(),
            "POST" => item.post.as_mut(),
            "PUT" => item.put.as_mut(),
            "PATCH" => item.patch.as_mut(),
            "DELETE" => item.delete.as_mut(),
            _ => None,
        };
        let Some(op) = op else { continue };
        if let (Some(request), Some(RefOr::T(body))) = (example.get("request"), op.request_body.as_mut())
            && let Some((_, RefOr::T(content))) = body.content.iter_mut().next()
        {
            content.example = Some(request.clone());
        }
        let status = example
            .get("status")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("200");
        if let (Some(response), Some(RefOr::T(r))) = (example.get("response"), op.responses.responses.get_mut(status))
            && let Some((_, RefOr::T(content))) = r.content.iter_mut().next()
        {
            content.example = Some(response.clone());
        }
    }
}

/// Answers the middleware and extractors give for any operation, added to each operation the
/// annotations do not already describe them for, and every error response given the
/// `OperationOutcome` body it carries: the document lists every status an operation returns.
fn document_common_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let outcome = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("OperationOutcome")))
            .build()
    };
    let add = |op: &mut Operation, status: &str, description: &str| {
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/fhir+json", outcome())
                    .build(),
            )
        });
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let operational = path.starts_with("/health/") || path == "/metrics";
        let operations = [
            (false, item.get.as_mut()),
            (false, item.head.as_mut()),
            (true, item.post.as_mut()),
            (true, item.put.as_mut()),
            (true, item.patch.as_mut()),
            (true, item.delete.as_mut()),
        ];
        for (write, op) in operations {
            let Some(op) = op else { continue };
            add(
                op,
                "400",
                "BAD_REQUEST: a malformed X-Request-ID or X-Correlation-ID, or control characters in the path, query or headers",
            );
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add(
                    op,
                    "401",
                    "MISSING_ACCESS_TOKEN or INVALID_ACCESS_TOKEN: no bearer token, or one that is expired, forged or from an untrusted issuer",
                );
                add(
                    op,
                    "403",
                    "Refused by the access-decision engine (the code names the rule)",
                );
            }
            if path.contains('{') {
                add(op, "404", "RESOURCE_NOT_FOUND: nothing the caller may see has this id");
            }
            if write {
                add(
                    op,
                    "409",
                    "REQUEST_ID_REUSED or REQUEST_IN_PROGRESS: the X-Request-ID was used for another request, or its first use has not finished",
                );
            }
            if write {
                add(op, "413", "PAYLOAD_TOO_LARGE: the body exceeds the configured limit");
            }
            if op.request_body.is_some() {
                add(
                    op,
                    "415",
                    "UNSUPPORTED_MEDIA_TYPE: the body is not of the documented type",
                );
            }
            if !operational {
                add(
                    op,
                    "406",
                    "NOT_ACCEPTABLE: Accept or _format names only formats the server does not produce",
                );
                add(
                    op,
                    "429",
                    "TOO_MANY_REQUESTS: the caller's rate limit; retry after Retry-After",
                );
            }
            add(op, "500", "INTERNAL_ERROR: quote the X-Request-ID");
            add(
                op,
                "503",
                "SERVICE_UNAVAILABLE: the database or the audit trail cannot be written just now",
            );
            // Every error carries an OperationOutcome, whatever the annotation wrote.
            for (status, response) in op.responses.responses.iter_mut() {
                if let (true, RefOr::T(r)) = (status.starts_with('4') || status.starts_with('5'), response)
                    && r.content.is_empty()
                {
                    r.content
                        .insert("application/fhir+json".to_owned(), RefOr::T(outcome()));
                }
            }
        }
    }
}

/// Marks the answer for a path or method no endpoint serves.
#[derive(Clone, Copy)]
pub struct Unrouted;

pub async fn not_found() -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::new(
        ErrorCode::ResourceNotFound,
        "no such endpoint or resource type",
    ));
    response.extensions_mut().insert(Unrouted);
    response
}

/// The page of Swagger UI (served at `/docs/`) that receives a sign-in's answer.
pub fn docs_oauth2_redirect(base_url: &str) -> String {
    format!("{}/docs/oauth2-redirect.html", base_url.trim_end_matches('/'))
}

/// `/docs` without a trailing slash lands on the Swagger UI.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::Found().insert_header(("location", "/docs/")).finish()
}
