//! NHS login-style identity: assurance gates, binding a verified subject to the practice
//! patient record, what a patient may act on, and the identity-provider operations
//! (`$verify-linkage`, `$link-identity`).

use chrono::NaiveDate;

use crate::db::accounts::OnlineAccount;
use crate::db::bindings::Binding;
use crate::db::{self, DbError};
use crate::domain::{AccessSettings, AccountStatus, NhsNumber, OdsCode, PatientIdentifierSystem, PatientRecord};
use crate::error::{ApiError, ErrorCode};
use crate::identity::{AssurancePolicy, PatientPrincipal, Principal, ProofingLevel};
use crate::state::AppState;

/// Refuses a patient token whose `vot` is not an accepted profile or whose proofing level is
/// below what the endpoint's policy requires.
pub fn check_assurance(state: &AppState, p: &PatientPrincipal, policy: AssurancePolicy) -> Result<(), ApiError> {
    let accepted = p
        .vot
        .as_deref()
        .is_some_and(|v| state.settings.identity.accepted_vot.iter().any(|a| a == v));
    if !accepted {
        return Err(ApiError::new(
            ErrorCode::InsufficientAssurance,
            format!(
                "the token's vector of trust ({}) is not accepted here",
                p.vot.as_deref().unwrap_or("none")
            ),
        ));
    }
    let minimum = state
        .settings
        .identity
        .minimum_assurance
        .get(policy.name())
        .and_then(|l| ProofingLevel::parse(l))
        .unwrap_or(policy.floor())
        .max(policy.floor());
    if p.proofing_level < minimum {
        return Err(ApiError::new(
            ErrorCode::InsufficientAssurance,
            format!(
                "this needs identity proofing level {} or higher; the token has {}",
                minimum.as_str(),
                p.proofing_level.as_str()
            ),
        ));
    }
    Ok(())
}

/// The caller's own practice record, reached through their identity binding.
#[derive(Debug, Clone)]
pub struct SelfRecord {
    pub patient: PatientRecord,
    pub binding: Binding,
}

/// Binds a verified subject to the practice record on first use and follows the patient's
/// registration afterwards. A known subject arriving with a different NHS number is refused.
pub async fn resolve_self(state: &AppState, p: &PatientPrincipal) -> Result<Option<SelfRecord>, ApiError> {
    let (iss, sub, nhs, level) = (
        p.issuer.clone(),
        p.subject.clone(),
        p.nhs_number.clone(),
        p.proofing_level.as_str().to_owned(),
    );
    enum Resolved {
        Mismatch,
        Unknown,
        Found(Box<SelfRecord>),
    }
    let resolved = db::run(&state.pool, move |c| {
        // Nearly every call finds its binding in place: read first, and take the write lock
        // only to create or move one.
        let binding = db::bindings::find(c, &iss, &sub)?;
        if binding.as_ref().is_some_and(|b| b.nhs_number != nhs.as_str()) {
            return Ok(Resolved::Mismatch);
        }
        let Some(patient) = db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs.as_str())?
        else {
            return Ok(Resolved::Unknown);
        };
        if let Some(b) = &binding
            && b.practice_id == patient.practice_id
            && b.patient_id == patient.id
        {
            return Ok(Resolved::Found(Box::new(SelfRecord {
                patient,
                binding: b.clone(),
            })));
        }
        db::write_transaction(c, |c| {
            let binding = db::bindings::find(c, &iss, &sub)?;
            if binding.as_ref().is_some_and(|b| b.nhs_number != nhs.as_str()) {
                return Ok::<_, DbError>(Resolved::Mismatch);
            }
            let Some(patient) = db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs.as_str())?
            else {
                return Ok(Resolved::Unknown);
            };
            let now = db::now();
            let binding = match binding {
                Some(b) if b.practice_id == patient.practice_id && b.patient_id == patient.id => b,
                // The patient moved practice: the binding follows the registration.
                Some(b) => {
                    db::bindings::repoint(c, &iss, &sub, &patient.id, &patient.practice_id, &level, now)?;
                    Binding {
                        patient_id: patient.id.clone(),
                        practice_id: patient.practice_id.clone(),
                        updated_at: now,
                        ..b
                    }
                }
                None => {
                    let b = Binding {
                        issuer: iss.clone(),
                        subject: sub.clone(),
                        nhs_number: nhs.as_str().to_owned(),
                        patient_id: patient.id.clone(),
                        practice_id: patient.practice_id.clone(),
                        proofing_level: level.clone(),
                        source: "token".into(),
                        created_at: now,
                        updated_at: now,
                    };
                    db::bindings::insert(c, &b)?;
                    b
                }
            };
            Ok(Resolved::Found(Box::new(SelfRecord { patient, binding })))
        })
    })
    .await?;
    match resolved {
        Resolved::Mismatch => Err(ApiError::new(
            ErrorCode::IdentityMismatch,
            "this identity is already linked to a different NHS number",
        )),
        Resolved::Unknown => Ok(None),
        Resolved::Found(r) => Ok(Some(*r)),
    }
}

