use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("an NHS number is 10 digits")]
    NhsNumberFormat,
    #[error("the NHS number fails the Modulus 11 check")]
    NhsNumberCheckDigit,
    #[error("a CHI number is 10 digits and must pass the Modulus 11 check")]
    ChiNumber,
    #[error("an H&C number is 10 digits in the range 320 000 0000 to 399 999 9999 and must pass the Modulus 11 check")]
    HcNumber,
    #[error("an ODS code is 3 to 8 letters and digits")]
    OdsCode,
    #[error("unknown patient identifier system")]
    UnknownSystem,
}

/// Modulus 11 as used by NHS, CHI and H&C numbers: weights 10..2 over the first nine digits,
/// check digit 11 - (sum mod 11), where 11 means 0 and 10 means the number is invalid.
fn modulus_11_valid(digits: &[u8; 10]) -> bool {
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    let check = match 11 - (sum % 11) {
        11 => 0,
        10 => return false,
        c => c,
    };
    check == u32::from(digits[9])
}

fn ten_digits(raw: &str) -> Option<[u8; 10]> {
    // Numbers are often written 943 476 5919; spaces and hyphens are presentation only.
    let cleaned: Vec<u8> = raw.bytes().filter(|b| *b != b' ' && *b != b'-').collect();
    if cleaned.len() != 10 || !cleaned.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut out = [0u8; 10];
    for (o, c) in out.iter_mut().zip(cleaned) {
        *o = c - b'0';
    }
    Some(out)
}

fn digits_to_string(d: &[u8; 10]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

/// An NHS number (England, Wales, Isle of Man) that has passed the Modulus 11 check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(String);

impl NhsNumber {
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let digits = ten_digits(raw).ok_or(IdentifierError::NhsNumberFormat)?;
        if !modulus_11_valid(&digits) {
            return Err(IdentifierError::NhsNumberCheckDigit);
        }
        Ok(Self(digits_to_string(&digits)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never print an NHS number by accident: `Debug` masks all but the last three digits.
impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NhsNumber(*******{})", self.0.get(7..).unwrap_or_default())
    }
}

/// The organisation data service code of a practice (e.g. `A81001`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode(String);

impl OdsCode {
    pub fn parse(raw: &str) -> Result<Self, IdentifierError> {
        let trimmed = raw.trim();
        if !(3..=8).contains(&trimmed.len()) || !trimmed.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdentifierError::OdsCode);
        }
        Ok(Self(trimmed.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The national patient identifier systems a practice record can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatientIdentifierSystem {
    NhsNumber,
    /// Community Health Index (Scotland).
    Chi,
    /// Health and Care number (Northern Ireland).
    HealthAndCare,
}

impl PatientIdentifierSystem {
    pub const ALL: [Self; 3] = [Self::NhsNumber, Self::Chi, Self::HealthAndCare];

    pub fn uri(self) -> &'static str {
        match self {
            Self::NhsNumber => "https://fhir.nhs.uk/Id/nhs-number",
            Self::Chi => "https://fhir.nhs.scot/Id/chi-number",
            Self::HealthAndCare => "https://fhir.hscni.net/Id/hcn",
        }
    }

    pub fn from_uri(uri: &str) -> Result<Self, IdentifierError> {
        Self::ALL
            .into_iter()
            .find(|s| s.uri() == uri)
            .ok_or(IdentifierError::UnknownSystem)
    }

    /// The short name used in storage and on the registration letter.
    pub fn code(self) -> &'static str {
        match self {
            Self::NhsNumber => "nhs",
            Self::Chi => "chi",
            Self::HealthAndCare => "hcn",
        }
    }

    pub fn from_code(code: &str) -> Result<Self, IdentifierError> {
        Self::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .ok_or(IdentifierError::UnknownSystem)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::NhsNumber => "NHS number",
            Self::Chi => "CHI number",
            Self::HealthAndCare => "H&C number",
        }
    }
}

/// A validated patient identifier in one of the national systems.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PatientIdentifier {
    system: PatientIdentifierSystem,
    value: String,
}

impl PatientIdentifier {
    pub fn parse(system: PatientIdentifierSystem, raw: &str) -> Result<Self, IdentifierError> {
        let value = match system {
            PatientIdentifierSystem::NhsNumber => NhsNumber::parse(raw)?.0,
            PatientIdentifierSystem::Chi => {
                // CHI numbers begin with the date of birth (DDMMYY) and use the same check digit.
                let digits = ten_digits(raw).ok_or(IdentifierError::ChiNumber)?;
                let day = digits[0] * 10 + digits[1];
                let month = digits[2] * 10 + digits[3];
                if !(1..=31).contains(&day) || !(1..=12).contains(&month) || !modulus_11_valid(&digits) {
                    return Err(IdentifierError::ChiNumber);
                }
                digits_to_string(&digits)
            }
            PatientIdentifierSystem::HealthAndCare => {
                let digits = ten_digits(raw).ok_or(IdentifierError::HcNumber)?;
                let prefix = u32::from(digits[0]) * 100 + u32::from(digits[1]) * 10 + u32::from(digits[2]);
                if !(320..=399).contains(&prefix) || !modulus_11_valid(&digits) {
                    return Err(IdentifierError::HcNumber);
                }
                digits_to_string(&digits)
            }
        };
        Ok(Self { system, value })
    }

    pub fn nhs(number: &NhsNumber) -> Self {
        Self {
            system: PatientIdentifierSystem::NhsNumber,
            value: number.0.clone(),
        }
    }

