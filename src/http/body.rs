//! Request bodies, ids in paths and response shapes shared by the FHIR handlers.

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};
use crate::fhir::{FHIR_JSON, Parameters};
use crate::state::AppState;

/// A request body, read (within the size limit) but not yet looked at: it is parsed only
/// after the caller is known to be allowed to send it.
pub struct RawBody {
    content_type: Option<String>,
    bytes: web::Bytes,
}

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(64 * 1024, |s| s.core.settings.http.body_limit_bytes);
        let mut payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            // The caller is established before the body is read: an unauthenticated request
            // learns nothing about what the endpoint expects.
            super::auth::authenticate(&req).await?;
            let bytes = read_limited(&mut payload, limit).await?;
            Ok(RawBody { content_type, bytes })
        })
    }
}

impl RawBody {
    /// The media type the body was sent as, lower-cased, without parameters.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.iter().all(u8::is_ascii_whitespace)
    }

    fn check_content_type(&self) -> Result<(), ApiError> {
        match self.content_type.as_deref() {
            Some("application/fhir+json" | "application/json") => Ok(()),
            _ => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as application/fhir+json",
            )),
        }
    }

    /// The body as a FHIR resource of type `root`.
    pub fn resource<T: DeserializeOwned>(&self, root: &str) -> Result<T, ApiError> {
        self.check_content_type()?;
        Ok(crate::fhir::from_json(root, &self.bytes)?)
    }

    /// The body as operation `Parameters`.
    pub fn parameters(&self) -> Result<Parameters, ApiError> {
        self.check_content_type()?;
        Ok(crate::fhir::operations::parameters(&self.bytes)?)
    }
}

/// Reads a whole request body, refusing it as soon as it grows past `limit`.
pub async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::invalid("the request body could not be read"))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A resource id from the path: FHIR ids are 1 to 64 letters, digits, `-` and `.`.
pub fn resource_id(raw: &str) -> Result<String, ApiError> {
    if crate::domain::text::is_resource_id(raw) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid("the id in the path is not a FHIR id (1 to 64 of A-Z, a-z, 0-9, '-' and '.')").at("id"))
    }
}

/// A FHIR resource response with the headers every resource carries.
pub fn resource<T: Serialize>(
    status: StatusCode,
    body: &T,
    version: Option<i64>,
    last_updated: Option<chrono::DateTime<chrono::Utc>>,
) -> HttpResponse {
    let mut builder = HttpResponse::build(status);
    builder.content_type(FHIR_JSON);
    describe(&mut builder, version, last_updated);
    builder.json(body)
}

/// The headers that describe a resource's representation: its version, when it last changed,
/// and that it is not to be kept by caches along the way.
fn describe(
    builder: &mut actix_web::HttpResponseBuilder,
    version: Option<i64>,
    last_updated: Option<chrono::DateTime<chrono::Utc>>,
) {
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(v) = version {
        builder.insert_header((header::ETAG, format!("W/\"{v}\"")));
    }
    if let Some(t) = last_updated {
        builder.insert_header(header::LastModified(std::time::SystemTime::from(t).into()));
    }
}

/// Whether `If-None-Match` names the version a read is about to answer with (or is `*`): then
/// the caller's copy is current and the answer is 304 Not Modified. Tags compare weakly
/// (`W/"3"` and `"3"` are the same version); a tag that is not one of ours matches nothing.
pub fn if_none_match(req: &HttpRequest, version: i64) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| {
            tag == "*"
                || tag
                    .strip_prefix("W/")
                    .unwrap_or(tag)
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .is_some_and(|v| v.parse::<i64>() == Ok(version))
        })
}

/// 304 Not Modified for a read whose caller holds the current version: no body, and the
/// headers the 200 would have carried that describe it (RFC 9110, section 15.4.5).
pub fn not_modified(version: i64, last_updated: Option<chrono::DateTime<chrono::Utc>>) -> HttpResponse {
    let mut builder = HttpResponse::NotModified();
    describe(&mut builder, Some(version), last_updated);
    builder.finish()
}

/// Reads `If-Match: W/"n"` (or `"n"`). A header that is present but malformed is a 400.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or_default().trim();
    if raw == "*" {
        // Any current version.
        return Ok(None);
    }
    let unquoted = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
    unquoted
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::invalid("If-Match must be an ETag such as W/\"3\""))
}

/// Paging parameters common to every search.
pub struct Paging {
    pub count: i64,
    pub offset: i64,
}

pub const DEFAULT_COUNT: i64 = 20;
pub const MAX_COUNT: i64 = 100;

impl Paging {
    /// A `_count` above [`MAX_COUNT`] is taken as the maximum, as R4 lets a server return
    /// fewer than asked (clients ask for large pages to get as much as is allowed), and the
    /// Bundle's `self` link says the count used; with `Prefer: handling=strict` it is refused.
    pub fn parse(count: Option<&str>, offset: Option<&str>, strict: bool) -> Result<Self, ApiError> {
        let bad = |m: &str| ApiError::new(ErrorCode::InvalidSearchParameter, m.to_owned());
        let count = match count.map(|c| c.parse::<i64>()) {
            None => DEFAULT_COUNT,
            Some(Ok(c)) if (0..=MAX_COUNT).contains(&c) => c,
            Some(Ok(c)) if c > MAX_COUNT && !strict => MAX_COUNT,
            Some(Ok(c)) if c > MAX_COUNT => {
                return Err(bad(
                    "_count must be at most 100 (without Prefer: handling=strict a larger _count is taken as 100)",
                )
                .at("_count"));
            }
            Some(_) => return Err(bad("_count must be a whole number from 0 to 100").at("_count")),
        };
        let offset = match offset {
            None => 0,
            Some(o) => o
                .parse::<i64>()
                .ok()
                .filter(|o| (0..=1_000_000).contains(o))
                .ok_or_else(|| bad("_offset must be a whole number from 0 to 1000000").at("_offset"))?,
        };
        Ok(Self { count, offset })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header;
    use chrono::TimeZone;

    #[test]
    fn last_modified_is_an_http_date() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 8, 49, 37).unwrap();
        let response = super::resource(
            actix_web::http::StatusCode::OK,
            &serde_json::json!({}),
            Some(3),
            Some(t),
        );
        assert_eq!(
            response.headers().get(header::LAST_MODIFIED).unwrap(),
            "Wed, 02 Dec 2026 08:49:37 GMT"
        );
        assert_eq!(response.headers().get(header::ETAG).unwrap(), "W/\"3\"");
    }

    #[test]
    fn a_count_above_the_maximum_is_capped_unless_strict() {
        use super::{MAX_COUNT, Paging};
        assert_eq!(Paging::parse(Some("500"), None, false).unwrap().count, MAX_COUNT);
        assert_eq!(Paging::parse(Some("7"), None, false).unwrap().count, 7);
        assert_eq!(Paging::parse(None, None, true).unwrap().count, super::DEFAULT_COUNT);
        assert!(Paging::parse(Some("500"), None, true).is_err());
        assert!(Paging::parse(Some("-1"), None, false).is_err());
        assert!(Paging::parse(Some("many"), None, false).is_err());
        assert!(Paging::parse(Some("99999999999999999999"), None, false).is_err());
    }
}
