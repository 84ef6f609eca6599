//! Cross-cutting request handling: request and correlation ids, structured request logs,
//! metrics, per-client rate limiting, and `X-Request-ID` replay of completed writes.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::auth::authenticate;
use super::error::{ApiError, ErrorCode};
use super::request_ids::{CORRELATION_ID, REPLAYED, REQUEST_ID, REQUEST_ID_HEADER, RequestIds};
use crate::services::idempotency::{self, Settlement};
use crate::state::AppState;

/// Reads `X-Request-ID` and `X-Correlation-ID`, with the answer when they are refused. A
/// refused request still gets ids of its own (generated), for its log line and for the caller
/// to quote.
fn request_ids(req: &ServiceRequest) -> (RequestIds, Option<HttpResponse>) {
    // Time-ordered, so that the trail's index of request ids grows at its right edge (as its
    // index of event ids does) instead of on a random page of it.
    let generated = crate::domain::ids::time_ordered(chrono::Utc::now().naive_utc()).to_string();
    // A header that is present but not text is refused like a malformed one, not taken as absent.
    let header = |name: &str| match req.headers().get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(_) => Err(()),
        },
    };
    let correlation = match header(CORRELATION_ID) {
        Ok(None) => Ok(None),
        Ok(Some(c)) if c.len() <= 128 && c.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(c)),
        _ => Err(()),
    };
    let refused = |correlation: Option<String>, response: HttpResponse| {
        let ids = RequestIds {
            request_id: generated.clone(),
            echoed_request_id: generated.clone(),
            correlation_id: correlation.unwrap_or_else(|| generated.clone()),
            client_supplied: false,
        };
        (ids, Some(response))
    };
    let Ok(correlation) = correlation else {
        let e = ApiError::invalid("X-Correlation-ID must be at most 128 visible ASCII characters");
        return refused(None, refusal_response(req.path(), e));
    };
    let malformed_request_id = || refusal_response(req.path(), ApiError::invalid("X-Request-ID must be a UUID"));
    let supplied = match header(REQUEST_ID) {
        Ok(supplied) => supplied,
        Err(()) => return refused(correlation, malformed_request_id()),
    };
    let (request_id, echoed_request_id) = match &supplied {
        Some(id) => match uuid::Uuid::parse_str(id) {
            Ok(u) => (u.hyphenated().to_string(), id.clone()),
            Err(_) => return refused(correlation, malformed_request_id()),
        },
        // The VRS paths require the caller's own id, as the spec marks it; a CORS preflight
        // never carries it and is answered by the CORS layer.
        None if super::proxy::is_vrs(req.path()) && req.method() != Method::OPTIONS => {
            let missing = crate::fhir::vrs::VrsError::missing_header(REQUEST_ID_HEADER).error_response();
            return refused(correlation, missing);
        }
        None => (generated.clone(), generated.clone()),
    };
    let ids = RequestIds {
        correlation_id: correlation.unwrap_or_else(|| echoed_request_id.clone()),
        request_id,
        echoed_request_id,
        client_supplied: supplied.is_some(),
    };
    (ids, None)
}

fn error_response(req: ServiceRequest, e: ApiError) -> ServiceResponse<BoxBody> {
    let response = refusal_response(req.path(), e);
    req.into_response(response)
}

/// A gateway error, in the VRS shape on the VRS paths.
fn refusal_response(path: &str, e: ApiError) -> HttpResponse {
    match super::proxy::is_vrs(path) {
        true => super::proxy::rendered(e.status_code(), &e).unwrap_or_else(|| e.error_response()),
        false => e.error_response(),
    }
}

