//! `GET /RelatedPerson`: the people a proxy acts for, or whether one proxy acts for one patient.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Value, json};

use super::{Failure, ok, query_pairs};
use crate::domain::NhsNumber;
use crate::domain::policy::Action;
use crate::fhir::vrs::{self, Side, TokenError, VrsError};
use crate::fhir::{OperationOutcome, related_person};
use crate::services::access::{self, Target};
use crate::services::{Caller, proxy};
use crate::state::AppState;

const INCLUDE_PATIENT: &str = "RelatedPerson:patient";

/// What `GET /RelatedPerson` was asked.
struct Query {
    proxy: Option<NhsNumber>,
    patient: Option<NhsNumber>,
    include_patient: bool,
}

fn token_error(side: Side, e: TokenError) -> VrsError {
    match (side, e) {
        (_, TokenError::System) => VrsError::invalid(
            400,
            "INVALID_IDENTIFIER_SYSTEM",
            "Invalid identifier system.",
            "The identifier system is not valid.",
        ),
        (Side::Proxy, TokenError::Value) => VrsError::invalid(
            400,
            "INVALID_IDENTIFIER_VALUE",
            "Provided value is invalid",
            "Not a valid NHS Number provided for the 'identifier' parameter",
        )
        .at("RelatedPerson.identifier"),
        (Side::Patient, TokenError::Value) => VrsError::invalid(
            400,
            "INVALID_PATIENT_IDENTIFIER_VALUE",
            "Provided value is invalid",
            "Not a valid NHS Number provided for the 'patient:identifier' parameter",
        ),
    }
}

/// A parameter `GET /RelatedPerson` does not have, or a value it does not allow. Its error
/// table has no `INVALID_PARAMETER` (the Consent search's 422): its invalid-parameter row is
/// 400 `INVALID_VALUE`.
fn invalid_value(name: &str) -> VrsError {
    let shown = crate::domain::text::shown(name, 40);
    VrsError::invalid(
        400,
        "INVALID_VALUE",
        "Required parameter(s) are invalid.",
        format!("Invalid request with error - {shown} parameter is invalid."),
    )
}

fn parse(query: &str) -> Result<Query, VrsError> {
    let mut proxy = None;
    let mut patient = None;
    let mut include_patient = false;
    for (name, value) in query_pairs(query)? {
        let side = match name.as_str() {
            "identifier" => Side::Proxy,
            "patient:identifier" => Side::Patient,
            "_include" if value == INCLUDE_PATIENT => {
                include_patient = true;
                continue;
            }
            _ => return Err(invalid_value(&name)),
        };
        let slot = if side == Side::Proxy { &mut proxy } else { &mut patient };
        if value.trim().is_empty() {
            continue;
        }
        if slot.is_some() {
            return Err(invalid_value(&name));
        }
        *slot = Some(vrs::nhs_token(value.trim()).map_err(|e| token_error(side, e))?);
    }
    if proxy.is_none() && patient.is_none() {
        return Err(VrsError::invalid(
            400,
            "MISSING_IDENTIFIER_VALUE",
            "Missing RelatedPerson NHS number.",
            "The 'identifier' parameter is required",
        ));
    }
    Ok(Query {
        proxy,
        patient,
        include_patient,
    })
}

/// The relationships of a proxy (`identifier`), the proxies of a patient
/// (`patient:identifier`), or one proxy-patient pair (both).
///
/// Each match is a `RelatedPerson` carrying the patient's name and birth date; with
/// `_include=RelatedPerson:patient` the patient follows as a `Patient`. Proposed, active and
/// inactive relationships are listed; rejected and invalidated ones are not. A patient or proxy
/// sees only relationships they are part of; staff only those at their practices.
#[utoipa::path(
    tag = "Proxy access",
    params(
        ("identifier" = Option<String>, Query, description = "The proxy's NHS number, optionally as `https://fhir.nhs.uk/Id/nhs-number|9000000017`"),
        ("patient:identifier" = Option<String>, Query, description = "The patient's NHS number (at least one of the two is required)"),
        ("_include" = Option<String>, Query, description = "`RelatedPerson:patient` to include the patients"),
    ),
    responses(
        (status = 200, description = "Searchset Bundle of RelatedPerson (empty when nothing matches)", content_type = "application/fhir+json"),
        (status = 400, description = "MISSING_VALUE (no X-Request-ID), MISSING_IDENTIFIER_VALUE, INVALID_IDENTIFIER_VALUE, INVALID_PATIENT_IDENTIFIER_VALUE, INVALID_IDENTIFIER_SYSTEM, or INVALID_VALUE: a parameter it does not have, a repeated identifier, or an `_include` other than RelatedPerson:patient", body = OperationOutcome),
        (status = 401, description = "ACCESS_DENIED", body = OperationOutcome),
        (status = 403, description = "FORBIDDEN: systems may not search relationships", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/RelatedPerson")]
#[tracing::instrument(skip_all)]
pub async fn search(state: web::Data<AppState>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, Failure> {
    access::authorize(&state.core, &caller, Action::SearchRelatedPersons, Target::Pending).await?;
    let query = parse(req.query_string())?;
    let found = proxy::related_persons(&state.core, &caller, query.proxy, query.patient).await?;
    let base = &state.base_url;
    let mut entries: Vec<Value> = vec![];
    let mut included: Vec<String> = vec![];
    for view in &found {
        if query.include_patient && !included.contains(&view.role.patient_id) {
            included.push(view.role.patient_id.clone());
            entries.push(vrs::patient_entry(
                base,
                &view.role.patient_nhs_number,
                view.patient.as_ref(),
            ));
        }
        entries.push(json!({
            "fullUrl": format!("{base}/RelatedPerson/{}", view.role.id),
            "resource": related_person::related_person(&view.role, view.patient.as_ref()),
            "search": {"mode": "match"},
        }));
    }
    let self_link = match req.query_string() {
        "" => format!("{base}/RelatedPerson"),
        q => format!("{base}/RelatedPerson?{q}"),
    };
    Ok(ok(
        StatusCode::OK,
        &vrs::searchset(&self_link, found.len(), entries, false),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert!(parse("").is_err_and(|e| e.code == "MISSING_IDENTIFIER_VALUE"));
        assert!(parse("identifier=").is_err_and(|e| e.code == "MISSING_IDENTIFIER_VALUE"));
        assert!(parse("identifier=900000000").is_err_and(|e| e.code == "INVALID_IDENTIFIER_VALUE" && e.status == 400));
        assert!(parse("patient:identifier=9000000012").is_err_and(|e| e.code == "INVALID_PATIENT_IDENTIFIER_VALUE"));
        assert!(
            parse("identifier=https://fhir.nhs.uk/Id/nhs-number/9730675929")
                .is_err_and(|e| e.code == "INVALID_IDENTIFIER_SYSTEM")
        );
        for unsupported in [
            "identifier=9000000017&_include=Patient:x",
            "identifier=9000000017&_include=RelatedPerson:patient,Patient:x",
            "identifier=9000000017&_unknown=1",
            "identifier=9000000017&identifier=9000000009",
        ] {
            assert!(
                parse(unsupported).is_err_and(|e| e.code == "INVALID_VALUE" && e.status == 400),
                "{unsupported}"
            );
        }
        let q = parse("identifier=9000000017&patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C9000000009&_include=RelatedPerson:patient")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(q.include_patient && q.proxy.is_some() && q.patient.is_some());
    }
}
