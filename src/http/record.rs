//! The GP record: `$gpc.getstructuredrecord` (GP Connect Access Record, in R4) and FHIR searches
//! over the same content, for the patient and their proxies, under what is in effect for them.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::NaiveDate;

use super::body::{Paging, RawBody};
use super::error::{ApiError, ErrorCode};
use super::search::{parse_pairs_with, searchset, strict_handling};
use crate::domain::NhsNumber;
use crate::domain::clinical::{Area, Period, Query};
use crate::domain::policy::Action;
use crate::fhir::FHIR_JSON;
use crate::fhir::clinical::{Resources, structured_record, types_of};
use crate::fhir::{OperationOutcome, Parameter, Parameters};
use crate::services::Caller;
use crate::services::access::{self, Target};
use crate::services::record::{self, Whose};
use crate::state::AppState;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// The record answers are clinical content: never kept by anyone on the way.
fn clinical(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .body(body)
}

fn clinical_json(body: &impl serde::Serialize) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_vec(body).map_err(|e| ApiError::internal(format!("writing a record answer: {e}")))?;
    Ok(clinical(body))
}

/// A part's `valuePeriod` (inclusive days; a dateTime counts by its day).
fn period(p: &Parameter, name: &str) -> Result<Period, ApiError> {
    let value = p
        .value_period
        .as_ref()
        .ok_or_else(|| invalid(format!("{name} needs a valuePeriod")).at(name.to_owned()))?;
    let day = |v: &Option<String>, which: &str| -> Result<Option<NaiveDate>, ApiError> {
        v.as_deref()
            .map(|s| {
                NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .map_err(|_| invalid(format!("{name}.{which} is not a date")).at(name.to_owned()))
            })
            .transpose()
    };
    Period::new(day(&value.start, "start")?, day(&value.end, "end")?)
        .map_err(|m| invalid(format!("{name}: {m}")).at(name.to_owned()))
}

