//! Proxy roles (NHS England's Validated Relationships Service as the model): a person acting for
//! a patient, with a lifecycle, a legal basis, a reason for every status change, the services
//! the role grants, and the rules that decide when a role may be active.

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::{AccessSettings, NhsNumber, OdsCode, RecordAccessLevel, Services};

/// A proxy role's status (FHIR `consent-state-codes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleStatus {
    Proposed,
    Active,
    Inactive,
    Rejected,
    EnteredInError,
}

impl RoleStatus {
    pub const ALL: [Self; 5] = [
        Self::Proposed,
        Self::Active,
        Self::Inactive,
        Self::Rejected,
        Self::EnteredInError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Rejected => "rejected",
            Self::EnteredInError => "entered-in-error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == raw)
    }

    /// proposed -> active | rejected; active <-> inactive; anything -> entered-in-error.
    pub fn can_become(self, to: Self) -> bool {
        use RoleStatus::*;
        matches!(
            (self, to),
            (Proposed, Active) | (Proposed, Rejected) | (Active, Inactive) | (Inactive, Active)
        ) || (to == EnteredInError && self != EnteredInError)
    }
}

macro_rules! reasons {
    ($( $variant:ident => $code:literal, $display:literal, $group:ident; )*) => {
        /// Why a role's status changed (the VRS status-reason code system).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum StatusReason { $( $variant, )* }

        impl StatusReason {
            pub const ALL: &'static [StatusReason] = &[ $( StatusReason::$variant, )* ];

            pub fn code(self) -> &'static str {
                match self { $( StatusReason::$variant => $code, )* }
            }

            pub fn display(self) -> &'static str {
                match self { $( StatusReason::$variant => $display, )* }
            }

            fn group(self) -> ReasonGroup {
                match self { $( StatusReason::$variant => ReasonGroup::$group, )* }
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReasonGroup {
    Created,
    Deactivated,
    Submitted,
    Rejected,
    Other,
}

reasons! {
    RoleCreated => "ROLE_CREATED", "Role created", Created;
    RoleActivated => "ROLE_ACTIVATED", "Role activated", Created;
    RoleReactivated => "ROLE_REACTIVATED", "Role reactivated", Created;
    DeactivatedSafeguarding => "ROLE_DEACTIVATED_SAFEGUARDING", "Safeguarding concern", Deactivated;
    DeactivatedPatientRequest => "ROLE_DEACTIVATED_PATIENT_REQUEST", "At patient request", Deactivated;
    DeactivatedEndDateReached => "ROLE_DEACTIVATED_END_DATE_REACHED", "End date reached", Deactivated;
    DeactivatedInactiveRole => "ROLE_DEACTIVATED_INACTIVE_ROLE", "Role no longer in use", Deactivated;
    DeactivatedPatientDeceased => "ROLE_DEACTIVATED_PATIENT_DECEASED", "Patient deceased", Deactivated;
    DeactivatedProxyDeceased => "ROLE_DEACTIVATED_PROXY_DECEASED", "Proxy deceased", Deactivated;
    DeactivatedChangeInRelationship => "ROLE_DEACTIVATED_CHANGE_IN_RELATIONSHIP", "Change in relationship", Deactivated;
    DeactivatedProxyLacksCapacity => "ROLE_DEACTIVATED_PROXY_LACKS_CAPACITY", "Proxy lacks capacity", Deactivated;
    DeactivatedMisuse => "ROLE_DEACTIVATED_MISUSE_OF_SYSTEM", "Misuse of system", Deactivated;
    DeactivatedPatientGpTransferred => "ROLE_DEACTIVATED_PATIENT_GP_TRANSFERRED", "Patient GP transferred", Deactivated;
    DeactivatedProxyGpTransferred => "ROLE_DEACTIVATED_PROXY_GP_TRANSFERRED", "Proxy GP transferred", Deactivated;
    DeactivatedProxyNotInEnglandOrWales => "ROLE_DEACTIVATED_PROXY_NOT_LIVING_IN_ENGLAND_OR_WALES", "Proxy not living in England or Wales", Deactivated;
    SuspendedPendingReview => "ROLE_SUSPENDED_PENDING_REVIEW", "Suspended pending review", Deactivated;
    ApplicationSubmitted => "APPLICATION_SUBMITTED", "Application submitted online", Submitted;
    ApplicationResubmitted => "APPLICATION_RESUBMITTED", "Application re-submitted", Submitted;
    RejectedNotNeeded => "APPLICATION_REJECTED_NOT_NEEDED", "Proxy support not required", Rejected;
    RejectedSafeguarding => "APPLICATION_REJECTED_SAFEGUARDING", "Safeguarding concern identified", Rejected;
    RejectedIdentityNotVerified => "APPLICATION_REJECTED_IDENTITY_NOT_VERIFIED", "Proxy identity not verified", Rejected;
    RejectedNoConsent => "APPLICATION_REJECTED_NO_CONSENT", "Patient does not consent", Rejected;
    Withdrawn => "APPLICATION_WITHDRAWN", "Proxy application withdrawn", Rejected;
    RejectedProxyLacksCapacity => "APPLICATION_REJECTED_PROXY_LACKS_CAPACITY", "Proxy lacks capacity", Rejected;
    RejectedProxyNotInEnglandOrWales => "APPLICATION_REJECTED_PROXY_NOT_LIVING_IN_ENGLAND_OR_WALES", "Proxy not living in England or Wales", Rejected;
    RejectedNoLegalBasis => "APPLICATION_REJECTED_NO_LEGAL_BASIS", "Relationship or legal basis not proven", Rejected;
    Other => "OTHER", "Other reason", Other;
}

impl StatusReason {
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// Whether this reason explains a move to `status`. `OTHER` explains anything, and any
    /// reason explains marking a role as entered in error.
    pub fn explains(self, status: RoleStatus) -> bool {
        let group = self.group();
        group == ReasonGroup::Other
            || status == RoleStatus::EnteredInError
            || matches!(
                (status, group),
                (RoleStatus::Active, ReasonGroup::Created)
                    | (RoleStatus::Inactive, ReasonGroup::Deactivated)
                    | (RoleStatus::Proposed, ReasonGroup::Submitted)
                    | (RoleStatus::Rejected, ReasonGroup::Rejected)
            )
    }
}

/// The reason recorded with a status, with the free text `OTHER` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonRecord {
    pub reason: StatusReason,
    pub text: Option<String>,
}

/// The legal basis for acting for the patient (`Consent.policyRule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegalBasis {
    Unknown,
    CourtAppointedDeputy,
    LastingPowerOfAttorney,
    BestInterest,
    Consent,
    ParentalResponsibility,
}

