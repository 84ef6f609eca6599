//! What record access a patient has once the practice's model and the codes on their record are
//! applied, and who may register themself with NHS login.
//!
//! The account holds the access staff granted and the supplier confirmed. On top of it:
//! - at an opt-out practice, an account holder aged 16 or over has full prospective access from
//!   the day the account was made (or the practice's go-live date, if later), unless the record
//!   carries 1364731000000104 (enhanced review indicated) without 1364751000000106 (not
//!   indicated), or 1290331000000103 (online access declined);
//! - at an opt-in practice, only what staff granted after the patient asked;
//! - 1290331000000103 means no record access at all; a deceased patient has no access.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::proxy::{age_on, birthday};
use super::{AccessModel, AccessSettings, OnlineServicesSettings, RecordAccessLevel, Services};

pub const SNOMED: &str = "http://snomed.info/sct";

/// The age from which a patient has their own record access online.
pub const OWN_ACCESS_AGE: u32 = 16;

/// The SNOMED CT codes that govern online record access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessCode {
    /// 1364731000000104: enhanced review indicated; no automatic prospective access.
    ReviewIndicated,
    /// 1364751000000106: enhanced review not indicated; overrides 104.
    ReviewNotIndicated,
    /// 1290331000000103: online access declined by the patient; no access, do not re-approach.
    Declined,
}

impl AccessCode {
    pub const ALL: [Self; 3] = [Self::ReviewIndicated, Self::ReviewNotIndicated, Self::Declined];

    pub fn code(self) -> &'static str {
        match self {
            Self::ReviewIndicated => "1364731000000104",
            Self::ReviewNotIndicated => "1364751000000106",
            Self::Declined => "1290331000000103",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::ReviewIndicated => "Enhanced review indicated before granting access to own health record",
            Self::ReviewNotIndicated => "Enhanced review not indicated before granting access to own health record",
            Self::Declined => "Online access to own health record declined by patient",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// The codes a record carries now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeSet(Vec<AccessCode>);

impl CodeSet {
    pub fn new(codes: impl IntoIterator<Item = AccessCode>) -> Self {
        let mut v: Vec<AccessCode> = codes.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    pub fn has(&self, c: AccessCode) -> bool {
        self.0.contains(&c)
    }

    pub fn codes(&self) -> &[AccessCode] {
        &self.0
    }

    /// 104 without 106: no automatic prospective access.
    pub fn blocks_automatic(&self) -> bool {
        self.has(AccessCode::ReviewIndicated) && !self.has(AccessCode::ReviewNotIndicated)
    }
}

/// What the model needs to know about a patient and their account.
#[derive(Debug, Clone)]
pub struct ModelFacts<'a> {
    pub settings: &'a OnlineServicesSettings,
    pub birth_date: NaiveDate,
    pub deceased: bool,
    pub codes: &'a CodeSet,
    /// When the account was made (at this practice).
    pub account_created: NaiveDate,
}

/// The day automatic full prospective access starts, if the practice's model gives it.
pub fn automatic_from(f: &ModelFacts<'_>, today: NaiveDate) -> Option<NaiveDate> {
    if f.settings.access_model != AccessModel::OptOut
        || f.deceased
        || age_on(f.birth_date, today) < OWN_ACCESS_AGE
        || f.codes.has(AccessCode::Declined)
        || f.codes.blocks_automatic()
    {
        return None;
    }
    let from = match f.settings.prospective_go_live {
        Some(go_live) if go_live > f.account_created => go_live,
        _ => f.account_created,
    };
    // Access is prospective from the 16th birthday for an account made before it.
    Some(from.max(birthday(f.birth_date, OWN_ACCESS_AGE)))
}

/// The access in effect: what was granted, with the model and the codes applied.
pub fn effective(granted: &AccessSettings, f: &ModelFacts<'_>, today: NaiveDate) -> AccessSettings {
    effective_with_reasons(granted, f, today).0
}

/// [`effective`], with why each part of the record access is what it is.
pub fn effective_with_reasons(
    granted: &AccessSettings,
    f: &ModelFacts<'_>,
    today: NaiveDate,
) -> (AccessSettings, Vec<Cow<'static, str>>) {
    if f.deceased {
        return (AccessSettings::none(), vec!["the patient has died".into()]);
    }
    let mut access = granted.clone();
    let mut why: Vec<Cow<'static, str>> = vec![format!("granted record access: {}", describe(granted)).into()];
    if f.codes.has(AccessCode::Declined) {
        access.record_level = RecordAccessLevel::None;
        access.record_from = None;
        why.push(
            format!(
                "{} ({}) is on the record: no record access",
                AccessCode::Declined.code(),
                AccessCode::Declined.display()
            )
            .into(),
        );
        return (access, why);
    }
    match automatic_from(f, today) {
        Some(from) => {
            why.push(
                format!("opt-out practice: full prospective record access from {from} (16 or over, no review code)")
                    .into(),
            );
            match access.record_level {
                RecordAccessLevel::Full => {
                    access.record_from = Some(access.record_from.map_or(from, |granted| granted.min(from)));
                }
                _ => {
                    access.record_level = RecordAccessLevel::Full;
                    access.record_from = Some(from);
                }
            }
        }
        None if f.settings.access_model == AccessModel::OptIn => {
            why.push("opt-in practice: only the record access the practice granted".into());
        }
        None if age_on(f.birth_date, today) < OWN_ACCESS_AGE => {
            why.push(format!("under {OWN_ACCESS_AGE}: no automatic record access").into());
        }
        None => {
            why.push(
                format!(
                    "{} ({}) is on the record: no automatic prospective access",
                    AccessCode::ReviewIndicated.code(),
                    AccessCode::ReviewIndicated.display()
                )
                .into(),
            );
        }
    }
    (access, why)
}

fn describe(a: &AccessSettings) -> String {
    match a.record_from {
        Some(from) => format!("{} from {from}", a.record_level.as_str()),
        None => a.record_level.as_str().to_owned(),
    }
}

/// Why a patient may not register themself with NHS login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfRegistration {
    UnderAge,
    PracticeNotEnabled,
    Declined,
    Deceased,
}

impl SelfRegistration {
    pub fn message(self) -> &'static str {
        match self {
            Self::UnderAge => "patients under 16 cannot register themselves for online services; ask the practice",
            Self::PracticeNotEnabled => "online services are switched off at this practice",
            Self::Declined => "the patient's record says they declined online access; ask the practice",
            Self::Deceased => "the record is of a patient who has died",
        }
    }
}