    pub fn system(&self) -> PatientIdentifierSystem {
        self.system
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn nhs_number(&self) -> Option<NhsNumber> {
        (self.system == PatientIdentifierSystem::NhsNumber).then(|| NhsNumber(self.value.clone()))
    }
}

impl fmt::Debug for PatientIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PatientIdentifier({}, *******{})",
            self.system.code(),
            self.value.get(7..).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_nhs_numbers_with_or_without_spaces() {
        for raw in ["9434765919", "943 476 5919", "943-476-5919", "9000000009"] {
            assert!(NhsNumber::parse(raw).is_ok(), "{raw}");
        }
        assert_eq!(NhsNumber::parse("943 476 5919").unwrap().as_str(), "9434765919");
    }

    #[test]
    fn rejects_wrong_check_digit_and_bad_shapes() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(IdentifierError::NhsNumberCheckDigit)
        );
        assert_eq!(NhsNumber::parse("943476591"), Err(IdentifierError::NhsNumberFormat));
        assert_eq!(NhsNumber::parse("94347659190"), Err(IdentifierError::NhsNumberFormat));
        assert_eq!(NhsNumber::parse("94347659a9"), Err(IdentifierError::NhsNumberFormat));
        assert_eq!(NhsNumber::parse(""), Err(IdentifierError::NhsNumberFormat));
    }

    #[test]
    fn a_remainder_giving_check_value_ten_is_never_valid() {
        // 000000006x: sum = 6*2 = 12, 12 mod 11 = 1, 11 - 1 = 10 -> no valid check digit exists.
        for last in 0..=9 {
            assert!(NhsNumber::parse(&format!("000000006{last}")).is_err());
        }
    }

    #[test]
    fn check_value_eleven_means_zero() {
        // Sum divisible by 11 gives 11 - 0 = 11, which is written as 0.
        assert!(NhsNumber::parse("0000000000").is_ok());
        assert!(NhsNumber::parse("0000000001").is_err());
    }

    #[test]
    fn debug_never_shows_the_whole_number() {
        let n = NhsNumber::parse("9434765919").unwrap();
        let shown = format!("{n:?}");
        assert!(!shown.contains("9434765919"));
        assert!(shown.ends_with("919)"));
    }

    #[test]
    fn chi_and_hc_numbers() {
        // 1403775419: born 14 March 1977, passes Modulus 11.
        assert!(PatientIdentifier::parse(PatientIdentifierSystem::Chi, "1403775419").is_ok());
        assert_eq!(
            PatientIdentifier::parse(PatientIdentifierSystem::Chi, "1403775418"),
            Err(IdentifierError::ChiNumber)
        );
        assert_eq!(
            PatientIdentifier::parse(PatientIdentifierSystem::Chi, "3213775419"),
            Err(IdentifierError::ChiNumber)
        );
        assert!(PatientIdentifier::parse(PatientIdentifierSystem::HealthAndCare, "3200000015").is_ok());
        assert_eq!(
            PatientIdentifier::parse(PatientIdentifierSystem::HealthAndCare, "9434765919"),
            Err(IdentifierError::HcNumber)
        );
    }

    #[test]
    fn ods_codes_are_normalised_to_upper_case() {
        assert_eq!(OdsCode::parse(" a81001 ").unwrap().as_str(), "A81001");
        assert!(OdsCode::parse("A8").is_err());
        assert!(OdsCode::parse("A81-001").is_err());
    }

    #[test]
    fn identifier_systems_round_trip() {
        for s in PatientIdentifierSystem::ALL {
            assert_eq!(PatientIdentifierSystem::from_uri(s.uri()), Ok(s));
            assert_eq!(PatientIdentifierSystem::from_code(s.code()), Ok(s));
        }
    }

    /// A valid NHS number with these nine leading digits, if the check digit is not 10.
    fn with_check_digit(nine: &[u8]) -> Option<String> {
        let sum: u32 = nine.iter().zip((2..=10).rev()).map(|(d, w)| u32::from(*d) * w).sum();
        let check = match 11 - (sum % 11) {
            11 => 0,
            10 => return None,
            c => c,
        };
        Some(
            nine.iter()
                .map(|d| char::from(b'0' + d))
                .chain(char::from_digit(check, 10))
                .collect(),
        )
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_without_panicking(raw in "\\PC{0,24}") {
            let _ = NhsNumber::parse(&raw);
            let _ = PatientIdentifier::parse(PatientIdentifierSystem::NhsNumber, &raw);
        }

        #[test]
        fn valid_numbers_round_trip_and_any_one_digit_changed_is_refused(
            nine in proptest::collection::vec(0u8..10, 9),
            at in 0usize..10,
            by in 1u8..10,
        ) {
            let Some(valid) = with_check_digit(&nine) else { return Ok(()) };
            let parsed = NhsNumber::parse(&valid).unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), valid.as_str());
            let spaced = format!("{} {} {}", &valid[..3], &valid[3..6], &valid[6..]);
            proptest::prop_assert_eq!(NhsNumber::parse(&spaced).unwrap(), parsed);
            let mut digits: Vec<u8> = valid.bytes().map(|b| b - b'0').collect();
            digits[at] = (digits[at] + by) % 10;
            let changed: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            proptest::prop_assert!(NhsNumber::parse(&changed).is_err(), "{} accepted", changed);
        }
    }
}
