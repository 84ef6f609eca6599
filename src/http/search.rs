//! Search parameter parsing and searchset Bundle assembly.

use std::collections::BTreeMap;

use crate::error::{ApiError, ErrorCode};
use crate::fhir::{Bundle, BundleEntry, BundleLink, BundleSearch};

use super::body::Paging;

/// Parses a query string, refusing parameters the endpoint does not support and repeats.
pub fn parse_query(query: &str, allowed: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!(
                    "search parameter '{name}' is not supported here (supported: {})",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                format!("search parameter '{name}' may be given only once"),
            ));
        }
    }
    Ok(out)
}

/// Builds a searchset with `self` and, where more results exist, `next` and `previous` links.
pub fn searchset(
    base_url: &str,
    resource_type: &str,
    params: &BTreeMap<String, String>,
    paging: &Paging,
    total: i64,
    resources: Vec<(String, serde_json::Value)>,
) -> Bundle {
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
    let entry = resources
        .into_iter()
        .map(|(id, resource)| BundleEntry {
            full_url: format!("{base_url}/{resource_type}/{id}"),
            resource,
            search: BundleSearch { mode: "match".into() },
        })
        .collect();
    Bundle::searchset(u64::try_from(total).unwrap_or(0), link, entry)
}
