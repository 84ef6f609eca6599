use crate::db::patients::PatientFilter;
use crate::db::{self, DbError, DbPool};
use crate::domain::{OdsCode, PatientIdentifierSystem, PatientRecord, PracticeRecord};
use crate::error::{ApiError, ErrorCode};
use crate::fhir::{ParsedPatient, PracticeReference};
use crate::identity::Principal;

use super::access::{self, SearchScope};
use super::identity;
use crate::identity::AssurancePolicy;
use crate::state::AppState;

pub async fn read(state: &AppState, principal: &Principal, id: String) -> Result<PatientRecord, ApiError> {
    if let Principal::Patient(p) = principal {
        // A patient reaches records only through their identity binding; any other id looks
        // exactly like one that does not exist.
        identity::check_assurance(state, p, AssurancePolicy::PatientRecord)?;
        return match identity::resolve_self(state, p).await? {
            Some(me) if me.patient.id == id => {
                identity::require_active_account(state, &me.patient).await?;
                Ok(me.patient)
            }
            _ => Err(ApiError::not_found("Patient")),
        };
    }
    let record = db::run(&state.pool, move |c| db::patients::find(c, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("Patient"))?;
    access::can_read_patient(principal, &record)?;
    Ok(record)
}

async fn resolve_practice(pool: &DbPool, reference: PracticeReference) -> Result<PracticeRecord, ApiError> {
    let found = db::run(pool, move |c| match &reference {
        PracticeReference::Id(id) => db::practices::find(c, id),
        PracticeReference::Ods(ods) => db::practices::find_by_ods(c, ods),
    })
    .await?;
    found.ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownPractice,
            "generalPractitioner does not reference a practice known to the gateway",
        )
        .at("Patient.generalPractitioner[0]")
    })
}

pub enum Created {
    New(PatientRecord),
    /// A conditional create found exactly one match, which is returned instead.
    Existing(PatientRecord),
}

/// Creates a patient record at the caller's own practice. With `if_none_exist`, an existing
/// match is returned instead (FHIR conditional create); several matches are refused.
pub async fn create(
    pool: &DbPool,
    principal: &Principal,
    parsed: ParsedPatient,
    if_none_exist: Option<PatientFilter>,
) -> Result<Created, ApiError> {
    let practice = resolve_practice(pool, parsed.practice).await?;
    access::require_staff_at(principal, &practice.ods_code)?;
    let id = uuid::Uuid::new_v4().to_string();
    let details = parsed.details;
    enum Outcome {
        Inserted(PatientRecord),
        Matched(PatientRecord),
        Many,
        Duplicate,
    }
    let outcome = db::run(pool, move |c| {
        let result = db::write_transaction::<_, DbError, _>(c, |c| {
            if let Some(filter) = &if_none_exist {
                let (total, mut matches) = db::patients::search(c, filter, 0, 2)?;
                match total {
                    0 => {}
                    1 => return Ok(Outcome::Matched(matches.remove(0))),
                    _ => return Ok(Outcome::Many),
                }
            }
            db::patients::insert(c, &id, &practice.id, &details, db::now())?;
            Ok(Outcome::Inserted(
                db::patients::find(c, &id)?.ok_or_else(|| DbError::Query("inserted row vanished".into()))?,
            ))
        });
        match result {
            Err(DbError::UniqueViolation) => Ok(Outcome::Duplicate),
            other => other,
        }
    })
    .await?;
    match outcome {
        Outcome::Inserted(r) => Ok(Created::New(r)),
        Outcome::Matched(r) => {
            // Only show the match to someone allowed to see it.
            access::can_read_patient(principal, &r).map_err(|_| duplicate())?;
            Ok(Created::Existing(r))
        }
        Outcome::Many => Err(ApiError::new(
            ErrorCode::MultipleMatches,
            "If-None-Exist matches more than one patient",
        )),
        Outcome::Duplicate => Err(duplicate()),
    }
}

fn duplicate() -> ApiError {
    ApiError::new(
        ErrorCode::DuplicateResource,
        "a patient with this national identifier is already registered",
    )
    .at("Patient.identifier")
}