impl LegalBasis {
    pub const ALL: [Self; 6] = [
        Self::Unknown,
        Self::CourtAppointedDeputy,
        Self::LastingPowerOfAttorney,
        Self::BestInterest,
        Self::Consent,
        Self::ParentalResponsibility,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::Unknown => "UNK",
            Self::CourtAppointedDeputy => "court-appointed-personal-welfare-deputy",
            Self::LastingPowerOfAttorney => "health-and-welfare-lasting-power-of-attorney",
            Self::BestInterest => "best-interest",
            Self::Consent => "consent",
            Self::ParentalResponsibility => "parental-responsibility",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::CourtAppointedDeputy => "Court appointed personal welfare deputy",
            Self::LastingPowerOfAttorney => "Health and welfare lasting power of attorney",
            Self::BestInterest => "Best interest",
            Self::Consent => "Consent",
            Self::ParentalResponsibility => "Parental responsibility",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.code() == code)
    }

    /// Bases that stand for a patient who cannot consent (a child, or an adult without capacity).
    pub fn is_without_consent(self) -> bool {
        !matches!(self, Self::Consent | Self::Unknown)
    }
}

/// How the proxy is related to the patient (`RelatedPerson.relationship`), as coded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipCode {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

/// The relationship codes the gateway accepts, by system.
pub const RELATIONSHIP_SYSTEMS: [&str; 3] = [
    "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
    "http://terminology.hl7.org/CodeSystem/v3-RoleClass",
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdditionalPersonRelationshipRole",
];

/// Codes a relationship may carry: parent, mother, father, child, partner, family member,
/// friend, carer, personal relationship, other.
pub const RELATIONSHIP_CODES: [&str; 12] = [
    "PRN",
    "MTH",
    "FTH",
    "CHILD",
    "SPS",
    "FAMMEMB",
    "FRND",
    "CAREGIVER",
    "SIGOTHR",
    "GUARD",
    "Personal",
    "NOK",
];

impl RelationshipCode {
    pub fn is_known(&self) -> bool {
        RELATIONSHIP_SYSTEMS.contains(&self.system.as_str()) && RELATIONSHIP_CODES.contains(&self.code.as_str())
    }
}

/// Whether a child was asked about their proxy, from 11.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ChildConsent {
    Given,
    NotSought { reason: String },
}

/// What staff considered before the role became active.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub coercion_considered: bool,
    pub safeguarding_considered: bool,
    #[serde(default)]
    pub child_consent: Option<ChildConsent>,
    #[serde(default)]
    pub patient_has_capacity: Option<bool>,
    #[serde(default)]
    pub attested_by: Option<String>,
    #[serde(default)]
    pub attested_at: Option<NaiveDateTime>,
    #[serde(default)]
    pub note: Option<String>,
}

