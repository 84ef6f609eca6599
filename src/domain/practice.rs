use serde::{Deserialize, Serialize};

/// Which clinical system a practice runs; decides the adapter and its wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supplier {
    Emis,
    Tpp,
}

impl Supplier {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "emis" => Some(Self::Emis),
            "tpp" => Some(Self::Tpp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emis => "emis",
            Self::Tpp => "tpp",
        }
    }
}

/// How a request names a practice: by the gateway's id or by ODS code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PracticeRef {
    Id(String),
    Ods(super::OdsCode),
}

/// How record access is switched on at a practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessModel {
    /// Automatic prospective record access from 16 unless a code says otherwise.
    OptOut,
    /// Access only once the patient has been counselled and has asked for it.
    OptIn,
}

/// A practice's online-services policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineServicesSettings {
    /// Whether patient-facing services are switched on at the practice at all.
    pub enabled: bool,
    pub access_model: AccessModel,
    /// Age at which proxy roles for a child are suspended for review.
    pub proxy_review_age: u8,
    /// Opt-out: automatic prospective access for accounts made before this day starts on it.
    #[serde(default)]
    pub prospective_go_live: Option<chrono::NaiveDate>,
}

impl Default for OnlineServicesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            access_model: AccessModel::OptOut,
            proxy_review_age: 13,
            prospective_go_live: None,
        }
    }
}

impl OnlineServicesSettings {
    pub fn validate(&self) -> Result<(), &'static str> {
        // Guidance: review a child's proxies when the child may begin to want confidentiality,
        // at 13 at the latest.
        if !(11..=13).contains(&self.proxy_review_age) {
            return Err("proxyReviewAge must be between 11 and 13");
        }
        Ok(())
    }
}

/// What practice staff may change about their practice (`PUT /Organization/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeChanges {
    pub name: String,
    pub address: Option<PracticeAddress>,
    pub telephone: Option<Telephone>,
    pub settings: OnlineServicesSettings,
}

/// A practice's postal address, as it is printed on letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticeAddress {
    /// Street lines, first to last (at least one).
    pub lines: Vec<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PracticeContactError {
    #[error("an address needs one to four lines of at most 100 characters each")]
    Lines,
    #[error("the city must be at most 100 characters")]
    City,
    #[error("the postcode must be a UK postcode such as LS1 4AP")]
    PostalCode,
    #[error("the telephone number must hold 10 to 15 digits (spaces, brackets, hyphens and a leading + allowed)")]
    Telephone,
}

fn clean(raw: &str, max: usize) -> Option<String> {
    let t = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    (!t.is_empty() && t.chars().count() <= max && super::text::forbidden_character(&t).is_none()).then_some(t)
}

impl PracticeAddress {
    pub fn parse(
        lines: &[String],
        city: Option<&str>,
        postal_code: Option<&str>,
    ) -> Result<Self, PracticeContactError> {
        let lines = lines
            .iter()
            .map(|l| clean(l, 100))
            .collect::<Option<Vec<_>>>()
            .filter(|l| (1..=4).contains(&l.len()))
            .ok_or(PracticeContactError::Lines)?;
        let city = city
            .map(|c| clean(c, 100).ok_or(PracticeContactError::City))
            .transpose()?;
        let postal_code = postal_code
            .map(|p| normalise_postcode(p).ok_or(PracticeContactError::PostalCode))
            .transpose()?;
        Ok(Self {
            lines,
            city,
            postal_code,
        })
    }
}

/// `ls14ap` and `LS1 4AP` are the same postcode: upper case, one space before the last three.
fn normalise_postcode(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let (outward, inward) = compact.split_at_checked(compact.len().checked_sub(3)?)?;
    let inward_ok = inward.as_bytes()[0].is_ascii_digit() && inward.bytes().skip(1).all(|b| b.is_ascii_alphabetic());
    let outward_ok = (2..=4).contains(&outward.len())
        && outward.as_bytes()[0].is_ascii_alphabetic()
        && outward.bytes().all(|b| b.is_ascii_alphanumeric())
        && outward.bytes().any(|b| b.is_ascii_digit());
    (inward_ok && outward_ok).then(|| format!("{outward} {inward}"))
}

/// A practice's telephone number, as it is dialled and printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Telephone(String);

impl Telephone {
    pub fn parse(raw: &str) -> Result<Self, PracticeContactError> {
        let t = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let digits = t.bytes().filter(u8::is_ascii_digit).count();
        let allowed = t
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || matches!(c, ' ' | '(' | ')' | '-') || (c == '+' && i == 0));
        // Digits with their separators: a number as it is printed, never a run of punctuation.
        if allowed && (10..=15).contains(&digits) && t.len() <= 32 {
            Ok(Self(t))
        } else {
            Err(PracticeContactError::Telephone)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcodes_are_normalised_and_checked() {
        assert_eq!(normalise_postcode("ls14ap").as_deref(), Some("LS1 4AP"));
        assert_eq!(normalise_postcode(" SW1A 1AA ").as_deref(), Some("SW1A 1AA"));
        assert_eq!(normalise_postcode("M1 1AE").as_deref(), Some("M1 1AE"));
        for bad in ["", "AP", "12345", "LS1 4A5", "LS1\u{0}4AP", "ÅS1 4AP"] {
            assert_eq!(normalise_postcode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn telephone_numbers_hold_digits_and_a_few_separators() {
        assert_eq!(Telephone::parse("0113 496 0000").unwrap().as_str(), "0113 496 0000");
        assert!(Telephone::parse("+44 (0)113 496-0000").is_ok());
        for bad in ["", "123", "0113 496 0000 ext 2", "0113+4960000", "01134960000000000"] {
            assert!(Telephone::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_address_needs_a_line() {
        assert_eq!(
            PracticeAddress::parse(&[], Some("Leeds"), None),
            Err(PracticeContactError::Lines)
        );
        let a = PracticeAddress::parse(&["  1 River  Street ".into()], Some("Leeds"), Some("ls1 4ap")).unwrap();
        assert_eq!(a.lines, ["1 River Street"]);
        assert_eq!(a.postal_code.as_deref(), Some("LS1 4AP"));
    }
}
