//! Practice patient records: read, search, create and update.

use super::access::{self, Permit, Target};
use super::{Caller, Core, Error, Reason, Result};
use crate::db::patients::PatientFilter;
use crate::db::{self, DbError};
use crate::domain::policy::Action;
use crate::domain::proxy::StatusReason;
use crate::domain::{NewPatient, OdsCode, PatientIdentifierSystem, PatientRecord, PracticeRef};
use crate::identity::Principal;

pub enum Created {
    New(PatientRecord),
    /// A conditional create found exactly one match, which is returned instead.
    Existing(PatientRecord),
}

fn duplicate() -> Error {
    Error::rejected(
        Reason::Duplicate,
        "a patient with this national identifier is already registered",
    )
    .at("Patient.identifier")
}

fn unknown_practice() -> Error {
    Error::rejected(
        Reason::UnknownPractice,
        "generalPractitioner does not reference a practice known to the gateway",
    )
    .at("Patient.generalPractitioner[0]")
}

/// The engine's decision about `action` at the practice a body names. A practice that does not
/// exist is a problem with the body, not a refusal: practices are public directory information.
async fn authorize_at(core: &Core, caller: &Caller, action: Action, practice: PracticeRef) -> Result<Permit> {
    match access::authorize(core, caller, action, Target::Practice(practice)).await {
        Err(Error::Refused { refusal, .. }) if access::hides_target(&refusal) => Err(unknown_practice()),
        other => other,
    }
}

/// Creates a patient record at the caller's own practice. With `if_none_exist`, an existing
/// match is returned instead (FHIR conditional create); several matches are refused.
pub async fn create(
    core: &Core,
    caller: &Caller,
    new: NewPatient,
    if_none_exist: Option<PatientFilter>,
) -> Result<Created> {
    // The new record's id is chosen first, so that the decision committed before it is made
    // names it. A conditional create may find a record instead: its decision names none, and
    // the record made or found is named right after.
    let id = uuid::Uuid::new_v4().to_string();
    if if_none_exist.is_none() {
        caller.trail.will_make(&id);
    }
    let permit = authorize_at(core, caller, Action::CreatePatient, new.practice.clone()).await?;
    let practice = permit.practice()?.clone();
    // The condition is a search the caller could make: within the practice they create at.
    let if_none_exist = if_none_exist.map(|f| PatientFilter {
        practice_id: Some(practice.id.clone()),
        ..f
    });
    let details = new.details;
    enum Outcome {
        Inserted(PatientRecord),
        Matched(PatientRecord),
        Many,
        Duplicate,
    }
    let outcome = db::run(&core.pool, move |c| {
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
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            access::conclude(core, caller, None).await?;
            return Err(e.into());
        }
    };
    let result = match outcome {
        Outcome::Inserted(r) => Ok(Created::New(r)),
        // Returning the match is reading it: only for a caller the engine lets see it, and
        // anyone else is told it is a duplicate.
        Outcome::Matched(r) => {
            match access::authorize(core, caller, Action::ReadPatient, Target::Patient(r.id.clone())).await {
                Ok(_) => Ok(Created::Existing(r)),
                Err(Error::Refused { .. }) => Err(duplicate()),
                Err(e) => Err(e),
            }
        }
        Outcome::Duplicate => Err(duplicate()),
        Outcome::Many => Err(Error::rejected(
            Reason::MultipleMatches,
            "If-None-Exist matches more than one patient",
        )),
    };
    let named = match &result {
        Ok(Created::New(r) | Created::Existing(r)) => Some(r),
        Err(_) => None,
    };
    access::conclude(core, caller, named).await?;
    result
}