/// What a role lets the proxy do: transactional services, and record access (never by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyGrants {
    pub services: Services,
    pub record_level: RecordAccessLevel,
    pub record_from: Option<NaiveDate>,
}

impl ProxyGrants {
    /// A new role: appointments and repeat prescriptions, no messaging, no record access.
    pub fn default_for_new_role() -> Self {
        Self {
            services: Services {
                appointments: crate::domain::ServiceLevel::Manage,
                prescriptions: crate::domain::ServiceLevel::Manage,
                messaging: false,
            },
            record_level: RecordAccessLevel::None,
            record_from: None,
        }
    }

    pub fn none() -> Self {
        Self {
            services: Services::default(),
            record_level: RecordAccessLevel::None,
            record_from: None,
        }
    }

    pub fn as_access(&self) -> AccessSettings {
        AccessSettings {
            services: self.services,
            record_level: self.record_level,
            record_from: self.record_from,
        }
    }

    /// Record access never beyond what the patient themself has: the lower level, from the later
    /// date.
    pub fn capped_by(&self, patient: Option<&AccessSettings>) -> Self {
        let (cap_level, cap_from) =
            patient.map_or((RecordAccessLevel::None, None), |a| (a.record_level, a.record_from));
        let record_level = self.record_level.min(cap_level);
        let record_from = match (record_level, self.record_from, cap_from) {
            (RecordAccessLevel::Full, Some(a), Some(b)) => Some(a.max(b)),
            (RecordAccessLevel::Full, a, b) => a.or(b),
            _ => None,
        };
        Self {
            services: self.services,
            record_level,
            record_from,
        }
    }
}

/// A proxy role as the gateway keeps it.
#[derive(Debug, Clone)]
pub struct ProxyRole {
    pub id: String,
    pub proxy_nhs_number: NhsNumber,
    pub patient_id: String,
    pub patient_nhs_number: NhsNumber,
    /// The patient's practice when the role was made; roles end when the patient moves.
    pub practice_id: String,
    pub status: RoleStatus,
    pub reason: ReasonRecord,
    pub legal_basis: LegalBasis,
    pub relationships: Vec<RelationshipCode>,
    /// ODS code of the practice that granted the role (required once active).
    pub grantor: Option<OdsCode>,
    /// `Consent.dateTime`: when the role was agreed.
    pub date_time: NaiveDateTime,
    pub period_start: Option<NaiveDateTime>,
    pub period_end: Option<NaiveDateTime>,
    pub grants: ProxyGrants,
    pub assessment: Assessment,
    /// The access request (QuestionnaireResponse) the role came from, if any.
    pub access_request_id: Option<String>,
    /// The supplier's handle for the proxy link, once linked.
    pub supplier_ref: Option<String>,
    /// What the supplier was last told the link gives (the grants as in effect), so a change
    /// in the patient's own access re-sends only the links it changes.
    pub sent_access: Option<AccessSettings>,
    /// When the role was last used (at most once a day); roles unused for five years end.
    pub last_used_at: Option<NaiveDateTime>,
    /// When staff last confirmed the role (activation or reactivation): a review at the
    /// practice's review age must come after the child reached it.
    pub reviewed_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Why a role may not be what it is asked to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("a role cannot move from {} to {}", from.code(), to.code())]
    Transition { from: RoleStatus, to: RoleStatus },
    #[error("{} does not explain a move to {}", reason.code(), status.code())]
    ReasonDoesNotFit { reason: StatusReason, status: RoleStatus },
    #[error("the reason code OTHER needs free text")]
    OtherNeedsText,
    #[error("an active role needs the practice that granted it")]
    MissingGrantor,
    #[error("{0}")]
    LegalBasis(String),
    #[error("{0}")]
    ChildConsent(String),
    #[error("the end date must be after the start and not in the past")]
    EndDate,
    #[error("a role cannot be created with status {}", .0.code())]
    CreatedAs(RoleStatus),
}

/// Age at which a child's consent is asked for.
pub const CHILD_CONSENT_AGE: u32 = 11;
/// Age at which a child's roles based on parental responsibility end.
pub const ADULT_AGE: u32 = 16;
/// Roles unused this long end.
pub const UNUSED_YEARS: u32 = 5;
/// An access request for the same proxy and patient is a repeat within this many days,
/// whatever became of the first (which its requester may not know).
pub const REQUEST_REPEAT_DAYS: i64 = 30;

pub fn age_on(birth: NaiveDate, day: NaiveDate) -> u32 {
    day.years_since(birth).unwrap_or(0)
}

