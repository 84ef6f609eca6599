//! What is in effect for a person and a patient now: the one answer every surface gives.
//!
//! *Granted* access is what staff set and the supplier confirmed (an online account) or what a
//! proxy role grants. What is *in effect* is what the rules leave of it today: the patient is
//! alive and registered where the account or role was made, the practice has online services
//! switched on, the account or role is active, the practice's model and the record-access codes
//! apply, and a proxy never sees more of the record than the patient themself has. Only what is
//! in effect is ever shown as access or sent to a supplier as access.
//!
//! The access-decision engine, `$my-access`, `$service-access`, `$online-account`,
//! `$explain-access`, the caps on proxy grants and every account and proxy link sent to a
//! supplier ask here; nothing else works it out.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::proxy::{ProxyGrants, ProxyRole, ReasonRecord, RoleStatus, ended_today};
use super::record_access::{self, CodeSet, ModelFacts};
use super::{AccessSettings, AccountStatus, OnlineAccount, PatientRecord, PracticeRecord, RecordAccessLevel};

/// What the gateway holds about a patient that decides what anyone has for them.
#[derive(Debug, Clone, Copy)]
pub struct PatientState<'a> {
    pub patient: &'a PatientRecord,
    /// The patient's current practice.
    pub practice: &'a PracticeRecord,
    /// The patient's latest online account: at their practice, or the one they left behind.
    pub account: Option<&'a OnlineAccount>,
    pub codes: &'a CodeSet,
}

/// How the person reaches the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Their own online account (the id, when there is one).
    Account(Option<String>),
    /// A proxy role.
    Role(String),
}

/// Whether the account or role is in force, and if not, why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Active,
    /// No online account at the patient's practice.
    NoAccount,
    /// The account is pending, disabled or was refused.
    Account(AccountStatus),
    /// The account belongs to the practice the patient has left.
    Moved,
    /// The patient has died: terminal.
    Deceased,
    /// The patient's practice has online services switched off.
    PracticeNotEnabled,
    /// A proxy role that is not in force, with the reason (a lapse, a move or a death shows as
    /// the inactive role it amounts to, whether or not that has been stored yet).
    Role(RoleStatus, ReasonRecord),
}

impl Standing {
    pub fn is_active(&self) -> bool {
        *self == Self::Active
    }

    /// The status shown for it (`$my-access`): an account's or a role's.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NoAccount => "none",
            Self::Account(s) => s.as_str(),
            Self::Moved | Self::Deceased => "ended",
            Self::PracticeNotEnabled => "unavailable",
            Self::Role(s, _) => s.code(),
        }
    }
}

/// What a person has for a patient now, how, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlements {
    pub via: Via,
    pub standing: Standing,
    /// What is in effect: all off unless the standing is active.
    pub access: AccessSettings,
    /// Why, in the order the rules were applied; written for the practice and the patient
    /// (never an NHS number, a token or a linkage key).
    pub reasons: Vec<Cow<'static, str>>,
}

impl Entitlements {
    fn off(via: Via, standing: Standing, why: impl Into<Cow<'static, str>>) -> Self {
        Self {
            via,
            standing,
            access: AccessSettings::none(),
            reasons: vec![why.into()],
        }
    }

    /// The role id, when the person acts through a proxy role.
    pub fn role_id(&self) -> Option<&str> {
        match &self.via {
            Via::Role(id) => Some(id),
            Via::Account(_) => None,
        }
    }

    /// The first reason: why the standing is what it is.
    pub fn summary(&self) -> Option<&str> {
        self.reasons.first().map(AsRef::as_ref)
    }

    /// What a sign-in below the proofing level the services need may use: nothing. The
    /// standing is unchanged (the account or role is still there); nothing is in effect.
    pub fn at_assurance(mut self, sufficient: bool) -> Self {
        if !sufficient {
            self.access = AccessSettings::none();
            self.reasons
                .push("the sign-in is not proven to the identity level online services need".into());
        }
        self
    }
}

