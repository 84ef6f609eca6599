//! Days and times on the JSON wire (`2026-12-08`, `2026-12-08T09:30:00`), as chrono writes and
//! reads them, with the common shapes written and read directly: a slot list or a record
//! carries hundreds of them, and chrono parses a format description and writes through
//! `Debug` for each one. Anything else (a fraction of a second, a year past 9999) goes to chrono.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

fn digits<const N: usize>(b: &[u8]) -> Option<u32> {
    let mut n = 0u32;
    for &c in b.get(..N)? {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

/// `YYYY-MM-DD`, exactly.
fn parse_day(b: &[u8]) -> Option<NaiveDate> {
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits::<4>(b)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits::<2>(&b[5..])?, digits::<2>(&b[8..])?)
}

/// `YYYY-MM-DDTHH:MM:SS`, exactly.
fn parse_time(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    parse_day(&b[..10])?.and_hms_opt(digits::<2>(&b[11..])?, digits::<2>(&b[14..])?, digits::<2>(&b[17..])?)
}

fn put(out: &mut [u8], mut n: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
}

fn write_day(out: &mut [u8], d: NaiveDate) {
    put(&mut out[..4], d.year().unsigned_abs());
    out[4] = b'-';
    put(&mut out[5..7], d.month());
    out[7] = b'-';
    put(&mut out[8..10], d.day());
}

fn plain_year(d: NaiveDate) -> bool {
    (0..=9999).contains(&d.year())
}

fn as_str(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// `NaiveDateTime` fields: `#[serde(with = "wire_time::time")]`.
pub mod time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        if !plain_year(t.date()) || t.nanosecond() != 0 {
            return s.collect_str(&format_args!("{t:?}"));
        }
        let mut out = [0u8; 19];
        write_day(&mut out, t.date());
        out[10] = b'T';
        put(&mut out[11..13], t.hour());
        out[13] = b':';
        put(&mut out[14..16], t.minute());
        out[16] = b':';
        put(&mut out[17..19], t.second());
        s.serialize_str(as_str(&out))
    }

    struct TimeVisitor;

    impl Visitor<'_> for TimeVisitor {
        type Value = NaiveDateTime;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date and time, YYYY-MM-DDTHH:MM:SS")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<NaiveDateTime, E> {
            match parse_time(v.as_bytes()) {
                Some(t) => Ok(t),
                None => v.parse().map_err(E::custom),
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        d.deserialize_str(TimeVisitor)
    }
}

/// `NaiveDate` fields: `#[serde(with = "wire_time::day")]`.
pub mod day {
    use super::*;

    pub fn serialize<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        if !plain_year(*d) {
            return s.collect_str(&format_args!("{d:?}"));
        }
        let mut out = [0u8; 10];
        write_day(&mut out, *d);
        s.serialize_str(as_str(&out))
    }

    pub(super) struct DayVisitor;

    impl Visitor<'_> for DayVisitor {
        type Value = NaiveDate;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date, YYYY-MM-DD")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<NaiveDate, E> {
            match (v.len(), parse_day(v.as_bytes())) {
                (10, Some(d)) => Ok(d),
                _ => v.parse().map_err(E::custom),
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        d.deserialize_str(DayVisitor)
    }
}

/// `Option<NaiveDate>` fields: `#[serde(default, with = "wire_time::optional_day")]`.
pub mod optional_day {
    use super::*;

    #[allow(clippy::ref_option, reason = "serde's `with` passes the field by reference")]
    pub fn serialize<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::day::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    struct OptionalDay;

    impl<'de> Visitor<'de> for OptionalDay {
        type Value = Option<NaiveDate>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a date, YYYY-MM-DD, or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(super::day::DayVisitor).map(Some)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        d.deserialize_option(OptionalDay)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wire {
        #[serde(with = "time")]
        at: NaiveDateTime,
        #[serde(with = "day")]
        on: NaiveDate,
        #[serde(default, with = "optional_day", skip_serializing_if = "Option::is_none")]
        until: Option<NaiveDate>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Chrono {
        at: NaiveDateTime,
        on: NaiveDate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<NaiveDate>,
    }

    #[test]
    fn written_and_read_as_chrono_writes_and_reads_them() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for (at, on, until) in [
            (day(2026, 12, 8).and_hms_opt(9, 30, 0).unwrap(), day(2016, 1, 1), None),
            (
                day(999, 1, 5).and_hms_opt(0, 0, 59).unwrap(),
                day(1, 10, 31),
                Some(day(2030, 2, 28)),
            ),
            (
                day(2026, 2, 28).and_hms_milli_opt(23, 59, 59, 250).unwrap(),
                day(10_000, 1, 1),
                None,
            ),
            (
                day(-5, 3, 1).and_hms_opt(12, 0, 0).unwrap(),
                day(9999, 12, 31),
                Some(day(-1, 1, 1)),
            ),
        ] {
            let ours = serde_json::to_string(&Wire { at, on, until }).unwrap();
            let theirs = serde_json::to_string(&Chrono { at, on, until }).unwrap();
            assert_eq!(ours, theirs);
            assert_eq!(serde_json::from_str::<Wire>(&theirs).unwrap(), Wire { at, on, until });
        }
        for text in [
            r#"{"at":"2026-12-08T09:30:00.5","on":"2026-12-08"}"#,
            r#"{"at":"2026-12-08T09:30","on":"2026-12-08","until":null}"#,
        ] {
            let ours = serde_json::from_str::<Wire>(text).map(|w| (w.at, w.on, w.until)).ok();
            let theirs = serde_json::from_str::<Chrono>(text).map(|w| (w.at, w.on, w.until)).ok();
            assert_eq!(ours, theirs, "{text}");
        }
        for bad in [
            r#"{"at":"2026-13-08T09:30:00","on":"2026-12-08"}"#,
            r#"{"at":"2026-12-08T25:30:00","on":"2026-12-08"}"#,
            r#"{"at":"2026-12-08T09:30:00","on":"2026-02-30"}"#,
            r#"{"at":"2026-12-08T09:30:00","on":"20261208"}"#,
            r#"{"at":"2026-12-08 09:30:00","on":"2026-12-08"}"#,
        ] {
            assert_eq!(
                serde_json::from_str::<Wire>(bad).is_err(),
                serde_json::from_str::<Chrono>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