/// Outermost layer: ids, rate limit, logging and metrics.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let (ids, refusal) = request_ids(&req);
    let RequestIds {
        request_id,
        correlation_id,
        echoed_request_id,
        ..
    } = ids.clone();
    req.extensions_mut().insert(ids);

    let method = req.method().clone();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // The console's own calls were counted as the browser's request to the console.
    let console_call = state
        .as_ref()
        .is_some_and(|s| s.is_console_call(req.peer_addr(), req.headers()));
    let exempt = req.path().starts_with("/health/") || req.path() == "/metrics" || console_call;
    // The rate limit's client: the peer, or the client a trusted proxy forwards for.
    let client = (state.as_ref())
        .zip(req.peer_addr())
        .map(|(s, peer)| s.trusted_proxies.client(peer.ip(), req.headers()));

    let span = tracing::info_span!("request", request_id = %request_id, correlation_id = %correlation_id);
    let mut response = match (refusal, &state, client) {
        (Some(refusal), _, _) => req.into_response(refusal),
        (None, Some(state), Some(ip)) if !exempt && !state.rate_limiter.allow(ip) => error_response(
            req,
            ApiError {
                retry_after_seconds: Some(1),
                ..ApiError::new(ErrorCode::TooManyRequests, "too many requests; slow down and retry")
            },
        ),
        _ => match acceptable(&req) {
            Err(e) => error_response(req, e),
            Ok(()) => {
                // A panicking handler answers 500 (counted) instead of dropping the connection.
                let answer = std::panic::AssertUnwindSafe(futures_util::FutureExt::map(
                    next.call(req).instrument(span.clone()),
                    |r| r.map(ServiceResponse::map_into_boxed_body),
                ));
                let answered = match &state {
                    Some(state) if !exempt => {
                        within_an_outage(state, futures_util::FutureExt::catch_unwind(answer)).await
                    }
                    _ => Some(futures_util::FutureExt::catch_unwind(answer).await),
                };
                let Some(answered) = answered else {
                    // The request went on without its caller: the server answers this error.
                    span.in_scope(|| {
                        tracing::info!(
                            method = %method,
                            status = 503,
                            latency_ms = started.elapsed().as_millis() as f64,
                            "request answered 503 while the database is away; it runs on to its end"
                        );
                    });
                    let error = ApiError {
                        retry_after_seconds: Some(RETRY_AFTER_SECONDS.parse().unwrap_or(2)),
                        ..ApiError::new(
                            ErrorCode::ServiceUnavailable,
                            "the database is unavailable; a change this request asked for is made at most once: retry with the same X-Request-ID",
                        )
                    };
                    return Err(error.into());
                };
                match answered {
                    Ok(r) => r?,
                    Err(_) => {
                        tracing::error!(request_id = %request_id, "a handler panicked");
                        if let Some(s) = &state {
                            s.metrics.panics.inc();
                        }
                        // The request went with the handler: the server answers this error.
                        return Err(ApiError::new(
                            ErrorCode::InternalError,
                            format!("internal error; quote request id {request_id}"),
                        )
                        .into());
                    }
                }
            }
        },
    };

    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(actix_web::http::header::RETRY_AFTER)
    {
        // Every 503 says when to come back.
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    // Route patterns (e.g. /Patient/{id}) keep identifiers out of logs and metric labels.
    let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let elapsed = started.elapsed();
    if let Some(state) = &state {
        let labels = [method.as_str(), route.as_str(), status.as_str()];
        state.metrics.requests.with_label_values(&labels).inc();
        state
            .metrics
            .latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status = status.as_u16(),
            latency_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            "request completed"
        );
    });
    let path_is_docs = response.request().path().starts_with("/docs");
    let behind_tls = response.request().connection_info().scheme() == "https";
    let headers = response.headers_mut();
    security_headers(headers, path_is_docs, behind_tls);
    if let Ok(v) = HeaderValue::from_str(&echoed_request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID), v);
    }
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        headers.insert(HeaderName::from_static(CORRELATION_ID), v);
    }
    Ok(response)
}

/// When a 503 tells the caller to try again.
const RETRY_AFTER_SECONDS: &str = "2";