/// Replaces the permit's patient record. Requires the version the caller last saw (`If-Match`).
/// A change of practice hands the record to another practice: the caller must also be one the
/// engine lets update records there.
pub async fn update(
    core: &Core,
    caller: &Caller,
    permit: Permit,
    if_match: Option<i64>,
    new: NewPatient,
) -> Result<PatientRecord> {
    let current = permit.patient()?.clone();
    // Without If-Match (or with `*`) the update applies to the current version.
    let expected = if_match.unwrap_or(current.version);
    if new.id.as_deref().is_some_and(|b| b != current.id) {
        return Err(Error::rejected(Reason::InvalidRequest, "id in the body does not match the URL").at("Patient.id"));
    }
    if current.version != expected {
        return Err(Error::stale_if_match());
    }
    let old_practice = permit.practice()?.clone();
    let stays = match &new.practice {
        PracticeRef::Id(id) => *id == old_practice.id,
        PracticeRef::Ods(ods) => *ods == old_practice.ods_code,
    };
    // Moving the record hands it to another practice: the engine decides there too (and reads
    // that practice).
    let practice = if stays {
        old_practice.clone()
    } else {
        authorize_at(core, caller, Action::UpdatePatient, new.practice)
            .await?
            .practice()?
            .clone()
    };
    let details = new.details;
    let id = current.id.clone();
    let settings = core.settings.suppliers.clone();
    let now = core.clock.now();
    let result = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            if !db::patients::update_if_version(c, &id, expected, &practice.id, &details, db::now())? {
                return Ok(None);
            }
            // Moving practice ends the patient's proxy roles at the old one, with the VRS
            // reason for a GP transfer, and revokes them at its clinical system.
            let moved = practice.id != current.practice_id;
            if moved {
                super::proxy::end_roles(
                    c,
                    &settings,
                    &current,
                    &old_practice,
                    StatusReason::DeactivatedPatientGpTransferred,
                    now,
                )?;
            }
            Ok(db::patients::find(c, &id)?.map(|r| (r, moved)))
        })
    })
    .await;
    match result {
        Ok(Some((r, moved))) => {
            if moved {
                core.provisioner.notify();
            }
            Ok(r)
        }
        Ok(None) => Err(Error::version_conflict()),
        Err(DbError::UniqueViolation) => Err(duplicate()),
        Err(e) => Err(e.into()),
    }
}

/// What a conditional update did.
pub enum Upserted {
    Created(PatientRecord),
    Updated(PatientRecord),
}

/// FHIR conditional update (`PUT /Patient?identifier=...`): the condition is a search at the
/// practice the body names; no match creates the record, one match updates it (with
/// `If-Match` if given), several are refused.
pub async fn conditional_update(
    core: &Core,
    caller: &Caller,
    condition: PatientFilter,
    if_match: Option<i64>,
    new: NewPatient,
) -> Result<Upserted> {
    let permit = authorize_at(core, caller, Action::UpdatePatient, new.practice.clone()).await?;
    let filter = PatientFilter {
        practice_id: Some(permit.practice()?.id.clone()),
        ..condition
    };
    let (total, mut matches) = db::run(&core.pool, move |c| db::patients::search(c, &filter, 0, 2)).await?;
    match (total, matches.pop()) {
        (0, _) => match create(core, caller, new, None).await? {
            Created::New(r) | Created::Existing(r) => Ok(Upserted::Created(r)),
        },
        (1, Some(found)) => {
            let permit = access::authorize(core, caller, Action::UpdatePatient, Target::Patient(found.id)).await?;
            Ok(Upserted::Updated(update(core, caller, permit, if_match, new).await?))
        }
        _ => Err(Error::rejected(
            Reason::MultipleMatches,
            "the condition matches more than one patient",
        )),
    }
}

/// Every version of the permit's patient record, newest first: the current one, then each
/// version a change replaced.
pub async fn history(core: &Core, permit: &Permit) -> Result<Vec<PatientRecord>> {
    let current = permit.patient()?.clone();
    let id = current.id.clone();
    let mut older = db::run(&core.pool, move |c| db::patients::versions(c, &id)).await?;
    older.retain(|r| r.version < current.version);
    let mut all = vec![current];
    all.append(&mut older);
    Ok(all)
}

/// One version of the permit's patient record, current or replaced.
pub async fn version(core: &Core, permit: &Permit, version: i64) -> Result<Option<PatientRecord>> {
    let current = permit.patient()?;
    if version == current.version {
        return Ok(Some(current.clone()));
    }
    if version > current.version || version < 1 {
        return Ok(None);
    }
    let id = current.id.clone();
    Ok(db::run(&core.pool, move |c| db::patients::version(c, &id, version)).await?)
}

pub use crate::db::patients::PatientSort;

