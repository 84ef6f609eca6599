//! Search parameter parsing and searchset Bundle assembly.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::{ApiError, ErrorCode};
use crate::fhir::{BundleLink, BundleSearch};

use super::body::Paging;

/// Parses a query string into its pairs, refusing parameters the endpoint does not support and
/// any name or value with a control character.
pub fn parse_pairs(query: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    parse_pairs_with(query, allowed, true)
}

/// Whether a FHIR search asked for strict handling (`Prefer: handling=strict`): then a
/// parameter the server does not support is an error; otherwise it is ignored, as R4 search
/// says servers should, and left out of the Bundle's self link.
pub fn strict_handling(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
}

/// [`parse_pairs`], ignoring unsupported parameters unless `strict`. Names and values are
/// checked either way.
pub fn parse_pairs_with(query: &str, allowed: &[&str], strict: bool) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if crate::domain::text::forbidden_character(&name).is_some() || name.len() > 128 {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "a search parameter name holds a control character or is too long",
            ));
        }
        if !allowed.contains(&name.as_ref()) && !strict {
            continue;
        }
        if !allowed.contains(&name.as_ref()) {
            let shown = crate::domain::text::shown(&name, 40);
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!(
                    "search parameter '{shown}' is not supported here (supported: {})",
                    allowed.join(", ")
                ),
            ));
        }
        if crate::domain::text::forbidden_character(&value).is_some() || value.len() > 1024 {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!("search parameter '{name}' holds a control character or is too long"),
            )
            .at(name.to_string()));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Parses a query string, refusing parameters the endpoint does not support and repeats.
pub fn parse_query(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, value) in parse_pairs(query, allowed)? {
        if out.insert(name.clone(), value).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!("search parameter '{name}' may be given only once"),
            ));
        }
    }
    Ok(out)
}

/// The `self` link and, where more results exist, `next` and `previous`.
fn links(
    base_url: &str,
    resource_type: &str,
    params: &BTreeMap<String, String>,
    paging: &Paging,
    total: i64,
) -> Vec<BundleLink> {
    let link_for = |offset: i64| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k.as_str() != "_offset" && k.as_str() != "_count")
        {
            q.append_pair(k, v);
        }
        q.append_pair("_count", &paging.count.to_string());
        if offset > 0 {
            q.append_pair("_offset", &offset.to_string());
        }
        format!("{base_url}/{resource_type}?{}", q.finish())
    };
    let mut link = vec![BundleLink {
        relation: "self".into(),
        url: link_for(paging.offset),
    }];
    if paging.count > 0 && paging.offset + paging.count < total {
        link.push(BundleLink {
            relation: "next".into(),
            url: link_for(paging.offset + paging.count),
        });
    }
    if paging.offset > 0 && paging.count > 0 {
        link.push(BundleLink {
            relation: "previous".into(),
            url: link_for((paging.offset - paging.count).max(0)),
        });
    }
    link
}

/// A searchset Bundle (the document `fhir::Bundle` describes), over resources of any
/// serialisable type: typed views are written as they are, not built as values first.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Searchset<R> {
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link: Vec<BundleLink>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<SearchsetEntry<R>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchsetEntry<R> {
    full_url: String,
    resource: R,
    search: BundleSearch,
}

/// Builds a searchset with `self` and, where more results exist, `next` and `previous` links.
pub fn searchset<R: Serialize>(
    base_url: &str,
    resource_type: &str,
    params: &BTreeMap<String, String>,
    paging: &Paging,
    total: i64,
    resources: Vec<(String, R)>,
) -> Searchset<R> {
    let entry = resources
        .into_iter()
        .map(|(id, resource)| SearchsetEntry {
            full_url: format!("{base_url}/{resource_type}/{id}"),
            resource,
            search: BundleSearch { mode: "match".into() },
        })
        .collect();
    Searchset {
        resource_type: "Bundle",
        kind: "searchset",
        total: u64::try_from(total).unwrap_or(0),
        link: links(base_url, resource_type, params, paging, total),
        entry,
    }
}

/// A FHIR date search prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
}

/// A date search value: its prefix and the range of time the value stands for (`[from, to)`),
/// `2026`, `2026-12`, `2026-12-01` or a full dateTime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: DatePrefix,
    pub from: chrono::NaiveDateTime,
    pub to: chrono::NaiveDateTime,
}

impl DateParam {
    /// The values of a point in time that match, as `[lower, upper)` bounds (either open);
    /// `ne` matches outside the range and gives both bounds as the range to exclude.
    pub fn bounds(&self) -> (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) {
        match self.prefix {
            DatePrefix::Eq | DatePrefix::Ne => (Some(self.from), Some(self.to)),
            DatePrefix::Gt | DatePrefix::Sa => (Some(self.to), None),
            DatePrefix::Ge => (Some(self.from), None),
            DatePrefix::Lt | DatePrefix::Eb => (None, Some(self.from)),
            DatePrefix::Le => (None, Some(self.to)),
        }
    }
}

