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

/// FHIR `date` (`YYYY-MM-DD`), written directly: a strftime pattern is parsed again on every
/// call, and a record's answer carries a date or more.
pub fn date(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    if !(0..=9999).contains(&d.year()) {
        return d.format("%Y-%m-%d").to_string();
    }
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// A FHIR `instant` for a UTC time given without its zone (as the suppliers give them):
/// `YYYY-MM-DDTHH:MM:SSZ`, written directly, as a slot search writes hundreds of them.
#[derive(Debug, Clone, Copy)]
pub struct UtcInstant(pub chrono::NaiveDateTime);

impl std::fmt::Display for UtcInstant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        if !(0..=9999).contains(&t.year()) {
            return write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ"));
        }
        let mut out = *b"0000-00-00T00:00:00Z";
        for (at, width, n) in [
            (0, 4, t.year().unsigned_abs()),
            (5, 2, t.month()),
            (8, 2, t.day()),
            (11, 2, t.hour()),
            (14, 2, t.minute()),
            (17, 2, t.second()),
        ] {
            let mut n = n;
            for slot in out[at..at + width].iter_mut().rev() {
                *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
                n /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&out).unwrap_or_default())
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