/// The day a person born on `birth` turns `years` (29 February birthdays fall on 1 March).
pub fn birthday(birth: NaiveDate, years: u32) -> NaiveDate {
    let year = birth.year().saturating_add(i32::try_from(years).unwrap_or(i32::MAX));
    NaiveDate::from_ymd_opt(year, birth.month(), birth.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, 3, 1))
        .unwrap_or(birth)
}

/// The checks a role must pass to be (or become) active, for a patient born on `birth`.
pub fn check_active(role: &ProxyRole, birth: NaiveDate, today: NaiveDate) -> Result<(), RuleError> {
    if role.grantor.is_none() {
        return Err(RuleError::MissingGrantor);
    }
    if role.period_end.is_some_and(|end| end.date() < today) {
        return Err(RuleError::EndDate);
    }
    let age = age_on(birth, today);
    if age < ADULT_AGE {
        if !matches!(
            role.legal_basis,
            LegalBasis::ParentalResponsibility | LegalBasis::CourtAppointedDeputy
        ) {
            return Err(RuleError::LegalBasis(format!(
                "a proxy for a child under {ADULT_AGE} needs parental responsibility or a court order as legal basis, not {}",
                role.legal_basis.code()
            )));
        }
        if age >= CHILD_CONSENT_AGE && role.assessment.child_consent.is_none() {
            return Err(RuleError::ChildConsent(format!(
                "from {CHILD_CONSENT_AGE} the child's consent, or the reason it was not sought, must be recorded"
            )));
        }
    } else if matches!(
        role.legal_basis,
        LegalBasis::ParentalResponsibility | LegalBasis::Unknown
    ) {
        return Err(RuleError::LegalBasis(format!(
            "an adult patient's proxy needs the patient's consent or, for a patient without capacity, a lasting power of attorney, a court-appointed deputy or a best-interest decision; not {}",
            role.legal_basis.code()
        )));
    }
    Ok(())
}

/// What a role amounts to today, whatever its stored status says: an active role past its end
/// date, a child's role past the practice's review age and not reviewed since, a role for a
/// young person of 16 based on parental responsibility, and a role unused for five years are
/// all inactive, with the reason that applies. `None` when the stored status stands.
pub fn lapse(role: &ProxyRole, birth: NaiveDate, today: NaiveDate, review_age: u8) -> Option<ReasonRecord> {
    if role.status != RoleStatus::Active {
        return None;
    }
    if role.period_end.is_some_and(|end| end.date() < today) {
        return Some(ReasonRecord {
            reason: StatusReason::DeactivatedEndDateReached,
            text: None,
        });
    }
    if age_on(birth, today) >= ADULT_AGE && role.legal_basis == LegalBasis::ParentalResponsibility {
        return Some(ReasonRecord {
            reason: StatusReason::Other,
            text: Some(format!(
                "the patient turned {ADULT_AGE}: the role ends unless the young person consents to it"
            )),
        });
    }
    let review_day = birthday(birth, u32::from(review_age));
    if today >= review_day
        && age_on(birth, today) < ADULT_AGE
        && role.legal_basis == LegalBasis::ParentalResponsibility
        && role.reviewed_at.is_none_or(|r| r.date() < review_day)
    {
        return Some(ReasonRecord {
            reason: StatusReason::SuspendedPendingReview,
            text: Some(format!(
                "the patient reached the practice's review age of {review_age}: the role is suspended until staff review it"
            )),
        });
    }
    let used = role.last_used_at.or(role.reviewed_at).unwrap_or(role.created_at).date();
    if today >= birthday(used, UNUSED_YEARS) {
        return Some(ReasonRecord {
            reason: StatusReason::DeactivatedInactiveRole,
            text: None,
        });
    }
    None
}

/// Why a role stored as active is not in force today, if it is not: its patient died or moved
/// to another practice since it was made, or it lapsed (see [`lapse`]).
pub fn ended_today(
    role: &ProxyRole,
    patient: &super::PatientRecord,
    review_age: u8,
    today: NaiveDate,
) -> Option<ReasonRecord> {
    if role.status != RoleStatus::Active {
        return None;
    }
    let ended = |reason| Some(ReasonRecord { reason, text: None });
    if patient.deceased_on.is_some() {
        return ended(StatusReason::DeactivatedPatientDeceased);
    }
    if role.practice_id != patient.practice_id {
        return ended(StatusReason::DeactivatedPatientGpTransferred);
    }
    lapse(role, patient.details.birth_date, today, review_age)
}

