//! FHIR R4 wire types (serde + OpenAPI schemas) and the mapping between them and the domain.

mod audit_event;
mod bundle;
pub mod capability;
pub mod consent;
mod datatypes;
mod error;
pub mod json_patch;
pub mod operations;
mod organization;
mod outcome;
mod parameters;
mod patient;
pub mod questionnaire_response;
pub mod related_person;
mod task;
pub mod vrs;

pub use audit_event::{AuditAgent, AuditEntity, AuditEntityDetail, AuditEvent, AuditSource};
pub use bundle::{Bundle, BundleEntry, BundleLink, BundleSearch};
pub use capability::capability_statement;
pub use datatypes::{CodeableConcept, Coding, ContactPoint, Extension, HumanName, Identifier, Meta, Reference};
pub use error::{FhirError, from_json};
pub use organization::Organization;
pub use outcome::{ERROR_CODE_SYSTEM, OperationOutcome, OperationOutcomeIssue};
pub use parameters::{Parameter, Parameters, parameter_path};
pub use patient::Patient;
pub use task::{Task, TaskParameter};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// Base for the gateway's own extensions and code systems.
pub const GATEWAY_FHIR_BASE: &str = "https://gp-online-gateway.nhs.uk/fhir";

/// FHIR `instant` with millisecond precision and an explicit zone.
pub fn instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