/// Replaces a patient record. Requires the version the caller last saw (`If-Match`).
pub async fn update(
    pool: &DbPool,
    principal: &Principal,
    id: String,
    if_match: Option<i64>,
    parsed: ParsedPatient,
) -> Result<PatientRecord, ApiError> {
    let expected = if_match.ok_or_else(|| {
        ApiError::new(
            ErrorCode::PreconditionRequired,
            "If-Match with the current ETag is required to update",
        )
    })?;
    let current = db::run(pool, {
        let id = id.clone();
        move |c| db::patients::find(c, &id)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("Patient"))?;
    access::require_staff_at(principal, &current.practice_ods)?;
    if parsed.id.as_deref().is_some_and(|b| b != id) {
        return Err(ApiError::invalid_resource(
            "id in the body does not match the URL",
            "Patient.id",
        ));
    }
    if current.version != expected {
        return Err(ApiError::version_conflict());
    }
    let practice = resolve_practice(pool, parsed.practice).await?;
    let details = parsed.details;
    let result = db::run(pool, move |c| {
        let ok = db::patients::update_if_version(c, &id, expected, &practice.id, &details, db::now())?;
        Ok(if ok { db::patients::find(c, &id)? } else { None })
    })
    .await;
    match result {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ApiError::version_conflict()),
        Err(DbError::UniqueViolation) => Err(duplicate()),
        Err(e) => Err(e.into()),
    }
}

/// Search parameters as the caller gave them, already parsed.
#[derive(Debug, Default, Clone)]
pub struct PatientQuery {
    pub identifier: Option<(Option<PatientIdentifierSystem>, String)>,
    pub family: Option<String>,
    pub birth_date: Option<chrono::NaiveDate>,
    pub organization: Option<String>,
}

impl PatientQuery {
    /// The filter for the query's own parameters, before any scoping to a practice or caller.
    pub fn unscoped_filter(&self) -> PatientFilter {
        let (identifier, identifier_value) = match &self.identifier {
            Some((Some(system), value)) => (Some((*system, value.clone())), None),
            Some((None, value)) => (None, Some(value.clone())),
            None => (None, None),
        };
        PatientFilter {
            identifier,
            identifier_value,
            family_prefix: self.family.clone(),
            birth_date: self.birth_date,
            practice_id: None,
        }
    }
}

/// Turns a query into a database filter confined to what the caller may see.
pub async fn scoped_filter(
    pool: &DbPool,
    principal: &Principal,
    q: PatientQuery,
) -> Result<Option<PatientFilter>, ApiError> {
    let requested_practice = match &q.organization {
        None => None,
        Some(reference) => {
            let reference = reference.strip_prefix("Organization/").unwrap_or(reference).to_owned();
            let found = db::run(pool, move |c| {
                Ok(match db::practices::find(c, &reference)? {
                    Some(p) => Some(p),
                    None => match OdsCode::parse(&reference) {
                        Ok(ods) => db::practices::find_by_ods(c, &ods)?,
                        Err(_) => None,
                    },
                })
            })
            .await?;
            match found {
                Some(p) => Some(p),
                // An unknown practice simply matches nothing (for staff, after the scope check).
                None => return Ok(None),
            }
        }
    };
    let mut filter = q.unscoped_filter();
    match access::patient_search_scope(principal, requested_practice.as_ref().map(|p| &p.ods_code))? {
        SearchScope::Practice(ods) => {
            let practice = match requested_practice {
                Some(p) => p,
                None => {
                    let found = db::run(pool, move |c| db::practices::find_by_ods(c, &ods)).await?;
                    match found {
                        Some(p) => p,
                        None => return Ok(None),
                    }
                }
            };
            filter.practice_id = Some(practice.id);
        }
        SearchScope::OwnRecord(nhs) => {
            if let Some(practice) = requested_practice {
                filter.practice_id = Some(practice.id);
            }
            match &filter.identifier {
                Some((PatientIdentifierSystem::NhsNumber, v)) if v == nhs.as_str() => {}
                Some(_) => return Ok(None),
                None => {}
            }
            if filter.identifier_value.as_deref().is_some_and(|v| v != nhs.as_str()) {
                return Ok(None);
            }
            filter.identifier = Some((PatientIdentifierSystem::NhsNumber, nhs.as_str().to_owned()));
        }
    }
    Ok(Some(filter))
}

pub async fn search(
    state: &AppState,
    principal: &Principal,
    q: PatientQuery,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<PatientRecord>), ApiError> {
    if let Principal::Patient(p) = principal {
        identity::check_assurance(state, p, AssurancePolicy::PatientRecord)?;
        match identity::resolve_self(state, p).await? {
            Some(me) => {
                identity::require_active_account(state, &me.patient).await?;
            }
            None => return Ok((0, vec![])),
        }
    }
    let pool = &state.pool;
    match scoped_filter(pool, principal, q).await? {
        None => Ok((0, vec![])),
        Some(filter) => Ok(db::run(pool, move |c| db::patients::search(c, &filter, offset, count)).await?),
    }
}
