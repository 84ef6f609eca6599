//! `QuestionnaireResponse`, the VRS proxy access request: reading the form, and giving it back.

use serde_json::{Value, json};

use super::NHS_NUMBER_SYSTEM;
use super::consent::date_time;
use super::vrs::VrsError;
use crate::domain::NhsNumber;
use crate::domain::proxy::{AccessRequestForm, ChildConsent, LegalBasis, ProxyGrants, RelationshipCode};
use crate::domain::{RecordAccessLevel, Services};

fn invalid_form(why: impl Into<String>) -> VrsError {
    VrsError::invalid(400, "BAD_REQUEST", "The request could not be processed.", why)
}

/// Every item with this linkId, anywhere in the form.
fn items<'a>(v: &'a Value, link: &str, out: &mut Vec<&'a Value>) {
    if let Some(list) = v.get("item").and_then(Value::as_array) {
        for item in list {
            if item.get("linkId").and_then(Value::as_str) == Some(link) {
                out.push(item);
            }
            items(item, link, out);
        }
    }
}

fn answers<'a>(v: &'a Value, link: &str) -> Vec<&'a Value> {
    let mut found = vec![];
    items(v, link, &mut found);
    found
        .into_iter()
        .filter_map(|i| i.get("answer").and_then(Value::as_array))
        .flatten()
        .collect()
}

fn first_string(v: &Value, link: &str) -> Option<String> {
    answers(v, link)
        .into_iter()
        .find_map(|a| a.get("valueString").and_then(Value::as_str))
        .map(|s| s.trim().to_owned())
}

fn codings<'a>(v: &'a Value, link: &str) -> Vec<&'a Value> {
    answers(v, link)
        .into_iter()
        .filter_map(|a| a.get("valueCoding"))
        .collect()
}

fn code_of(c: &Value) -> &str {
    c.get("code").and_then(Value::as_str).unwrap_or_default()
}

/// A yes/no answer: the schema says valueString, the examples send valueBoolean.
fn yes_no(v: &Value, link: &str) -> Option<bool> {
    answers(v, link).into_iter().find_map(|a| {
        a.get("valueBoolean").and_then(Value::as_bool).or_else(|| {
            a.get("valueString")
                .and_then(Value::as_str)
                .and_then(|s| match s.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "y" => Some(true),
                    "no" | "false" | "n" => Some(false),
                    _ => None,
                })
        })
    })
}

fn nhs(raw: Option<&str>, patient: bool, field: &str) -> Result<NhsNumber, VrsError> {
    let raw = raw.ok_or_else(|| invalid_form(format!("{field} is required")))?;
    NhsNumber::parse(raw).map_err(|_| {
        let code = if patient {
            "INVALID_PATIENT_IDENTIFIER_VALUE"
        } else {
            "INVALID_IDENTIFIER_VALUE"
        };
        VrsError::invalid(
            400,
            code,
            "Provided value is invalid",
            format!("Not a valid NHS Number provided for {field}"),
        )
        .at(field.to_owned())
    })
}