/// The GP Connect parameters as the one query the filter takes. Every parameter and part is
/// checked: one the operation does not take is refused, not ignored, so a caller never believes
/// it filtered something it did not.
fn structured_query(params: &Parameters) -> Result<(NhsNumber, Query), ApiError> {
    let mut nhs = None;
    let mut query = Query {
        areas: BTreeMap::new(),
        resolved_allergies: true,
        active_problems: None,
        recent_consultations: None,
    };
    for p in &params.parameter {
        let parts = p.part.as_slice();
        let only = |allowed: &[&str]| -> Result<(), ApiError> {
            match parts.iter().find(|q| !allowed.contains(&q.name.as_str())) {
                Some(q) => Err(invalid(format!("{} does not take a part named {}", p.name, q.name)).at(p.name.clone())),
                None => Ok(()),
            }
        };
        let mut area = |a: Area, when: Option<&str>| -> Result<(), ApiError> {
            let period = match when.and_then(|w| parts.iter().find(|q| q.name == w)) {
                Some(q) => period(q, &q.name)?,
                None => Period::default(),
            };
            if query.areas.insert(a, period).is_some() {
                return Err(invalid(format!("{} is given more than once", p.name)).at(p.name.clone()));
            }
            Ok(())
        };
        match p.name.as_str() {
            "patientNHSNumber" => {
                let value = p
                    .value_identifier
                    .as_ref()
                    .and_then(|i| {
                        (i.system.as_deref() == Some("https://fhir.nhs.uk/Id/nhs-number")).then_some(i.value.as_deref())
                    })
                    .flatten()
                    .ok_or_else(|| {
                        invalid(
                            "patientNHSNumber needs a valueIdentifier with system https://fhir.nhs.uk/Id/nhs-number",
                        )
                        .at("patientNHSNumber")
                    })?;
                let parsed = NhsNumber::parse(value).map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidIdentifier,
                        "patientNHSNumber is not a valid NHS number",
                    )
                    .at("patientNHSNumber")
                })?;
                if nhs.replace(parsed).is_some() {
                    return Err(invalid("patientNHSNumber is given more than once").at("patientNHSNumber"));
                }
            }
            "includeAllergies" => {
                only(&["includeResolvedAllergies"])?;
                let resolved = parts
                    .iter()
                    .find(|q| q.name == "includeResolvedAllergies")
                    .and_then(|q| q.value_boolean)
                    .ok_or_else(|| {
                        invalid("includeAllergies needs includeResolvedAllergies (valueBoolean)").at("includeAllergies")
                    })?;
                query.resolved_allergies = resolved;
                area(Area::Allergies, None)?;
            }
            "includeMedication" => {
                only(&["medicationSearchFromDate", "includePrescriptionIssues"])?;
                let from = parts
                    .iter()
                    .find(|q| q.name == "medicationSearchFromDate")
                    .map(|q| {
                        q.value_date
                            .as_deref()
                            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                            .ok_or_else(|| {
                                invalid("medicationSearchFromDate needs a valueDate").at("includeMedication")
                            })
                    })
                    .transpose()?;
                area(Area::Medications, None)?;
                query.areas.insert(Area::Medications, Period { start: from, end: None });
            }
            "includeConsultations" => {
                only(&["consultationSearchPeriod", "includeNumberOfMostRecent"])?;
                if let Some(n) = parts.iter().find(|q| q.name == "includeNumberOfMostRecent") {
                    let n = n.value_positive_int.filter(|n| *n > 0).ok_or_else(|| {
                        invalid("includeNumberOfMostRecent needs a valuePositiveInt").at("includeConsultations")
                    })?;
                    query.recent_consultations = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
                area(Area::Consultations, Some("consultationSearchPeriod"))?;
            }
            "includeProblems" => {
                only(&["filterStatus", "filterSignificance"])?;
                if let Some(s) = parts.iter().find(|q| q.name == "filterStatus") {
                    query.active_problems = Some(match s.value_code.as_deref() {
                        Some("active") => true,
                        Some("inactive") => false,
                        _ => return Err(invalid("filterStatus is active or inactive").at("includeProblems")),
                    });
                }
                if let Some(s) = parts.iter().find(|q| q.name == "filterSignificance")
                    && !matches!(s.value_code.as_deref(), Some("major" | "minor"))
                {
                    return Err(invalid("filterSignificance is major or minor").at("includeProblems"));
                }
                area(Area::Problems, None)?;
            }
            "includeImmunisations" => {
                only(&[])?;
                area(Area::Immunisations, None)?;
            }
            "includeInvestigations" => {
                only(&["investigationSearchPeriod"])?;
                area(Area::Investigations, Some("investigationSearchPeriod"))?;
            }
            "includeReferrals" => {
                only(&["referralSearchPeriod"])?;
                area(Area::Referrals, Some("referralSearchPeriod"))?;
            }
            "includeDocuments" => {
                only(&["documentSearchPeriod"])?;
                area(Area::Documents, Some("documentSearchPeriod"))?;
            }
            other => {
                let shown = crate::domain::text::shown(other, 40);
                return Err(invalid(format!(
                    "{shown} is not a parameter of $gpc.getstructuredrecord (patientNHSNumber, includeAllergies, includeMedication, includeConsultations, includeProblems, includeImmunisations, includeInvestigations, includeReferrals, includeDocuments)"
                ))
                .at(shown));
            }
        }
    }
    let nhs = nhs.ok_or_else(|| invalid("patientNHSNumber is required").at("patientNHSNumber"))?;
    Ok((nhs, query))
}

/// The patient's structured record (GP Connect Access Record, served as R4), for the patient
/// or a proxy acting for them, filtered by what is in effect for the person asking.
///
/// Parameters as GP Connect's: `patientNHSNumber` (valueIdentifier), `includeAllergies`
/// (`includeResolvedAllergies`), `includeMedication` (`medicationSearchFromDate`),
/// `includeConsultations` (`consultationSearchPeriod`, `includeNumberOfMostRecent`),
/// `includeProblems` (`filterStatus`), `includeImmunisations`, `includeInvestigations`
/// (`investigationSearchPeriod`), `includeReferrals` (`referralSearchPeriod`), and
/// `includeDocuments` (`documentSearchPeriod`). The answer is a `collection` Bundle: the
/// patient, their practice, a List per area the access shows, and the entries.
#[utoipa::path(
    tag = "GP record",
    request_body(content = Parameters, content_type = "application/fhir+json"),
    responses(
        (status = 200, description = "A collection Bundle", content_type = "application/fhir+json"),
        (status = 400, description = "INVALID_IDENTIFIER: patientNHSNumber is not a valid NHS number", body = OperationOutcome),
        (status = 403, description = "SERVICE_NOT_GRANTED (no record access in effect), PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT, INSUFFICIENT_IDENTITY_ASSURANCE (P9 only)", body = OperationOutcome),
        (status = 404, description = "No patient the caller may act for has this NHS number (the same for one that does not exist)", body = OperationOutcome),
        (status = 422, description = "INVALID_PARAMETER: an unknown parameter or part, a missing one, a period the wrong way round", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR: the clinical system failed or gave an answer that cannot be used", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[post("/Patient/$gpc.getstructuredrecord")]
#[tracing::instrument(skip_all)]
pub async fn structured(state: web::Data<AppState>, caller: Caller, body: RawBody) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::ReadRecord, Target::Pending).await?;
    let (nhs, query) = structured_query(&body.parameters()?)?;
    let disclosed = record::read(&state.core, &caller, Whose::Nhs(nhs), query).await?;
    Ok(clinical(structured_record(
        &state.base_url,
        &disclosed.patient,
        &disclosed.practice,
        &disclosed.visible,
        &|v: &str| disclosed.name(v),
    )))
}

