//! `Consent`, the VRS proxy role: reading a new role from a request, reading its extensions,
//! and writing a role back out.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::vrs::{
    CATEGORY_SYSTEM, GRANTOR_URL, LEGAL_BASIS_SYSTEM, NULL_FLAVOR_SYSTEM, POLICY_AUTHORITY, POLICY_URI,
    PROXY_ACCESS_URL, PROXY_ASSESSMENT_URL, SCOPE_SYSTEM, STATUS_REASON_SYSTEM, STATUS_REASON_URL, VrsError,
    same_terminology_system,
};
use super::{NHS_NUMBER_SYSTEM, ODS_SYSTEM, instant};
use crate::domain::proxy::{
    Assessment, ChildConsent, LegalBasis, ProxyGrants, ProxyRole, ReasonRecord, RoleRequest, RoleStatus, StatusReason,
};
use crate::domain::{NhsNumber, OdsCode, RecordAccessLevel, ServiceLevel, Services};

fn missing(code: &'static str, field: &str) -> VrsError {
    VrsError::invalid(
        400,
        code,
        "Required values are missing.",
        format!("Unable to find {field}"),
    )
    .at(field.to_owned())
}

fn invalid(code: &'static str, field: &str, what: &str) -> VrsError {
    VrsError::invalid(
        422,
        code,
        &format!("Invalid {what}."),
        format!("{} is invalid", capitalise(what)),
    )
    .at(field.to_owned())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

/// A FHIR `dateTime` (with a zone) or a `date`, as a UTC time.
pub fn date_time(raw: &str) -> Option<NaiveDateTime> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc).naive_utc());
    }
    if raw.len() == 10 && raw.is_ascii() {
        return NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0);
    }
    None
}

/// An identifier reference (`{identifier: {system, value}}`) holding an NHS number.
fn nhs_reference(v: Option<&Value>, field: &str, patient: bool) -> Result<NhsNumber, VrsError> {
    let identifier = v.and_then(|r| r.get("identifier"));
    let value = identifier.and_then(|i| i.get("value")).and_then(Value::as_str);
    let system = identifier.and_then(|i| i.get("system")).and_then(Value::as_str);
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Err(VrsError::invalid(
            400,
            "MISSING_IDENTIFIER_VALUE",
            "Required values are missing.",
            format!("Unable to determine the {field} identifier value"),
        )
        .at(format!("{field}.identifier.value")));
    };
    match system {
        None => {
            return Err(VrsError::invalid(
                400,
                "MISSING_IDENTIFIER_SYSTEM",
                "Required values are missing.",
                format!("Unable to determine the {field} identifier system"),
            )
            .at(format!("{field}.identifier.system")));
        }
        Some(s) if s != NHS_NUMBER_SYSTEM => {
            return Err(VrsError::invalid(
                422,
                "INVALID_IDENTIFIER_SYSTEM",
                "Invalid identifier system.",
                format!("{} identifier system is invalid", capitalise(field)),
            )
            .at(format!("{field}.identifier.system")));
        }
        Some(_) => {}
    }
    NhsNumber::parse(value).map_err(|_| {
        let code = if patient {
            "INVALID_PATIENT_IDENTIFIER_VALUE"
        } else {
            "INVALID_IDENTIFIER_VALUE"
        };
        VrsError::invalid(
            422,
            code,
            "Invalid identifier value.",
            format!("{} identifier value is invalid", capitalise(field)),
        )
        .at(format!("{field}.identifier.value"))
    })
}

/// The legal basis from `policyRule` (a CodeableConcept, or a list of one, as some clients send).
pub fn legal_basis(v: &Value) -> Result<LegalBasis, VrsError> {
    let concept = match v {
        Value::Array(list) if list.len() == 1 => &list[0],
        other => other,
    };
    let coding = concept.get("coding").and_then(|c| c.get(0));
    let code = coding.and_then(|c| c.get("code")).and_then(Value::as_str);
    let system = coding.and_then(|c| c.get("system")).and_then(Value::as_str);
    let bad = || {
        VrsError::invalid(
            422,
            "INVALID_LEGAL_BASIS_CODE",
            "Invalid legal basis code.",
            "The legal basis code is not one of the NHS proxy legal basis codes.",
        )
        .at("policyRule")
    };
    let basis = code.and_then(LegalBasis::parse).ok_or_else(bad)?;
    let expected = if basis == LegalBasis::Unknown {
        NULL_FLAVOR_SYSTEM
    } else {
        LEGAL_BASIS_SYSTEM
    };
    match system {
        Some(s) if same_terminology_system(s, expected) || s == expected => Ok(basis),
        _ => Err(bad()),
    }
}

