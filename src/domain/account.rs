//! The online account aggregate: a patient's online-services account at one practice, as the
//! gateway mirrors it from the supplier, and the state changes it allows.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::registration::LETTER_VALIDITY_DAYS;
use super::{AccessSettings, AccountStatus, Attestation, IdentityVerification};

/// A patient's online-services account.
#[derive(Debug, Clone)]
pub struct OnlineAccount {
    pub id: String,
    pub patient_id: String,
    pub practice_id: String,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub email: String,
    pub access: AccessSettings,
    pub verification: IdentityVerification,
    pub attestation: Attestation,
    pub supplier_ref: Option<String>,
    /// The supplier's Account ID (printed on the letter).
    pub account_id: Option<String>,
    /// Sealed linkage key (see `crypto::SecretBox`); never the key itself.
    pub linkage_key_sealed: Option<String>,
    pub linkage_key_issued_at: Option<NaiveDateTime>,
    pub letter_printed_at: Option<NaiveDateTime>,
    pub letter_expires_at: Option<NaiveDateTime>,
    /// A stable code for the last provisioning failure (never a supplier's or library's text).
    pub last_error: Option<String>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// A change sent to the supplier and not confirmed yet. `access` is what it confirmed.
    pub pending_access: Option<AccessSettings>,
    /// What the supplier was last told to give: the access with the practice's model applied.
    pub sent_access: Option<AccessSettings>,
    pub source: AccountSource,
}

/// How the account came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSource {
    /// Registered by practice staff (with a registration letter).
    Practice,
    /// The patient registered themself with NHS login: no letter, no linkage key.
    NhsLogin,
}

impl AccountSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Practice => "practice",
            Self::NhsLogin => "nhs-login",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Practice, Self::NhsLogin].into_iter().find(|v| v.as_str() == s)
    }
}

/// A change the account's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an online account that is {}", status.as_str())]
pub struct StateError {
    pub action: &'static str,
    pub status: AccountStatus,
}

/// Credentials a supplier issued: where the account lives there, and the letter's Account ID.
/// The linkage key arrives sealed.
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    pub supplier_ref: String,
    pub account_id: String,
    pub linkage_key_sealed: String,
}

impl OnlineAccount {
    /// A new account waiting for its supplier to create it.
    #[allow(clippy::too_many_arguments)]
    pub fn pending(
        id: String,
        patient_id: &str,
        practice_id: &str,
        email: String,
        access: AccessSettings,
        verification: IdentityVerification,
        attestation: Attestation,
        now: NaiveDateTime,
    ) -> Self {
        Self {
            id,
            patient_id: patient_id.to_owned(),
            practice_id: practice_id.to_owned(),
            status: AccountStatus::Pending,
            status_reason: None,
            email,
            access,
            verification,
            attestation,
            supplier_ref: None,
            account_id: None,
            linkage_key_sealed: None,
            linkage_key_issued_at: None,
            letter_printed_at: None,
            letter_expires_at: None,
            last_error: None,
            version: 1,
            created_at: now,
            updated_at: now,
            pending_access: None,
            sent_access: None,
            source: AccountSource::Practice,
        }
    }

    pub fn last_updated(&self) -> DateTime<Utc> {
        self.updated_at.and_utc()
    }

