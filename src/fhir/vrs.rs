//! What the Validated Relationships Service resources share on the wire: code systems and
//! extension URLs, the VRS error shape, NHS number search tokens, and the Patient entries of
//! its Bundles.

use serde_json::{Value, json};

use crate::domain::proxy::Problem;
use crate::domain::{NhsNumber, PatientRecord};

pub const ERROR_SYSTEM: &str = "https://fhir.nhs.uk/R4/CodeSystem/ValidatedRelationships-ErrorOrWarningCode";
pub const SPINE_ERROR_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1";
pub const STATUS_REASON_URL: &str =
    "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason";
pub const STATUS_REASON_SYSTEM: &str = "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason";
pub const GRANTOR_URL: &str = "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor";
pub const LEGAL_BASIS_SYSTEM: &str = "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis";
pub const NULL_FLAVOR_SYSTEM: &str = "https://terminology.hl7.org/CodeSystem/v3-NullFlavor";
pub const SCOPE_SYSTEM: &str = "https://terminology.hl7.org/CodeSystem/consentscope";
pub const CATEGORY_SYSTEM: &str = "https://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const POLICY_AUTHORITY: &str = "https://www.england.nhs.uk";
pub const POLICY_URI: &str = "https://digital.nhs.uk/data-and-information/information-standards/governance/latest-activity/standards-and-collections/dapb3051-identity-verification-and-authentication-standard-for-digital-health-and-care-services";
pub const PROOFING_SYSTEM: &str = "https://fhir.nhs.uk/England/CodeSystem/England-NHSIdentityProofingLevel";
/// The gateway's own extension on Consent: what the role grants.
pub const PROXY_ACCESS_URL: &str = "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/proxy-access";
/// The gateway's own extension on Consent: what staff considered before the role became active.
pub const PROXY_ASSESSMENT_URL: &str = "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/proxy-assessment";

/// Systems terminology.hl7.org publishes under both http and https: either is accepted.
pub fn same_terminology_system(given: &str, expected: &str) -> bool {
    given == expected || given.replacen("http://", "https://", 1) == expected
}

/// A VRS error: HTTP status, VRS code, FHIR issue type, display, diagnostics, expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrsError {
    pub status: u16,
    pub code: &'static str,
    pub issue: &'static str,
    pub display: String,
    pub diagnostics: String,
    pub expression: Option<String>,
    /// The Spine code system (no version), as `GET /QuestionnaireResponse/{id}` errors use.
    pub spine: bool,
}

impl VrsError {
    pub fn new(
        status: u16,
        code: &'static str,
        issue: &'static str,
        display: &str,
        diagnostics: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            issue,
            display: display.to_owned(),
            diagnostics: diagnostics.into(),
            expression: None,
            spine: false,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// The same error under another VRS code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    pub fn spine(mut self) -> Self {
        self.spine = true;
        self
    }