/// What a patient has through their own online account now.
pub fn own(state: &PatientState<'_>, today: NaiveDate) -> Entitlements {
    let via = Via::Account(state.account.map(|a| a.id.clone()));
    let (patient, practice) = (state.patient, state.practice);
    if let Some(died) = patient.deceased_on {
        return Entitlements::off(
            via,
            Standing::Deceased,
            format!("the patient died on {died}: online access has ended"),
        );
    }
    let Some(account) = state.account else {
        return Entitlements::off(
            via,
            Standing::NoAccount,
            format!("no online account at {}", practice.ods_code),
        );
    };
    if account.practice_id != patient.practice_id {
        return Entitlements::off(
            via,
            Standing::Moved,
            "the patient moved practice; access at the old practice has ended",
        );
    }
    if !practice.settings.enabled {
        return Entitlements::off(
            via,
            Standing::PracticeNotEnabled,
            format!("online services are switched off at {}", practice.ods_code),
        );
    }
    if account.status != AccountStatus::Active {
        let why = account
            .status_reason
            .clone()
            .unwrap_or_else(|| format!("the online account is {}", account.status.as_str()));
        return Entitlements::off(via, Standing::Account(account.status), why);
    }
    // What the supplier has confirmed, except that anything a pending change takes away is
    // gone at once: a practice that lowers access is obeyed on the next request, while what a
    // change adds waits for the supplier.
    let granted = match &account.pending_access {
        Some(pending) => lower_record(&account.access, pending),
        None => account.access.clone(),
    };
    let (access, reasons) = in_effect(&granted, state, account, today);
    Entitlements {
        via,
        standing: Standing::Active,
        access,
        reasons,
    }
}

/// What a proxy has for a patient through `role` now: the role's grants while it is in force,
/// never more of the record than the patient themself has.
pub fn proxy(state: &PatientState<'_>, role: &ProxyRole, today: NaiveDate) -> Entitlements {
    let via = Via::Role(role.id.clone());
    let (patient, practice) = (state.patient, state.practice);
    let stood = if role.status == RoleStatus::Active {
        ended_today(role, patient, practice.settings.proxy_review_age, today).map(|r| (RoleStatus::Inactive, r))
    } else {
        Some((role.status, role.reason.clone()))
    };
    if let Some((status, reason)) = stood {
        let why = reason
            .text
            .clone()
            .unwrap_or_else(|| reason.reason.display().to_owned());
        return Entitlements::off(
            via,
            Standing::Role(status, reason),
            format!("proxy role {} is {}: {why}", role.id, status.code()),
        );
    }
    if !practice.settings.enabled {
        return Entitlements::off(
            via,
            Standing::PracticeNotEnabled,
            format!("online services are switched off at {}", practice.ods_code),
        );
    }
    let cap = proxy_cap(state, today);
    let access = role.grants.capped_by(Some(&cap)).as_access();
    let mut reasons: Vec<Cow<'static, str>> = vec![format!("proxy role {} is active", role.id).into()];
    if access.record_level != role.grants.record_level || access.record_from != role.grants.record_from {
        reasons.push(
            format!(
                "record access is held to the patient's own ({}{})",
                cap.record_level.as_str(),
                cap.record_from.map(|d| format!(" from {d}")).unwrap_or_default()
            )
            .into(),
        );
    }
    Entitlements {
        via,
        standing: Standing::Active,
        access,
        reasons,
    }
}

/// The most of the record a proxy may have for the patient: what the patient has in effect,
/// and while a change to their account waits for the supplier, no more than it will leave
/// them (a lowered access holds their proxies at once).
pub fn proxy_cap(state: &PatientState<'_>, today: NaiveDate) -> AccessSettings {
    let own = own(state, today);
    if !own.standing.is_active() {
        return AccessSettings::none();
    }
    match state.account {
        Some(account) if account.pending_access.is_some() => {
            let (latest, _) = in_effect(account.latest_access(), state, account, today);
            lower_record(&own.access, &latest)
        }
        _ => own.access,
    }
}

/// Whether `grants` stay within what the patient has (for staff setting a role's grants).
pub fn within_patient(grants: &ProxyGrants, state: &PatientState<'_>, today: NaiveDate) -> Result<(), String> {
    let cap = proxy_cap(state, today);
    // Full access without its own date takes the patient's; with one, no earlier than theirs.
    let within = grants.record_level <= cap.record_level
        && match (grants.record_level, grants.record_from, cap.record_from) {
            (RecordAccessLevel::Full, Some(wanted), Some(has)) => wanted >= has,
            _ => true,
        };
    if !within {
        return Err(format!(
            "a proxy's record access cannot go beyond the patient's own in effect ({}{})",
            cap.record_level.as_str(),
            cap.record_from.map(|d| format!(" from {d}")).unwrap_or_default()
        ));
    }
    Ok(())
}