    fn require(&self, allowed: &[AccountStatus], action: &'static str) -> Result<(), StateError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            Err(StateError {
                action,
                status: self.status,
            })
        }
    }

    /// Whether a registration may be made (again) on this account: only after a refusal.
    pub fn can_register_again(&self) -> bool {
        self.status == AccountStatus::Rejected
    }

    /// A refused registration made again on the same row (its jobs refer to it).
    pub fn register_again(&mut self, mut fresh: OnlineAccount) {
        fresh.id = self.id.clone();
        fresh.version = self.version;
        fresh.created_at = self.created_at;
        *self = fresh;
    }

    /// Asks for new access: it is pending until the supplier confirms it.
    pub fn change_access(&mut self, access: AccessSettings) -> Result<(), StateError> {
        self.require(
            &[AccountStatus::Pending, AccountStatus::Active, AccountStatus::Disabled],
            "change access of",
        )?;
        if self.supplier_ref.is_none() && self.status == AccountStatus::Pending {
            // Not created at the supplier yet: the creation carries the new access.
            self.access = access;
        } else {
            self.pending_access = Some(access);
        }
        Ok(())
    }

    /// The access a new change starts from: the pending one if there is one.
    pub fn latest_access(&self) -> &AccessSettings {
        self.pending_access.as_ref().unwrap_or(&self.access)
    }

    /// The supplier confirmed a change: it is in effect.
    pub fn access_confirmed(&mut self, access: AccessSettings) {
        if self.pending_access.as_ref() == Some(&access) {
            self.pending_access = None;
        }
        self.access = access;
    }

    /// The supplier refused a change for good: the confirmed access stands.
    pub fn access_refused(&mut self, access: &AccessSettings) {
        if self.pending_access.as_ref() == Some(access) {
            self.pending_access = None;
        }
    }

    /// The old key stops working here and now, not when the supplier answers.
    pub fn reset_linkage_key(&mut self) -> Result<(), StateError> {
        self.require(&[AccountStatus::Active, AccountStatus::Disabled], "reset")?;
        if self.status == AccountStatus::Active {
            // An expired letter's note goes with it.
            self.status_reason = None;
        }
        self.linkage_key_sealed = None;
        self.linkage_key_issued_at = None;
        self.letter_printed_at = None;
        self.letter_expires_at = None;
        Ok(())
    }

    pub fn disable(&mut self, reason: String) -> Result<(), StateError> {
        self.require(&[AccountStatus::Active, AccountStatus::Pending], "disable")?;
        self.status = AccountStatus::Disabled;
        self.status_reason = Some(reason);
        Ok(())
    }

    /// Back to active once it has credentials; an account never confirmed stays pending.
    pub fn enable(&mut self) -> Result<(), StateError> {
        self.require(&[AccountStatus::Disabled], "re-enable")?;
        self.status = if self.supplier_ref.is_some() {
            AccountStatus::Active
        } else {
            AccountStatus::Pending
        };
        self.status_reason = None;
        Ok(())
    }

    /// The supplier confirmed the account or issued a new key: a new key needs a new letter.
    pub fn credentials_issued(&mut self, credentials: IssuedCredentials, now: NaiveDateTime) {
        self.supplier_ref = Some(credentials.supplier_ref);
        self.account_id = Some(credentials.account_id);
        self.linkage_key_sealed = Some(credentials.linkage_key_sealed);
        self.linkage_key_issued_at = Some(now);
        self.letter_printed_at = None;
        self.letter_expires_at = None;
        if self.status == AccountStatus::Pending {
            self.status = AccountStatus::Active;
        }
        self.last_error = None;
    }

    /// The supplier made the account of a patient who registered with NHS login.
    pub fn registered(&mut self, supplier_ref: String) {
        self.supplier_ref = Some(supplier_ref);
        if self.status == AccountStatus::Pending {
            self.status = AccountStatus::Active;
        }
        self.last_error = None;
    }

    /// The supplier refused to create the account; `reason` is the gateway's own description.
    pub fn creation_refused(&mut self, code: &str, reason: &str) {
        self.status = AccountStatus::Rejected;
        self.status_reason = Some(reason.to_owned());
        self.last_error = Some(code.to_owned());
    }

    /// A refused registration requeued by staff waits for the supplier again.
    pub fn creation_retried(&mut self) {
        if self.status == AccountStatus::Rejected {
            self.status = AccountStatus::Pending;
            self.status_reason = None;
        }
    }

    /// Whether the letter's details have passed their validity.
    pub fn letter_expired(&self, now: NaiveDateTime) -> bool {
        self.letter_expires_at.is_some_and(|e| e < now)
    }

    /// Printing the letter: the first print starts the validity of its details.
    pub fn letter_printed(&mut self, now: NaiveDateTime) -> Result<bool, StateError> {
        self.require(&[AccountStatus::Active], "print a letter for")?;
        if self.letter_printed_at.is_some() {
            return Ok(false);
        }
        self.letter_printed_at = Some(now);
        self.letter_expires_at = Some(now + chrono::Duration::days(LETTER_VALIDITY_DAYS));
        Ok(true)
    }
}

