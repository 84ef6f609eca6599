//! Registration events from supplier systems: a patient moved to another practice, or died.
//! Each event is applied once: a repeat of an event id answers what the first did.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::access::{self, Target};
use super::jobs::{self, JobPayload};
use super::{Caller, Core, Error, Reason, Result};
use crate::db::{self, DbError};
use crate::domain::policy::Action;
use crate::domain::proxy::{ReasonRecord, RoleStatus, StatusReason};
use crate::domain::{AccountStatus, JobSubject, NhsNumber, OdsCode, PatientIdentifierSystem};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The patient's registration moved to the practice `to`, on `on`.
    Transferred {
        to: OdsCode,
    },
    Deceased,
    /// The clinical system added (or removed) a record-access code on the patient's record.
    Code {
        code: crate::domain::record_access::AccessCode,
        added: bool,
    },
}

impl EventKind {
    /// The name the event is kept under.
    fn name(&self) -> &'static str {
        match self {
            Self::Transferred { .. } => "transferred",
            Self::Deceased => "deceased",
            Self::Code { added: true, .. } => "code-added",
            Self::Code { added: false, .. } => "code-removed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistrationEvent {
    pub event_id: String,
    pub kind: EventKind,
    pub nhs_number: NhsNumber,
    pub on: NaiveDate,
}

/// What an event did (and what a repeat of it answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventOutcome {
    pub event_id: String,
    /// applied | no-change
    pub outcome: String,
    pub patient_id: String,
    pub accounts_ended: u64,
    pub roles_ended: u64,
    /// Whether this answer repeats an event already received.
    #[serde(default)]
    pub replayed: bool,
}

/// Applies a registration event reported by a supplier system.
pub async fn record(core: &Core, caller: &Caller, event: RegistrationEvent) -> Result<EventOutcome> {
    access::authorize(core, caller, Action::RecordRegistrationEvent, Target::None).await?;
    let today = core.clock.today();
    if event.on > today {
        access::conclude(core, caller, None).await?;
        return Err(Error::rejected(Reason::InvalidRequest, "the event's date is in the future").at("date"));
    }
    let source = caller.principal.caller_key();
    let settings = core.settings.suppliers.clone();
    let now = core.clock.now();
    let result = db::run(&core.pool, move |c| {
        db::write_transaction::<_, DbError, _>(c, |c| {
            // The id is taken before anything is read, so that of several requests carrying
            // one event, whichever comes second waits for the first to finish and answers what
            // it stored, rather than applying it again or colliding with it.
            if !db::events::claim(c, &event.event_id, &source, event.kind.name(), now)? {
                return replay(c, &event.event_id, &source);
            }
            let applied = apply(c, &settings, &event, &source, now)?;
            match &applied {
                Ok((outcome, _)) => {
                    let stored = serde_json::to_string(outcome).map_err(|e| DbError::Query(e.to_string()))?;
                    db::events::complete(c, &event.event_id, &outcome.patient_id, &stored)?;
                }
                // A refused event leaves nothing behind, its id included.
                Err(_) => db::events::release(c, &event.event_id)?,
            }
            Ok(applied)
        })
    })
    .await?;
    match result {
        Ok((outcome, patient)) => {
            access::conclude(core, caller, patient.as_ref()).await?;
            core.provisioner.notify();
            Ok(outcome)
        }
        Err(e) => {
            access::conclude(core, caller, None).await?;
            Err(e)
        }
    }
}

/// What a repeat of an event answers: the first outcome, marked as a replay. An id another
/// system used is refused.
fn replay(c: &mut db::DbConnection, event_id: &str, source: &str) -> std::result::Result<Applied, DbError> {
    let Some((first_source, stored)) = db::events::outcome(c, event_id)? else {
        return Err(DbError::Query("a claimed event has no record".into()));
    };
    if first_source != source {
        return Ok(Err(Error::rejected(
            Reason::Duplicate,
            "another system already sent an event with this id",
        )
        .at("eventId")));
    }
    let mut o: EventOutcome = serde_json::from_str(&stored).map_err(|e| DbError::Query(e.to_string()))?;
    o.replayed = true;
    let patient = db::patients::find(c, &o.patient_id)?;
    Ok(Ok((o, patient)))
}

/// What an event did and the patient afterwards, or why it was refused.
type Applied = std::result::Result<(EventOutcome, Option<crate::domain::PatientRecord>), Error>;

