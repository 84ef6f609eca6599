//! NHS login-style identity: binding a verified subject to the practice patient record, what a
//! patient may act on, and the identity-provider operations (`$verify-linkage`,
//! `$link-identity`).

use crate::db::bindings::Binding;
use crate::db::{self, DbError};
use crate::domain::entitlements::{self, PatientState};
use crate::domain::identity::{IdentityAssertion, LinkageDetails};
use crate::domain::policy::Action;
use crate::domain::{AccountStatus, PatientAccess, PatientIdentifierSystem, PatientRecord};

use super::access::{self, Target};
use super::{Caller, Core, Error, Reason, Result};
use crate::identity::Principal;

/// Everyone the caller may act for, with what is in effect for each: themselves (when a
/// practice record holds their NHS number) and the patients they are a proxy for. A sign-in
/// below the proofing level the services need shows the relationships with nothing in effect.
pub async fn my_access(core: &Core, caller: &Caller) -> Result<Vec<PatientAccess>> {
    // Who may ask at all is decided before anything is read. Then the decision about the
    // caller's own record, the roles they hold as a proxy (each with its patient's context) and
    // the open reviews of their own record's accounts are read together, each with other
    // requests' reads: everything here is keyed by the caller's own NHS number.
    access::authorize(core, caller, Action::MyAccess, Target::Pending).await?;
    let Principal::Patient(me) = &caller.principal else {
        return Err(Error::internal("my-access for a caller who is not a person"));
    };
    let today = core.clock.today();
    let assured = me.proofing_level >= core.policy.minimum(crate::domain::AssurancePolicy::PatientRecord);
    // A delegated token acts for one patient, through the proxy's role: that is all it sees.
    if let Some(delegated) = &me.delegated_for {
        access::authorize(core, caller, Action::MyAccess, Target::None).await?;
        let roles = core.reader.proxy_contexts(&me.nhs_number).await?;
        let entries: Vec<PatientAccess> = super::proxy::acting_for(roles, today)
            .into_iter()
            .filter(|a| a.patient.details.identifier.value() == delegated.nhs_number.as_str())
            .map(|a| at_assurance(a, assured))
            .collect();
        access::disclosed(caller, Action::MyAccess, entries.iter().map(|e| &e.patient));
        return Ok(entries);
    }
    let (permit, roles, reviews) = tokio::try_join!(
        access::authorize(core, caller, Action::MyAccess, Target::OwnRecord),
        async { Ok(core.reader.proxy_contexts(&me.nhs_number).await?) },
        async { Ok(core.reader.open_reviews(&me.nhs_number).await?) },
    )?;
    let mut entries: Vec<PatientAccess> = vec![];
    if let (Some(p), Some(practice)) = (&permit.patient, &permit.practice) {
        let (account, review) = match &permit.account {
            Some(a) => {
                let review = reviews
                    .into_iter()
                    .find(|r| r.patient_id == p.id && r.account_id == a.id)
                    .map(|r| r.id);
                (Some(a.clone()), review)
            }
            None => {
                // No account at their practice: the one they had at the practice they left.
                let id = p.id.clone();
                let earlier = db::run(&core.pool, move |c| db::accounts::all_for_patient(c, &id)).await?;
                (earlier.into_iter().next(), None)
            }
        };
        let state = PatientState {
            patient: p,
            practice,
            account: account.as_ref(),
            codes: &permit.codes,
        };
        let own = entitlements::own(&state, today);
        entries.push(PatientAccess {
            account: own.standing.clone(),
            entitlements: own.at_assurance(assured),
            patient: p.clone(),
            relationship: "self".to_owned(),
            pending_review: review,
        });
    }
    let acting_for: Vec<PatientAccess> = super::proxy::acting_for(roles, today)
        .into_iter()
        .map(|a| at_assurance(a, assured))
        .collect();
    access::disclosed(caller, Action::MyAccess, acting_for.iter().map(|e| &e.patient));
    entries.extend(acting_for);
    Ok(entries)
}

