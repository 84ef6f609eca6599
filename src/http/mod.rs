//! The HTTP surface: handlers, extractors, middleware and the one OpenAPI registration path.

mod accounts;
pub mod audit;
mod audit_events;
pub mod auth;
pub mod body;
pub mod error;
mod identity;
pub mod middleware;
mod operations;
mod organizations;
mod patients;
pub mod proxy;
mod record_access;
mod search;

use actix_web::{App, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;

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
        .service(patients::search_patients)
        .service(patients::create_patient)
        .service(patients::read_patient)
        .service(patients::vread_patient)
        .service(patients::update_patient)
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

/// The OpenAPI document, generated from the same registration the server uses.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api
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

/// `/docs` without a trailing slash lands on the Swagger UI.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::Found().insert_header(("location", "/docs/")).finish()
}