/// Runs a request, giving up on it (`None`: its caller is answered 503) if it is still going
/// once the outage allowance ([`crate::config::Settings::outage_answer_within`]) has passed
/// with the database away.
/// The request itself runs on to its end, apart from its caller: a change it makes is put on
/// record, and its `X-Request-ID` claim settled, whatever the caller was told. A request that
/// is slow for another reason (a supplier's record) is not cut short.
async fn within_an_outage<T: 'static>(
    state: &AppState,
    answer: impl std::future::Future<Output = T> + 'static,
) -> Option<T> {
    let allowance = state.core.settings.outage_answer_within();
    // A little before the allowance, so that the answer is out within it.
    let deadline =
        Instant::now() + allowance.saturating_sub((allowance / 10).min(std::time::Duration::from_millis(300)));
    let availability = state.core.pool.availability().clone();
    let mut running = actix_web::rt::spawn(answer);
    loop {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(std::time::Duration::from_millis(100));
        match tokio::time::timeout(wait, &mut running).await {
            Ok(Ok(answered)) => return Some(answered),
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the server is stopping.
            Ok(Err(_)) => return None,
            Err(_) if Instant::now() >= deadline && availability.problem().is_some() => return None,
            Err(_) => {}
        }
    }
}

/// Headers every response carries: no content sniffing, no framing, no referrer; a content
/// policy for the API docs (the console's pages bring their own policies); HSTS when the request came over TLS (directly or via a proxy).
fn security_headers(headers: &mut actix_web::http::header::HeaderMap, docs: bool, tls: bool) {
    use actix_web::http::header;
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The console's pages set their own policies (its forms need the origin sent).
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    if docs {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
    } else if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// Content negotiation: the API answers JSON (`application/fhir+json`), the registration letter
/// also PDF, a bulk export's files NDJSON. An `Accept` or `_format` asking only for something else is 406.
fn acceptable(req: &ServiceRequest) -> Result<(), ApiError> {
    let path = req.path();
    if path.starts_with("/docs")
        || path == "/metrics"
        || path.starts_with("/health/")
        || path.starts_with("/dev")
        || path.starts_with("/console")
    {
        return Ok(());
    }
    let json = |t: &str| {
        let t = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        matches!(
            t.as_str(),
            "" | "*/*" | "application/*" | "application/json" | "application/fhir+json" | "json"
        ) || (path.contains("registration-letter") && t == "application/pdf")
            || (path.starts_with("/AuditEvent/$export/")
                && matches!(t.as_str(), "application/fhir+ndjson" | "application/ndjson"))
    };
    if let Some(format) = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "_format")
        .map(|(_, v)| v.into_owned())
        && !json(&format)
    {
        return Err(ApiError::new(
            ErrorCode::NotAcceptable,
            "this server answers application/fhir+json only (_format=json)",
        ));
    }
    if let Some(accept) = req.headers().get(actix_web::http::header::ACCEPT) {
        let accept = accept.to_str().unwrap_or_default();
        if !accept.trim().is_empty() && !accept.split(',').any(json) {
            return Err(ApiError::new(
                ErrorCode::NotAcceptable,
                "this server answers application/fhir+json only; send Accept: application/fhir+json",
            ));
        }
    }
    Ok(())
}

const REPLAYED_HEADERS: [&str; 5] = ["content-type", "etag", "location", "last-modified", "cache-control"];
/// How long a claim this instance could not settle (the database was away) is kept for settling
/// once it is back.
const SETTLE_FOR: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug)]
enum Here {
    /// The request is being carried out on this instance (perhaps after its caller was
    /// answered 503 during an outage).
    Running,
    /// It finished, but what it left could not be stored yet.
    Unsettled(Settlement),
}