/// A patient uses online services only through an active account at their current practice.
pub async fn require_active_account(state: &AppState, patient: &PatientRecord) -> Result<OnlineAccount, ApiError> {
    let id = patient.id.clone();
    let account = db::run(&state.pool, move |c| db::accounts::find_by_patient(c, &id)).await?;
    match account {
        Some(a) if a.practice_id != patient.practice_id => Err(ApiError::forbidden(
            "online access ended when the patient moved practice; the new practice can register them",
        )),
        Some(a) if a.status == AccountStatus::Active => Ok(a),
        Some(a) if a.status == AccountStatus::Disabled => Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "the online account is disabled; contact the practice",
        )),
        _ => Err(ApiError::forbidden(
            "there is no active online account for this patient at their practice",
        )),
    }
}

/// One patient the caller may act for, with what they may do.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    pub patient: PatientRecord,
    pub relationship: &'static str,
    /// active | pending | disabled | rejected | none | ended
    pub status: String,
    pub reason: Option<String>,
    /// What is switched on now (all off unless the account is active at the current practice).
    pub effective: AccessSettings,
}

fn entry_for(patient: PatientRecord, account: Option<OnlineAccount>) -> AccessEntry {
    let (status, reason, effective) = match account {
        None => (
            "none".to_owned(),
            Some("no online account at this practice".to_owned()),
            AccessSettings::none(),
        ),
        Some(a) if a.practice_id != patient.practice_id => (
            "ended".to_owned(),
            Some("the patient moved practice; access at the old practice has ended".to_owned()),
            AccessSettings::none(),
        ),
        Some(a) if a.status == AccountStatus::Active => ("active".to_owned(), None, a.access),
        Some(a) => (
            a.status.as_str().to_owned(),
            a.status_reason.clone(),
            AccessSettings::none(),
        ),
    };
    AccessEntry {
        patient,
        relationship: "self",
        status,
        reason,
        effective,
    }
}

/// Everyone the caller may act for (themselves; proxy relationships join here later).
pub async fn my_access(
    state: &AppState,
    p: &PatientPrincipal,
) -> Result<(Option<SelfRecord>, Vec<AccessEntry>), ApiError> {
    check_assurance(state, p, AssurancePolicy::MyAccess)?;
    let Some(me) = resolve_self(state, p).await? else {
        return Ok((None, vec![]));
    };
    let id = me.patient.id.clone();
    let account = db::run(&state.pool, move |c| db::accounts::find_by_patient(c, &id)).await?;
    let entry = entry_for(me.patient.clone(), account);
    Ok((Some(me), vec![entry]))
}

