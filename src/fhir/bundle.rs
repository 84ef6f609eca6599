use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A FHIR `searchset` Bundle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    #[schema(value_type = String, example = "Bundle")]
    pub resource_type: String,
    #[serde(rename = "type")]
    #[schema(example = "searchset")]
    pub type_: String,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BundleLink {
    /// self | next | previous
    pub relation: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    pub full_url: String,
    /// The matched resource.
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
    pub search: BundleSearch,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BundleSearch {
    /// match | include
    pub mode: String,
}
