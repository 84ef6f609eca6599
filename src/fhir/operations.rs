//! FHIR `Parameters` for the gateway's operations: reading what callers send into domain
//! types, and writing what the operations answer.

use chrono::{DateTime, NaiveDate, Utc};

use super::{Coding, FhirError, Identifier, OperationOutcome, OperationOutcomeIssue, Parameter, Parameters, Reference};
use crate::domain::entitlements::{Entitlements, Via};
use crate::domain::identity::{IdentityAssertion, LinkageDetails};
use crate::domain::policy::{Decision, Service, Verdict};
use crate::domain::provisioning::OutboxJob;
use crate::domain::record_access::{AccessChange, AccessCode, SNOMED};
use crate::domain::registration::RegistrationRequest;
use crate::domain::review::{ReviewDecision, ReviewTask};
use crate::domain::{
    AccessSettings, IdentityVerification, NhsNumber, OdsCode, OnlineAccount, PatientAccess, ProofingLevel,
    RecordAccessLevel, ServiceLevel, Services, VerificationMethod,
};

/// The body of every operation is a `Parameters` resource.
pub fn parameters(body: &[u8]) -> Result<Parameters, FhirError> {
    let p: Parameters = super::from_json("Parameters", body)?;
    if p.resource_type != "Parameters" {
        return Err(FhirError::resource(
            "the body must be a Parameters resource",
            "Parameters.resourceType",
        ));
    }
    Ok(p)
}

fn condition(field: &str, message: &str) -> FhirError {
    FhirError::condition(field, message)
}

fn required_bool(p: &Parameters, name: &str) -> Result<bool, FhirError> {
    p.get(name)
        .and_then(|x| x.value_boolean)
        .ok_or_else(|| condition(name, &format!("{name} is required (valueBoolean)")))
}

/// `services` and `recordAccess` as sent to `$register-online-services` and
/// `$set-online-access`. Services left out are off; no `recordAccess` is no record access.
pub fn access(p: &Parameters) -> Result<AccessSettings, FhirError> {
    let flag = |group: &Parameter, name: &str| -> Result<bool, FhirError> {
        match group.part(name) {
            None => Ok(false),
            Some(x) => x
                .value_boolean
                .ok_or_else(|| condition(&format!("services.{name}"), "needs valueBoolean")),
        }
    };
    // A level (none, view, manage), or on and off as before levels: on is manage.
    let level = |group: &Parameter, name: &str| -> Result<ServiceLevel, FhirError> {
        match group.part(&format!("{name}Level")).or_else(|| group.part(name)) {
            None => Ok(ServiceLevel::None),
            Some(x) => match (x.value_boolean, x.value_code.as_deref()) {
                (Some(on), None) => Ok(ServiceLevel::from_bool(on)),
                (None, Some(code)) => ServiceLevel::parse(code).ok_or_else(|| {
                    condition(
                        &format!("services.{name}"),
                        "is none, view or manage (valueCode), or valueBoolean",
                    )
                }),
                _ => Err(condition(
                    &format!("services.{name}"),
                    "needs valueCode none, view or manage (or valueBoolean)",
                )),
            },
        }
    };
    let services = match p.get("services") {
        None => Services::default(),
        Some(g) => {
            if let Some(unknown) = g.part.iter().find(|x| {
                ![
                    "appointments",
                    "appointmentsLevel",
                    "prescriptions",
                    "prescriptionsLevel",
                    "messaging",
                ]
                .contains(&x.name.as_str())
            }) {
                let name: String = unknown.name.chars().take(40).collect();
                return Err(condition(
                    &format!("services.{name}"),
                    "unknown service (appointments, prescriptions or messaging)",
                ));
            }
            Services {
                appointments: level(g, "appointments")?,
                prescriptions: level(g, "prescriptions")?,
                messaging: flag(g, "messaging")?,
            }
        }
    };
    let (record_level, record_from) = match p.get("recordAccess") {
        None => (RecordAccessLevel::None, None),
        Some(g) => {
            let level = g.part("level").and_then(|x| x.value_code.as_deref()).ok_or_else(|| {
                condition(
                    "recordAccess.level",
                    "recordAccess needs a level (none, summary, detailed-coded, documents or full)",
                )
            })?;
            let level = RecordAccessLevel::parse(level).ok_or_else(|| {
                condition(
                    "recordAccess.level",
                    "level must be none, summary, detailed-coded, documents or full",
                )
            })?;
            let from =
                match g.part("from") {
                    None => None,
                    Some(x) => Some(x.value_date.as_deref().and_then(parse_date).ok_or_else(|| {
                        condition("recordAccess.from", "from must be a date (valueDate, YYYY-MM-DD)")
                    })?),
                };
            (level, from)
        }
    };
    Ok(AccessSettings {
        services,
        record_level,
        record_from,
    })
}