/// The extensions a Consent (or a patch adding to `/extension/-`) may carry.
#[derive(Debug, Default)]
pub struct Extensions {
    pub reason: Option<ReasonRecord>,
    pub grantor: Option<OdsCode>,
    pub grants: Option<ProxyGrants>,
    pub assessment: Option<Assessment>,
}

pub fn extensions(list: &[Value]) -> Result<Extensions, VrsError> {
    let mut out = Extensions::default();
    for e in list {
        match e.get("url").and_then(Value::as_str) {
            Some(STATUS_REASON_URL) => out.reason = Some(status_reason(e)?),
            Some(GRANTOR_URL) => out.grantor = Some(grantor(e)?),
            Some(PROXY_ACCESS_URL) => out.grants = Some(grants(e)?),
            Some(PROXY_ASSESSMENT_URL) => out.assessment = Some(assessment(e)?),
            _ => {
                return Err(VrsError::invalid(
                    422,
                    "INVALID_EXTENSION",
                    "Invalid extension.",
                    "Only the status reason, grantor, proxy-access and proxy-assessment extensions are accepted.",
                )
                .at("extension"));
            }
        }
    }
    Ok(out)
}

fn status_reason(e: &Value) -> Result<ReasonRecord, VrsError> {
    let concept = e.get("valueCodeableConcept");
    let coding = concept.and_then(|c| c.get("coding")).and_then(|c| c.get(0));
    let bad = || {
        VrsError::invalid(
            422,
            "INVALID_STATUS_REASON",
            "Status reason is invalid.",
            "Invalid status reason.",
        )
        .at(format!("extension.where(url = '{STATUS_REASON_URL}')"))
    };
    let system = coding.and_then(|c| c.get("system")).and_then(Value::as_str);
    if system != Some(STATUS_REASON_SYSTEM) {
        return Err(bad());
    }
    let reason = coding
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
        .and_then(StatusReason::parse)
        .ok_or_else(bad)?;
    let text = concept
        .and_then(|c| c.get("text"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(1000).collect::<String>());
    if reason == StatusReason::Other && text.is_none() {
        return Err(VrsError::from_problem(
            &crate::domain::proxy::Problem::MissingFreeTextForOther,
        ));
    }
    Ok(ReasonRecord { reason, text })
}

fn grantor(e: &Value) -> Result<OdsCode, VrsError> {
    let at = |tail: &str| format!("extension.where(url = '{GRANTOR_URL}'){tail}");
    let Some(reference) = e.get("valueReference") else {
        return Err(VrsError::invalid(
            400,
            "MISSING_GRANTOR_REFERENCE",
            "Missing grantor reference",
            "Grantor extension must contain a valueReference",
        )
        .at(at(".valueReference")));
    };
    let Some(identifier) = reference.get("identifier") else {
        return Err(VrsError::invalid(
            400,
            "MISSING_GRANTOR_IDENTIFIER",
            "Missing grantor identifier",
            "Grantor extension must contain a valueIdentifier",
        )
        .at(at(".valueReference.identifier")));
    };
    if identifier.get("system").and_then(Value::as_str) != Some(ODS_SYSTEM) {
        return Err(VrsError::invalid(
            422,
            "INVALID_GRANTOR_SYSTEM",
            "Invalid grantor identifier system",
            "Valid grantor extension identifier system is required when creating/updating a consent with status 'active'",
        )
        .at(at(".valueReference.identifier.system")));
    }
    identifier
        .get("value")
        .and_then(Value::as_str)
        .and_then(|v| OdsCode::parse(v).ok())
        .ok_or_else(|| {
            VrsError::from_problem(&crate::domain::proxy::Problem::InvalidGrantorValue(
                "Valid grantor extension identifier value is required when creating/updating a consent with status 'active'".into(),
            ))
        })
}

fn sub<'a>(e: &'a Value, url: &str) -> Option<&'a Value> {
    e.get("extension")?
        .as_array()?
        .iter()
        .find(|x| x.get("url").and_then(Value::as_str) == Some(url))
}

fn bad_extension(url: &str, what: &str) -> VrsError {
    VrsError::invalid(422, "INVALID_EXTENSION", "Invalid extension.", what.to_owned())
        .at(format!("extension.where(url = '{url}')"))
}