/// The content of a registration letter. Holds the linkage key in clear: only for the letter.
pub struct Letter {
    pub practice_name: String,
    pub ods_code: String,
    pub practice_address: Option<super::PracticeAddress>,
    pub practice_telephone: Option<super::Telephone>,
    /// What the account gives now, the practice's access model applied: what the patient will
    /// find once they have linked their login.
    pub access: super::AccessSettings,
    pub patient_name: String,
    pub patient_identifier: super::PatientIdentifier,
    pub account_id: String,
    pub linkage_key: String,
    pub printed_on: chrono::NaiveDate,
    pub expires_on: chrono::NaiveDate,
}

impl std::fmt::Debug for Letter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Attestation, IdentityVerification, VerificationMethod};

    fn account() -> OnlineAccount {
        let now = Utc::now();
        OnlineAccount::pending(
            "a".into(),
            "p",
            "pr",
            String::new(),
            AccessSettings::none(),
            IdentityVerification {
                method: VerificationMethod::NhsLoginP9,
                documents: vec![],
                verified_by: "s".into(),
                verified_at: now,
            },
            Attestation {
                responsibilities_acknowledged: true,
                coercion_considered: true,
                capacity_considered: true,
                attested_by: "s".into(),
                attested_at: now,
            },
            now.naive_utc(),
        )
    }

    fn issued() -> IssuedCredentials {
        IssuedCredentials {
            supplier_ref: "r".into(),
            account_id: "ACC".into(),
            linkage_key_sealed: "sealed".into(),
        }
    }

    #[test]
    fn lifecycle() {
        let now = Utc::now().naive_utc();
        let mut a = account();
        assert!(
            a.reset_linkage_key().is_err(),
            "nothing to reset before the supplier confirms"
        );
        assert!(a.letter_printed(now).is_err());
        a.credentials_issued(issued(), now);
        assert_eq!(a.status, AccountStatus::Active);
        assert_eq!(a.letter_printed(now), Ok(true));
        assert_eq!(a.letter_printed(now), Ok(false), "a reprint keeps the first expiry");
        assert!(!a.letter_expired(now));
        assert!(a.letter_expired(now + chrono::Duration::days(LETTER_VALIDITY_DAYS + 1)));
        a.disable("misuse".into()).unwrap();
        assert_eq!(a.status, AccountStatus::Disabled);
        assert!(a.disable("again".into()).is_err());
        a.enable().unwrap();
        assert_eq!(a.status, AccountStatus::Active);
        a.reset_linkage_key().unwrap();
        assert!(a.linkage_key_sealed.is_none() && a.letter_expires_at.is_none());
    }

    #[test]
    fn an_account_never_confirmed_goes_back_to_pending_when_re_enabled() {
        let mut a = account();
        a.disable("x".into()).unwrap();
        a.enable().unwrap();
        assert_eq!(a.status, AccountStatus::Pending);
    }

    #[test]
    fn refused_registrations_can_be_made_again() {
        let mut a = account();
        assert!(!a.can_register_again());
        a.creation_refused("SUPPLIER_UNDER_MINIMUM_AGE", "under age");
        assert!(a.can_register_again());
        a.creation_retried();
        assert_eq!(a.status, AccountStatus::Pending);
        assert!(a.change_access(AccessSettings::none()).is_ok());
    }
}