/// A role as a caller asks for it to be created (`POST /Consent`).
#[derive(Debug, Clone)]
pub struct RoleRequest {
    pub status: RoleStatus,
    pub reason: ReasonRecord,
    pub patient_nhs_number: NhsNumber,
    pub proxy_nhs_number: NhsNumber,
    pub legal_basis: LegalBasis,
    pub relationships: Vec<RelationshipCode>,
    pub grantor: Option<OdsCode>,
    pub date_time: NaiveDateTime,
    pub period_start: Option<NaiveDateTime>,
    pub period_end: Option<NaiveDateTime>,
    /// What the role grants, when the request says (the gateway's extension); otherwise the
    /// defaults for a new role.
    pub grants: Option<ProxyGrants>,
    pub assessment: Option<Assessment>,
}

/// One change in a `PATCH /Consent/{id}`, already read from JSON Patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    Status(RoleStatus),
    Reason(ReasonRecord),
    Grantor(OdsCode),
    EndDate(Option<NaiveDateTime>),
    LegalBasis(LegalBasis),
    Assessment(Assessment),
    Grants(ProxyGrants),
}

/// Why a proxy request cannot be carried out, by the VRS error code that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    DuplicateRelationship,
    InvalidStateTransition(String),
    InvalidStatusReason(String),
    MissingStatusReason,
    MissingFreeTextForOther,
    MissingGrantor,
    InvalidGrantorValue(String),
    InvalidLegalBasis(String),
    InvalidEndDate(String),
    /// The role breaks a rule about who may act for whom (age, consent, legal basis).
    RuleNotMet(String),
    /// A status a role cannot be created with.
    BadRequest(String),
    /// A patient may only end a role that concerns them.
    Forbidden(String),
    RoleNotFound,
    RoleInvalidated,
    AccessRequestNotFound,
    /// The patient is not registered at a practice the caller may act at.
    InvalidPatient(String),
    /// A practice named by ODS code that the gateway does not serve.
    PracticeNotFound,
    /// The person has made as many requests as they may for now.
    Throttled(String),
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Self::DuplicateRelationship => "DUPLICATE_RELATIONSHIP",
            Self::InvalidStateTransition(_) => "INVALID_STATE_TRANSITION",
            Self::InvalidStatusReason(_) => "INVALID_STATUS_REASON",
            Self::MissingStatusReason => "MISSING_STATUS_REASON",
            Self::MissingFreeTextForOther => "MISSING_FREE_TEXT_FOR_OTHER",
            Self::MissingGrantor => "MISSING_GRANTOR",
            Self::InvalidGrantorValue(_) => "INVALID_GRANTOR_VALUE",
            Self::InvalidLegalBasis(_) => "INVALID_LEGAL_BASIS_CODE",
            Self::InvalidEndDate(_) => "INVALID_END_DATE",
            Self::RuleNotMet(_) | Self::BadRequest(_) => "BAD_REQUEST",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::RoleNotFound => "RESOURCE_NOT_FOUND",
            Self::RoleInvalidated => "INVALIDATED_RESOURCE",
            Self::AccessRequestNotFound => "QUESTIONNAIRE_RESPONSE_NOT_FOUND",
            Self::InvalidPatient(_) => "INVALID_PATIENT",
            Self::PracticeNotFound => "GP_PRACTICE_NOT_FOUND",
            Self::Throttled(_) => "THROTTLED",
        }
    }

    /// The gateway's own explanation, where the code alone does not say enough.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::InvalidStateTransition(d)
            | Self::InvalidStatusReason(d)
            | Self::InvalidGrantorValue(d)
            | Self::InvalidLegalBasis(d)
            | Self::InvalidEndDate(d)
            | Self::RuleNotMet(d)
            | Self::BadRequest(d)
            | Self::Forbidden(d)
            | Self::Throttled(d)
            | Self::InvalidPatient(d) => Some(d),
            _ => None,
        }
    }
}

impl From<RuleError> for Problem {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::Transition { .. } => Self::InvalidStateTransition(e.to_string()),
            RuleError::ReasonDoesNotFit { .. } => Self::InvalidStatusReason(e.to_string()),
            RuleError::OtherNeedsText => Self::MissingFreeTextForOther,
            RuleError::MissingGrantor => Self::MissingGrantor,
            RuleError::LegalBasis(m) => Self::InvalidLegalBasis(m),
            RuleError::ChildConsent(m) => Self::RuleNotMet(m),
            RuleError::EndDate => Self::InvalidEndDate(e.to_string()),
            RuleError::CreatedAs(_) => Self::BadRequest(e.to_string()),
        }
    }
}

/// What a person is, relative to a role, when they change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changer {
    /// Staff or a system client: any change the lifecycle allows.
    Practice,
    /// The role's patient or proxy: only to end it.
    Party,
}