/// `$set-online-access`: only the services and the record access it names change. A service
/// left out of `services` keeps its setting; leaving out `recordAccess` keeps the record access.
pub fn access_change(p: &Parameters) -> Result<AccessChange, FhirError> {
    let full = access(p)?;
    let named = |name: &str| {
        p.get("services")
            .and_then(|g| g.part(name).or_else(|| g.part(&format!("{name}Level"))))
            .is_some()
    };
    let change = AccessChange {
        appointments: named("appointments").then_some(full.services.appointments),
        prescriptions: named("prescriptions").then_some(full.services.prescriptions),
        messaging: named("messaging").then_some(full.services.messaging),
        record: p.get("recordAccess").map(|_| (full.record_level, full.record_from)),
    };
    if change.is_empty() {
        return Err(condition(
            "services",
            "name at least one service (appointments, prescriptions, messaging) or recordAccess to change",
        ));
    }
    Ok(change)
}

/// `$complete` on a record review: `decision` approve (the default) or decline with a `reason`.
pub fn review_decision(p: &Parameters) -> Result<ReviewDecision, FhirError> {
    match p.get("decision").and_then(|d| d.value_code.as_deref()) {
        None if p.get("decision").is_none() => Ok(ReviewDecision::Approve),
        Some("approve") => Ok(ReviewDecision::Approve),
        Some("decline") => {
            let reason = p
                .get("reason")
                .and_then(|r| r.value_string.as_deref())
                .map(str::trim)
                .filter(|r| !r.is_empty() && r.chars().count() <= 2000)
                .ok_or_else(|| {
                    FhirError::parameter(
                        "reason",
                        "declining needs a reason (valueString, at most 2000 characters)",
                    )
                })?;
            Ok(ReviewDecision::Decline(reason.to_owned()))
        }
        _ => Err(FhirError::parameter(
            "decision",
            "decision is approve or decline (valueCode)",
        )),
    }
}

/// A FHIR `date` with day precision.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    if raw.len() != 10 || !raw.is_ascii() {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// What staff send to `$register-online-services`. `staff` verified the identity unless the
/// body names someone else.
pub fn registration(p: &Parameters, staff: &str, now: DateTime<Utc>) -> Result<RegistrationRequest, FhirError> {
    let v = p
        .get("identityVerification")
        .ok_or_else(|| condition("identityVerification", "record how the patient's identity was verified"))?;
    let method = v
        .part("method")
        .and_then(|m| m.value_code.as_deref())
        .ok_or_else(|| condition("identityVerification.method", "method is required"))?;
    let method = VerificationMethod::parse(method).ok_or_else(|| {
        condition(
            "identityVerification.method",
            "method must be nhs-login-p9, documents-in-person, vouching or vouching-with-record-confirmation",
        )
    })?;
    let documents: Vec<String> = v.parts("document").filter_map(|d| d.value_string.clone()).collect();
    if documents.len() > 10 || documents.iter().any(|d| d.chars().count() > 200) {
        return Err(condition(
            "identityVerification.document",
            "at most 10 documents, each described in at most 200 characters",
        ));
    }
    let verified_by = match v.part("verifiedBy") {
        Some(b) => b
            .value_string
            .clone()
            .ok_or_else(|| condition("identityVerification.verifiedBy", "verifiedBy needs valueString"))?,
        None => staff.to_owned(),
    };
    if v.part("verifiedBy").is_some() && verified_by.chars().count() > 200 {
        return Err(condition(
            "identityVerification.verifiedBy",
            "verifiedBy is at most 200 characters",
        ));
    }
    let verified_at = match v.part("verifiedAt") {
        Some(t) => t
            .value_date_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                condition(
                    "identityVerification.verifiedAt",
                    "verifiedAt must be a dateTime with a time zone",
                )
            })?,
        None => now,
    };
    Ok(RegistrationRequest {
        verification: IdentityVerification {
            method,
            documents,
            verified_by,
            verified_at,
        },
        email: match p.get("email") {
            None => None,
            Some(e) => Some(
                e.value_string
                    .clone()
                    .ok_or_else(|| condition("email", "email needs valueString"))?,
            ),
        },
        responsibilities_acknowledged: required_bool(p, "responsibilitiesAcknowledged")?,
        coercion_considered: required_bool(p, "coercionConsidered")?,
        capacity_considered: required_bool(p, "capacityConsidered")?,
        access: access(p)?,
    })
}

