//! What a supplier knows and the rules it applies, whatever its wire format. Each flavour spells
//! the refusals in its own error codes and brings its own minimum age.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::NaiveDate;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::desk::Desk;
use crate::domain::clinical::ClinicalRecord;
use crate::domain::{AccessSettings, RecordAccessLevel};

/// Letters and digits without the look-alikes (O/0, I/1) patients mistype from a letter.
const LETTER_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const LINKAGE_KEY_LEN: usize = 15;
const ACCOUNT_ID_LEN: usize = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatientStatus {
    #[default]
    Registered,
    Unknown,
    Archived,
}

pub use super::refusal::Refusal;

#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub supplier_ref: String,
    pub account_id: String,
    pub patient_identifier: String,
    pub ods_code: String,
    pub surname: String,
    pub birth_date: NaiveDate,
    pub enabled: bool,
    pub reason: Option<String>,
    pub access: AccessSettings,
    pub linkage_key: String,
    pub linkage_key_resets: u32,
}

pub struct NewAccount {
    pub patient_identifier: String,
    pub ods_code: String,
    pub surname: String,
    pub birth_date: NaiveDate,
    pub access: AccessSettings,
}

/// The details a patient types in from their registration letter.
pub struct LetterDetails<'a> {
    pub account_id: &'a str,
    pub linkage_key: &'a str,
    pub ods_code: &'a str,
    pub surname: &'a str,
    pub birth_date: NaiveDate,
}

/// A proxy linked to a patient's record.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProxyLink {
    pub link_ref: String,
    pub patient_identifier: String,
    pub proxy_identifier: String,
    pub ods_code: String,
    pub relationship: String,
    pub access: AccessSettings,
    pub end_date: Option<NaiveDate>,
    pub revoked: bool,
    pub reason: Option<String>,
}

pub struct NewProxyLink {
    pub patient_identifier: String,
    pub proxy_identifier: String,
    pub ods_code: String,
    pub relationship: String,
    pub access: AccessSettings,
    pub end_date: Option<NaiveDate>,
}

#[derive(Default)]
pub struct World {
    /// In creation order, for the admin listing.
    accounts: Vec<Account>,
    by_ref: HashMap<String, usize>,
    /// A patient's account at one practice, by (patient identifier, ODS code): like the real
    /// systems, each practice holds its own accounts, so a patient who moves between two
    /// practices on the same system gets a new account at the new one.
    by_patient: HashMap<(String, String), usize>,
    by_account_id: HashMap<String, usize>,
    disabled_practices: HashSet<String>,
    patients: HashMap<String, PatientStatus>,
    /// Open TPP-like sessions; unused by the EMIS-like flavour.
    pub sessions: HashSet<String>,
    proxies: Vec<ProxyLink>,
    by_link: HashMap<String, usize>,
    /// Each patient's record, by identifier, as the practice's clinical system holds it.
    records: HashMap<String, ClinicalRecord>,
    /// Clinical areas each practice does not share online, by ODS code.
    restrictions: HashMap<String, BTreeSet<String>>,
    /// Appointment books and repeat prescriptions.
    pub desk: Desk,
}

/// What a simulator knows, as it is kept between runs (the indexes are rebuilt on load).
#[derive(Serialize, Deserialize)]
pub struct Saved {
    accounts: Vec<Account>,
    disabled_practices: Vec<String>,
    patients: Vec<(String, PatientStatus)>,
    proxies: Vec<ProxyLink>,
    #[serde(default)]
    records: Vec<(String, ClinicalRecord)>,
    #[serde(default)]
    restrictions: Vec<(String, BTreeSet<String>)>,
    #[serde(default)]
    desk: Desk,
}

impl World {
    pub fn save(&self) -> Saved {
        let mut disabled_practices: Vec<String> = self.disabled_practices.iter().cloned().collect();
        disabled_practices.sort();
        let mut patients: Vec<(String, PatientStatus)> = self.patients.iter().map(|(k, v)| (k.clone(), *v)).collect();
        patients.sort_by(|a, b| a.0.cmp(&b.0));
        let mut records: Vec<(String, ClinicalRecord)> =
            self.records.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        let mut restrictions: Vec<(String, BTreeSet<String>)> =
            self.restrictions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        restrictions.sort_by(|a, b| a.0.cmp(&b.0));
        Saved {
            accounts: self.accounts.clone(),
            disabled_practices,
            patients,
            proxies: self.proxies.clone(),
            records,
            restrictions,
            desk: self.desk.clone(),
        }
    }