/// Search parameters as the caller gave them, already parsed.
#[derive(Debug, Default, Clone)]
pub struct PatientQuery {
    pub identifier: Option<(Option<PatientIdentifierSystem>, String)>,
    pub family: Option<String>,
    pub family_exact: Option<String>,
    pub given: Option<String>,
    pub name: Option<String>,
    pub birth_date: Option<chrono::NaiveDate>,
    pub birth_ranges: Vec<(Option<chrono::NaiveDate>, Option<chrono::NaiveDate>, bool)>,
    pub ids: Vec<String>,
    pub sort: Vec<(crate::db::patients::PatientSort, bool)>,
    /// `Organization/{id}`, `{id}` or an ODS code.
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
            family_exact: self.family_exact.clone(),
            given_prefix: self.given.clone(),
            name_prefix: self.name.clone(),
            birth_date: self.birth_date,
            birth_ranges: self.birth_ranges.clone(),
            ids: self.ids.clone(),
            practice_id: None,
            sort: self.sort.clone(),
        }
    }
}

/// Searches the records the caller may see: staff within one of their practices, a patient
/// their own record.
pub async fn search(
    core: &Core,
    caller: &Caller,
    q: PatientQuery,
    offset: i64,
    count: i64,
) -> Result<(i64, Vec<PatientRecord>)> {
    let requested = match &q.organization {
        None => None,
        Some(reference) => {
            let reference = reference.strip_prefix("Organization/").unwrap_or(reference).to_owned();
            let found = db::run(&core.pool, move |c| {
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
                None => {
                    // An unknown practice matches nothing, for whoever may search at all.
                    access::authorize(core, caller, Action::SearchPatients, Target::None).await?;
                    return Ok((0, vec![]));
                }
            }
        }
    };
    let mut filter = q.unscoped_filter();
    match &caller.principal {
        Principal::Staff(staff) => {
            let scope = match (&requested, staff.organisations().as_slice()) {
                (Some(p), _) => PracticeRef::Id(p.id.clone()),
                (None, [only]) => PracticeRef::Ods(only.clone()),
                (None, _) => {
                    return Err(Error::rejected(
                        Reason::InvalidSearch,
                        "staff with roles at several practices must give the organization parameter",
                    ));
                }
            };
            let permit = access::authorize(core, caller, Action::SearchPatients, Target::Practice(scope)).await?;
            filter.practice_id = Some(permit.practice()?.id.clone());
        }
        _ => {
            let permit = access::authorize(core, caller, Action::SearchPatients, Target::OwnRecord).await?;
            let Some(me) = permit.patient else {
                return Ok((0, vec![]));
            };
            if requested.as_ref().is_some_and(|p| p.id != me.practice_id) {
                return Ok((0, vec![]));
            }
            let own = (me.details.identifier.system(), me.details.identifier.value().to_owned());
            match &filter.identifier {
                Some((system, value)) if *system == own.0 && *value == own.1 => {}
                Some(_) => return Ok((0, vec![])),
                None => {}
            }
            if filter.identifier_value.as_deref().is_some_and(|v| v != own.1) {
                return Ok((0, vec![]));
            }
            filter.identifier = Some(own);
            filter.practice_id = Some(me.practice_id.clone());
        }
    }
    if let Some(found) = by_identifier_alone(core, &filter, offset, count).await? {
        return Ok(found);
    }
    Ok(db::run(&core.pool, move |c| db::patients::search(c, &filter, offset, count)).await?)
}

/// The commonest search, one identifier (an NHS number) within one practice and nothing else,
/// is read together with other requests' reads: identifiers are unique, so its matches are at
/// most that one record, and the page is it or nothing.
async fn by_identifier_alone(
    core: &Core,
    filter: &PatientFilter,
    offset: i64,
    count: i64,
) -> Result<Option<(i64, Vec<PatientRecord>)>> {
    // Every field named, so that a new one is considered here.
    let PatientFilter {
        identifier: Some((system, value)),
        identifier_value: None,
        family_prefix: None,
        family_exact: None,
        given_prefix: None,
        name_prefix: None,
        birth_date: None,
        birth_ranges,
        ids,
        practice_id: Some(practice),
        sort: _,
    } = filter
    else {
        return Ok(None);
    };
    if !birth_ranges.is_empty() || !ids.is_empty() {
        return Ok(None);
    }
    let found = core
        .reader
        .patient_by_identifier(*system, value)
        .await?
        .filter(|r| &r.practice_id == practice);
    let total = i64::from(found.is_some());
    let page = found.filter(|_| offset == 0 && count > 0).into_iter().collect();
    Ok(Some((total, page)))
}
