use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FhirError;
use super::{ContactPoint, HumanName, Identifier, Meta, ODS_SYSTEM, Reference, instant};
use crate::domain::{
    Gender, NewPatient, OdsCode, PatientDetails, PatientIdentifier, PatientIdentifierSystem, PatientRecord, PracticeRef,
};

/// FHIR R4 `Patient` as the gateway stores it: one national identifier (NHS, CHI or H&C
/// number), an official name, birth date, gender, an email address and the registered practice.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({
    "resourceType": "Patient",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
    "name": [{"use": "official", "family": "Smith", "given": ["Jane"]}],
    "gender": "female",
    "birthDate": "1980-05-01",
    "telecom": [{"system": "email", "value": "jane.smith@example.org"}],
    "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}]
}))]
pub struct Patient {
    #[schema(value_type = String, example = "Patient")]
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub general_practitioner: Vec<Reference>,
}

fn bad(message: impl Into<String>, expression: &str) -> FhirError {
    FhirError::resource(message, expression)
}

impl Patient {
    pub fn from_record(record: &PatientRecord) -> Self {
        let d = &record.details;
        Self {
            resource_type: "Patient".into(),
            id: Some(record.id.clone()),
            meta: Some(Meta {
                version_id: Some(record.version.to_string()),
                last_updated: Some(instant(record.last_updated)),
                profile: vec![],
            }),
            identifier: vec![Identifier {
                use_: Some("official".into()),
                system: Some(d.identifier.system().uri().into()),
                value: Some(d.identifier.value().into()),
            }],
            name: vec![HumanName {
                use_: Some("official".into()),
                family: Some(d.family.clone()),
                given: d.given.clone(),
            }],
            telecom: d
                .email
                .iter()
                .map(|e| ContactPoint {
                    system: Some("email".into()),
                    value: Some(e.clone()),
                    use_: Some("home".into()),
                })
                .collect(),
            gender: Some(d.gender.as_str().into()),
            birth_date: Some(crate::fhir::date(d.birth_date)),
            general_practitioner: vec![Reference {
                reference: Some(format!("Organization/{}", record.practice_id)),
                type_: Some("Organization".into()),
                identifier: Some(Identifier {
                    use_: None,
                    system: Some(ODS_SYSTEM.into()),
                    value: Some(record.practice_ods.as_str().into()),
                }),
                display: None,
            }],
        }
    }

    /// Validates a request body into domain values, naming the offending element on failure.
    pub fn parse(self, today: NaiveDate) -> Result<NewPatient, FhirError> {
        if self.resource_type != "Patient" {
            return Err(bad("resourceType must be Patient", "Patient.resourceType"));
        }
        let national: Vec<(usize, &Identifier)> = self
            .identifier
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                i.system
                    .as_deref()
                    .is_some_and(|s| PatientIdentifierSystem::from_uri(s).is_ok())
            })
            .collect();
        let (index, identifier) = match national.as_slice() {
            [one] => *one,
            [] => {
                return Err(bad(
                    "exactly one identifier from the NHS number, CHI number or H&C number system is required",
                    "Patient.identifier",
                ));
            }
            _ => {
                return Err(bad(
                    "only one national patient identifier is allowed",
                    "Patient.identifier",
                ));
            }
        };
        if self.identifier.len() != 1 {
            return Err(bad(
                "identifiers other than the national patient identifier are not stored",
                "Patient.identifier",
            ));
        }
        let system = PatientIdentifierSystem::from_uri(identifier.system.as_deref().unwrap_or_default())
            .map_err(|e| bad(e.to_string(), &format!("Patient.identifier[{index}].system")))?;
        let identifier = PatientIdentifier::parse(system, identifier.value.as_deref().unwrap_or_default())
            .map_err(|e| FhirError::identifier(e.to_string(), format!("Patient.identifier[{index}].value")))?;

        let name = match self.name.as_slice() {
            [one] => one,
            [] => return Err(bad("a name with a family name is required", "Patient.name")),
            many => many
                .iter()
                .find(|n| n.use_.as_deref() == Some("official"))
                .ok_or_else(|| bad("with several names, one must have use 'official'", "Patient.name"))?,
        };
        let birth_date = self
            .birth_date
            .as_deref()
            .ok_or_else(|| bad("birthDate is required", "Patient.birthDate"))
            .and_then(|b| {
                NaiveDate::parse_from_str(b, "%Y-%m-%d")
                    .map_err(|_| bad("birthDate must be a full date (YYYY-MM-DD)", "Patient.birthDate"))
            })?;
        let gender = match self.gender.as_deref() {
            None => Gender::Unknown,
            Some(g) => Gender::parse(g)
                .ok_or_else(|| bad("gender must be male, female, other or unknown", "Patient.gender"))?,
        };
        let emails: Vec<&str> = self
            .telecom
            .iter()
            .filter(|t| t.system.as_deref() == Some("email"))
            .filter_map(|t| t.value.as_deref())
            .collect();
        if emails.len() > 1 || emails.len() != self.telecom.len() {
            return Err(bad(
                "telecom may hold one email address and nothing else",
                "Patient.telecom",
            ));
        }
        let practice = match self.general_practitioner.as_slice() {
            [r] => practice_reference(r)?,
            _ => {
                return Err(bad(
                    "exactly one generalPractitioner referencing the registered practice is required",
                    "Patient.generalPractitioner",
                ));
            }
        };
        let details = PatientDetails::new(
            identifier,
            name.family.as_deref().unwrap_or_default(),
            name.given.clone(),
            birth_date,
            gender,
            emails.first().copied(),
            today,
        )
        .map_err(|e| {
            let at = match e {
                crate::domain::PatientDetailsError::FamilyName => "Patient.name.family",
                crate::domain::PatientDetailsError::GivenNames => "Patient.name.given",
                crate::domain::PatientDetailsError::BirthDate => "Patient.birthDate",
                crate::domain::PatientDetailsError::Email => "Patient.telecom",
            };
            bad(e.to_string(), at)
        })?;
        Ok(NewPatient {
            id: self.id,
            details,
            practice,
        })
    }
}

fn practice_reference(r: &Reference) -> Result<PracticeRef, FhirError> {
    const AT: &str = "Patient.generalPractitioner[0]";
    if let Some(reference) = r.reference.as_deref() {
        let id = reference
            .strip_prefix("Organization/")
            .filter(|id| crate::domain::text::is_resource_id(id))
            .ok_or_else(|| bad("reference must be Organization/{id}", AT))?;
        return Ok(PracticeRef::Id(id.to_owned()));
    }
    match &r.identifier {
        Some(Identifier {
            system: Some(system),
            value: Some(value),
            ..
        }) if system == ODS_SYSTEM => OdsCode::parse(value)
            .map(PracticeRef::Ods)
            .map_err(|e| FhirError::identifier(e.to_string(), AT)),
        _ => Err(bad(
            "generalPractitioner needs a reference or an ODS code identifier",
            AT,
        )),
    }
}