impl ProxyRole {
    /// A new role from a request, checked against the lifecycle and the rules for the patient.
    pub fn create(
        id: String,
        request: RoleRequest,
        patient_id: &str,
        practice_id: &str,
        birth: NaiveDate,
        now: NaiveDateTime,
    ) -> Result<Self, Problem> {
        if !matches!(request.status, RoleStatus::Proposed | RoleStatus::Active) {
            return Err(RuleError::CreatedAs(request.status).into());
        }
        check_reason(&request.reason, request.status)?;
        let relationships = if request.relationships.is_empty() {
            vec![default_relationship(request.legal_basis)]
        } else {
            request.relationships
        };
        let role = Self {
            id,
            proxy_nhs_number: request.proxy_nhs_number,
            patient_id: patient_id.to_owned(),
            patient_nhs_number: request.patient_nhs_number,
            practice_id: practice_id.to_owned(),
            status: request.status,
            reason: request.reason,
            legal_basis: request.legal_basis,
            relationships,
            grantor: request.grantor,
            date_time: request.date_time,
            period_start: request.period_start.or(Some(now)),
            period_end: request.period_end,
            grants: request.grants.unwrap_or_else(ProxyGrants::default_for_new_role),
            assessment: request.assessment.unwrap_or_default(),
            access_request_id: None,
            supplier_ref: None,
            sent_access: None,
            last_used_at: None,
            reviewed_at: (request.status == RoleStatus::Active).then_some(now),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        if let (Some(start), Some(end)) = (role.period_start, role.period_end)
            && end <= start
        {
            return Err(RuleError::EndDate.into());
        }
        if role.status == RoleStatus::Active {
            check_active(&role, birth, now.date())?;
        }
        Ok(role)
    }

    /// Applies a patch: every change at once or none of them. A status change needs its reason
    /// in the same patch; a role that ends up active must pass the rules for the patient.
    pub fn apply(
        &mut self,
        changes: &[RoleChange],
        changer: Changer,
        birth: NaiveDate,
        now: NaiveDateTime,
    ) -> Result<(), Problem> {
        let mut next = self.clone();
        let mut reason = None;
        for change in changes {
            match change {
                RoleChange::Status(s) => next.status = *s,
                RoleChange::Reason(r) => reason = Some(r.clone()),
                RoleChange::Grantor(g) => next.grantor = Some(g.clone()),
                RoleChange::EndDate(d) => next.period_end = *d,
                RoleChange::LegalBasis(b) => next.legal_basis = *b,
                RoleChange::Assessment(a) => next.assessment = a.clone(),
                RoleChange::Grants(g) => next.grants = g.clone(),
            }
        }
        let status_changed = next.status != self.status;
        if changes.iter().any(|c| matches!(c, RoleChange::Status(_))) && reason.is_none() {
            return Err(Problem::MissingStatusReason);
        }
        if changer == Changer::Party {
            let ending = matches!(
                (self.status, next.status),
                (RoleStatus::Active | RoleStatus::Inactive, RoleStatus::Inactive)
                    | (RoleStatus::Proposed, RoleStatus::Rejected)
            );
            let only_status = changes
                .iter()
                .all(|c| matches!(c, RoleChange::Status(_) | RoleChange::Reason(_)));
            if !(ending && only_status && status_changed) {
                return Err(Problem::Forbidden(
                    "a patient or proxy may only end a role, or withdraw a request, that concerns them".into(),
                ));
            }
        }
        if status_changed && !self.status.can_become(next.status) {
            return Err(RuleError::Transition {
                from: self.status,
                to: next.status,
            }
            .into());
        }
        if let Some(r) = reason {
            check_reason(&r, next.status)?;
            next.reason = r;
        }
        if let Some(end) = next.period_end
            && (end.date() < now.date() || next.period_start.is_some_and(|s| end <= s))
            && changes.iter().any(|c| matches!(c, RoleChange::EndDate(_)))
        {
            return Err(RuleError::EndDate.into());
        }
        if next.status == RoleStatus::Active {
            check_active(&next, birth, now.date())?;
            if status_changed {
                next.reviewed_at = Some(now);
            }
        }
        *self = next;
        Ok(())
    }

    /// Ends the role (it lapsed, or its patient moved or died), with the reason.
    pub fn end(&mut self, reason: ReasonRecord) {
        self.status = match self.status {
            RoleStatus::Proposed => RoleStatus::Rejected,
            RoleStatus::Active | RoleStatus::Inactive => RoleStatus::Inactive,
            other => other,
        };
        self.reason = reason;
    }
}

fn check_reason(r: &ReasonRecord, status: RoleStatus) -> Result<(), Problem> {
    if r.reason == StatusReason::Other && r.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(RuleError::OtherNeedsText.into());
    }
    if !r.reason.explains(status) {
        return Err(RuleError::ReasonDoesNotFit {
            reason: r.reason,
            status,
        }
        .into());
    }
    Ok(())
}

