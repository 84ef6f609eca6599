//! FHIR R4 wire types (serde + OpenAPI schemas) and the mapping between them and the domain.

mod audit_event;
pub mod bulk_data;
mod bundle;
pub mod capability;
pub mod clinical;
pub mod consent;
mod datatypes;
mod error;
pub mod json_patch;
pub mod operations;
mod organization;
mod outcome;
mod parameters;
mod patient;
pub mod questionnaire_response;
pub mod related_person;
mod task;
pub mod vrs;

pub use audit_event::{AuditAgent, AuditEntity, AuditEntityDetail, AuditEvent, AuditSource};
pub use bundle::{Bundle, BundleEntry, BundleLink, BundleSearch};
pub use capability::capability_statement;
pub use datatypes::{
    Address, CodeableConcept, Coding, ContactPoint, Extension, HumanName, Identifier, Meta, Reference,
};
pub use error::{FhirError, from_json};
pub use organization::Organization;
pub use outcome::{ERROR_CODE_SYSTEM, OperationOutcome, OperationOutcomeIssue};
pub use parameters::{Parameter, Parameters, parameter_path};
pub use patient::Patient;
pub use task::{Task, TaskParameter};

pub const FHIR_JSON: &str = "application/fhir+json";
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// Base for the gateway's own extensions and code systems.
pub const GATEWAY_FHIR_BASE: &str = "https://gp-online-gateway.nhs.uk/fhir";

/// Writes `n` into `out` as decimal digits, zero-padded to its width.
fn put_digits(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
}

/// A FHIR `date` (`YYYY-MM-DD`), or the `dateTime` at the start of that day in UTC, written
/// directly: a strftime pattern is parsed again on every call, and a record's answer carries
/// hundreds of dates.
#[derive(Debug, Clone, Copy)]
pub struct FhirDate {
    day: chrono::NaiveDate,
    midnight: bool,
}

impl FhirDate {
    pub fn of(day: chrono::NaiveDate) -> Self {
        Self { day, midnight: false }
    }

    /// `YYYY-MM-DDT00:00:00Z`.
    pub fn at_midnight(day: chrono::NaiveDate) -> Self {
        Self { day, midnight: true }
    }
}

impl std::fmt::Display for FhirDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::Datelike;
        let d = self.day;
        if (0..=9999).contains(&d.year()) {
            let mut out = *b"0000-00-00";
            put_digits(&mut out[0..4], d.year().unsigned_abs());
            put_digits(&mut out[5..7], d.month());
            put_digits(&mut out[8..10], d.day());
            f.write_str(std::str::from_utf8(&out).unwrap_or_default())?;
        } else {
            write!(f, "{}", d.format("%Y-%m-%d"))?;
        }
        if self.midnight {
            f.write_str("T00:00:00Z")?;
        }
        Ok(())
    }
}

impl serde::Serialize for FhirDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// FHIR `date` (`YYYY-MM-DD`).
pub fn date(d: chrono::NaiveDate) -> String {
    FhirDate::of(d).to_string()
}

/// A FHIR `instant` for a UTC time given without its zone (as the suppliers give them):
/// `YYYY-MM-DDTHH:MM:SSZ`, written directly, as a slot search writes hundreds of them.
#[derive(Debug, Clone, Copy)]
pub struct UtcInstant(pub chrono::NaiveDateTime);

impl std::fmt::Display for UtcInstant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::Timelike;
        let t = self.0;
        let mut time = *b"T00:00:00Z";
        put_digits(&mut time[1..3], t.hour());
        put_digits(&mut time[4..6], t.minute());
        put_digits(&mut time[7..9], t.second());
        write!(
            f,
            "{}{}",
            FhirDate::of(t.date()),
            std::str::from_utf8(&time).unwrap_or_default()
        )
    }
}

impl serde::Serialize for UtcInstant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// FHIR `instant` with millisecond precision and an explicit zone.
pub fn instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    #[test]
    fn a_date_is_written_as_strftime_writes_it() {
        for (y, m, d) in [
            (2026, 12, 2),
            (1990, 4, 2),
            (999, 1, 5),
            (1, 10, 31),
            (9999, 12, 31),
            (10_000, 1, 1),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(super::date(day), day.format("%Y-%m-%d").to_string());
        }
        assert_eq!(super::date(NaiveDate::from_ymd_opt(999, 1, 5).unwrap()), "0999-01-05");
    }

    #[test]
    fn a_utc_instant_is_written_as_strftime_writes_it() {
        for (y, m, d, h, min, s) in [(2026, 12, 8, 9, 5, 0), (999, 1, 5, 23, 59, 59), (10_000, 1, 1, 0, 0, 0)] {
            let t = NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .and_hms_opt(h, min, s)
                .unwrap();
            assert_eq!(
                super::UtcInstant(t).to_string(),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }
}