/// The reason `$disable-online-account` needs.
pub fn disable_reason(p: &Parameters) -> Result<String, FhirError> {
    p.get("reason")
        .and_then(|r| r.value_string.clone())
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty() && r.chars().count() <= 500)
        .ok_or_else(|| {
            condition(
                "reason",
                "say why the account is being disabled (at most 500 characters)",
            )
        })
}

/// The optional note on `Task/$complete`.
pub fn note(p: &Parameters) -> Result<Option<String>, FhirError> {
    match p.get("note") {
        None => Ok(None),
        Some(n) => n
            .value_string
            .clone()
            .filter(|n| n.chars().count() <= 2000)
            .map(Some)
            .ok_or_else(|| FhirError::parameter("note", "note needs valueString (at most 2000 characters)")),
    }
}

fn string_param(p: &Parameters, name: &str) -> Result<String, FhirError> {
    p.get(name)
        .and_then(|x| x.value_string.clone().or_else(|| x.value_code.clone()))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| FhirError::parameter(name, format!("{name} is required")))
}

fn ods_param(p: &Parameters, name: &str) -> Result<OdsCode, FhirError> {
    OdsCode::parse(&string_param(p, name)?).map_err(|e| FhirError::parameter(name, e.to_string()))
}

/// Letter details an identity provider sends to `$verify-linkage`.
pub fn linkage_details(p: &Parameters) -> Result<LinkageDetails, FhirError> {
    Ok(LinkageDetails {
        ods_code: ods_param(p, "odsCode")?,
        account_id: string_param(p, "accountId")?,
        linkage_key: string_param(p, "linkageKey")?,
        family_name: string_param(p, "familyName")?,
        birth_date: p
            .get("birthDate")
            .and_then(|b| b.value_date.as_deref())
            .and_then(parse_date)
            .ok_or_else(|| FhirError::parameter("birthDate", "birthDate is required (valueDate, YYYY-MM-DD)"))?,
    })
}

/// An identity provider's assertion to `$link-identity`.
pub fn identity_assertion(p: &Parameters) -> Result<IdentityAssertion, FhirError> {
    Ok(IdentityAssertion {
        issuer: string_param(p, "issuer")?,
        subject: string_param(p, "sub")?,
        nhs_number: NhsNumber::parse(&string_param(p, "nhsNumber")?)
            .map_err(|e| FhirError::identifier(e.to_string(), super::parameter_path("nhsNumber")))?,
        proofing_level: ProofingLevel::parse(&string_param(p, "identityProofingLevel")?)
            .ok_or_else(|| FhirError::parameter("identityProofingLevel", "identityProofingLevel is P0, P5 or P9"))?,
        ods_code: ods_param(p, "odsCode")?,
    })
}

fn access_parts(a: &AccessSettings) -> Vec<Parameter> {
    let mut record = vec![Parameter::code("level", a.record_level.as_str())];
    if let Some(from) = a.record_from {
        record.push(Parameter::date("from", from));
    }
    vec![
        Parameter::group(
            "services",
            vec![
                Parameter::boolean("appointments", a.services.appointments.is_on()),
                Parameter::boolean("prescriptions", a.services.prescriptions.is_on()),
                Parameter::boolean("messaging", a.services.messaging),
                // How far each goes: `view` lists, `manage` also books, cancels or requests.
                Parameter::code("appointmentsLevel", a.services.appointments.as_str()),
                Parameter::code("prescriptionsLevel", a.services.prescriptions.as_str()),
            ],
        ),
        Parameter::group("recordAccess", record),
    ]
}

/// The `account` group: status, services, record access, Account ID (never the key).
pub fn account_group(a: &OnlineAccount) -> Parameter {
    let mut parts = vec![Parameter::code("status", a.status.as_str())];
    if let Some(reason) = &a.status_reason {
        parts.push(Parameter::string("statusReason", reason.clone()));
    }
    if let Some(id) = &a.account_id {
        parts.push(Parameter::string("accountId", id.clone()));
    }
    if !a.email.is_empty() {
        parts.push(Parameter::string("email", a.email.clone()));
    }
    parts.push(Parameter::string("verificationMethod", a.verification.method.as_str()));
    parts.push(Parameter::code("source", a.source.as_str()));
    // What the supplier has confirmed; a change it has not confirmed yet is shown apart.
    parts.extend(access_parts(&a.access));
    if let Some(pending) = &a.pending_access {
        parts.push(Parameter::group("pendingAccess", access_parts(pending)));
    }
    parts.push(Parameter::boolean("linkageKeyIssued", a.linkage_key_sealed.is_some()));
    if let Some(expires) = a.letter_expires_at {
        parts.push(Parameter::date_time("letterExpiresAt", expires.and_utc()));
    }
    if let Some(e) = &a.last_error {
        parts.push(Parameter::string("lastError", e.clone()));
    }
    Parameter::group("account", parts)
}