/// The relationship a role records when the request names none: parent for parental
/// responsibility, a personal relationship otherwise.
pub fn default_relationship(basis: LegalBasis) -> RelationshipCode {
    match basis {
        LegalBasis::ParentalResponsibility => RelationshipCode {
            system: RELATIONSHIP_SYSTEMS[0].to_owned(),
            code: "PRN".to_owned(),
            display: Some("parent".to_owned()),
        },
        _ => RelationshipCode {
            system: RELATIONSHIP_SYSTEMS[2].to_owned(),
            code: "Personal".to_owned(),
            display: Some("Personal relationship with the patient".to_owned()),
        },
    }
}

/// An access request (the VRS QuestionnaireResponse) as the gateway reads it.
#[derive(Debug, Clone)]
pub struct AccessRequestForm {
    /// The person who filled it in (the token's NHS number must be theirs).
    pub source_nhs_number: NhsNumber,
    /// The patient nominated a proxy (`source.type` Patient) rather than the proxy applying.
    pub nominated_by_patient: bool,
    pub patient_nhs_number: NhsNumber,
    pub proxy_nhs_number: NhsNumber,
    pub legal_basis: LegalBasis,
    pub relationships: Vec<RelationshipCode>,
    /// The services asked for (record access is asked for, never granted, by the form).
    pub requested: ProxyGrants,
    pub record_requested: bool,
    pub child_consent: Option<ChildConsent>,
    pub authored: NaiveDateTime,
}

/// An access request (QuestionnaireResponse) as it was submitted.
#[derive(Debug, Clone)]
pub struct AccessRequest {
    pub id: String,
    /// The short code the applicant is given to quote.
    pub reference: String,
    pub proxy_nhs_number: String,
    pub patient_nhs_number: String,
    pub patient_id: Option<String>,
    /// The proposed role the request made.
    pub role_id: Option<String>,
    /// The QuestionnaireResponse as JSON.
    pub body: String,
    pub submitted_by: String,
    pub created_at: NaiveDateTime,
}

