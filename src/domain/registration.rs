//! Registration for online services: the conditions a practice must record before an account is
//! created, and the rules that decide what access can be switched on straight away.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{AccessSettings, RecordAccessLevel, Supplier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerificationMethod {
    /// The patient proved their identity to NHS login at P9.
    NhsLoginP9,
    /// Photo ID (and proof of address) seen in person.
    DocumentsInPerson,
    /// Vouched for by staff who know the patient.
    Vouching,
    /// Vouching backed by the patient confirming information held in their record.
    VouchingWithRecordConfirmation,
}

impl VerificationMethod {
    pub const ALL: [Self; 4] = [
        Self::NhsLoginP9,
        Self::DocumentsInPerson,
        Self::Vouching,
        Self::VouchingWithRecordConfirmation,
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NhsLoginP9 => "nhs-login-p9",
            Self::DocumentsInPerson => "documents-in-person",
            Self::Vouching => "vouching",
            Self::VouchingWithRecordConfirmation => "vouching-with-record-confirmation",
        }
    }

    /// Vouching alone is not enough to show detailed coded or full record information.
    pub fn permits(self, level: RecordAccessLevel) -> bool {
        !(self == Self::Vouching && level >= RecordAccessLevel::DetailedCoded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityVerification {
    pub method: VerificationMethod,
    /// Documents seen (for documents in person).
    pub documents: Vec<String>,
    pub verified_by: String,
    pub verified_at: DateTime<Utc>,
}

/// The staff member's attestation that the registration conditions were considered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub responsibilities_acknowledged: bool,
    pub coercion_considered: bool,
    pub capacity_considered: bool,
    pub attested_by: String,
    pub attested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Waiting for the supplier to confirm the account.
    Pending,
    Active,
    /// Switched off by the practice (misuse), with a reason.
    Disabled,
    /// The supplier refused to create the account; the reason says why.
    Rejected,
}

impl AccountStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Rejected => "rejected",
        }
    }
}

/// What staff send to register a patient.
#[derive(Debug, Clone)]
pub struct RegistrationRequest {
    pub verification: IdentityVerification,
    pub email: Option<String>,
    pub responsibilities_acknowledged: bool,
    pub coercion_considered: bool,
    pub capacity_considered: bool,
    pub access: AccessSettings,
}

/// A broken registration rule, naming the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub field: String,
    pub message: String,
}

impl RuleViolation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What can be switched on now, and what waits for a record review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPlan {
    pub immediate: AccessSettings,
    /// Historic full record access: only after a clinician has reviewed the record for
    /// third-party and sensitive information.
    pub after_review: Option<AccessSettings>,
}

/// Whether `current` gives at least the record access `requested` asks for.
fn has_already(current: &AccessSettings, requested: &AccessSettings) -> bool {
    match (requested.record_level, current.record_level) {
        (RecordAccessLevel::None, _) => true,
        (RecordAccessLevel::Full, RecordAccessLevel::Full) => match (requested.record_from, current.record_from) {
            (Some(wanted), Some(has)) => wanted >= has,
            _ => false,
        },
        (RecordAccessLevel::Full, _) => false,
        (wanted, has) => wanted <= has && requested.record_from.is_none(),
    }
}

/// Plans a change to `requested` from the access the account has now (`current`): historic
/// full access and a rise to detailed coded access wait for a record review. Record access
/// the account already has (the same or less of the record, from the same day or later) is
/// switched on at once: it was reviewed when it was first given.
pub fn plan_access(
    requested: &AccessSettings,
    current: &AccessSettings,
    method: VerificationMethod,
    today: NaiveDate,
) -> Result<AccessPlan, RuleViolation> {
    if has_already(current, requested) {
        return Ok(AccessPlan {
            immediate: requested.clone(),
            after_review: None,
        });
    }
    plan_from(requested, current.record_level, method, today)
}