/// The resource types a record search serves, with the areas each reads.
fn areas_for(resource_type: &str) -> Option<&'static [Area]> {
    Some(match resource_type {
        "AllergyIntolerance" => &[Area::Allergies],
        "MedicationStatement" | "MedicationRequest" => &[Area::Medications],
        "Condition" => &[Area::Problems],
        "Immunization" => &[Area::Immunisations],
        "Encounter" => &[Area::Consultations],
        // Test results, and consultations' notes.
        "Observation" => &[Area::Investigations, Area::Consultations],
        "ServiceRequest" => &[Area::Referrals],
        "DocumentReference" => &[Area::Documents],
        _ => return None,
    })
}

/// The patient a record search names: `patient=Patient/{id}` or `patient={id}`.
fn patient_param(params: &BTreeMap<String, String>) -> Result<String, ApiError> {
    let raw = params.get("patient").ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidSearchParameter,
            "patient is required: patient=Patient/{id}",
        )
        .at("patient")
    })?;
    let id = raw.strip_prefix("Patient/").unwrap_or(raw);
    if !crate::domain::text::is_resource_id(id) {
        return Err(ApiError::new(ErrorCode::InvalidSearchParameter, "patient must be Patient/{id}").at("patient"));
    }
    Ok(id.to_owned())
}

