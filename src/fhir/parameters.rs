use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Reference;

/// FHIR `Parameters`: the body and result of operations such as `$register-online-services`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameters {
    #[schema(value_type = String, example = "Parameters")]
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter: Vec<Parameter>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_boolean: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_integer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_positive_int: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_identifier: Option<super::Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_period: Option<Period>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_reference: Option<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_coding: Option<super::Coding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resource: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(no_recursion)]
    pub part: Vec<Parameter>,
}

/// FHIR `Period`, as operation parameters carry it (dates or dateTimes, each end optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Period {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

impl Parameters {
    pub fn new(parameter: Vec<Parameter>) -> Self {
        Self {
            resource_type: "Parameters".into(),
            parameter,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.parameter.iter().find(|p| p.name == name)
    }
}

impl Parameter {
    pub fn part(&self, name: &str) -> Option<&Parameter> {
        self.part.iter().find(|p| p.name == name)
    }

    pub fn parts<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Parameter> + 'a {
        self.part.iter().filter(move |p| p.name == name)
    }

    pub fn string(name: &str, v: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value_string: Some(v.into()),
            ..Default::default()
        }
    }

    pub fn code(name: &str, v: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value_code: Some(v.into()),
            ..Default::default()
        }
    }

    /// A count (never above what `valueInteger` holds).
    pub fn count(name: &str, v: u64) -> Self {
        Self {
            name: name.into(),
            value_integer: Some(i64::try_from(v).unwrap_or(i64::MAX)),
            ..Default::default()
        }
    }

    pub fn boolean(name: &str, v: bool) -> Self {
        Self {
            name: name.into(),
            value_boolean: Some(v),
            ..Default::default()
        }
    }

    pub fn date(name: &str, v: chrono::NaiveDate) -> Self {
        Self {
            name: name.into(),
            value_date: Some(crate::fhir::date(v)),
            ..Default::default()
        }
    }

    pub fn date_time(name: &str, v: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            name: name.into(),
            value_date_time: Some(super::instant(v)),
            ..Default::default()
        }
    }

    pub fn reference(name: &str, reference: String) -> Self {
        Self {
            name: name.into(),
            value_reference: Some(Reference {
                reference: Some(reference),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn group(name: &str, part: Vec<Parameter>) -> Self {
        Self {
            name: name.into(),
            part,
            ..Default::default()
        }
    }

    pub fn resource(name: &str, resource: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            resource: Some(resource),
            ..Default::default()
        }
    }
}

/// FHIRPath for a (possibly nested, dot-separated) parameter name, for OperationOutcome.expression.
pub fn parameter_path(field: &str) -> String {
    let mut segments = field.split('.');
    let mut path = format!(
        "Parameters.parameter.where(name='{}')",
        segments.next().unwrap_or_default()
    );
    for s in segments {
        path.push_str(&format!(".part.where(name='{s}')"));
    }
    path
}
