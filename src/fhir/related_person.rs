//! `RelatedPerson`: the proxy, related to the patient, as VRS Bundles carry it.

use serde_json::{Value, json};

use super::NHS_NUMBER_SYSTEM;
use crate::domain::PatientRecord;
use crate::domain::proxy::ProxyRole;

/// The proxy of a role. With `patient` details, as `/RelatedPerson` searches give it: the
/// patient's name and birth date.
pub fn related_person(role: &ProxyRole, patient: Option<&PatientRecord>) -> Value {
    let relationship: Vec<Value> = role
        .relationships
        .iter()
        .map(|r| {
            let mut coding = json!({"system": r.system, "code": r.code});
            if let Some(d) = &r.display {
                coding["display"] = json!(d);
            }
            json!({"coding": [coding]})
        })
        .collect();
    let mut person = json!({
        "resourceType": "RelatedPerson",
        "id": role.id,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": role.proxy_nhs_number.as_str()}],
        "patient": {"type": "Patient", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": role.patient_nhs_number.as_str()}},
        "relationship": relationship,
    });
    if let Some(p) = patient {
        let mut name = json!({"use": "usual", "family": p.details.family});
        if !p.details.given.is_empty() {
            name["given"] = json!(p.details.given);
        }
        person["name"] = json!([name]);
        person["birthDate"] = json!(crate::fhir::date(p.details.birth_date));
    }
    person
}