    pub fn invalid(status: u16, code: &'static str, display: &str, diagnostics: impl Into<String>) -> Self {
        Self::new(status, code, "invalid", display, diagnostics)
    }

    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::invalid(400, "BAD_REQUEST", "The request could not be processed.", diagnostics)
    }

    pub fn invalid_parameter(diagnostics: impl Into<String>) -> Self {
        Self::invalid(
            422,
            "INVALID_PARAMETER",
            "Required parameter(s) are invalid.",
            diagnostics,
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "METHOD_NOT_ALLOWED",
            "not-supported",
            "The method is not allowed.",
            "The method is not allowed for the requested resource.",
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            415,
            "UNSUPPORTED_MEDIA",
            "not-supported",
            "Unsupported Media Type.",
            "Unsupported Media Type.",
        )
    }

    /// A header the spec marks required was not sent.
    pub fn missing_header(name: &str) -> Self {
        Self::invalid(
            400,
            "MISSING_VALUE",
            "Required parameter(s) are missing.",
            format!("Invalid request with error - {name} header must be supplied to access this resource"),
        )
    }

    /// The VRS `OperationOutcome`: one issue with the code in the VRS (or Spine) code system.
    pub fn outcome(&self) -> Value {
        let mut coding = json!({"code": self.code, "display": self.display});
        if self.spine {
            coding["system"] = json!(SPINE_ERROR_SYSTEM);
        } else {
            coding["system"] = json!(ERROR_SYSTEM);
            coding["version"] = json!("1");
        }
        let mut issue = json!({
            "severity": "error",
            "code": self.issue,
            "details": {"coding": [coding]},
            "diagnostics": self.diagnostics,
        });
        if let Some(e) = &self.expression {
            issue["expression"] = json!([e]);
        }
        json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }

    /// A gateway error on a VRS endpoint, in the VRS vocabulary where VRS has a word for it.
    pub fn from_gateway(status: u16, message: &str) -> Option<Self> {
        Some(match status {
            401 => Self::new(
                401,
                "ACCESS_DENIED",
                "forbidden",
                "Missing or invalid OAuth 2.0 bearer token in request.",
                message,
            ),
            403 => Self::new(403, "FORBIDDEN", "forbidden", "Access Denied", message),
            405 => Self::method_not_allowed(),
            415 => Self::unsupported_media_type(),
            429 => Self::new(429, "THROTTLED", "throttled", "Too many requests.", message),
            400 => Self::invalid(400, "INVALID_VALUE", "Required parameter(s) are invalid.", message),
            413 => Self::invalid(413, "INVALID_VALUE", "The request body is too large.", message),
            500 => Self::new(
                500,
                "SERVER_ERROR",
                "exception",
                "Failed to generate response",
                "Internal Server Error - Failed to generate response is present in the response",
            ),
            503 => Self::new(
                503,
                "DOWNSTREAM_SERVICE_ERROR",
                "processing",
                "Failed to generate response",
                "Downstream Service Error - Failed to generate response is present in the response",
            ),
            _ => return None,
        })
    }

    /// A business problem found by the proxy service.
    pub fn from_problem(p: &Problem) -> Self {
        let detail = |fallback: &str| p.detail().unwrap_or(fallback).to_owned();
        match p {
            Problem::DuplicateRelationship => {
                Self::invalid(409, "DUPLICATE_RELATIONSHIP", "Request must be for a new proxy role.", "Proxy role already exists.")
            }
            Problem::InvalidStateTransition(_) => Self::invalid(
                422,
                "INVALID_STATE_TRANSITION",
                "Status change is invalid.",
                detail("Patch attempting invalid status change."),
            ),
            Problem::InvalidStatusReason(_) => Self::invalid(
                422,
                "INVALID_STATUS_REASON",
                "Status reason is invalid.",
                detail("Invalid status reason."),
            ),
            Problem::MissingStatusReason => Self::invalid(
                400,
                "MISSING_STATUS_REASON",
                "Required values are missing.",
                "Status reason extension is required when updating status.",
            )
            .at(format!("extension.where(url = '{STATUS_REASON_URL}')")),
            Problem::MissingFreeTextForOther => Self::invalid(
                400,
                "MISSING_FREE_TEXT_FOR_OTHER",
                "Free text must be provided for OTHER reason codes.",
                "Free text is required when reason code is OTHER.",
            ),
            Problem::MissingGrantor => Self::invalid(
                400,
                "MISSING_GRANTOR",
                "Grantor required for active status",
                "Grantor extension is required when creating/updating an active proxy role",
            )
            .at(format!("extension.where(url = '{GRANTOR_URL}')")),
            Problem::InvalidGrantorValue(_) => Self::invalid(
                422,
                "INVALID_GRANTOR_VALUE",
                "Invalid grantor identifier value",
                detail("Valid grantor extension identifier value is required when creating/updating a consent with status 'active'"),
            )
            .at(format!("extension.where(url = '{GRANTOR_URL}').valueReference.identifier.value")),
            Problem::InvalidLegalBasis(_) => Self::invalid(
                422,
                "INVALID_LEGAL_BASIS_CODE",
                "Invalid legal basis code.",
                detail("The legal basis is not valid for this role."),
            )
            .at("policyRule"),
            Problem::InvalidEndDate(_) => {
                Self::invalid(422, "INVALID_END_DATE", "End date is invalid.", detail("End date is invalid.")).at("provision.period.end")
            }
            Problem::RuleNotMet(_) | Problem::BadRequest(_) => {
                Self::bad_request(detail("The supplied input is not valid."))
            }
            Problem::Forbidden(_) => Self::new(403, "FORBIDDEN", "forbidden", "Access Denied", detail("Access denied to resource.")),
            Problem::RoleNotFound => Self::invalid(
                404,
                "RESOURCE_NOT_FOUND",
                "Request must be for a existing proxy role.",
                "Proxy role not found.",
            ),
            Problem::RoleInvalidated => Self::new(
                404,
                "INVALIDATED_RESOURCE",
                "processing",
                "Resource that has been marked as invalid was requested - invalid resources cannot be retrieved",
                "Resource that has been marked as invalid was requested - invalid resources cannot be retrieved",
            ),
            Problem::AccessRequestNotFound => Self::new(
                404,
                "QUESTIONNAIRE_RESPONSE_NOT_FOUND",
                "not-found",
                "Questionnaire response not found",
                "The Questionnaire response could not be found using the provided access request ID.",
            )
            .spine(),
            Problem::PracticeNotFound => Self::new(
                404,
                "GP_PRACTICE_NOT_FOUND",
                "processing",
                "GP Practice could not be found - invalid resources cannot be retrieved",
                "GP Practice could not be found",
            ),
            Problem::Throttled(_) => Self::new(429, "THROTTLED", "throttled", "Too many requests.", detail("Too many requests.")),
            Problem::InvalidPatient(_) => Self::invalid(
                422,
                "INVALID_PATIENT",
                "Invalid patient.",
                detail("The patient is not registered at a practice the caller may act for."),
            )
            .at("patient"),
        }
    }
}