    pub fn restore(saved: Saved) -> Self {
        let mut world = Self {
            disabled_practices: saved.disabled_practices.into_iter().collect(),
            patients: saved.patients.into_iter().collect(),
            records: saved.records.into_iter().collect(),
            restrictions: saved.restrictions.into_iter().collect(),
            desk: saved.desk,
            ..Self::default()
        };
        for (i, a) in saved.accounts.iter().enumerate() {
            world.by_ref.insert(a.supplier_ref.clone(), i);
            world
                .by_patient
                .insert((a.patient_identifier.clone(), a.ods_code.clone()), i);
            world.by_account_id.insert(a.account_id.clone(), i);
        }
        for (i, p) in saved.proxies.iter().enumerate() {
            world.by_link.insert(p.link_ref.clone(), i);
        }
        world.accounts = saved.accounts;
        world.proxies = saved.proxies;
        world
    }

    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub fn set_practice_enabled(&mut self, ods_code: &str, enabled: bool) {
        let ods_code = normalise_ods(ods_code);
        if enabled {
            self.disabled_practices.remove(&ods_code);
        } else {
            self.disabled_practices.insert(ods_code);
        }
    }

    pub fn set_patient_status(&mut self, patient_identifier: &str, status: PatientStatus) {
        self.patients.insert(normalise_identifier(patient_identifier), status);
    }

    /// Replaces a patient's record (the entries and their flags; restrictions are the practice's).
    pub fn set_record(&mut self, patient_identifier: &str, mut record: ClinicalRecord) {
        record.restricted.clear();
        self.records.insert(normalise_identifier(patient_identifier), record);
    }

    pub fn stored_record(&self, patient_identifier: &str) -> Option<&ClinicalRecord> {
        self.records.get(&normalise_identifier(patient_identifier))
    }

    pub fn has_restrictions(&self, ods_code: &str) -> bool {
        self.restrictions.contains_key(&normalise_ods(ods_code))
    }

    pub fn set_restrictions(&mut self, ods_code: &str, areas: BTreeSet<String>) {
        self.restrictions.insert(normalise_ods(ods_code), areas);
    }

    /// The practice and patient as the supplier files them, if the practice is enabled and holds
    /// the patient.
    pub fn registered(&self, patient_identifier: &str, ods_code: &str) -> Result<(String, String), Refusal> {
        let ods_code = normalise_ods(ods_code);
        let patient = normalise_identifier(patient_identifier);
        if self.disabled_practices.contains(&ods_code) {
            return Err(Refusal::PracticeNotEnabled);
        }
        match self.patients.get(&patient).copied().unwrap_or_default() {
            PatientStatus::Registered => Ok((patient, ods_code)),
            PatientStatus::Unknown => Err(Refusal::PatientNotFound),
            PatientStatus::Archived => Err(Refusal::Archived),
        }
    }

    /// The practice as the supplier files it, if it is enabled.
    pub fn enabled_practice(&self, ods_code: &str) -> Result<String, Refusal> {
        let ods_code = normalise_ods(ods_code);
        if self.disabled_practices.contains(&ods_code) {
            return Err(Refusal::PracticeNotEnabled);
        }
        Ok(ods_code)
    }

    /// A patient's record as the practice serves it: every entry with its flags, and the
    /// clinical areas the practice does not share online. A patient without entries has an
    /// empty record; one the supplier does not hold is refused.
    pub fn record(&self, patient_identifier: &str, ods_code: &str) -> Result<ClinicalRecord, Refusal> {
        let ods_code = normalise_ods(ods_code);
        let patient = normalise_identifier(patient_identifier);
        if self.disabled_practices.contains(&ods_code) {
            return Err(Refusal::PracticeNotEnabled);
        }
        match self.patients.get(&patient).copied().unwrap_or_default() {
            PatientStatus::Registered => {}
            PatientStatus::Unknown => return Err(Refusal::PatientNotFound),
            PatientStatus::Archived => return Err(Refusal::Archived),
        }
        let mut record = self.records.get(&patient).cloned().unwrap_or_default();
        record.restricted = self.restrictions.get(&ods_code).cloned().unwrap_or_default();
        Ok(record)
    }