fn at_assurance(mut a: PatientAccess, assured: bool) -> PatientAccess {
    a.entitlements = a.entitlements.at_assurance(assured);
    a
}

/// What a successful linkage verification tells the identity provider.
#[derive(Debug, Clone)]
pub struct VerifiedLinkage {
    pub patient: PatientRecord,
    pub account_status: AccountStatus,
}

fn uniform_invalid() -> Error {
    // One answer for a wrong key, a wrong Account ID, a wrong name or date of birth: the
    // endpoint must not tell an attacker which part was right.
    Error::rejected(
        Reason::LinkageDetailsInvalid,
        "the registration details do not match an online account at this practice",
    )
}

fn same_text(a: &str, b: &str) -> bool {
    let fold = |s: &str| s.trim().to_lowercase();
    constant_time_eq(fold(a).as_bytes(), fold(b).as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller may verify letter details: decided before the details are read.
pub async fn may_verify_linkage(core: &Core, caller: &Caller) -> Result<()> {
    access::authorize(core, caller, Action::VerifyLinkage, Target::None).await?;
    Ok(())
}

/// Checks letter details for an identity provider. Wrong details count towards a lockout of
/// that Account ID, whether or not the Account ID exists.
pub async fn verify_linkage(core: &Core, caller: &Caller, d: LinkageDetails) -> Result<VerifiedLinkage> {
    let result = check_linkage(core, &d).await;
    access::conclude(core, caller, result.as_ref().ok().map(|v| &v.patient)).await?;
    result
}

async fn check_linkage(core: &Core, d: &LinkageDetails) -> Result<VerifiedLinkage> {
    let ods = d.ods_code.clone();
    let practice = db::run(&core.pool, move |c| db::practices::find_by_ods(c, &ods))
        .await?
        .ok_or_else(uniform_invalid)?;
    if !practice.settings.enabled {
        return Err(Error::rejected(
            Reason::PracticeNotEnabled,
            "online services are not enabled at this practice",
        ));
    }
    let now = core.clock.now();
    let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
    if let Some(until) = db::run(&core.pool, move |c| {
        db::linkage_attempts::locked_until(c, &ods_s, &acct, now)
    })
    .await?
    {
        let seconds = (until - now).num_seconds().max(1);
        return Err(Error::rejected(
            Reason::LinkageLocked {
                retry_after_seconds: u64::try_from(seconds).unwrap_or(60),
            },
            "too many failed attempts for this Account ID; try again later",
        ));
    }
    let (practice_id, acct) = (practice.id.clone(), d.account_id.clone());
    let found = db::run(&core.pool, move |c| {
        let Some(account) = db::accounts::find_by_account_id(c, &practice_id, &acct)? else {
            return Ok(None);
        };
        let patient = db::patients::find(c, &account.patient_id)?;
        Ok(patient.map(|p| (account, p)))
    })
    .await?;
    let matched = found.filter(|(account, patient)| {
        let key_ok = account
            .linkage_key_sealed
            .as_deref()
            .and_then(|sealed| core.secrets.open(sealed, &account.id).ok())
            .is_some_and(|key| constant_time_eq(key.as_bytes(), d.linkage_key.trim().as_bytes()));
        key_ok && same_text(&patient.details.family, &d.family_name) && patient.details.birth_date == d.birth_date
    });
    let Some((account, patient)) = matched else {
        let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
        let max = i32::try_from(core.settings.identity.linkage_max_failures).unwrap_or(5);
        let window =
            chrono::Duration::minutes(i64::try_from(core.settings.identity.linkage_lockout_minutes).unwrap_or(15));
        db::run(&core.pool, move |c| {
            db::linkage_attempts::record_failure(c, &ods_s, &acct, now, max, window)
        })
        .await?;
        return Err(uniform_invalid());
    };
    let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
    db::run(&core.pool, move |c| db::linkage_attempts::clear(c, &ods_s, &acct)).await?;
    if account.status == AccountStatus::Disabled {
        return Err(Error::rejected(
            Reason::AccountDisabled,
            "the online account is disabled; the patient should contact the practice",
        ));
    }
    if account.letter_expired(now) {
        return Err(Error::rejected(
            Reason::LinkageKeyExpired,
            "the linkage key has expired; the patient should ask the practice for a new registration letter",
        ));
    }
    Ok(VerifiedLinkage {
        account_status: account.status,
        patient,
    })
}

/// The caller may assert identity bindings: decided before the assertion is read.
pub async fn may_link_identity(core: &Core, caller: &Caller) -> Result<()> {
    access::authorize(core, caller, Action::LinkIdentity, Target::None).await?;
    Ok(())
}

/// Records that an identity provider's subject is a patient registered at a practice.
pub async fn link_identity(core: &Core, caller: &Caller, a: IdentityAssertion) -> Result<(Binding, PatientRecord)> {
    let result = bind(core, a).await;
    access::conclude(core, caller, result.as_ref().ok().map(|(_, p)| p)).await?;
    result
}

async fn bind(core: &Core, a: IdentityAssertion) -> Result<(Binding, PatientRecord)> {
    let trusted = core
        .settings
        .auth
        .issuers
        .iter()
        .any(|i| i.kind == crate::config::IssuerKind::Patient && i.issuer == a.issuer);
    if !trusted {
        return Err(
            Error::rejected(Reason::BusinessRule, "issuer is not a trusted patient identity issuer").at("issuer"),
        );
    }
    enum Linked {
        NoPractice,
        NotRegistered,
        Mismatch,
        Done(Box<(Binding, PatientRecord)>),
    }
    let linked = db::run(&core.pool, move |c| {
        db::write_transaction(c, |c| {
            let Some(practice) = db::practices::find_by_ods(c, &a.ods_code)? else {
                return Ok::<_, DbError>(Linked::NoPractice);
            };
            let patient =
                db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, a.nhs_number.as_str())?
                    .filter(|p| p.practice_id == practice.id);
            let Some(patient) = patient else {
                return Ok(Linked::NotRegistered);
            };
            let now = db::now();
            let binding = match db::bindings::find(c, &a.issuer, &a.subject)? {
                Some(b) if b.nhs_number != a.nhs_number.as_str() => return Ok(Linked::Mismatch),
                Some(b) => {
                    db::bindings::repoint(
                        c,
                        &a.issuer,
                        &a.subject,
                        &patient.id,
                        &patient.practice_id,
                        a.proofing_level.as_str(),
                        now,
                    )?;
                    Binding {
                        patient_id: patient.id.clone(),
                        practice_id: patient.practice_id.clone(),
                        proofing_level: a.proofing_level.as_str().to_owned(),
                        updated_at: now,
                        ..b
                    }
                }
                None => {
                    let b = Binding {
                        issuer: a.issuer.clone(),
                        subject: a.subject.clone(),
                        nhs_number: a.nhs_number.as_str().to_owned(),
                        patient_id: patient.id.clone(),
                        practice_id: patient.practice_id.clone(),
                        proofing_level: a.proofing_level.as_str().to_owned(),
                        source: "link-identity".into(),
                        created_at: now,
                        updated_at: now,
                    };
                    db::bindings::insert(c, &b)?;
                    b
                }
            };
            Ok(Linked::Done(Box::new((binding, patient))))
        })
    })
    .await?;
    match linked {
        Linked::NoPractice => {
            Err(Error::rejected(Reason::UnknownPractice, "no practice with that ODS code").at("odsCode"))
        }
        Linked::NotRegistered => Err(Error::rejected(
            Reason::PatientNotRegistered,
            "no patient with that NHS number is registered at the practice",
        )),
        Linked::Mismatch => Err(Error::rejected(
            Reason::IdentityMismatch,
            "this subject is already linked to a different NHS number",
        )),
        Linked::Done(done) => Ok(*done),
    }
}