/// What the supplier should be told an account gives when `grant` is its latest grant: the
/// grant with the patient's life status, the practice's model and the codes applied.
pub fn for_supplier(
    state: &PatientState<'_>,
    account: &OnlineAccount,
    grant: &AccessSettings,
    today: NaiveDate,
) -> AccessSettings {
    if state.patient.deceased_on.is_some() {
        return AccessSettings::none();
    }
    in_effect(grant, state, account, today).0
}

/// What the supplier should be told a proxy link gives: what is in effect through the role,
/// or nothing once it is not in force.
pub fn link_for_supplier(state: &PatientState<'_>, role: &ProxyRole, today: NaiveDate) -> AccessSettings {
    proxy(state, role, today).access
}

/// A grant with the practice's model and the record-access codes applied.
fn in_effect(
    granted: &AccessSettings,
    state: &PatientState<'_>,
    account: &OnlineAccount,
    today: NaiveDate,
) -> (AccessSettings, Vec<Cow<'static, str>>) {
    let facts = ModelFacts {
        settings: &state.practice.settings,
        birth_date: state.patient.details.birth_date,
        deceased: state.patient.deceased_on.is_some(),
        codes: state.codes,
        account_created: account.created_at.date(),
    };
    record_access::effective_with_reasons(granted, &facts, today)
}