fn grants(e: &Value) -> Result<ProxyGrants, VrsError> {
    let flag = |name: &str| -> Result<bool, VrsError> {
        match sub(e, name) {
            None => Ok(false),
            Some(x) => x
                .get("valueBoolean")
                .and_then(Value::as_bool)
                .ok_or_else(|| bad_extension(PROXY_ACCESS_URL, &format!("{name} needs valueBoolean"))),
        }
    };
    let record_level = match sub(e, "recordAccess") {
        None => RecordAccessLevel::None,
        Some(x) => x
            .get("valueCode")
            .and_then(Value::as_str)
            .and_then(RecordAccessLevel::parse)
            .ok_or_else(|| {
                bad_extension(
                    PROXY_ACCESS_URL,
                    "recordAccess is none, summary, detailed-coded, documents or full",
                )
            })?,
    };
    let record_from = match sub(e, "recordAccessFrom") {
        None => None,
        Some(x) => Some(
            x.get("valueDate")
                .and_then(Value::as_str)
                .and_then(super::operations::parse_date)
                .ok_or_else(|| bad_extension(PROXY_ACCESS_URL, "recordAccessFrom needs valueDate"))?,
        ),
    };
    // A level (none, view, manage), or on and off as before levels: on is manage.
    let level = |name: &str| -> Result<ServiceLevel, VrsError> {
        match sub(e, &format!("{name}Level")).or_else(|| sub(e, name)) {
            None => Ok(ServiceLevel::None),
            Some(x) => match (
                x.get("valueBoolean").and_then(Value::as_bool),
                x.get("valueCode").and_then(Value::as_str),
            ) {
                (Some(on), None) => Ok(ServiceLevel::from_bool(on)),
                (None, Some(code)) => ServiceLevel::parse(code)
                    .ok_or_else(|| bad_extension(PROXY_ACCESS_URL, &format!("{name} is none, view or manage"))),
                _ => Err(bad_extension(
                    PROXY_ACCESS_URL,
                    &format!("{name} needs valueCode none, view or manage (or valueBoolean)"),
                )),
            },
        }
    };
    Ok(ProxyGrants {
        services: Services {
            appointments: level("appointments")?,
            prescriptions: level("prescriptions")?,
            messaging: flag("messaging")?,
        },
        record_level,
        record_from: record_from.filter(|_| record_level == RecordAccessLevel::Full),
    })
}

fn assessment(e: &Value) -> Result<Assessment, VrsError> {
    let flag = |name: &str| {
        sub(e, name)
            .and_then(|x| x.get("valueBoolean"))
            .and_then(Value::as_bool)
    };
    let text = |name: &str| {
        sub(e, name)
            .and_then(|x| x.get("valueString"))
            .and_then(Value::as_str)
            .map(|s| s.trim().chars().take(1000).collect::<String>())
            .filter(|s| !s.is_empty())
    };
    let child_consent = match sub(e, "childConsent")
        .and_then(|x| x.get("valueCode"))
        .and_then(Value::as_str)
    {
        None => None,
        Some("given") => Some(ChildConsent::Given),
        Some("not-sought") => Some(ChildConsent::NotSought {
            reason: text("childConsentNotSoughtReason").ok_or_else(|| {
                bad_extension(
                    PROXY_ASSESSMENT_URL,
                    "childConsent not-sought needs childConsentNotSoughtReason",
                )
            })?,
        }),
        Some(_) => {
            return Err(bad_extension(
                PROXY_ASSESSMENT_URL,
                "childConsent is given or not-sought",
            ));
        }
    };
    Ok(Assessment {
        coercion_considered: flag("coercionConsidered").unwrap_or(false),
        safeguarding_considered: flag("safeguardingConsidered").unwrap_or(false),
        child_consent,
        patient_has_capacity: flag("patientHasCapacity"),
        attested_by: None,
        attested_at: None,
        note: text("note"),
    })
}

fn coded(v: Option<&Value>, system: &str, code: &str) -> bool {
    let codings = v
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    codings.iter().any(|c| {
        c.get("code").and_then(Value::as_str) == Some(code)
            && c.get("system")
                .and_then(Value::as_str)
                .is_some_and(|s| same_terminology_system(s, system))
    })
}

