//! `$explain-access`: a decision replayed for a person or member of staff, with its trace.

use serde_json::Value;

use crate::audit::ActorSnapshot;
use crate::db;
use crate::domain::policy::{
    self, Action, ActorFacts, Decision, Facts, IdentityLink, PersonFacts, Refusal, RoleAssignment, StaffFacts,
    SystemFacts,
};
use crate::domain::{NhsNumber, OdsCode, ProofingLevel};
use crate::services::{Caller, Core, Error, Result};

use super::decide::{actor_facts, authorize};
use super::facts::{Who, load};
use super::target::Target;

/// Who `$explain-access` explains a decision for.
#[derive(Debug, Clone)]
pub enum Subject {
    /// The caller themself.
    Caller,
    /// A person, by NHS number, with the vector of trust their token would carry.
    Person { nhs_number: NhsNumber, vot: Option<String> },
    /// A caller as the audit trail names them (`staff|issuer|subject`, ...), with the facts
    /// last seen for them.
    CallerKey(String),
}

/// The engine's decision for `subject` doing `action` to a patient, with its full trace. The
/// explaining caller must be staff of the patient's practice (or allowed to audit there).
pub async fn explain(
    core: &Core,
    caller: &Caller,
    patient_id: &str,
    subject: Subject,
    action: Action,
) -> Result<Decision> {
    authorize(
        core,
        caller,
        Action::ExplainAccess,
        Target::Patient(patient_id.to_owned()),
    )
    .await?;
    let (actor, who) = match subject {
        Subject::Caller => (actor_facts(&caller.principal), Who::of(&caller.principal)),
        Subject::Person { nhs_number, vot } => {
            let vot = vot.unwrap_or_else(|| "P9.Cp.Cd".to_owned());
            let level = crate::domain::vot_level(&vot).ok_or_else(|| {
                Error::rejected(
                    crate::services::Reason::InvalidRequest,
                    "vot must be a vector of trust such as P9.Cp.Cd",
                )
                .at("vot")
            })?;
            (
                ActorFacts::Person(PersonFacts {
                    nhs_number: nhs_number.clone(),
                    proofing_level: level,
                    vot: Some(vot),
                    identity: IdentityLink::Unknown,
                    delegated_for: None,
                }),
                Who::Named { nhs_number },
            )
        }
        Subject::CallerKey(key) => {
            let found = {
                let key = key.clone();
                db::run(&core.pool, move |c| crate::audit::snapshot(c, &key)).await?
            };
            let snapshot = found.ok_or_else(|| {
                Error::rejected(
                    crate::services::Reason::InvalidRequest,
                    "the gateway has not seen a caller with this key",
                )
                .at("actor")
            })?;
            actor_from_snapshot(&snapshot)
                .ok_or_else(|| Error::internal("a stored actor snapshot could not be read"))?
        }
    };
    let target = Target::Patient(patient_id.to_owned());
    let loaded = {
        let (who, target) = (
            match &who {
                // An explanation never binds anyone: look the person up by NHS number instead.
                Who::Person { nhs_number, .. } => Who::Named {
                    nhs_number: nhs_number.clone(),
                },
                other => other.clone(),
            },
            target.clone(),
        );
        {
            let now = core.clock.now();
            db::run(&core.pool, move |c| load(c, &who, &target, now)).await?
        }
    };
    let (actor, facts) = loaded.facts(actor, &target, core.clock.today());
    Ok(policy::decide(
        &core.policy,
        &Facts {
            action,
            actor,
            target: facts,
            today: core.clock.today(),
        },
    ))
}

fn actor_from_snapshot(s: &ActorSnapshot) -> Option<(ActorFacts, Who)> {
    let v: Value = serde_json::from_str(&s.facts).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    match s.kind.as_str() {
        "staff" => {
            let roles = v
                .get("roles")?
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some(RoleAssignment {
                        organisation: OdsCode::parse(r.get("organisation")?.as_str()?).ok()?,
                        role: r.get("role").and_then(Value::as_str).map(str::to_owned),
                    })
                })
                .collect();
            Some((ActorFacts::Staff(StaffFacts { roles }), Who::Staff))
        }
        "system" => Some((
            ActorFacts::System(SystemFacts {
                client_id: text("clientId")?,
                scopes: v
                    .get("scopes")?
                    .as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
            }),
            Who::System,
        )),
        "patient" => {
            let nhs_number = NhsNumber::parse(&text("nhsNumber")?).ok()?;
            let level = ProofingLevel::parse(&text("proofingLevel")?)?;
            Some((
                ActorFacts::Person(PersonFacts {
                    nhs_number: nhs_number.clone(),
                    proofing_level: level,
                    vot: text("vot"),
                    identity: IdentityLink::Unknown,
                    delegated_for: None,
                }),
                Who::Named { nhs_number },
            ))
        }
        _ => None,
    }
}

/// Whether a refusal answers like a missing resource.
pub fn hides_target(refusal: &Refusal) -> bool {
    *refusal == Refusal::NotVisible
}