/// A practice's review of a proposed role: a Task that closes when the role is decided.
#[derive(Debug, Clone)]
pub struct ProxyReview {
    pub id: String,
    pub role_id: String,
    pub patient_id: String,
    /// requested | completed | cancelled
    pub status: String,
    pub completed_by: Option<String>,
    pub note: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl ProxyReview {
    /// A new review, open, for a role waiting on the practice.
    pub fn requested(id: String, role: &ProxyRole, now: NaiveDateTime) -> Self {
        Self {
            id,
            role_id: role.id.clone(),
            patient_id: role.patient_id.clone(),
            status: "requested".into(),
            completed_by: None,
            note: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn role(basis: LegalBasis) -> ProxyRole {
        let t = day(2026, 1, 1).and_hms_opt(9, 0, 0).unwrap();
        ProxyRole {
            id: "r".into(),
            proxy_nhs_number: NhsNumber::parse("9000000017").unwrap(),
            patient_id: "p".into(),
            patient_nhs_number: NhsNumber::parse("9000000009").unwrap(),
            practice_id: "pr".into(),
            status: RoleStatus::Active,
            reason: ReasonRecord {
                reason: StatusReason::RoleCreated,
                text: None,
            },
            legal_basis: basis,
            relationships: vec![],
            grantor: OdsCode::parse("G8101234").ok(),
            date_time: t,
            period_start: Some(t),
            period_end: None,
            grants: ProxyGrants::default_for_new_role(),
            assessment: Assessment::default(),
            access_request_id: None,
            supplier_ref: None,
            sent_access: None,
            last_used_at: None,
            reviewed_at: Some(t),
            version: 1,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn lifecycle() {
        use RoleStatus::*;
        for (from, to, ok) in [
            (Proposed, Active, true),
            (Proposed, Rejected, true),
            (Active, Inactive, true),
            (Inactive, Active, true),
            (Rejected, EnteredInError, true),
            (Active, Proposed, false),
            (Rejected, Active, false),
            (Inactive, Rejected, false),
            (EnteredInError, Active, false),
            (EnteredInError, EnteredInError, false),
        ] {
            assert_eq!(from.can_become(to), ok, "{from:?} -> {to:?}");
        }
        assert!(StatusReason::RoleReactivated.explains(Active));
        assert!(!StatusReason::RoleCreated.explains(Inactive));
        assert!(StatusReason::Other.explains(Inactive));
        assert!(StatusReason::Withdrawn.explains(Rejected));
        assert!(!StatusReason::ApplicationSubmitted.explains(Active));
    }

    #[test]
    fn children_need_parental_responsibility_and_from_11_their_consent() {
        let today = day(2026, 12, 1);
        let pr = role(LegalBasis::ParentalResponsibility);
        assert_eq!(check_active(&pr, day(2020, 1, 1), today), Ok(()));
        assert!(matches!(
            check_active(&role(LegalBasis::Consent), day(2020, 1, 1), today),
            Err(RuleError::LegalBasis(_))
        ));
        // 11 on 1 December 2026: the day of the birthday counts.
        let eleven = day(2015, 12, 1);
        assert!(matches!(
            check_active(&pr, eleven, today),
            Err(RuleError::ChildConsent(_))
        ));
        assert_eq!(check_active(&pr, day(2015, 12, 2), today), Ok(()), "still 10");
        let mut consented = pr.clone();
        consented.assessment.child_consent = Some(ChildConsent::NotSought {
            reason: "lacks capacity".into(),
        });
        assert_eq!(check_active(&consented, eleven, today), Ok(()));
        // Adults: consent or a basis for a patient without capacity, never parental responsibility.
        let adult = day(1990, 1, 1);
        assert!(check_active(&pr, adult, today).is_err());
        for basis in [
            LegalBasis::Consent,
            LegalBasis::BestInterest,
            LegalBasis::LastingPowerOfAttorney,
            LegalBasis::CourtAppointedDeputy,
        ] {
            assert_eq!(check_active(&role(basis), adult, today), Ok(()), "{basis:?}");
        }
        let mut no_grantor = role(LegalBasis::Consent);
        no_grantor.grantor = None;
        assert_eq!(check_active(&no_grantor, adult, today), Err(RuleError::MissingGrantor));
    }

    #[test]
    fn roles_lapse_at_the_review_age_at_16_at_their_end_date_and_after_five_years_unused() {
        let review_age = 13;
        let birth = day(2013, 6, 15);
        let pr = role(LegalBasis::ParentalResponsibility);
        assert_eq!(lapse(&pr, birth, day(2026, 6, 14), review_age), None);
        assert_eq!(
            lapse(&pr, birth, day(2026, 6, 15), review_age).map(|r| r.reason),
            Some(StatusReason::SuspendedPendingReview)
        );
        let mut reviewed = pr.clone();
        reviewed.reviewed_at = day(2026, 6, 20).and_hms_opt(10, 0, 0);
        assert_eq!(lapse(&reviewed, birth, day(2026, 7, 1), review_age), None);
        assert_eq!(
            lapse(&reviewed, birth, day(2029, 6, 15), review_age).map(|r| r.reason),
            Some(StatusReason::Other),
            "ends at 16"
        );
        let mut consent = reviewed.clone();
        consent.legal_basis = LegalBasis::Consent;
        assert_eq!(
            lapse(&consent, birth, day(2029, 6, 15), review_age),
            None,
            "consented to at 16"
        );
        let mut ended = role(LegalBasis::Consent);
        ended.period_end = day(2027, 1, 1).and_hms_opt(0, 0, 0);
        assert_eq!(
            lapse(&ended, day(1990, 1, 1), day(2027, 1, 2), review_age).map(|r| r.reason),
            Some(StatusReason::DeactivatedEndDateReached)
        );
        let unused = role(LegalBasis::Consent);
        assert_eq!(lapse(&unused, day(1990, 1, 1), day(2030, 12, 31), review_age), None);
        assert_eq!(
            lapse(&unused, day(1990, 1, 1), day(2031, 1, 1), review_age).map(|r| r.reason),
            Some(StatusReason::DeactivatedInactiveRole)
        );
    }

    #[test]
    fn record_access_never_beyond_the_patients_own() {
        let asked = ProxyGrants {
            services: Services::default(),
            record_level: RecordAccessLevel::Full,
            record_from: NaiveDate::from_ymd_opt(2020, 1, 1),
        };
        assert_eq!(asked.capped_by(None).record_level, RecordAccessLevel::None);
        let patient = AccessSettings {
            services: Services::default(),
            record_level: RecordAccessLevel::Full,
            record_from: NaiveDate::from_ymd_opt(2024, 1, 1),
        };
        let capped = asked.capped_by(Some(&patient));
        assert_eq!(capped.record_level, RecordAccessLevel::Full);
        assert_eq!(capped.record_from, NaiveDate::from_ymd_opt(2024, 1, 1));
        let summary = AccessSettings {
            record_level: RecordAccessLevel::Summary,
            ..patient
        };
        assert_eq!(asked.capped_by(Some(&summary)).record_level, RecordAccessLevel::Summary);
    }
}