/// Whether a patient (verified to P9) may make their own online account.
pub fn may_self_register(f: &ModelFacts<'_>, today: NaiveDate) -> Result<(), SelfRegistration> {
    if f.deceased {
        return Err(SelfRegistration::Deceased);
    }
    if !f.settings.enabled {
        return Err(SelfRegistration::PracticeNotEnabled);
    }
    if age_on(f.birth_date, today) < OWN_ACCESS_AGE {
        return Err(SelfRegistration::UnderAge);
    }
    if f.codes.has(AccessCode::Declined) {
        return Err(SelfRegistration::Declined);
    }
    Ok(())
}

/// What a self-registered account is granted: the transactional services. Record access comes
/// from the practice's model (opt-out) or a request the practice approves (opt-in).
pub fn self_registered_grant() -> AccessSettings {
    AccessSettings {
        services: Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::Manage,
            messaging: false,
        },
        record_level: RecordAccessLevel::None,
        record_from: None,
    }
}

/// A change to an account's access: only the parts given change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessChange {
    pub appointments: Option<crate::domain::ServiceLevel>,
    pub prescriptions: Option<crate::domain::ServiceLevel>,
    pub messaging: Option<bool>,
    /// The record level and its `from` date, changed together.
    pub record: Option<(RecordAccessLevel, Option<NaiveDate>)>,
}

impl AccessChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn applied_to(&self, current: &AccessSettings) -> AccessSettings {
        let mut a = current.clone();
        if let Some(v) = self.appointments {
            a.services.appointments = v;
        }
        if let Some(v) = self.prescriptions {
            a.services.prescriptions = v;
        }
        if let Some(v) = self.messaging {
            a.services.messaging = v;
        }
        if let Some((level, from)) = self.record {
            a.record_level = level;
            a.record_from = from;
        }
        a
    }
}

/// A practice-wide job: moving a practice to the opt-in model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkJob {
    pub id: String,
    pub practice_id: String,
    pub kind: String,
    /// queued | in-progress | completed | failed
    pub status: String,
    pub params: OptInParams,
    /// The last patient id done: the job goes on from there after a restart.
    pub cursor: String,
    pub processed: i64,
    pub total: i64,
    pub counts: OptInCounts,
    pub requested_by: String,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
}

pub const OPT_IN_JOB: &str = "apply-opt-in-model";

/// What `$apply-opt-in-model` was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptInParams {
    /// Children turning 16 within this many days are coded too.
    pub turning_sixteen_within_days: u32,
}

/// What the job did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptInCounts {
    /// Patients without record access given 1364731000000104.
    pub coded: u64,
    /// Patients who already carried the code.
    pub already_coded: u64,
    /// Accounts whose automatic access was revoked until the patient opts in.
    pub revoked: u64,
    /// The revoked accounts (the first thousand).
    #[serde(default)]
    pub revoked_accounts: Vec<String>,
}