/// Reads an access request, reporting the first problem.
pub fn access_request(body: &[u8]) -> Result<(AccessRequestForm, Value), VrsError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| invalid_form("The supplied input is not a valid FHIR QuestionnaireResponse."))?;
    super::vrs::checked_text(&v, "QuestionnaireResponse")?;
    if v.get("resourceType").and_then(Value::as_str) != Some("QuestionnaireResponse") {
        return Err(invalid_form(
            "The supplied input is not a valid FHIR QuestionnaireResponse.",
        ));
    }
    if v.get("status").and_then(Value::as_str) != Some("completed") {
        return Err(invalid_form(
            "Failed questionnaire response validation: status must be completed",
        ));
    }
    if v.get("questionnaire")
        .and_then(Value::as_str)
        .is_none_or(|q| q.trim().is_empty())
    {
        return Err(invalid_form(
            "Failed questionnaire response validation: questionnaire is required",
        ));
    }
    let authored = v
        .get("authored")
        .and_then(Value::as_str)
        .and_then(date_time)
        .ok_or_else(|| invalid_form("Failed questionnaire response validation: authored must be a dateTime"))?;
    let reference = |name: &str| -> (Option<&str>, Option<&str>) {
        let r = v.get(name);
        (
            r.and_then(|r| r.get("type")).and_then(Value::as_str),
            r.and_then(|r| r.get("identifier"))
                .and_then(|i| i.get("value"))
                .and_then(Value::as_str),
        )
    };
    for name in ["source", "subject"] {
        let system = v
            .get(name)
            .and_then(|r| r.get("identifier"))
            .and_then(|i| i.get("system"))
            .and_then(Value::as_str);
        if system.is_some_and(|s| s != NHS_NUMBER_SYSTEM) {
            return Err(VrsError::invalid(
                400,
                "INVALID_IDENTIFIER_SYSTEM",
                "Invalid identifier system.",
                "The identifier system is not valid.",
            )
            .at(format!("{name}.identifier.system")));
        }
    }
    let (source_type, source_value) = reference("source");
    let (_, subject_value) = reference("subject");
    let nominated_by_patient = match source_type {
        Some("RelatedPerson") => false,
        Some("Patient") => true,
        _ => {
            return Err(invalid_form(
                "Failed questionnaire response validation: source.type is RelatedPerson or Patient",
            ));
        }
    };
    let source = nhs(source_value, nominated_by_patient, "source.identifier.value")?;
    let patient = nhs(subject_value, true, "subject.identifier.value")?;
    let proxy = nhs(
        first_string(&v, "relatedPerson_identifier").as_deref(),
        false,
        "relatedPerson_identifier",
    )?;
    if let Some(p) = first_string(&v, "patient_identifier")
        && p != patient.as_str()
    {
        return Err(invalid_form(
            "Failed questionnaire response validation: patient_identifier is not the subject",
        ));
    }
    if nominated_by_patient && source != patient {
        return Err(invalid_form(
            "Failed questionnaire response validation: a patient nominating a proxy is the subject",
        ));
    }
    if !nominated_by_patient && source != proxy {
        return Err(invalid_form(
            "Failed questionnaire response validation: the applicant is the related person",
        ));
    }
    if proxy == patient {
        return Err(invalid_form(
            "Failed questionnaire response validation: a patient cannot be their own proxy",
        ));
    }
    let basis = codings(&v, "relatedPerson_basisForAccess")
        .first()
        .map(|c| match code_of(c) {
            "PRN" => Ok(LegalBasis::ParentalResponsibility),
            "Personal" => Ok(LegalBasis::Consent),
            "002" => Ok(LegalBasis::BestInterest),
            _ => Err(invalid_form(
                "Failed questionnaire response validation: basisForAccess is PRN, Personal or 002",
            )),
        })
        .ok_or_else(|| {
            invalid_form("Failed questionnaire response validation: relatedPerson_basisForAccess is required")
        })??;
    let relationships: Vec<RelationshipCode> = codings(&v, "relatedPerson_relationship")
        .into_iter()
        .map(|c| RelationshipCode {
            system: c.get("system").and_then(Value::as_str).unwrap_or_default().to_owned(),
            code: code_of(c).to_owned(),
            display: c.get("display").and_then(Value::as_str).map(str::to_owned),
        })
        .collect();
    if relationships.is_empty() {
        return Err(invalid_form(
            "Failed questionnaire response validation: relatedPerson_relationship is required",
        ));
    }
    if relationships.len() > 10
        || relationships
            .iter()
            .any(|r| r.system.len() > 256 || r.display.as_ref().is_some_and(|d| d.chars().count() > 256))
    {
        return Err(invalid_form(
            "Failed questionnaire response validation: relatedPerson_relationship has too many codings or one that is too long",
        ));
    }
    if let Some(r) = relationships.iter().find(|r| !r.is_known()) {
        let shown: String = r.code.chars().take(30).collect();
        return Err(invalid_form(format!(
            "Failed questionnaire response validation: unknown relationship code {shown}"
        )));
    }
    let requested = codings(&v, "requestedAccess_accessLevel");
    if requested.is_empty() {
        return Err(invalid_form(
            "Failed questionnaire response validation: requestedAccess_accessLevel is required",
        ));
    }
    let asked = |code: &str| requested.iter().any(|c| code_of(c) == code);
    let child_consent = match yes_no(&v, "parentalApplicationSupplementaryDetails_canChildConsent") {
        Some(true) => Some(ChildConsent::Given),
        Some(false) => match first_string(&v, "parentalApplicationSupplementaryDetails_reasonNoChildConsent") {
            Some(r) if r.chars().count() > 1000 => {
                return Err(invalid_form(
                    "Failed questionnaire response validation: reasonNoChildConsent is longer than 1000 characters",
                ));
            }
            Some(r) if !r.is_empty() => Some(ChildConsent::NotSought { reason: r }),
            _ => None,
        },
        None => None,
    };
    let form = AccessRequestForm {
        source_nhs_number: source,
        nominated_by_patient,
        patient_nhs_number: patient,
        proxy_nhs_number: proxy,
        legal_basis: basis,
        relationships,
        requested: ProxyGrants {
            services: Services {
                appointments: crate::domain::ServiceLevel::from_bool(asked("APPT")),
                prescriptions: crate::domain::ServiceLevel::from_bool(asked("PRESCR")),
                messaging: false,
            },
            record_level: RecordAccessLevel::None,
            record_from: None,
        },
        record_requested: ["RECRD", "TEST", "VACC", "COND", "CONSULT", "DOCS"]
            .iter()
            .any(|c| asked(c)),
        child_consent,
        authored,
    };
    Ok((form, v))
}

/// A stored access request as VRS gives it back: as submitted, with its id and reference code.
pub fn stored(body: &str, id: &str, reference: &str) -> Value {
    let mut v: Value = serde_json::from_str(body).unwrap_or_else(|_| json!({"resourceType": "QuestionnaireResponse"}));
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.insert("identifier".into(), json!({"value": reference}));
    }
    v
}