/// What an identity provider sends to check a registration letter.
#[derive(Debug, Clone)]
pub struct LinkageDetails {
    pub ods_code: OdsCode,
    pub account_id: String,
    pub linkage_key: String,
    pub family_name: String,
    pub birth_date: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct VerifiedLinkage {
    pub patient: PatientRecord,
    pub account_status: AccountStatus,
}

pub fn require_scope(principal: &Principal, scope: &str) -> Result<(), ApiError> {
    match principal {
        Principal::System(s) if s.scopes.iter().any(|x| x == scope) => Ok(()),
        Principal::System(_) => Err(ApiError::forbidden(format!("the client needs the {scope} scope"))),
        _ => Err(ApiError::forbidden("only identity-provider systems may do this")),
    }
}

fn uniform_invalid() -> ApiError {
    // One answer for a wrong key, a wrong Account ID, a wrong name or date of birth: the
    // endpoint must not tell an attacker which part was right.
    ApiError::new(
        ErrorCode::LinkageDetailsInvalid,
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

/// Checks letter details for an identity provider. Wrong details count towards a lockout of
/// that Account ID, whether or not the Account ID exists.
pub async fn verify_linkage(state: &AppState, d: LinkageDetails) -> Result<(VerifiedLinkage, OnlineAccount), ApiError> {
    let ods = d.ods_code.clone();
    let practice = db::run(&state.pool, move |c| db::practices::find_by_ods(c, &ods))
        .await?
        .ok_or_else(uniform_invalid)?;
    if !practice.settings.enabled {
        return Err(ApiError::new(
            ErrorCode::PracticeNotEnabled,
            "online services are not enabled at this practice",
        ));
    }
    let now = db::now();
    let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
    if let Some(until) = db::run(&state.pool, move |c| {
        db::linkage_attempts::locked_until(c, &ods_s, &acct, now)
    })
    .await?
    {
        let seconds = (until - now).num_seconds().max(1);
        return Err(ApiError {
            retry_after_seconds: Some(u64::try_from(seconds).unwrap_or(60)),
            ..ApiError::new(
                ErrorCode::LinkageLocked,
                "too many failed attempts for this Account ID; try again later",
            )
        });
    }
    let (practice_id, acct) = (practice.id.clone(), d.account_id.clone());
    let found = db::run(&state.pool, move |c| {
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
            .and_then(|sealed| state.secrets.open(sealed, &account.id).ok())
            .is_some_and(|key| constant_time_eq(key.as_bytes(), d.linkage_key.trim().as_bytes()));
        key_ok && same_text(&patient.details.family, &d.family_name) && patient.details.birth_date == d.birth_date
    });
    let Some((account, patient)) = matched else {
        let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
        let max = i32::try_from(state.settings.identity.linkage_max_failures).unwrap_or(5);
        let window =
            chrono::Duration::minutes(i64::try_from(state.settings.identity.linkage_lockout_minutes).unwrap_or(15));
        db::run(&state.pool, move |c| {
            db::linkage_attempts::record_failure(c, &ods_s, &acct, now, max, window)
        })
        .await?;
        return Err(uniform_invalid());
    };
    let (ods_s, acct) = (d.ods_code.as_str().to_owned(), d.account_id.clone());
    db::run(&state.pool, move |c| db::linkage_attempts::clear(c, &ods_s, &acct)).await?;
    if account.status == AccountStatus::Disabled {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "the online account is disabled; the patient should contact the practice",
        ));
    }
    if account.letter_expires_at.is_some_and(|e| e < now) {
        return Err(ApiError::new(
            ErrorCode::LinkageKeyExpired,
            "the linkage key has expired; the patient should ask the practice for a new registration letter",
        ));
    }
    Ok((
        VerifiedLinkage {
            account_status: account.status,
            patient,
        },
        account,
    ))
}

/// An identity provider's assertion that a subject is a patient registered at a practice.
#[derive(Debug, Clone)]
pub struct IdentityAssertion {
    pub issuer: String,
    pub subject: String,
    pub nhs_number: NhsNumber,
    pub proofing_level: ProofingLevel,
    pub ods_code: OdsCode,
}

pub async fn link_identity(state: &AppState, a: IdentityAssertion) -> Result<(Binding, PatientRecord), ApiError> {
    let trusted = state
        .settings
        .auth
        .issuers
        .iter()
        .any(|i| i.kind == crate::config::IssuerKind::Patient && i.issuer == a.issuer);
    if !trusted {
        return Err(ApiError::new(
            ErrorCode::BusinessRule,
            "issuer is not a trusted patient identity issuer",
        )
        .at("Parameters.parameter.where(name='issuer')"));
    }
    enum Linked {
        NoPractice,
        NotRegistered,
        Mismatch,
        Done(Box<(Binding, PatientRecord)>),
    }
    let linked = db::run(&state.pool, move |c| {
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
        Linked::NoPractice => Err(ApiError::new(
            ErrorCode::UnknownPractice,
            "no practice with that ODS code",
        )),
        Linked::NotRegistered => Err(ApiError::new(
            ErrorCode::PatientNotRegistered,
            "no patient with that NHS number is registered at the practice",
        )),
        Linked::Mismatch => Err(ApiError::new(
            ErrorCode::IdentityMismatch,
            "this subject is already linked to a different NHS number",
        )),
        Linked::Done(done) => Ok(*done),
    }
}
