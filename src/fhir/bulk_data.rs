//! The FHIR Bulk Data Access wire formats: the completed export's manifest.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::instant;
use crate::domain::audit::{AuditExport, ExportFile};

/// The NDJSON media type of a Bulk Data output file.
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// What a completed export produced (Bulk Data "complete status" body).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportManifest {
    /// When the export was asked for: nothing recorded later is in it.
    pub transaction_time: String,
    /// The kick-off request's URL.
    pub request: String,
    /// The files are downloaded with the same bearer token as the status.
    pub requires_access_token: bool,
    pub output: Vec<ExportOutput>,
    /// Always empty: events are written whole or the export fails.
    pub error: Vec<ExportOutput>,
}

/// One NDJSON file of the export.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportOutput {
    /// The resource type in the file (`AuditEvent`).
    #[serde(rename = "type")]
    pub type_: String,
    pub url: String,
    /// How many resources (lines) the file holds.
    pub count: i64,
}

/// The status URL of an export, under `base_url`.
pub fn status_url(base_url: &str, id: &str) -> String {
    format!("{base_url}/AuditEvent/$export/{id}")
}

/// The manifest of a completed export, its files under `base_url`.
pub fn manifest(base_url: &str, export: &AuditExport, files: &[ExportFile]) -> ExportManifest {
    let status = status_url(base_url, &export.id);
    ExportManifest {
        transaction_time: instant(export.transaction_time.and_utc()),
        request: export.request.clone(),
        requires_access_token: true,
        output: files
            .iter()
            .map(|f| ExportOutput {
                type_: "AuditEvent".into(),
                url: format!("{status}/{}", f.part),
                count: f.events,
            })
            .collect(),
        error: vec![],
    }
}