    /// `supplier_ref` is the flavour's own handle for the account, made by the caller because
    /// each flavour shapes it differently.
    pub fn create_account(
        &mut self,
        new: NewAccount,
        supplier_ref: String,
        minimum_age: u32,
        today: NaiveDate,
        rng: &mut StdRng,
    ) -> Result<&Account, Refusal> {
        let ods_code = normalise_ods(&new.ods_code);
        let patient_identifier = normalise_identifier(&new.patient_identifier);
        if self.disabled_practices.contains(&ods_code) {
            return Err(Refusal::PracticeNotEnabled);
        }
        match self.patients.get(&patient_identifier).copied().unwrap_or_default() {
            PatientStatus::Registered => {}
            PatientStatus::Unknown => return Err(Refusal::PatientNotFound),
            PatientStatus::Archived => return Err(Refusal::Archived),
        }
        // A birth date in the future has no age at all.
        if today.years_since(new.birth_date).is_none_or(|age| age < minimum_age) {
            return Err(Refusal::UnderMinimumAge);
        }
        if self
            .by_patient
            .contains_key(&(patient_identifier.clone(), ods_code.clone()))
        {
            return Err(Refusal::AccountExists);
        }
        let account_id = loop {
            let candidate = random_letter_code(rng, ACCOUNT_ID_LEN);
            if !self.by_account_id.contains_key(&candidate) {
                break candidate;
            }
        };
        let index = self.accounts.len();
        self.by_ref.insert(supplier_ref.clone(), index);
        self.by_patient
            .insert((patient_identifier.clone(), ods_code.clone()), index);
        self.by_account_id.insert(account_id.clone(), index);
        self.accounts.push(Account {
            supplier_ref,
            account_id,
            patient_identifier,
            ods_code,
            surname: new.surname.trim().to_owned(),
            birth_date: new.birth_date,
            enabled: true,
            reason: None,
            access: new.access,
            linkage_key: random_letter_code(rng, LINKAGE_KEY_LEN),
            linkage_key_resets: 0,
        });
        Ok(&self.accounts[index])
    }

    pub fn account(&self, supplier_ref: &str) -> Result<&Account, Refusal> {
        self.by_ref
            .get(supplier_ref)
            .map(|&index| &self.accounts[index])
            .ok_or(Refusal::NoSuchAccount)
    }

    fn account_mut(&mut self, supplier_ref: &str) -> Result<&mut Account, Refusal> {
        match self.by_ref.get(supplier_ref) {
            Some(&index) => Ok(&mut self.accounts[index]),
            None => Err(Refusal::NoSuchAccount),
        }
    }

    /// Like the real systems, a practice that has switched patient-facing services off takes
    /// no access changes.
    pub fn set_access(&mut self, supplier_ref: &str, access: AccessSettings) -> Result<(), Refusal> {
        let ods = self.account_mut(supplier_ref)?.ods_code.clone();
        if self.disabled_practices.contains(&ods) {
            return Err(Refusal::PracticeNotEnabled);
        }
        self.account_mut(supplier_ref)?.access = access;
        Ok(())
    }

    pub fn set_enabled(&mut self, supplier_ref: &str, enabled: bool, reason: Option<String>) -> Result<(), Refusal> {
        let account = self.account_mut(supplier_ref)?;
        account.enabled = enabled;
        account.reason = reason.filter(|r| !r.trim().is_empty());
        Ok(())
    }

    pub fn reset_linkage_key(&mut self, supplier_ref: &str, rng: &mut StdRng) -> Result<&Account, Refusal> {
        let account = self.account_mut(supplier_ref)?;
        account.linkage_key = random_letter_code(rng, LINKAGE_KEY_LEN);
        account.linkage_key_resets += 1;
        Ok(account)
    }

    /// Every detail must match, and an unknown account looks the same as a wrong key so the
    /// check cannot be used to discover account ids.
    pub fn verify(&self, letter: &LetterDetails<'_>) -> Result<&Account, Refusal> {
        let account = self
            .by_account_id
            .get(letter.account_id.trim())
            .map(|&index| &self.accounts[index])
            .ok_or(Refusal::InvalidDetails)?;
        let matches = account.linkage_key == letter.linkage_key.trim()
            && account.ods_code == normalise_ods(letter.ods_code)
            && account.surname.eq_ignore_ascii_case(letter.surname.trim())
            && account.birth_date == letter.birth_date;
        if !matches {
            return Err(Refusal::InvalidDetails);
        }
        if !account.enabled {
            return Err(Refusal::AccountDisabled);
        }
        Ok(account)
    }
}

impl World {
    pub fn proxies(&self) -> &[ProxyLink] {
        &self.proxies
    }

    /// Links a proxy, refusing what the supplier refuses: a practice that is switched off, a
    /// patient it does not hold, the patient as their own proxy, a second live link for the same
    /// pair, and record access beyond the patient's own.
    pub fn link_proxy(&mut self, new: NewProxyLink, link_ref: String) -> Result<&ProxyLink, Refusal> {
        let ods_code = normalise_ods(&new.ods_code);
        let patient = normalise_identifier(&new.patient_identifier);
        let proxy = normalise_identifier(&new.proxy_identifier);
        if self.disabled_practices.contains(&ods_code) {
            return Err(Refusal::PracticeNotEnabled);
        }
        match self.patients.get(&patient).copied().unwrap_or_default() {
            PatientStatus::Registered => {}
            PatientStatus::Unknown => return Err(Refusal::PatientNotFound),
            PatientStatus::Archived => return Err(Refusal::Archived),
        }
        if patient == proxy {
            return Err(Refusal::ProxyIsPatient);
        }
        if self
            .proxies
            .iter()
            .any(|p| !p.revoked && p.patient_identifier == patient && p.proxy_identifier == proxy)
        {
            return Err(Refusal::ProxyLinkExists);
        }
        self.check_within_patient(&patient, &ods_code, &new.access)?;
        let index = self.proxies.len();
        self.by_link.insert(link_ref.clone(), index);
        self.proxies.push(ProxyLink {
            link_ref,
            patient_identifier: patient,
            proxy_identifier: proxy,
            ods_code,
            relationship: new.relationship,
            access: new.access,
            end_date: new.end_date,
            revoked: false,
            reason: None,
        });
        Ok(&self.proxies[index])
    }

