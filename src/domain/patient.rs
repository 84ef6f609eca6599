use chrono::NaiveDate;

use super::PatientIdentifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "male" => Some(Self::Male),
            "female" => Some(Self::Female),
            "other" => Some(Self::Other),
            "unknown" => Some(Self::Unknown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
}

/// A patient record as a caller asks for it to be stored: its content and its practice.
#[derive(Debug, Clone)]
pub struct NewPatient {
    /// The id the body carries, if any (an update must name the record it replaces).
    pub id: Option<String>,
    pub details: PatientDetails,
    pub practice: super::PracticeRef,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientDetailsError {
    #[error("family name is required, at most 100 characters and without control characters")]
    FamilyName,
    #[error("given names are at most 5, each at most 100 characters and without control characters")]
    GivenNames,
    #[error("birth date cannot be in the future or before 1880")]
    BirthDate,
    #[error("email address is not valid")]
    Email,
}

/// The demographic content of a practice patient record, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientDetails {
    pub identifier: PatientIdentifier,
    pub family: String,
    pub given: Vec<String>,
    pub birth_date: NaiveDate,
    pub gender: Gender,
    pub email: Option<String>,
}

impl PatientDetails {
    pub fn new(
        identifier: PatientIdentifier,
        family: &str,
        given: Vec<String>,
        birth_date: NaiveDate,
        gender: Gender,
        email: Option<&str>,
        today: NaiveDate,
    ) -> Result<Self, PatientDetailsError> {
        let family = family.trim();
        if family.is_empty() || family.chars().count() > 100 || super::text::forbidden_character(family).is_some() {
            return Err(PatientDetailsError::FamilyName);
        }
        let given: Vec<String> = given
            .iter()
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect();
        if given.len() > 5
            || given
                .iter()
                .any(|g| g.chars().count() > 100 || super::text::forbidden_character(g).is_some())
        {
            return Err(PatientDetailsError::GivenNames);
        }
        let too_early = NaiveDate::from_ymd_opt(1880, 1, 1).is_none_or(|earliest| birth_date < earliest);
        if birth_date > today || too_early {
            return Err(PatientDetailsError::BirthDate);
        }
        let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) if is_plausible_email(e) => Some(e.to_owned()),
            Some(_) => return Err(PatientDetailsError::Email),
            None => None,
        };
        Ok(Self {
            identifier,
            family: family.to_owned(),
            given,
            birth_date,
            gender,
            email,
        })
    }
}

/// A deliberately modest check: one `@`, a non-empty local part, a dotted domain, no spaces.
/// Deliverability is proven by the supplier's verification email, not by a regex.
pub fn is_plausible_email(e: &str) -> bool {
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NhsNumber, PatientIdentifier};

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
    }

    fn details(family: &str, birth: NaiveDate, email: Option<&str>) -> Result<PatientDetails, PatientDetailsError> {
        let id = PatientIdentifier::nhs(&NhsNumber::parse("9434765919").unwrap());
        PatientDetails::new(id, family, vec!["Ann".into()], birth, Gender::Female, email, today())
    }

    #[test]
    fn validates_names_dates_and_email() {
        let born = NaiveDate::from_ymd_opt(1980, 5, 1).unwrap();
        assert!(details("Smith", born, Some("ann@example.org")).is_ok());
        assert_eq!(details("  ", born, None), Err(PatientDetailsError::FamilyName));
        assert_eq!(
            details("Smith", today().succ_opt().unwrap(), None),
            Err(PatientDetailsError::BirthDate)
        );
        assert_eq!(
            details("Smith", born, Some("not-an-email")),
            Err(PatientDetailsError::Email)
        );
        assert_eq!(details("Smith", born, Some("a@b")), Err(PatientDetailsError::Email));
        assert_eq!(details("Smith", born, Some("")).unwrap().email, None);
    }
}