/// Reads a `POST /Consent` body, reporting the first problem with the VRS code for it.
pub fn role_request(body: &[u8]) -> Result<RoleRequest, VrsError> {
    let not_fhir = || VrsError::bad_request("The supplied input is not a valid FHIR Consent.");
    let v: Value = serde_json::from_slice(body).map_err(|_| not_fhir())?;
    super::vrs::checked_text(&v, "Consent")?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Consent") {
        return Err(not_fhir());
    }
    let status = match v.get("status") {
        None => return Err(missing("MISSING_STATUS", "status")),
        Some(s) => s.as_str().and_then(RoleStatus::parse).ok_or_else(|| {
            VrsError::invalid(422, "INVALID_STATUS", "Invalid status.", "Status is invalid").at("status")
        })?,
    };
    match v.get("scope") {
        None => return Err(missing("MISSING_SCOPE", "scope")),
        Some(s) if !coded(Some(s), SCOPE_SYSTEM, "patient-privacy") => {
            return Err(invalid("INVALID_SCOPE", "scope", "scope"));
        }
        Some(_) => {}
    }
    match v.get("category").and_then(Value::as_array) {
        None => return Err(missing("MISSING_CATEGORY", "category")),
        Some(list) if !list.iter().any(|c| coded(Some(c), CATEGORY_SYSTEM, "INFA")) => {
            return Err(invalid("INVALID_CATEGORY", "category", "category"));
        }
        Some(_) => {}
    }
    if v.get("patient").is_none() {
        return Err(missing("MISSING_PATIENT", "patient"));
    }
    let patient = nhs_reference(v.get("patient"), "patient", true)?;
    let agreed = match v.get("dateTime") {
        None => return Err(missing("MISSING_DATETIME", "dateTime")),
        Some(d) => d
            .as_str()
            .and_then(date_time)
            .ok_or_else(|| invalid("INVALID_DATETIME", "dateTime", "dateTime"))?,
    };
    let performer = match v.get("performer").and_then(Value::as_array) {
        None => return Err(missing("MISSING_PERFORMER", "performer")),
        Some(list) if list.len() != 1 => return Err(invalid("INVALID_PERFORMER", "performer", "performer")),
        Some(list) => nhs_reference(list.first(), "performer", false)?,
    };
    if performer == patient {
        return Err(invalid(
            "INVALID_PERFORMER",
            "performer",
            "performer: a patient cannot be their own proxy",
        ));
    }
    let legal_basis = match v.get("policyRule") {
        None => LegalBasis::Unknown,
        Some(rule) => legal_basis(rule)?,
    };
    let provision = v.get("provision");
    // A proxy role permits the proxy to act: a `deny` (or any other type) would be stored and
    // enforced as the permit it is not. A provision without a type is a permit.
    let permit = match provision {
        None => true,
        Some(Value::Object(p)) => p.get("type").is_none_or(|t| t.as_str() == Some("permit")),
        Some(_) => false,
    };
    if !permit {
        return Err(VrsError::invalid(
            422,
            "INVALID_PROVISION",
            "Invalid provision.",
            "provision.type must be 'permit': a proxy role permits the proxy to act for the patient",
        )
        .at("provision.type"));
    }
    let period = provision.and_then(|p| p.get("period"));
    let when = |name: &str| -> Result<Option<NaiveDateTime>, VrsError> {
        match period.and_then(|p| p.get(name)) {
            None => Ok(None),
            Some(x) => x
                .as_str()
                .and_then(date_time)
                .map(Some)
                .ok_or_else(|| invalid("INVALID_PROVISION", &format!("provision.period.{name}"), "provision")),
        }
    };
    let (period_start, period_end) = (when("start")?, when("end")?);
    if let Some(actors) = provision.and_then(|p| p.get("actor")).and_then(Value::as_array) {
        for actor in actors {
            let named = actor
                .get("reference")
                .and_then(|r| r.get("identifier"))
                .and_then(|i| i.get("value"))
                .and_then(Value::as_str);
            if named.is_some_and(|n| n != performer.as_str()) {
                return Err(invalid(
                    "INVALID_PROVISION",
                    "provision.actor",
                    "provision: the actor must be the performer",
                ));
            }
        }
    }
    let list = match v.get("extension") {
        None => vec![],
        Some(Value::Array(list)) => list.clone(),
        Some(_) => {
            return Err(VrsError::invalid(
                422,
                "INVALID_EXTENSION",
                "Invalid extension.",
                "extension must be a list",
            )
            .at("extension"));
        }
    };
    let ext = extensions(&list)?;
    let reason = ext
        .reason
        .ok_or_else(|| VrsError::from_problem(&crate::domain::proxy::Problem::MissingStatusReason))?;
    Ok(RoleRequest {
        status,
        reason,
        patient_nhs_number: patient,
        proxy_nhs_number: performer,
        legal_basis,
        relationships: vec![],
        grantor: ext.grantor,
        date_time: agreed,
        period_start,
        period_end,
        grants: ext.grants,
        assessment: ext.assessment,
    })
}