/// Applies an event whose id this transaction holds.
fn apply(
    c: &mut db::DbConnection,
    settings: &crate::config::SupplierSettings,
    event: &RegistrationEvent,
    source: &str,
    now: chrono::NaiveDateTime,
) -> std::result::Result<Applied, DbError> {
    let Some(patient) =
        db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, event.nhs_number.as_str())?
    else {
        return Ok(Err(Error::rejected(
            Reason::PatientNotRegistered,
            "no practice using this service holds a record with this NHS number",
        )
        .at("nhsNumber")));
    };
    let Some(old) = db::practices::find(c, &patient.practice_id)? else {
        return Err(DbError::Query("patient without a practice".into()));
    };
    // A job confirming something on the account waits for the event, rather than the event
    // failing on the job's change.
    db::accounts::lock_for_patient(c, &patient.id)?;
    let mut outcome = EventOutcome {
        event_id: event.event_id.clone(),
        outcome: "no-change".into(),
        patient_id: patient.id.clone(),
        accounts_ended: 0,
        roles_ended: 0,
        replayed: false,
    };
    let (account_reason, role_reason) = match &event.kind {
        EventKind::Transferred { to } => {
            let Some(new) = db::practices::find_by_ods(c, to)? else {
                return Ok(Err(Error::rejected(
                    Reason::UnknownPractice,
                    "the practice the patient moved to does not use this service",
                )
                .at("odsCode")));
            };
            if new.id == patient.practice_id {
                (None, None)
            } else {
                db::patients::move_to(c, &patient.id, &new.id, now)?;
                (
                    Some(format!(
                        "the patient moved to {} on {}",
                        new.ods_code.as_str(),
                        event.on
                    )),
                    Some(StatusReason::DeactivatedPatientGpTransferred),
                )
            }
        }
        EventKind::Code { code, added } => {
            let changed = if *added {
                db::access_codes::add(c, &patient.id, *code, "supplier", source, now)?
            } else {
                db::access_codes::remove(c, &patient.id, *code, source, now)?
            };
            if changed {
                outcome.outcome = "applied".into();
                // The supplier that sent it is told what the account gives now.
                if let Some(mut account) = db::accounts::find_by_patient(c, &patient.id, &old.id)? {
                    let codes = db::access_codes::active(c, &patient.id)?;
                    super::supplier_sync::sync(c, settings, &patient, &old, &mut account, &codes, now.date(), None)?;
                }
            }
            (None, None)
        }
        EventKind::Deceased => {
            if db::patients::set_deceased(c, &patient.id, event.on, now)? {
                (
                    Some(format!("the patient died on {}", event.on)),
                    Some(StatusReason::DeactivatedPatientDeceased),
                )
            } else {
                (None, None)
            }
        }
    };
    if let (Some(text), Some(role_reason)) = (account_reason, role_reason) {
        outcome.outcome = "applied".into();
        // Access at the practice the patient left (or at all, on death) ends, and its
        // supplier is told.
        if let Some(mut account) = db::accounts::find_by_patient(c, &patient.id, &old.id)?
            && matches!(account.status, AccountStatus::Active | AccountStatus::Pending)
        {
            account
                .disable(text.clone())
                .map_err(|e| DbError::Query(e.to_string()))?;
            if !db::accounts::save(c, &mut account)? {
                return Err(DbError::Query(
                    "online account changed while the event was applied".into(),
                ));
            }
            if account.supplier_ref.is_some() {
                let job = jobs::job(
                    settings,
                    JobSubject::Account(&account.id),
                    &patient.id,
                    old.supplier,
                    &JobPayload::SetAccountStatus {
                        enabled: false,
                        reason: Some(text),
                    },
                );
                db::outbox::enqueue(c, &job)?;
            }
            outcome.accounts_ended += 1;
        }
        let ended = super::proxy::end_roles(c, settings, &patient, &old, role_reason, now)?;
        outcome.roles_ended += u64::try_from(ended).unwrap_or(0);
        if role_reason == StatusReason::DeactivatedPatientDeceased {
            // Roles in which the patient who died was the proxy end too.
            for mut role in db::proxy_roles::search(c, Some(&event.nhs_number), None)? {
                if !matches!(
                    role.status,
                    RoleStatus::Proposed | RoleStatus::Active | RoleStatus::Inactive
                ) || role.reason.reason == StatusReason::DeactivatedProxyDeceased
                {
                    continue;
                }
                let Some(their) = db::patients::find(c, &role.patient_id)? else {
                    continue;
                };
                let Some(practice) = db::practices::find(c, &their.practice_id)? else {
                    continue;
                };
                let was_active = role.status == RoleStatus::Active;
                role.end(ReasonRecord {
                    reason: StatusReason::DeactivatedProxyDeceased,
                    text: None,
                });
                if db::proxy_roles::save(c, &mut role)? {
                    if was_active {
                        let job = jobs::job(
                            settings,
                            JobSubject::Role(&role.id),
                            &their.id,
                            practice.supplier,
                            &JobPayload::RevokeProxy {
                                reason: StatusReason::DeactivatedProxyDeceased.code().to_owned(),
                            },
                        );
                        db::outbox::enqueue(c, &job)?;
                    }
                    outcome.roles_ended += 1;
                }
            }
        }
    }
    let patient = db::patients::find(c, &patient.id)?;
    Ok(Ok((outcome, patient)))
}