/// The boundary's check on a VRS body: no string (or key) may hold a control character, the
/// same rule every other FHIR body meets, so nothing unstorable reaches a role or a supplier.
pub fn checked_text(v: &Value, root: &str) -> Result<(), VrsError> {
    match super::error::forbidden_text(v, root.to_owned()) {
        Some(at) => Err(VrsError::invalid(
            400,
            "INVALID_VALUE",
            "Required parameter(s) are invalid.",
            format!("{at} contains a control character, which FHIR strings do not allow"),
        )),
        None => Ok(()),
    }
}

/// Which side of a relationship a search token names: the proxy (`identifier`,
/// `performer:identifier`) or the patient (`patient:identifier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Proxy,
    Patient,
}

/// Why an NHS number token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    System,
    Value,
}

/// An NHS number search token: `9000000009` or `https://fhir.nhs.uk/Id/nhs-number|9000000009`.
/// A value that looks like a URL without `|` names a system the gateway does not know.
pub fn nhs_token(raw: &str) -> Result<NhsNumber, TokenError> {
    let value = match raw.split_once('|') {
        Some((system, value)) if system == super::NHS_NUMBER_SYSTEM || system.is_empty() => value,
        Some(_) => return Err(TokenError::System),
        None if raw.contains('/') || raw.contains(':') => return Err(TokenError::System),
        None => raw,
    };
    if value.len() != 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Value);
    }
    NhsNumber::parse(value).map_err(|_| TokenError::Value)
}

/// A Patient as VRS Bundles include it: identified by NHS number, with name and birth date
/// when the gateway holds the record.
pub fn patient_entry(base: &str, nhs: &NhsNumber, record: Option<&PatientRecord>) -> Value {
    let id = record.map_or_else(|| nhs.as_str().to_owned(), |r| r.id.clone());
    let mut patient = json!({
        "resourceType": "Patient",
        "id": id,
        "identifier": [{"system": super::NHS_NUMBER_SYSTEM, "value": nhs.as_str()}],
    });
    if let Some(r) = record {
        let mut name = json!({"use": "usual", "family": r.details.family});
        if !r.details.given.is_empty() {
            name["given"] = json!(r.details.given);
        }
        patient["name"] = json!([name]);
        patient["birthDate"] = json!(crate::fhir::date(r.details.birth_date));
        patient["generalPractitioner"] =
            json!([{"identifier": {"system": super::ODS_SYSTEM, "value": r.practice_ods.as_str()}}]);
    }
    json!({"fullUrl": format!("{base}/Patient/{id}"), "resource": patient, "search": {"mode": "include"}})
}

/// A VRS searchset Bundle: `total` counts the matches; `entry` is left out when empty, as the
/// RelatedPerson examples do, or kept as an empty list (`empty_entries`), as the Consent
/// examples do.
pub fn searchset(self_link: &str, matches: usize, entries: Vec<Value>, empty_entries: bool) -> Value {
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": super::instant(chrono::Utc::now()),
        "total": matches,
        "link": [{"relation": "self", "url": self_link}],
    });
    if !entries.is_empty() || empty_entries {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(
            nhs_token("9000000009").map(|n| n.as_str().to_owned()),
            Ok("9000000009".into())
        );
        assert!(nhs_token("https://fhir.nhs.uk/Id/nhs-number|9000000009").is_ok());
        assert_eq!(nhs_token("invalid|9000000009"), Err(TokenError::System));
        assert_eq!(
            nhs_token("https://fhir.nhs.uk/Id/nhs-number/9730675929"),
            Err(TokenError::System)
        );
        assert_eq!(nhs_token("900000000"), Err(TokenError::Value));
        assert_eq!(nhs_token("9000000012"), Err(TokenError::Value), "fails Modulus 11");
        assert_eq!(nhs_token(""), Err(TokenError::Value));
    }

    #[test]
    fn errors_have_the_vrs_shape() {
        let e = VrsError::from_problem(&Problem::DuplicateRelationship).outcome();
        assert_eq!(e["issue"][0]["details"]["coding"][0]["system"], ERROR_SYSTEM);
        assert_eq!(e["issue"][0]["details"]["coding"][0]["version"], "1");
        assert_eq!(e["issue"][0]["details"]["coding"][0]["code"], "DUPLICATE_RELATIONSHIP");
        let s = VrsError::from_problem(&Problem::AccessRequestNotFound).outcome();
        assert_eq!(s["issue"][0]["details"]["coding"][0]["system"], SPINE_ERROR_SYSTEM);
        assert!(s["issue"][0]["details"]["coding"][0].get("version").is_none());
    }
}