fn plan_from(
    requested: &AccessSettings,
    current: RecordAccessLevel,
    method: VerificationMethod,
    today: NaiveDate,
) -> Result<AccessPlan, RuleViolation> {
    if matches!(
        requested.record_level,
        RecordAccessLevel::DetailedCoded | RecordAccessLevel::Documents
    ) && current < requested.record_level
    {
        plan_from(requested, requested.record_level, method, today)?;
        // The coded record is checked for third-party and sensitive entries first.
        return Ok(AccessPlan {
            immediate: AccessSettings {
                record_level: current,
                record_from: None,
                ..requested.clone()
            },
            after_review: Some(requested.clone()),
        });
    }
    if !method.permits(requested.record_level) {
        return Err(RuleViolation::new(
            "recordAccess.level",
            "identity verified by vouching alone is not enough for detailed coded or full record access; verify with documents, NHS login P9 or vouching with record confirmation",
        ));
    }
    match (requested.record_level, requested.record_from) {
        (RecordAccessLevel::Full, None) => Err(RuleViolation::new(
            "recordAccess.from",
            "full record access needs a from date",
        )),
        (RecordAccessLevel::Full, Some(from)) if from > today => Err(RuleViolation::new(
            "recordAccess.from",
            "the from date cannot be in the future",
        )),
        (RecordAccessLevel::Full, Some(from)) if from < today => Ok(AccessPlan {
            // Prospective access starts now; the historic part waits for the review.
            immediate: AccessSettings {
                record_from: Some(today),
                ..requested.clone()
            },
            after_review: Some(requested.clone()),
        }),
        (RecordAccessLevel::Full, Some(_)) => Ok(AccessPlan {
            immediate: requested.clone(),
            after_review: None,
        }),
        (_, Some(_)) => Err(RuleViolation::new(
            "recordAccess.from",
            "a from date applies only to full record access",
        )),
        (_, None) => Ok(AccessPlan {
            immediate: requested.clone(),
            after_review: None,
        }),
    }
}

pub fn validate_verification(v: &IdentityVerification, now: DateTime<Utc>) -> Result<(), RuleViolation> {
    if v.method == VerificationMethod::DocumentsInPerson && v.documents.iter().all(|d| d.trim().is_empty()) {
        return Err(RuleViolation::new(
            "identityVerification.document",
            "name the documents seen when identity was verified in person",
        ));
    }
    if v.verified_by.trim().is_empty() {
        return Err(RuleViolation::new(
            "identityVerification.verifiedBy",
            "say who verified the identity",
        ));
    }
    if v.verified_at > now + chrono::Duration::minutes(5) {
        return Err(RuleViolation::new(
            "identityVerification.verifiedAt",
            "the verification time cannot be in the future",
        ));
    }
    Ok(())
}

pub fn validate_attestation(a: &Attestation) -> Result<(), RuleViolation> {
    if !a.responsibilities_acknowledged {
        return Err(RuleViolation::new(
            "responsibilitiesAcknowledged",
            "the patient must acknowledge their responsibilities for keeping online access safe",
        ));
    }
    if !a.coercion_considered {
        return Err(RuleViolation::new(
            "coercionConsidered",
            "the risk of coercion must be considered before online access is given",
        ));
    }
    if !a.capacity_considered {
        return Err(RuleViolation::new(
            "capacityConsidered",
            "the patient's capacity to manage online access must be considered",
        ));
    }
    Ok(())
}

/// EMIS-like systems cannot create an online account without an email address.
pub fn email_required(supplier: Supplier) -> bool {
    supplier == Supplier::Emis
}