/// Parses a FHIR date search value. Never slices by byte position, so any text is safe.
pub fn parse_date_param(name: &str, raw: &str) -> Result<DateParam, ApiError> {
    use chrono::{Datelike, NaiveDate};
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidSearchParameter,
            format!("{name} must be [eq|ne|gt|lt|ge|le|sa|eb] followed by YYYY, YYYY-MM, YYYY-MM-DD or a dateTime"),
        )
        .at(name.to_owned())
    };
    let (prefix, value) = match raw.get(..2).filter(|p| p.chars().all(|c| c.is_ascii_lowercase())) {
        Some(p) => {
            let prefix = match p {
                "eq" => DatePrefix::Eq,
                "ne" => DatePrefix::Ne,
                "gt" => DatePrefix::Gt,
                "lt" => DatePrefix::Lt,
                "ge" => DatePrefix::Ge,
                "le" => DatePrefix::Le,
                "sa" => DatePrefix::Sa,
                "eb" => DatePrefix::Eb,
                _ => return Err(bad()),
            };
            (prefix, raw.get(2..).unwrap_or_default())
        }
        None => (DatePrefix::Eq, raw),
    };
    if !value.is_ascii() {
        return Err(bad());
    }
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0);
    let range = match value.len() {
        4 => value.parse::<i32>().ok().and_then(|y| {
            Some((
                midnight(NaiveDate::from_ymd_opt(y, 1, 1)?)?,
                midnight(NaiveDate::from_ymd_opt(y.checked_add(1)?, 1, 1)?)?,
            ))
        }),
        7 => NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d")
            .ok()
            .and_then(|d| {
                let next = if d.month() == 12 {
                    NaiveDate::from_ymd_opt(d.year().checked_add(1)?, 1, 1)?
                } else {
                    NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)?
                };
                Some((midnight(d)?, midnight(next)?))
            }),
        10 => NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .ok()
            .and_then(|d| Some((midnight(d)?, midnight(d.succ_opt()?)?))),
        _ => chrono::DateTime::parse_from_rfc3339(value).ok().map(|t| {
            let t = t.naive_utc();
            // A dateTime stands for the second it names.
            (t, t + chrono::Duration::seconds(1))
        }),
    };
    let (from, to) = range.ok_or_else(bad)?;
    Ok(DateParam { prefix, from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> chrono::NaiveDateTime {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn date_values_and_prefixes() {
        let d = parse_date_param("date", "ge2026-12-01").unwrap();
        assert_eq!(
            (d.prefix, d.from, d.to),
            (DatePrefix::Ge, at("2026-12-01 00:00:00"), at("2026-12-02 00:00:00"))
        );
        assert_eq!(d.bounds(), (Some(at("2026-12-01 00:00:00")), None));
        let y = parse_date_param("birthdate", "1980").unwrap();
        assert_eq!((y.from, y.to), (at("1980-01-01 00:00:00"), at("1981-01-01 00:00:00")));
        let m = parse_date_param("birthdate", "lt1980-12").unwrap();
        assert_eq!(m.bounds(), (None, Some(at("1980-12-01 00:00:00"))));
        assert_eq!(parse_date_param("d", "2026-12").unwrap().to, at("2027-01-01 00:00:00"));
        let t = parse_date_param("date", "gt2026-12-01T10:00:00Z").unwrap();
        assert_eq!(t.bounds().0, Some(at("2026-12-01 10:00:01")));
    }

    #[test]
    fn anything_else_is_a_clear_refusal_never_a_panic() {
        for raw in [
            "a\u{fc}012345678",
            "geü2026",
            "ap2026-01-01",
            "2026-13-01",
            "ge",
            "",
            "2026-02-30",
            "xx2026",
        ] {
            assert!(parse_date_param("date", raw).is_err(), "{raw}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_date_text_is_answered_without_panicking(raw in "\\PC{0,40}") {
            let _ = parse_date_param("date", &raw);
        }

        #[test]
        fn any_query_is_answered_without_panicking(raw in "[a-z_:&=%0-9A-F\\PC]{0,80}") {
            let _ = parse_pairs(&raw, &["family", "identifier", "_count"]);
            let _ = parse_query(&raw, &["family", "identifier", "_count"]);
        }

        #[test]
        fn a_day_with_each_prefix_bounds_that_day(
            y in 1900i32..2100,
            m in 1u32..13,
            d in 1u32..29,
            prefix in proptest::sample::select(vec!["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"]),
        ) {
            let day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let parsed = parse_date_param("birthdate", &format!("{prefix}{}", day.format("%Y-%m-%d"))).unwrap();
            proptest::prop_assert_eq!(parsed.from, day.and_hms_opt(0, 0, 0).unwrap());
            proptest::prop_assert_eq!(parsed.to, day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap());
        }
    }
}
