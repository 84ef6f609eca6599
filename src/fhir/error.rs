//! Why a FHIR body or operation parameter could not be read. The HTTP layer turns these into
//! `OperationOutcome`s; the messages are written for the caller and never carry a parser's text.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// The body is not a resource the gateway can take.
    #[error("{message}")]
    Resource {
        message: String,
        expression: Option<String>,
    },
    /// An identifier fails its format or check digit.
    #[error("{message}")]
    Identifier { message: String, expression: String },
    /// An operation parameter is missing or malformed.
    #[error("{message}")]
    Parameter { message: String, expression: String },
    /// A condition the operation needs is not met (for example an attestation left false).
    #[error("{message}")]
    Condition { message: String, expression: String },
}

impl FhirError {
    pub fn resource(message: impl Into<String>, expression: impl Into<String>) -> Self {
        Self::Resource {
            message: message.into(),
            expression: Some(expression.into()),
        }
    }

    pub fn identifier(message: impl Into<String>, expression: impl Into<String>) -> Self {
        Self::Identifier {
            message: message.into(),
            expression: expression.into(),
        }
    }

    /// A bad operation parameter, named by its (dot-separated) parameter path.
    pub fn parameter(field: &str, message: impl Into<String>) -> Self {
        Self::Parameter {
            message: message.into(),
            expression: super::parameter_path(field),
        }
    }

    pub fn condition(field: &str, message: impl Into<String>) -> Self {
        Self::Condition {
            message: message.into(),
            expression: super::parameter_path(field),
        }
    }
}

/// Reads a JSON body into a wire type. A syntax error is reported by position; a string that
/// holds a control character FHIR does not allow, or a body that is JSON but not the expected
/// resource, names the element at fault (a FHIRPath under `root`).
pub fn from_json<T: serde::de::DeserializeOwned>(root: &str, body: &[u8]) -> Result<T, FhirError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| FhirError::Resource {
        message: format!("the body is not valid JSON (line {}, column {})", e.line(), e.column()),
        expression: None,
    })?;
    if let Some(at) = forbidden_text(&value, root.to_owned()) {
        return Err(FhirError::Resource {
            message: format!("{at} contains a control character, which FHIR strings do not allow"),
            expression: Some(at),
        });
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.inner();
        let mut path = root.to_owned();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } | serde_path_to_error::Segment::Enum { variant: key } => {
                    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        path.push('.');
                        path.push_str(key);
                    }
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        // serde names the field between backticks; everything else it says stays out.
        let text = inner.to_string();
        let named = text
            .split('`')
            .nth(1)
            .map(|f| f.chars().take(40).flat_map(char::escape_debug).collect::<String>());
        let message = match named {
            Some(field) if text.starts_with("unknown field") => {
                let parent = path.strip_suffix(&format!(".{field}")).unwrap_or(&path);
                format!("{parent} has an element '{field}' the gateway does not support")
            }
            Some(field) if text.starts_with("missing field") => format!("{path}.{field} is required"),
            _ if path == root => format!("the body is not a valid {root} resource"),
            _ => format!("{path} has the wrong type or value"),
        };
        FhirError::Resource {
            message,
            expression: Some(path),
        }
    })
}

/// The path of the first string (or key) holding a character FHIR strings do not allow.
pub(super) fn forbidden_text(value: &serde_json::Value, at: String) -> Option<String> {
    use crate::domain::text::forbidden_character;
    match value {
        serde_json::Value::String(s) => forbidden_character(s).map(|_| at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| forbidden_text(v, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if forbidden_character(k).is_some() {
                return Some(at.clone());
            }
            let key: String = k
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            forbidden_text(v, format!("{at}.{key}"))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: Vec<Name>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Name {
        family: String,
    }

    #[test]
    fn errors_name_the_element_and_never_quote_the_parser() {
        let e = from_json::<Thing>("Patient", b"{not json").unwrap_err();
        assert!(matches!(e, FhirError::Resource { expression: None, .. }), "{e:?}");
        let e = from_json::<Thing>("Patient", br#"{"name":[{"family":"A\u0000"}]}"#).unwrap_err();
        assert_eq!(
            e,
            FhirError::Resource {
                message: "Patient.name[0].family contains a control character, which FHIR strings do not allow".into(),
                expression: Some("Patient.name[0].family".into())
            }
        );
        let e = from_json::<Thing>("Patient", br#"{"name":[{"family":1}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "Patient.name[0].family has the wrong type or value");
        let e = from_json::<Thing>("Patient", br#"{"name":[{"family":"A","x\u0007":1}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Patient.name[0] contains a control character, which FHIR strings do not allow"
        );
        let e = from_json::<Thing>("Patient", br#"{"name":[{"family":"A","extra":1}]}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Patient.name[0] has an element 'extra' the gateway does not support"
        );
        let e = from_json::<Thing>("Patient", br#"{"name":[{}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "Patient.name[0].family is required");
    }
}