/// How long a printed registration letter's linkage details stay usable.
pub const LETTER_VALIDITY_DAYS: i64 = 14;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Services;

    fn access(level: RecordAccessLevel, from: Option<NaiveDate>) -> AccessSettings {
        AccessSettings {
            services: Services {
                appointments: crate::domain::ServiceLevel::Manage,
                prescriptions: crate::domain::ServiceLevel::Manage,
                messaging: false,
            },
            record_level: level,
            record_from: from,
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn plan(r: &AccessSettings, m: VerificationMethod, today: NaiveDate) -> Result<AccessPlan, RuleViolation> {
        plan_access(r, &AccessSettings::none(), m, today)
    }

    #[test]
    fn detailed_coded_access_waits_for_review() {
        let today = day(2026, 11, 21);
        let requested = access(RecordAccessLevel::DetailedCoded, None);
        let p = plan(&requested, VerificationMethod::NhsLoginP9, today).unwrap();
        assert_eq!(p.immediate.record_level, RecordAccessLevel::None);
        assert_eq!(p.after_review, Some(requested.clone()));
        let kept = plan_access(
            &requested,
            &access(RecordAccessLevel::DetailedCoded, None),
            VerificationMethod::NhsLoginP9,
            today,
        )
        .unwrap();
        assert_eq!(kept.after_review, None, "already has it");
        let historic = access(RecordAccessLevel::Full, Some(day(2024, 1, 1)));
        let same = plan_access(&historic, &historic, VerificationMethod::NhsLoginP9, today).unwrap();
        assert_eq!(
            (same.immediate, same.after_review),
            (historic.clone(), None),
            "historic access the account has keeps its date and needs no new review"
        );
        let earlier = access(RecordAccessLevel::Full, Some(day(2020, 1, 1)));
        let more = plan_access(&earlier, &historic, VerificationMethod::NhsLoginP9, today).unwrap();
        assert_eq!(more.after_review, Some(earlier), "more history waits for a review");
    }

    #[test]
    fn vouching_alone_allows_summary_but_not_detailed_or_full() {
        let today = day(2026, 11, 21);
        assert!(
            plan(
                &access(RecordAccessLevel::Summary, None),
                VerificationMethod::Vouching,
                today
            )
            .is_ok()
        );
        let err = plan(
            &access(RecordAccessLevel::DetailedCoded, None),
            VerificationMethod::Vouching,
            today,
        )
        .unwrap_err();
        assert_eq!(err.field, "recordAccess.level");
        assert!(
            plan(
                &access(RecordAccessLevel::DetailedCoded, None),
                VerificationMethod::VouchingWithRecordConfirmation,
                today
            )
            .is_ok()
        );
    }

    #[test]
    fn historic_full_access_waits_for_review_and_prospective_starts_today() {
        let today = day(2026, 11, 21);
        let requested = access(RecordAccessLevel::Full, Some(day(2015, 1, 1)));
        let historic = plan(&requested, VerificationMethod::DocumentsInPerson, today).unwrap();
        assert_eq!(historic.immediate.record_from, Some(today));
        assert_eq!(historic.after_review, Some(requested));

        let prospective = access(RecordAccessLevel::Full, Some(today));
        let now = plan(&prospective, VerificationMethod::NhsLoginP9, today).unwrap();
        assert_eq!(now.after_review, None);
    }

    #[test]
    fn from_dates_are_checked() {
        let today = day(2026, 11, 21);
        let m = VerificationMethod::DocumentsInPerson;
        assert_eq!(
            plan(&access(RecordAccessLevel::Full, None), m, today)
                .unwrap_err()
                .field,
            "recordAccess.from"
        );
        assert!(plan(&access(RecordAccessLevel::Full, Some(day(2027, 1, 1))), m, today).is_err());
        assert!(plan(&access(RecordAccessLevel::Summary, Some(day(2020, 1, 1))), m, today).is_err());
    }

    #[test]
    fn attestation_needs_every_condition() {
        let mut a = Attestation {
            responsibilities_acknowledged: true,
            coercion_considered: true,
            capacity_considered: true,
            attested_by: "staff".into(),
            attested_at: Utc::now(),
        };
        assert!(validate_attestation(&a).is_ok());
        a.coercion_considered = false;
        assert_eq!(validate_attestation(&a).unwrap_err().field, "coercionConsidered");
    }
}
