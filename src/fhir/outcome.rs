use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{CodeableConcept, Coding};

/// The gateway's own CodeSystem for error codes.
pub const ERROR_CODE_SYSTEM: &str = "https://gp-online-gateway.nhs.uk/fhir/CodeSystem/gateway-error";

/// FHIR `OperationOutcome`: every error the gateway returns has this shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "resourceType": "OperationOutcome",
    "issue": [{
        "severity": "error",
        "code": "invalid",
        "details": {
            "coding": [{"system": ERROR_CODE_SYSTEM, "code": "INVALID_IDENTIFIER", "display": "An identifier is not valid"}],
            "text": "the NHS number fails the Modulus 11 check"
        },
        "expression": ["Patient.identifier[0].value"]
    }]
}))]
pub struct OperationOutcome {
    #[schema(value_type = String, example = "OperationOutcome")]
    pub resource_type: String,
    pub issue: Vec<OperationOutcomeIssue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcomeIssue {
    /// fatal | error | warning | information
    pub severity: String,
    /// FHIR IssueType
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

impl OperationOutcome {
    /// One error issue: the FHIR issue type, the gateway's code with its display, the message
    /// for the caller, and the FHIRPath of the element at fault.
    pub fn error(issue_type: &str, code: &str, display: &str, message: &str, expression: Option<&str>) -> Self {
        Self {
            resource_type: "OperationOutcome".into(),
            issue: vec![OperationOutcomeIssue {
                severity: "error".into(),
                code: issue_type.into(),
                details: Some(CodeableConcept {
                    coding: vec![Coding {
                        system: Some(ERROR_CODE_SYSTEM.into()),
                        code: Some(code.into()),
                        display: Some(display.into()),
                    }],
                    text: Some(message.into()),
                }),
                diagnostics: None,
                expression: expression.map(|e| vec![e.to_owned()]).unwrap_or_default(),
            }],
        }
    }

    /// The gateway error code of the first issue (used by tests and clients).
    pub fn code(&self) -> Option<&str> {
        self.issue.first()?.details.as_ref()?.coding.first()?.code.as_deref()
    }
}