/// Who the opt-in job codes: a patient aged 16 or over (or turning 16 within `days`) whose
/// granted record access is none.
pub fn needs_review_code(birth: NaiveDate, granted_none: bool, today: NaiveDate, days: u32) -> bool {
    granted_none && birthday(birth, OWN_ACCESS_AGE) <= today + chrono::Duration::days(i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn facts<'a>(settings: &'a OnlineServicesSettings, codes: &'a CodeSet, birth: NaiveDate) -> ModelFacts<'a> {
        ModelFacts {
            settings,
            birth_date: birth,
            deceased: false,
            codes,
            account_created: day(2024, 1, 10),
        }
    }

    #[test]
    fn opt_out_gives_full_prospective_access_from_16_unless_coded() {
        let opt_out = OnlineServicesSettings::default();
        let none = CodeSet::default();
        let birth = day(2008, 6, 1);
        let f = facts(&opt_out, &none, birth);
        assert_eq!(automatic_from(&f, day(2024, 5, 31)), None, "15");
        assert_eq!(
            automatic_from(&f, day(2024, 6, 1)),
            Some(day(2024, 6, 1)),
            "from the 16th birthday"
        );
        let adult = facts(&opt_out, &none, day(1980, 1, 1));
        assert_eq!(
            automatic_from(&adult, day(2026, 1, 1)),
            Some(day(2024, 1, 10)),
            "from account creation"
        );
        let go_live = OnlineServicesSettings {
            prospective_go_live: Some(day(2025, 3, 1)),
            ..OnlineServicesSettings::default()
        };
        assert_eq!(
            automatic_from(&facts(&go_live, &none, day(1980, 1, 1)), day(2026, 1, 1)),
            Some(day(2025, 3, 1))
        );
        let e = effective(&AccessSettings::none(), &adult, day(2026, 1, 1));
        assert_eq!(
            (e.record_level, e.record_from),
            (RecordAccessLevel::Full, Some(day(2024, 1, 10)))
        );

        let review = CodeSet::new([AccessCode::ReviewIndicated]);
        assert_eq!(
            automatic_from(&facts(&opt_out, &review, day(1980, 1, 1)), day(2026, 1, 1)),
            None
        );
        let overridden = CodeSet::new([AccessCode::ReviewIndicated, AccessCode::ReviewNotIndicated]);
        assert!(automatic_from(&facts(&opt_out, &overridden, day(1980, 1, 1)), day(2026, 1, 1)).is_some());
        let declined = CodeSet::new([AccessCode::Declined]);
        let granted = AccessSettings {
            record_level: RecordAccessLevel::Summary,
            ..AccessSettings::none()
        };
        assert_eq!(
            effective(&granted, &facts(&opt_out, &declined, day(1980, 1, 1)), day(2026, 1, 1)).record_level,
            RecordAccessLevel::None,
            "103 means no record access at all"
        );
    }

    #[test]
    fn opt_in_gives_only_what_was_granted() {
        let opt_in = OnlineServicesSettings {
            access_model: AccessModel::OptIn,
            ..OnlineServicesSettings::default()
        };
        let none = CodeSet::default();
        let f = facts(&opt_in, &none, day(1980, 1, 1));
        assert_eq!(
            effective(&AccessSettings::none(), &f, day(2026, 1, 1)),
            AccessSettings::none()
        );
    }

    #[test]
    fn self_registration_rules() {
        let s = OnlineServicesSettings::default();
        let none = CodeSet::default();
        assert_eq!(
            may_self_register(&facts(&s, &none, day(2011, 1, 1)), day(2026, 1, 1)),
            Err(SelfRegistration::UnderAge)
        );
        assert_eq!(
            may_self_register(&facts(&s, &none, day(2000, 1, 1)), day(2026, 1, 1)),
            Ok(())
        );
        let declined = CodeSet::new([AccessCode::Declined]);
        assert_eq!(
            may_self_register(&facts(&s, &declined, day(2000, 1, 1)), day(2026, 1, 1)),
            Err(SelfRegistration::Declined)
        );
        let off = OnlineServicesSettings {
            enabled: false,
            ..OnlineServicesSettings::default()
        };
        assert_eq!(
            may_self_register(&facts(&off, &none, day(2000, 1, 1)), day(2026, 1, 1)),
            Err(SelfRegistration::PracticeNotEnabled)
        );
    }

    #[test]
    fn changes_touch_only_what_they_name() {
        let current = AccessSettings {
            services: Services {
                appointments: crate::domain::ServiceLevel::Manage,
                prescriptions: crate::domain::ServiceLevel::Manage,
                messaging: true,
            },
            record_level: RecordAccessLevel::Full,
            record_from: Some(day(2024, 1, 1)),
        };
        let change = AccessChange {
            messaging: Some(false),
            ..AccessChange::default()
        };
        let after = change.applied_to(&current);
        assert!(!after.services.messaging && after.services.appointments.is_on());
        assert_eq!(after.record_level, RecordAccessLevel::Full, "record access untouched");
    }
}