/// One search over the record: the resources of one type for one patient, paged.
pub(super) async fn search(
    state: &AppState,
    caller: &Caller,
    req: &HttpRequest,
    resource_type: &'static str,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, caller, Action::ReadRecord, Target::Pending).await?;
    let pairs = parse_pairs_with(
        req.query_string(),
        &["patient", "_count", "_offset"],
        strict_handling(req),
    )?;
    let mut params = BTreeMap::new();
    for (k, v) in pairs {
        if params.insert(k.clone(), v).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!("search parameter '{k}' may be given only once"),
            ));
        }
    }
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
        strict_handling(req),
    )?;
    let patient = patient_param(&params)?;
    let areas = areas_for(resource_type).unwrap_or_default();
    let query = Query {
        areas: areas.iter().map(|a| (*a, Period::default())).collect(),
        ..Query::everything()
    };
    let disclosed = record::read(&state.core, caller, Whose::Id(patient), query).await?;
    let r = Resources::new(&disclosed.patient, &disclosed.visible, &|v: &str| disclosed.name(v));
    let matching: Vec<_> = disclosed
        .visible
        .entries
        .iter()
        .filter(|e| types_of(e).contains(&resource_type))
        .collect();
    let total = i64::try_from(matching.len()).unwrap_or(i64::MAX);
    let page = matching
        .into_iter()
        .skip(usize::try_from(paging.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.count).unwrap_or(0))
        .map(|e| {
            let resource = serde_json::to_value(r.resource(e, resource_type))
                .map_err(|e| ApiError::internal(format!("writing a record answer: {e}")))?;
            Ok((r.id(resource_type, e), resource))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    clinical_json(&searchset(
        &state.base_url,
        resource_type,
        &params,
        &paging,
        total,
        page,
    ))
}

macro_rules! record_searches {
    ($( $fn_name:ident => $path:literal, $kind:literal; )*) => {
        $(
            #[doc = concat!("Search the patient's ", $kind, " resources: `patient` (required), `_count`, `_offset`. The same filter as `$gpc.getstructuredrecord`.")]
            #[utoipa::path(
                tag = "GP record",
                params(
                    ("patient" = String, Query, description = "Patient/{id}: the caller's own record or one they act for"),
                    ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
                    ("_offset" = Option<i64>, Query, description = "Where the page starts"),
                ),
                responses(
                    (status = 200, description = "A searchset Bundle", content_type = "application/fhir+json"),
                    (status = 400, description = "INVALID_SEARCH_PARAMETER", body = OperationOutcome),
                    (status = 403, description = "SERVICE_NOT_GRANTED, PROXY_ROLE_NOT_ACTIVE, NO_ACTIVE_ONLINE_ACCOUNT or an identity-assurance refusal", body = OperationOutcome),
                    (status = 404, description = "No patient the caller may act for has this id", body = OperationOutcome),
                    (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
                    (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
                ),
                security(("bearer" = []))
            )]
            #[get($path)]
            #[tracing::instrument(skip_all)]
            pub async fn $fn_name(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
                search(&state, &caller, &req, $kind).await
            }
        )*
    };
}

record_searches! {
    allergies => "/AllergyIntolerance", "AllergyIntolerance";
    medication_statements => "/MedicationStatement", "MedicationStatement";
    conditions => "/Condition", "Condition";
    immunizations => "/Immunization", "Immunization";
    observations => "/Observation", "Observation";
    encounters => "/Encounter", "Encounter";
    service_requests => "/ServiceRequest", "ServiceRequest";
    document_references => "/DocumentReference", "DocumentReference";
}

/// A document's content (`DocumentReference.content.attachment.url`), decided and filtered as
/// the record is: a document not shown to the caller is not found, like one that never was.
#[utoipa::path(
    tag = "GP record",
    params(("id" = String, Path, description = "As the DocumentReference names it")),
    responses(
        (status = 200, description = "The Binary", content_type = "application/fhir+json"),
        (status = 404, description = "No document the caller may see has this id", body = OperationOutcome),
        (status = 502, description = "SUPPLIER_ERROR", body = OperationOutcome),
        (status = 504, description = "SUPPLIER_TIMEOUT", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/Binary/{id}")]
#[tracing::instrument(skip_all)]
pub async fn binary(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::ReadRecord, Target::Pending).await?;
    let not_found = || ApiError::new(ErrorCode::ResourceNotFound, "Binary not found");
    let (patient, document) = id.split_once('.').ok_or_else(not_found)?;
    if patient.is_empty() || document.len() != 32 || !document.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let disclosed = record::read(
        &state.core,
        &caller,
        Whose::Id(patient.to_owned()),
        Query::only(Area::Documents),
    )
    .await?;
    let r = Resources::new(&disclosed.patient, &disclosed.visible, &|v: &str| disclosed.name(v));
    let found = r.named(document).and_then(|e| r.binary(e)).ok_or_else(not_found)?;
    clinical_json(&found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: serde_json::Value) -> Parameters {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_gp_connect_parameters_become_one_query() {
        let p = params(serde_json::json!({"resourceType": "Parameters", "parameter": [
            {"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}},
            {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": false}]},
            {"name": "includeConsultations", "part": [
                {"name": "consultationSearchPeriod", "valuePeriod": {"start": "2024-01-01", "end": "2024-12-31"}},
                {"name": "includeNumberOfMostRecent", "valuePositiveInt": 3}]},
            {"name": "includeProblems", "part": [{"name": "filterStatus", "valueCode": "active"}]}
        ]}));
        let (nhs, q) = structured_query(&p).unwrap();
        assert_eq!(nhs.as_str(), "9990000018");
        assert!(!q.resolved_allergies);
        assert_eq!(q.recent_consultations, Some(3));
        assert_eq!(q.active_problems, Some(true));
        assert_eq!(q.areas[&Area::Consultations].start, NaiveDate::from_ymd_opt(2024, 1, 1));
    }

    #[test]
    fn anything_the_operation_does_not_take_is_refused() {
        let base = serde_json::json!({"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}});
        for (extra, why) in [
            (serde_json::json!({"name": "includeDiary"}), "unknown parameter"),
            (
                serde_json::json!({"name": "includeAllergies"}),
                "missing includeResolvedAllergies",
            ),
            (
                serde_json::json!({"name": "includeImmunisations", "part": [{"name": "x", "valueBoolean": true}]}),
                "unknown part",
            ),
            (
                serde_json::json!({"name": "includeInvestigations", "part": [{"name": "investigationSearchPeriod", "valuePeriod": {"start": "2025-01-01", "end": "2024-01-01"}}]}),
                "a period the wrong way round",
            ),
        ] {
            let p = params(serde_json::json!({"resourceType": "Parameters", "parameter": [base.clone(), extra]}));
            let e = structured_query(&p).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameter, "{why}");
        }
        let no_patient =
            params(serde_json::json!({"resourceType": "Parameters", "parameter": [{"name": "includeImmunisations"}]}));
        assert_eq!(
            structured_query(&no_patient).unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        let bad_number = params(serde_json::json!({"resourceType": "Parameters", "parameter": [
            {"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000019"}}]}));
        assert_eq!(
            structured_query(&bad_number).unwrap_err().code,
            ErrorCode::InvalidIdentifier
        );
    }
}