/// `$online-account`: the account, the access in effect (the practice's model and the record's
/// codes applied), and the codes with who added them.
pub fn account(
    a: &OnlineAccount,
    effective: &AccessSettings,
    codes: &[(AccessCode, String, chrono::NaiveDateTime)],
) -> Parameters {
    let mut parameter = vec![
        account_group(a),
        Parameter::group("effectiveAccess", access_parts(effective)),
    ];
    parameter.extend(codes.iter().map(access_code_group));
    Parameters::new(parameter)
}

/// A record-access code on a record, with who added it and when.
pub fn access_code_group((code, by, at): &(AccessCode, String, chrono::NaiveDateTime)) -> Parameter {
    Parameter::group(
        "accessCode",
        vec![
            Parameter {
                name: "code".into(),
                value_coding: Some(Coding {
                    system: Some(SNOMED.into()),
                    code: Some(code.code().into()),
                    display: Some(code.display().into()),
                }),
                ..Default::default()
            },
            Parameter::string("addedBy", by.clone()),
            Parameter::date_time("addedAt", at.and_utc()),
        ],
    )
}

/// The record-access code a `$add-record-access-code` or `$remove-record-access-code` names:
/// `code` as a SNOMED CT `valueCoding` or a bare `valueCode`.
pub fn access_code(p: &Parameters) -> Result<AccessCode, FhirError> {
    let param = p
        .get("code")
        .ok_or_else(|| FhirError::parameter("code", "code is required (valueCoding with the SNOMED CT code)"))?;
    let (system, value) = match (&param.value_coding, &param.value_code) {
        (Some(c), _) => (c.system.as_deref(), c.code.as_deref()),
        (None, Some(v)) => (None, Some(v.as_str())),
        _ => return Err(FhirError::parameter("code", "code needs valueCoding or valueCode")),
    };
    if system.is_some_and(|s| s != SNOMED) {
        return Err(FhirError::parameter(
            "code",
            format!("the code system must be {SNOMED}"),
        ));
    }
    value.and_then(AccessCode::parse).ok_or_else(|| {
        FhirError::parameter(
            "code",
            "unknown record-access code: 1364731000000104 (enhanced review indicated), 1364751000000106 (not indicated) or 1290331000000103 (declined)",
        )
    })
}

/// What an accepted account change answers: the account, the provisioning Task, any review
/// Task, and warnings.
pub fn accepted(
    account: &OnlineAccount,
    job: Option<&OutboxJob>,
    review: Option<&ReviewTask>,
    warnings: &[String],
) -> Parameters {
    let mut parameter = vec![account_group(account)];
    if let Some(job) = job {
        parameter.push(Parameter::reference("task", format!("Task/{}", job.id)));
    }
    if let Some(review) = review {
        parameter.push(Parameter::reference("reviewTask", format!("Task/{}", review.id)));
    }
    let mut issues: Vec<OperationOutcomeIssue> = warnings
        .iter()
        .map(|w| OperationOutcomeIssue {
            severity: "warning".into(),
            code: "business-rule".into(),
            details: None,
            diagnostics: Some(w.clone()),
            expression: vec![],
        })
        .collect();
    if review.is_some() {
        issues.push(OperationOutcomeIssue {
            severity: "information".into(),
            code: "informational".into(),
            details: None,
            diagnostics: Some("historic record access waits for a record review; prospective access starts now. Explain the delay to the patient.".into()),
            expression: vec![],
        });
    }
    if !issues.is_empty() {
        let outcome = OperationOutcome {
            resource_type: "OperationOutcome".into(),
            issue: issues,
        };
        parameter.push(Parameter::resource(
            "outcome",
            serde_json::to_value(outcome).unwrap_or_default(),
        ));
    }
    Parameters::new(parameter)
}