fn identifier(nhs: &NhsNumber) -> Value {
    json!({"system": NHS_NUMBER_SYSTEM, "value": nhs.as_str()})
}

fn date_of(t: NaiveDateTime) -> String {
    if t.time() == chrono::NaiveTime::MIN {
        crate::fhir::date(t.date())
    } else {
        instant(t.and_utc())
    }
}

/// A role as a VRS `Consent`, with what it grants in the gateway's `proxy-access` extension.
pub fn to_consent(role: &ProxyRole) -> Value {
    let mut reason = json!({
        "coding": [{"system": STATUS_REASON_SYSTEM, "code": role.reason.reason.code(), "display": role.reason.reason.display()}]
    });
    if let Some(text) = &role.reason.text {
        reason["text"] = json!(text);
    }
    let mut extension = vec![json!({"url": STATUS_REASON_URL, "valueCodeableConcept": reason})];
    if let Some(g) = &role.grantor {
        extension.push(
            json!({"url": GRANTOR_URL, "valueReference": {"identifier": {"system": ODS_SYSTEM, "value": g.as_str()}}}),
        );
    }
    let mut access = vec![
        json!({"url": "appointments", "valueBoolean": role.grants.services.appointments.is_on()}),
        json!({"url": "prescriptions", "valueBoolean": role.grants.services.prescriptions.is_on()}),
        json!({"url": "appointmentsLevel", "valueCode": role.grants.services.appointments.as_str()}),
        json!({"url": "prescriptionsLevel", "valueCode": role.grants.services.prescriptions.as_str()}),
        json!({"url": "messaging", "valueBoolean": role.grants.services.messaging}),
        json!({"url": "recordAccess", "valueCode": role.grants.record_level.as_str()}),
    ];
    if let Some(from) = role.grants.record_from {
        access.push(json!({"url": "recordAccessFrom", "valueDate": crate::fhir::date(from)}));
    }
    extension.push(json!({"url": PROXY_ACCESS_URL, "extension": access}));
    let basis_system = if role.legal_basis == LegalBasis::Unknown {
        NULL_FLAVOR_SYSTEM
    } else {
        LEGAL_BASIS_SYSTEM
    };
    let mut period = serde_json::Map::new();
    if let Some(s) = role.period_start {
        period.insert("start".into(), json!(date_of(s)));
    }
    if let Some(e) = role.period_end {
        period.insert("end".into(), json!(date_of(e)));
    }
    let mut provision = json!({
        "type": "permit",
        "actor": [{"reference": {"type": "RelatedPerson", "identifier": identifier(&role.proxy_nhs_number)}}]
    });
    if !period.is_empty() {
        provision["period"] = Value::Object(period);
    }
    json!({
        "resourceType": "Consent",
        "id": role.id,
        "meta": {"lastUpdated": instant(role.updated_at.and_utc())},
        "status": role.status.code(),
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "INFA", "display": "information access"}]}],
        "patient": {"identifier": identifier(&role.patient_nhs_number)},
        "dateTime": instant(role.date_time.and_utc()),
        "performer": [{"identifier": identifier(&role.proxy_nhs_number)}],
        "policy": [{"authority": POLICY_AUTHORITY, "uri": POLICY_URI}],
        "policyRule": {"coding": [{"system": basis_system, "code": role.legal_basis.code(), "display": role.legal_basis.display()}]},
        "provision": provision,
        "extension": extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Value {
        json!({
            "resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "https://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "https://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
            "patient": {"type": "Patient", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9000000025"}},
            "dateTime": "2025-02-11T14:30:00Z",
            "performer": [{"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9000000009"}}],
            "policyRule": {"coding": [{"system": LEGAL_BASIS_SYSTEM, "code": "parental-responsibility"}]},
            "provision": {"type": "permit", "period": {"start": "2025-02-11T14:30:00Z", "end": "2029-02-11T14:30:00Z"},
                "actor": [{"reference": {"type": "RelatedPerson", "identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9000000009"}}}]},
            "extension": [
                {"url": STATUS_REASON_URL, "valueCodeableConcept": {"coding": [{"system": STATUS_REASON_SYSTEM, "code": "ROLE_CREATED"}]}},
                {"url": GRANTOR_URL, "valueReference": {"identifier": {"system": ODS_SYSTEM, "value": "G8101234"}}}
            ]
        })
    }

    fn code_of(v: &Value) -> &'static str {
        match role_request(v.to_string().as_bytes()) {
            Ok(_) => "OK",
            Err(e) => e.code,
        }
    }

    #[test]
    fn a_valid_request_is_read_and_every_missing_or_bad_part_has_its_code() {
        let r = role_request(example().to_string().as_bytes()).unwrap();
        assert_eq!(r.legal_basis, LegalBasis::ParentalResponsibility);
        assert_eq!(r.grantor.unwrap().as_str(), "G8101234");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = example();
            f(&mut v);
            code_of(&v)
        };
        assert_eq!(
            with(&|v| {
                v.as_object_mut().unwrap().remove("status");
            }),
            "MISSING_STATUS"
        );
        assert_eq!(with(&|v| v["status"] = json!("done")), "INVALID_STATUS");
        assert_eq!(
            with(&|v| {
                v.as_object_mut().unwrap().remove("scope");
            }),
            "MISSING_SCOPE"
        );
        assert_eq!(
            with(&|v| v["patient"]["identifier"]["value"] = json!("9000000012")),
            "INVALID_PATIENT_IDENTIFIER_VALUE"
        );
        assert_eq!(
            with(&|v| v["performer"][0]["identifier"]["value"] = json!("9000000012")),
            "INVALID_IDENTIFIER_VALUE"
        );
        assert_eq!(
            with(&|v| v["patient"]["identifier"]["system"] = json!("x")),
            "INVALID_IDENTIFIER_SYSTEM"
        );
        assert_eq!(
            with(&|v| {
                v["patient"]["identifier"].as_object_mut().unwrap().remove("system");
            }),
            "MISSING_IDENTIFIER_SYSTEM"
        );
        assert_eq!(
            with(&|v| {
                v.as_object_mut().unwrap().remove("extension");
            }),
            "MISSING_STATUS_REASON"
        );
        assert_eq!(
            with(&|v| v["extension"][1] = json!({"url": GRANTOR_URL})),
            "MISSING_GRANTOR_REFERENCE"
        );
        assert_eq!(
            with(&|v| v["extension"][1]["valueReference"] = json!({})),
            "MISSING_GRANTOR_IDENTIFIER"
        );
        assert_eq!(
            with(&|v| v["extension"][1]["valueReference"]["identifier"]["system"] = json!("https://wrong-system.com")),
            "INVALID_GRANTOR_SYSTEM"
        );
        assert_eq!(
            with(&|v| v["extension"][1]["valueReference"]["identifier"]["value"] = json!("")),
            "INVALID_GRANTOR_VALUE"
        );
        assert_eq!(
            with(&|v| v["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = json!("OTHER")),
            "MISSING_FREE_TEXT_FOR_OTHER"
        );
        assert_eq!(
            with(&|v| v["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = json!("NOPE")),
            "INVALID_STATUS_REASON"
        );
        assert_eq!(
            with(&|v| v["extension"].as_array_mut().unwrap().push(json!({"url": "x"}))),
            "INVALID_EXTENSION"
        );
        assert_eq!(
            with(&|v| v["policyRule"]["coding"][0]["code"] = json!("friendship")),
            "INVALID_LEGAL_BASIS_CODE"
        );
        assert_eq!(code_of(&json!("not a consent")), "BAD_REQUEST");
    }

    #[test]
    fn only_a_permit_provision_is_a_proxy_role() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = example();
            f(&mut v);
            code_of(&v)
        };
        for kind in [
            json!("maybe"),
            json!("deny"),
            json!("Permit"),
            json!(""),
            json!(1),
            Value::Null,
        ] {
            assert_eq!(
                with(&|v| v["provision"]["type"] = kind.clone()),
                "INVALID_PROVISION",
                "{kind}"
            );
        }
        assert_eq!(with(&|v| v["provision"] = json!("permit")), "INVALID_PROVISION");
        assert_eq!(
            with(&|v| {
                v["provision"].as_object_mut().unwrap().remove("type");
            }),
            "OK",
            "a provision without a type is a permit"
        );
        assert_eq!(
            with(&|v| {
                v.as_object_mut().unwrap().remove("provision");
            }),
            "OK"
        );
    }
}