/// The lower record access of two (the lower level, from the later date); services as `a`.
fn lower_record(a: &AccessSettings, b: &AccessSettings) -> AccessSettings {
    let level = a.record_level.min(b.record_level);
    let from = match (level, a.record_from, b.record_from) {
        (RecordAccessLevel::Full, Some(x), Some(y)) => Some(x.max(y)),
        (RecordAccessLevel::Full, x, y) => x.or(y),
        _ => None,
    };
    AccessSettings {
        services: a.services.meet(&b.services),
        record_level: level,
        record_from: from,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::domain::proxy::{Assessment, LegalBasis, ProxyGrants, StatusReason};
    use crate::domain::record_access::AccessCode;
    use crate::domain::{
        AccessModel, Attestation, Gender, IdentityVerification, NhsNumber, OdsCode, OnlineServicesSettings,
        PatientDetails, PatientIdentifier, Services, Supplier, VerificationMethod,
    };

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(d: NaiveDate) -> NaiveDateTime {
        d.and_hms_opt(9, 0, 0).unwrap()
    }

    fn utc(d: NaiveDate) -> DateTime<Utc> {
        at(d).and_utc()
    }

    fn practice(settings: OnlineServicesSettings) -> PracticeRecord {
        PracticeRecord {
            id: "pr1".into(),
            ods_code: OdsCode::parse("A81001").unwrap(),
            name: "Practice".into(),
            supplier: Supplier::Emis,
            settings,
            address: None,
            telephone: None,
            version: 1,
            last_updated: utc(day(2020, 1, 1)),
        }
    }

    fn patient(birth: NaiveDate) -> PatientRecord {
        PatientRecord {
            id: "p1".into(),
            practice_id: "pr1".into(),
            practice_ods: OdsCode::parse("A81001").unwrap(),
            details: PatientDetails {
                identifier: PatientIdentifier::nhs(&NhsNumber::parse("9000000009").unwrap()),
                family: "Smith".into(),
                given: vec!["Jane".into()],
                birth_date: birth,
                gender: Gender::Female,
                email: None,
            },
            version: 1,
            last_updated: utc(day(2020, 1, 1)),
            deceased_on: None,
        }
    }

    fn account(access: AccessSettings, created: NaiveDate) -> OnlineAccount {
        let mut a = OnlineAccount::pending(
            "a1".into(),
            "p1",
            "pr1",
            "jane@example.org".into(),
            access,
            IdentityVerification {
                method: VerificationMethod::NhsLoginP9,
                documents: vec![],
                verified_by: "staff".into(),
                verified_at: utc(created),
            },
            Attestation {
                responsibilities_acknowledged: true,
                coercion_considered: true,
                capacity_considered: true,
                attested_by: "staff".into(),
                attested_at: utc(created),
            },
            at(created),
        );
        a.status = AccountStatus::Active;
        a
    }

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

    fn role(grants: ProxyGrants, basis: LegalBasis, made: NaiveDate) -> ProxyRole {
        ProxyRole {
            id: "r1".into(),
            proxy_nhs_number: NhsNumber::parse("9000000017").unwrap(),
            patient_id: "p1".into(),
            patient_nhs_number: NhsNumber::parse("9000000009").unwrap(),
            practice_id: "pr1".into(),
            status: RoleStatus::Active,
            reason: ReasonRecord {
                reason: StatusReason::RoleActivated,
                text: None,
            },
            legal_basis: basis,
            relationships: vec![],
            grantor: Some(OdsCode::parse("A81001").unwrap()),
            date_time: at(made),
            period_start: Some(at(made)),
            period_end: None,
            grants,
            assessment: Assessment::default(),
            access_request_id: None,
            supplier_ref: None,
            sent_access: None,
            last_used_at: Some(at(made)),
            reviewed_at: Some(at(made)),
            version: 1,
            created_at: at(made),
            updated_at: at(made),
        }
    }

    fn grants(level: RecordAccessLevel, from: Option<NaiveDate>) -> ProxyGrants {
        ProxyGrants {
            services: Services {
                appointments: crate::domain::ServiceLevel::Manage,
                prescriptions: crate::domain::ServiceLevel::Manage,
                messaging: true,
            },
            record_level: level,
            record_from: from,
        }
    }

    fn opt_out() -> PracticeRecord {
        practice(OnlineServicesSettings::default())
    }

    #[test]
    fn a_16th_birthday_at_an_opt_out_practice_brings_full_prospective_access() {
        let p = patient(day(2010, 6, 1));
        let pr = opt_out();
        let a = account(access(RecordAccessLevel::Summary, None), day(2024, 1, 10));
        let codes = CodeSet::default();
        let state = PatientState {
            patient: &p,
            practice: &pr,
            account: Some(&a),
            codes: &codes,
        };
        let before = own(&state, day(2026, 5, 31));
        assert_eq!(
            before.access.record_level,
            RecordAccessLevel::Summary,
            "15: what was granted"
        );
        let on = own(&state, day(2026, 6, 1));
        assert_eq!(
            (on.access.record_level, on.access.record_from),
            (RecordAccessLevel::Full, Some(day(2026, 6, 1)))
        );
        assert_eq!(
            for_supplier(&state, &a, &a.access, day(2026, 6, 1)),
            on.access,
            "the supplier is told the same"
        );
    }

    #[test]
    fn declined_access_leaves_the_record_off_and_a_proxy_capped_to_nothing() {
        let p = patient(day(1980, 1, 1));
        let pr = opt_out();
        let a = account(access(RecordAccessLevel::Summary, None), day(2024, 1, 10));
        let codes = CodeSet::new([AccessCode::Declined]);
        let state = PatientState {
            patient: &p,
            practice: &pr,
            account: Some(&a),
            codes: &codes,
        };
        let today = day(2026, 12, 1);
        assert_eq!(own(&state, today).access.record_level, RecordAccessLevel::None);
        let r = role(
            grants(RecordAccessLevel::Summary, None),
            LegalBasis::Consent,
            day(2025, 1, 1),
        );
        let e = proxy(&state, &r, today);
        assert!(e.standing.is_active());
        assert_eq!(
            e.access.record_level,
            RecordAccessLevel::None,
            "never beyond the patient"
        );
        assert!(e.access.services.appointments.is_on(), "services are the role's own");
        assert!(within_patient(&r.grants, &state, today).is_err());
    }

    #[test]
    fn full_access_in_effect_by_the_model_is_the_cap_not_the_grant() {
        let p = patient(day(1980, 1, 1));
        let pr = opt_out();
        // Granted nothing of the record; the opt-out model gives full from the account's day.
        let a = account(access(RecordAccessLevel::None, None), day(2024, 1, 10));
        let codes = CodeSet::default();
        let state = PatientState {
            patient: &p,
            practice: &pr,
            account: Some(&a),
            codes: &codes,
        };
        let full = grants(RecordAccessLevel::Full, Some(day(2024, 1, 10)));
        assert_eq!(within_patient(&full, &state, day(2026, 12, 1)), Ok(()));
    }

    #[test]
    fn death_ends_everything_and_a_move_ends_what_belonged_to_the_old_practice() {
        let mut p = patient(day(1980, 1, 1));
        let pr = opt_out();
        let a = account(access(RecordAccessLevel::Summary, None), day(2024, 1, 10));
        let codes = CodeSet::default();
        let r = role(
            grants(RecordAccessLevel::Summary, None),
            LegalBasis::Consent,
            day(2025, 1, 1),
        );
        let today = day(2026, 12, 1);
        p.deceased_on = Some(day(2026, 11, 30));
        let state = PatientState {
            patient: &p,
            practice: &pr,
            account: Some(&a),
            codes: &codes,
        };
        assert_eq!(own(&state, today).standing, Standing::Deceased);
        assert_eq!(
            proxy(&state, &r, today).standing,
            Standing::Role(
                RoleStatus::Inactive,
                ReasonRecord {
                    reason: StatusReason::DeactivatedPatientDeceased,
                    text: None
                }
            )
        );
        assert_eq!(for_supplier(&state, &a, &a.access, today), AccessSettings::none());

        let mut moved = patient(day(1980, 1, 1));
        moved.practice_id = "pr2".into();
        let state = PatientState {
            patient: &moved,
            practice: &pr,
            account: Some(&a),
            codes: &codes,
        };
        assert_eq!(own(&state, today).standing, Standing::Moved);
        assert!(matches!(
            proxy(&state, &r, today).standing,
            Standing::Role(
                RoleStatus::Inactive,
                ReasonRecord {
                    reason: StatusReason::DeactivatedPatientGpTransferred,
                    ..
                }
            )
        ));
    }

    #[test]
    fn a_lowered_access_holds_at_once_and_a_raised_one_waits_for_the_supplier() {
        let p = patient(day(1980, 1, 1));
        let pr = practice(OnlineServicesSettings {
            access_model: AccessModel::OptIn,
            ..OnlineServicesSettings::default()
        });
        let mut a = account(access(RecordAccessLevel::DetailedCoded, None), day(2024, 1, 10));
        a.change_access(access(RecordAccessLevel::Summary, None)).unwrap();
        let codes = CodeSet::default();
        let today = day(2026, 12, 1);
        let r = role(
            grants(RecordAccessLevel::DetailedCoded, None),
            LegalBasis::Consent,
            day(2025, 1, 1),
        );
        {
            let state = PatientState {
                patient: &p,
                practice: &pr,
                account: Some(&a),
                codes: &codes,
            };
            assert_eq!(
                own(&state, today).access.record_level,
                RecordAccessLevel::Summary,
                "what a pending change takes away is gone at once"
            );
            assert_eq!(proxy(&state, &r, today).access.record_level, RecordAccessLevel::Summary);
        }
        let mut raised = account(access(RecordAccessLevel::Summary, None), day(2024, 1, 10));
        raised
            .change_access(access(RecordAccessLevel::DetailedCoded, None))
            .unwrap();
        let state = PatientState {
            patient: &p,
            practice: &pr,
            account: Some(&raised),
            codes: &codes,
        };
        assert_eq!(
            own(&state, today).access.record_level,
            RecordAccessLevel::Summary,
            "what it adds waits for the supplier"
        );
    }

    fn any_day() -> impl Strategy<Value = NaiveDate> {
        (0i64..(366 * 30)).prop_map(|d| day(2000, 1, 1) + chrono::Duration::days(d))
    }

    fn any_level() -> impl Strategy<Value = RecordAccessLevel> {
        prop_oneof![
            Just(RecordAccessLevel::None),
            Just(RecordAccessLevel::Summary),
            Just(RecordAccessLevel::DetailedCoded),
            Just(RecordAccessLevel::Full),
        ]
    }

    fn any_service() -> impl Strategy<Value = crate::domain::ServiceLevel> {
        proptest::sample::select(crate::domain::ServiceLevel::ALL.to_vec())
    }

    fn any_access() -> impl Strategy<Value = AccessSettings> {
        (any_service(), any_service(), any::<bool>(), any_level(), any_day()).prop_map(
            |(appointments, prescriptions, messaging, level, from)| AccessSettings {
                services: Services {
                    appointments,
                    prescriptions,
                    messaging,
                },
                record_level: level,
                record_from: (level == RecordAccessLevel::Full).then_some(from),
            },
        )
    }

    fn any_status() -> impl Strategy<Value = AccountStatus> {
        prop_oneof![
            Just(AccountStatus::Active),
            Just(AccountStatus::Pending),
            Just(AccountStatus::Disabled),
            Just(AccountStatus::Rejected),
        ]
    }

    fn any_role_status() -> impl Strategy<Value = RoleStatus> {
        prop_oneof![
            Just(RoleStatus::Active),
            Just(RoleStatus::Proposed),
            Just(RoleStatus::Inactive),
            Just(RoleStatus::Rejected),
        ]
    }

    /// Everything the model takes, generated: a patient of any age (dead or alive, moved or
    /// not), a practice of either model (on or off, with or without a go-live), any codes, any
    /// account, any pending change, and any role.
    #[derive(Debug, Clone)]
    struct World {
        birth: NaiveDate,
        died: Option<NaiveDate>,
        moved: bool,
        opt_in: bool,
        enabled: bool,
        go_live: Option<NaiveDate>,
        codes: Vec<AccessCode>,
        account: Option<(AccountStatus, AccessSettings, NaiveDate, Option<AccessSettings>)>,
        role: (RoleStatus, AccessSettings, bool, Option<NaiveDate>, NaiveDate),
        today: NaiveDate,
    }

    fn any_world() -> impl Strategy<Value = World> {
        (
            (
                any_day(),
                proptest::option::weighted(0.15, any_day()),
                any::<[bool; 3]>(),
            ),
            proptest::option::of(any_day()),
            proptest::collection::vec(
                prop_oneof![
                    Just(AccessCode::ReviewIndicated),
                    Just(AccessCode::ReviewNotIndicated),
                    Just(AccessCode::Declined),
                ],
                0..3,
            ),
            proptest::option::weighted(
                0.8,
                (
                    any_status(),
                    any_access(),
                    any_day(),
                    proptest::option::of(any_access()),
                ),
            ),
            (
                any_role_status(),
                any_access(),
                any::<bool>(),
                proptest::option::of(any_day()),
                any_day(),
            ),
            any_day(),
        )
            .prop_map(|((birth, died, flags), go_live, codes, account, role, today)| World {
                birth: birth.min(today),
                died,
                moved: flags[0],
                opt_in: flags[1],
                enabled: !flags[2] || flags[0],
                go_live,
                codes,
                account,
                role,
                today,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the facts: nothing is in effect unless the account or role is in force; a
        /// proxy never has more of the record than the patient; the supplier is told exactly
        /// what is in effect; and a sign-in below the services' level has nothing.
        #[test]
        fn what_is_in_effect_holds_together(w in any_world()) {
            let mut p = patient(w.birth);
            p.deceased_on = w.died.filter(|d| *d <= w.today);
            if w.moved {
                p.practice_id = "pr2".into();
            }
            let pr = practice(OnlineServicesSettings {
                enabled: w.enabled,
                access_model: if w.opt_in { AccessModel::OptIn } else { AccessModel::OptOut },
                proxy_review_age: 13,
                prospective_go_live: w.go_live,
            });
            let codes = CodeSet::new(w.codes.clone());
            let acc = w.account.clone().map(|(status, granted, created, pending)| {
                let mut a = account(granted, created.min(w.today));
                a.status = status;
                a.pending_access = pending;
                a
            });
            let state = PatientState { patient: &p, practice: &pr, account: acc.as_ref(), codes: &codes };
            let (rstatus, rgrants, parental, end, made) = w.role.clone();
            let mut r = role(
                ProxyGrants { services: rgrants.services, record_level: rgrants.record_level, record_from: rgrants.record_from },
                if parental { LegalBasis::ParentalResponsibility } else { LegalBasis::Consent },
                made.min(w.today),
            );
            r.status = rstatus;
            r.period_end = end.map(at);

            let mine = own(&state, w.today);
            let theirs = proxy(&state, &r, w.today);
            for e in [&mine, &theirs] {
                if !e.standing.is_active() {
                    prop_assert_eq!(&e.access, &AccessSettings::none());
                }
                prop_assert!(!e.reasons.is_empty(), "every answer says why");
                prop_assert_eq!(e.clone().at_assurance(false).access, AccessSettings::none());
            }
            if p.deceased_on.is_some() {
                prop_assert_eq!(&mine.standing, &Standing::Deceased);
                prop_assert!(!theirs.standing.is_active());
            }
            // Never beyond the patient: the lower level, and for full access no earlier day.
            prop_assert!(theirs.access.record_level <= mine.access.record_level);
            if theirs.access.record_level == RecordAccessLevel::Full {
                prop_assert!(theirs.access.record_from >= mine.access.record_from);
            }
            let held = ProxyGrants {
                services: theirs.access.services,
                record_level: theirs.access.record_level,
                record_from: theirs.access.record_from,
            };
            prop_assert!(within_patient(&held, &state, w.today).is_ok(), "held grants are within the patient");
            prop_assert_eq!(link_for_supplier(&state, &r, w.today), theirs.access.clone());
            if let Some(a) = &acc && mine.standing.is_active() {
                // In effect: the confirmed access, lowered by whatever a pending change takes away.
                let granted = a.pending_access.as_ref().map_or_else(|| a.access.clone(), |p| lower_record(&a.access, p));
                prop_assert_eq!(for_supplier(&state, a, &granted, w.today), mine.access.clone());
            }
        }
    }
}