/// `$my-access`: one `access` group per patient the caller may act for.
pub fn my_access(entries: &[PatientAccess]) -> Parameters {
    Parameters::new(entries.iter().map(access_entry).collect())
}

fn access_entry(e: &PatientAccess) -> Parameter {
    let identifier = &e.patient.details.identifier;
    let mut parts = vec![
        Parameter {
            name: "patient".into(),
            value_reference: Some(Reference {
                reference: Some(format!("Patient/{}", e.patient.id)),
                identifier: Some(Identifier {
                    use_: None,
                    system: Some(identifier.system().uri().into()),
                    value: Some(identifier.value().into()),
                }),
                display: Some(
                    format!("{} {}", e.patient.details.given.join(" "), e.patient.details.family)
                        .trim()
                        .to_owned(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        },
        Parameter::code("relationship", e.relationship.clone()),
        Parameter::string("practice", e.patient.practice_ods.as_str()),
        // The patient's own account; for a proxy's entry the role's standing is `roleStatus`.
        Parameter::code("accountStatus", e.account.code()),
    ];
    if e.entitlements.role_id().is_some() {
        parts.push(Parameter::code("roleStatus", e.entitlements.standing.code()));
    }
    if let Some(id) = e.entitlements.role_id() {
        parts.push(Parameter {
            name: "role".into(),
            value_reference: Some(Reference {
                reference: Some(format!("Consent/{id}")),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    parts.extend(access_parts(&e.entitlements.access));
    if let Some(id) = &e.pending_review {
        parts.push(Parameter {
            name: "pendingReview".into(),
            value_reference: Some(Reference {
                reference: Some(format!("Task/{id}")),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if !e.entitlements.standing.is_active()
        && let Some(r) = e.entitlements.summary()
    {
        parts.push(Parameter::string("reason", r));
    }
    parts.extend(
        e.entitlements
            .reasons
            .iter()
            .map(|r| Parameter::string("basis", r.as_ref())),
    );
    Parameter::group("access", parts)
}

/// `$service-access`: the service in effect for the caller and the patient, how they reach it
/// and, for the record, its level and `from` date; the same entitlements `$my-access` shows.
pub fn service_access(patient_id: &str, service: Service, e: &Entitlements) -> Parameters {
    let mut parameter = vec![
        Parameter::code("service", service.name()),
        Parameter {
            name: "patient".into(),
            value_reference: Some(Reference {
                reference: Some(format!("Patient/{patient_id}")),
                ..Default::default()
            }),
            ..Default::default()
        },
        Parameter::boolean("allowed", service.granted_by(&e.access)),
        Parameter::code(
            "through",
            match e.via {
                Via::Account(_) => "online-account",
                Via::Role(_) => "proxy-role",
            },
        ),
    ];
    if let Some(id) = e.role_id() {
        parameter.push(Parameter {
            name: "role".into(),
            value_reference: Some(Reference {
                reference: Some(format!("Consent/{id}")),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if matches!(service, Service::Appointments | Service::Prescriptions) {
        // `view` lists; `manage` also books, cancels or requests.
        parameter.push(Parameter::code("level", service.level_in(&e.access).as_str()));
    }
    if service == Service::Record {
        parameter.push(Parameter::code("recordAccess", e.access.record_level.as_str()));
        if let Some(from) = e.access.record_from {
            parameter.push(Parameter::date("recordFrom", from));
        }
    }
    parameter.extend(e.reasons.iter().map(|r| Parameter::string("basis", r.as_ref())));
    Parameters::new(parameter)
}

/// `$explain-access`: the decision, its code and deciding rule, and every rule consulted.
pub fn explanation(decision: &Decision) -> Parameters {
    let mut parameter = vec![
        Parameter::code("action", decision.action.name()),
        Parameter::boolean("allowed", decision.is_allowed()),
        Parameter::code(
            "outcome",
            match decision.verdict {
                Verdict::Allowed => "allowed",
                Verdict::Refused(_) => "refused",
            },
        ),
    ];
    if let Some(r) = decision.refusal() {
        parameter.push(Parameter::code("code", r.code()));
    }
    parameter.push(Parameter::code("decidingRule", decision.rule.name()));
    parameter.push(Parameter::string("reason", decision.reason()));
    for step in &decision.trace {
        parameter.push(Parameter::group(
            "rule",
            vec![
                Parameter::code("name", step.rule.name()),
                Parameter::code("result", step.result.name()),
                Parameter::string("detail", step.detail.as_ref()),
            ],
        ));
    }
    Parameters::new(parameter)
}