/// The claims this instance holds, by caller and request id. With it, a retry that reaches this
/// instance knows at once whether the first request is still running here; one that is not is
/// never answered "in progress", and one that finished while the database was away is replayed
/// (or run again, if it was released) as soon as the database is back, without waiting for the
/// claim to age.
#[derive(Debug, Default)]
pub struct ClaimsHere(std::sync::Mutex<std::collections::HashMap<(String, String), Here>>);

impl ClaimsHere {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), Here>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the key as running here; `Err` if it already is. What a finished request left
    /// unsettled under the key is handed over, for the caller to settle first.
    fn begin(&self, key: &(String, String)) -> Result<Option<Settlement>, ()> {
        let mut map = self.map();
        match map.insert(key.clone(), Here::Running) {
            None => Ok(None),
            Some(Here::Unsettled(s)) => Ok(Some(s)),
            Some(Here::Running) => Err(()),
        }
    }

    fn end(&self, key: &(String, String)) {
        self.map().remove(key);
    }

    fn unsettled(&self, key: &(String, String), settlement: Settlement) {
        self.map().insert(key.clone(), Here::Unsettled(settlement));
    }
}

/// Replays completed writes: a POST/PUT/PATCH/DELETE repeated with the same `X-Request-ID` by
/// the same caller gets the first response back instead of running again.
pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let is_write = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if !is_write {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let ids = req.extensions().get::<RequestIds>().cloned();
    let (Some(ids), Some(state)) = (ids, req.app_data::<web::Data<AppState>>().cloned()) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if !ids.client_supplied {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // Unauthenticated requests go straight on: the handler refuses them.
    let Ok(principal) = authenticate(req.request()).await else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };

    let limit = state.core.settings.http.body_limit_bytes;
    let mut payload = req.take_payload();
    let body = match super::body::read_limited(&mut payload, limit).await {
        Ok(body) => body,
        Err(e) => return Ok(error_response(req, e)),
    };
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str());
    hasher.update([0]);
    hasher.update(req.path());
    hasher.update([0]);
    hasher.update(req.query_string());
    hasher.update([0]);
    hasher.update(&body);
    let fingerprint = format!("{:x}", hasher.finalize());
    req.set_payload(actix_web::dev::Payload::from(body));

    let write = idempotency::Write {
        caller: principal.caller_key(),
        request_id: ids.request_id.clone(),
        method: req.method().to_string(),
        path: req.path().to_owned(),
        fingerprint: fingerprint.clone(),
    };
    let key = (write.caller.clone(), write.request_id.clone());
    // One per server (registered in `startup`).
    let claims = req
        .app_data::<web::Data<ClaimsHere>>()
        .cloned()
        .unwrap_or_else(|| web::Data::new(ClaimsHere::default()));
    let in_progress = || {
        ApiError::new(
            ErrorCode::RequestInProgress,
            "a request with this X-Request-ID is still being processed",
        )
    };
    let Ok(left) = claims.begin(&key) else {
        return Ok(error_response(req, in_progress()));
    };
    let claim = idempotency::claim(&state.core, write, left.clone()).await;
    if !matches!(claim, Ok(idempotency::Claim::Started)) {
        match (&claim, left) {
            (Err(_), Some(left)) => claims.unsettled(&key, left),
            _ => claims.end(&key),
        }
    }
    match claim {
        Err(e) => return Ok(error_response(req, e.into())),
        Ok(idempotency::Claim::Existing(old)) => {
            let e = if old.fingerprint != fingerprint {
                ApiError::new(
                    ErrorCode::RequestIdReused,
                    "this X-Request-ID was already used for a different request; use a new id for a new request",
                )
            } else if let (Some(status), Some(body)) = (old.status, old.response_body) {
                // Repeating a request does not outlive the caller's right to make it: a role
                // or scope taken away since the first answer is refused, and on record.
                if let Some(action) = req
                    .match_pattern()
                    .and_then(|p| super::audit::action_for(req.method(), &p))
                {
                    let caller = crate::services::Caller {
                        principal,
                        trail: req
                            .extensions()
                            .get::<crate::audit::Trail>()
                            .cloned()
                            .unwrap_or_default(),
                        request_id: Some(ids.request_id.clone()),
                    };
                    let target = crate::services::access::Target::Pending;
                    if let Err(e) = crate::services::access::authorize(&state.core, &caller, action, target).await {
                        return Ok(error_response(req, e.into()));
                    }
                }
                let response = replay(status, old.response_headers.as_deref(), body);
                return Ok(req.into_response(response));
            } else {
                in_progress()
            };
            return Ok(error_response(req, e));
        }
        Ok(idempotency::Claim::Started) => {}
    }

    let result = next.call(req).await;
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            settle(&state, &claims, key, Settlement::Release).await;
            return Err(e);
        }
    };
    let status = response.status();
    if status.is_server_error() {
        // Nothing was completed: let a retry run again.
        settle(&state, &claims, key, Settlement::Release).await;
        return Ok(response.map_into_boxed_body());
    }
    let (http_req, http_res) = response.into_parts();
    let (http_res, body) = http_res.into_parts();
    let bytes = actix_web::body::to_bytes(body).await.unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = REPLAYED_HEADERS
        .iter()
        .filter_map(|name| {
            http_res
                .headers()
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_owned(), serde_json::Value::String(v.to_owned())))
        })
        .collect();
    let settlement = match std::str::from_utf8(&bytes) {
        Ok(text) => Settlement::Complete {
            status: i32::from(status.as_u16()),
            headers: serde_json::Value::Object(headers).to_string(),
            body: text.to_owned(),
        },
        Err(_) => Settlement::Release,
    };
    settle(&state, &claims, key, settlement).await;
    let http_res = http_res.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(http_req, http_res))
}