    fn check_within_patient(&self, patient: &str, ods_code: &str, access: &AccessSettings) -> Result<(), Refusal> {
        let own = self
            .by_patient
            .get(&(patient.to_owned(), ods_code.to_owned()))
            .map_or(RecordAccessLevel::None, |&i| self.accounts[i].access.record_level);
        if access.record_level > own {
            return Err(Refusal::ProxyBeyondPatient);
        }
        Ok(())
    }

    fn live_link(&mut self, link_ref: &str) -> Result<&mut ProxyLink, Refusal> {
        match self.by_link.get(link_ref) {
            Some(&i) if !self.proxies[i].revoked => Ok(&mut self.proxies[i]),
            _ => Err(Refusal::NoSuchProxyLink),
        }
    }

    pub fn set_proxy_access(&mut self, link_ref: &str, access: AccessSettings) -> Result<(), Refusal> {
        let link = self.live_link(link_ref)?;
        let (patient, ods_code) = (link.patient_identifier.clone(), link.ods_code.clone());
        self.check_within_patient(&patient, &ods_code, &access)?;
        self.live_link(link_ref)?.access = access;
        Ok(())
    }

    pub fn revoke_proxy(&mut self, link_ref: &str, reason: Option<String>) -> Result<(), Refusal> {
        let link = self.live_link(link_ref)?;
        link.revoked = true;
        link.reason = reason;
        Ok(())
    }
}

fn random_letter_code(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(LETTER_ALPHABET[rng.gen_range(0..LETTER_ALPHABET.len())]))
        .collect()
}

pub(super) fn normalise_ods(ods_code: &str) -> String {
    ods_code.trim().to_ascii_uppercase()
}

pub(super) fn normalise_identifier(identifier: &str) -> String {
    identifier.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn new_account(patient: &str, birth_date: NaiveDate) -> NewAccount {
        NewAccount {
            patient_identifier: patient.into(),
            ods_code: "a12345".into(),
            surname: "Smith".into(),
            birth_date,
            access: AccessSettings::none(),
        }
    }

    #[test]
    fn minimum_age_is_reached_on_the_birthday() {
        let mut world = World::default();
        let mut rng = StdRng::seed_from_u64(1);
        let today = date(2026, 6, 15);
        assert_eq!(
            world
                .create_account(new_account("1", date(2010, 6, 16)), "a".into(), 16, today, &mut rng)
                .err(),
            Some(Refusal::UnderMinimumAge)
        );
        assert!(
            world
                .create_account(new_account("2", date(2010, 6, 15)), "b".into(), 16, today, &mut rng)
                .is_ok()
        );
        assert_eq!(
            world
                .create_account(new_account("3", date(2027, 1, 1)), "c".into(), 0, today, &mut rng)
                .err(),
            Some(Refusal::UnderMinimumAge)
        );
    }

    #[test]
    fn linkage_keys_avoid_look_alike_characters() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let key = random_letter_code(&mut rng, LINKAGE_KEY_LEN);
            assert_eq!(key.len(), 15);
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() && !"O0I1".contains(c)),
                "{key}"
            );
        }
    }

    #[test]
    fn letter_details_are_compared_leniently_on_case_and_strictly_on_the_key() {
        let mut world = World::default();
        let mut rng = StdRng::seed_from_u64(3);
        let account = world
            .create_account(
                new_account("1", date(1980, 1, 1)),
                "a".into(),
                16,
                date(2026, 1, 1),
                &mut rng,
            )
            .unwrap();
        let (account_id, key) = (account.account_id.clone(), account.linkage_key.clone());
        let letter = |linkage_key| LetterDetails {
            account_id: &account_id,
            linkage_key,
            ods_code: "A12345",
            surname: "SMITH",
            birth_date: date(1980, 1, 1),
        };
        assert!(world.verify(&letter(&key)).is_ok());
        assert_eq!(
            world.verify(&letter(&key.to_ascii_lowercase())).err(),
            Some(Refusal::InvalidDetails)
        );
    }
}