/// Stores what a finished request leaves under its claim. While the database is away this is
/// kept here and stored as soon as it is back (or by a retry of the request, whichever comes
/// first), so that the retry is replayed or run, never told the request is still in progress.
async fn settle(
    state: &web::Data<AppState>,
    claims: &web::Data<ClaimsHere>,
    key: (String, String),
    settlement: Settlement,
) {
    let stored = idempotency::settle(&state.core, &key.0, &key.1, settlement.clone()).await;
    if stored.is_ok() {
        claims.end(&key);
        return;
    }
    claims.unsettled(&key, settlement);
    let (state, claims) = (state.clone(), claims.clone());
    tokio::spawn(async move {
        let until = Instant::now() + SETTLE_FOR;
        let mut availability = state.core.pool.availability().subscribe();
        while Instant::now() < until {
            let back = matches!(
                tokio::time::timeout(SETTLE_FOR, availability.wait_for(|up| *up)).await,
                Ok(Ok(_))
            );
            if !back {
                break;
            }
            // Taken over, unless a retry of the request took it first.
            let settlement = match claims.begin(&key) {
                Ok(Some(settlement)) => settlement,
                // Settled already (the mark just made is taken off again)...
                Ok(None) => {
                    claims.end(&key);
                    return;
                }
                // ...or a retry of the request is running here and settles it itself.
                Err(()) => return,
            };
            let stored = idempotency::settle(&state.core, &key.0, &key.1, settlement.clone()).await;
            if stored.is_ok() {
                claims.end(&key);
                return;
            }
            claims.unsettled(&key, settlement);
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        tracing::warn!("a request-id claim could not be settled; it is taken over once it ages");
        if let Ok(None | Some(_)) = claims.begin(&key) {
            claims.end(&key);
        }
    });
}

fn replay(status: i32, headers: Option<&str>, body: String) -> HttpResponse {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut builder = HttpResponse::build(status);
    if let Some(map) = headers.and_then(|h| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(h).ok())
    {
        for (name, value) in map {
            if let Some(v) = value.as_str() {
                builder.insert_header((name, v.to_owned()));
            }
        }
    }
    builder.insert_header((REPLAYED, "true"));
    builder.body(body)
}
