//! JWT access-token verification for every trusted issuer.
//!
//! Discovery and key sets come through `openidconnect` (with our own reqwest client, which
//! follows no redirects and has timeouts). `openidconnect` does not refresh a key set after
//! discovery and its verifier is built for ID tokens, so the key cache and the claim checks
//! for access tokens live here.

// Parses what callers send: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm, CoreProviderMetadata};
use openidconnect::{HttpRequest, HttpResponse, IssuerUrl, JsonWebKey, JsonWebKeySet};
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use tokio::sync::{Mutex, RwLock};

use super::principal::{GpRegistrationDetails, NrbacRole};
use super::{Delegation, PatientPrincipal, Principal, StaffPrincipal, SystemPrincipal};
use crate::config::{AuthSettings, IssuerKind, IssuerSettings};
use crate::domain::policy::RoleAssignment;
use crate::domain::text::forbidden_character;
use crate::domain::{NhsNumber, OdsCode, ProofingLevel};

/// Why a token was refused. Messages are safe to show the caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    /// The request presents its credentials ambiguously (two headers, a token in the URL).
    #[error("{0}")]
    Malformed(String),
    /// The issuer's discovery document or key set cannot be fetched right now.
    #[error("the identity provider could not be reached")]
    IssuerUnavailable(String),
}

fn invalid(m: impl Into<String>) -> AuthError {
    AuthError::Invalid(m.into())
}

#[derive(Debug, Clone)]
pub enum IssuerStatus {
    Up { keys: usize },
    Down(String),
}

struct KeyCache {
    jwks_url: openidconnect::JsonWebKeySetUrl,
    /// The signing algorithms the issuer's discovery document advertises.
    advertised: Vec<CoreJwsSigningAlgorithm>,
    keys: Vec<CoreJsonWebKey>,
    /// The same keys, ready for `ring` (by position in `keys`).
    prepared: Vec<Option<FastKey>>,
    discovered_at: Instant,
    keys_fetched_at: Instant,
}

impl KeyCache {
    /// The key at `i` with its prepared form, and whether the issuer advertises `alg`.
    fn key(&self, i: usize, alg: &CoreJwsSigningAlgorithm) -> Option<(CoreJsonWebKey, Option<FastKey>, bool)> {
        Some((
            self.keys.get(i)?.clone(),
            self.prepared.get(i)?.clone(),
            self.advertised.contains(alg),
        ))
    }
}

/// A public key in the form `ring` verifies with: RSA modulus and exponent, or an EC point.
#[derive(Clone)]
enum FastKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: &'static str, point: Vec<u8> },
}

impl FastKey {
    fn from_jwk(key: &CoreJsonWebKey) -> Option<Self> {
        let v = serde_json::to_value(key).ok()?;
        let bytes = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        };
        match v.get("kty").and_then(Value::as_str)? {
            "RSA" => Some(Self::Rsa {
                n: bytes("n")?,
                e: bytes("e")?,
            }),
            "EC" => {
                let curve = match v.get("crv").and_then(Value::as_str)? {
                    "P-256" => "P-256",
                    "P-384" => "P-384",
                    _ => return None,
                };
                let mut point = vec![4u8];
                point.extend(bytes("x")?);
                point.extend(bytes("y")?);
                Some(Self::Ec { curve, point })
            }
            _ => None,
        }
    }

    /// `Some(valid)` when `ring` handles this algorithm and key; `None` to fall back.
    fn verify(&self, alg: &CoreJwsSigningAlgorithm, message: &[u8], signature: &[u8]) -> Option<bool> {
        use CoreJwsSigningAlgorithm as A;
        use ring::signature as sig;
        match self {
            Self::Rsa { n, e } => {
                let params: &sig::RsaParameters = match alg {
                    A::RsaSsaPkcs1V15Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    A::RsaSsaPkcs1V15Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    A::RsaSsaPkcs1V15Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    A::RsaSsaPssSha256 => &sig::RSA_PSS_2048_8192_SHA256,
                    A::RsaSsaPssSha384 => &sig::RSA_PSS_2048_8192_SHA384,
                    A::RsaSsaPssSha512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                };
                // Keys under 2048 bits are refused outright.
                Some(
                    sig::RsaPublicKeyComponents { n, e }
                        .verify(params, message, signature)
                        .is_ok(),
                )
            }
            Self::Ec { curve, point } => {
                let algorithm: &dyn sig::VerificationAlgorithm = match (alg, *curve) {
                    (A::EcdsaP256Sha256, "P-256") => &sig::ECDSA_P256_SHA256_FIXED,
                    (A::EcdsaP384Sha384, "P-384") => &sig::ECDSA_P384_SHA384_FIXED,
                    _ => return None,
                };
                Some(
                    sig::UnparsedPublicKey::new(algorithm, point)
                        .verify(message, signature)
                        .is_ok(),
                )
            }
        }
    }
}

/// A token already verified, kept until it expires. Only the whole token's hash finds it: a
/// token differing in any byte is verified afresh.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    issuer: usize,
    /// The issuer's key generation it was verified under: a new key set empties it.
    generation: u64,
    exp: i64,
    nbf: Option<i64>,
    /// Held no longer than the discovery lifetime, so a key set is still looked at again.
    at: Instant,
}

/// Verified tokens held at most; when full the cache starts again empty.
const VERIFIED_CAPACITY: usize = 20_000;

struct Issuer {
    settings: IssuerSettings,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    cache: RwLock<Option<KeyCache>>,
    /// Serialises refreshes so a burst of unknown `kid`s makes one request, not many.
    refresh: Mutex<()>,
    /// When the last fetch failed and why. Within the refresh interval after a failure, callers
    /// get the same answer at once instead of each waiting on another attempt at a dead issuer.
    last_failure: std::sync::Mutex<Option<(Instant, String)>>,
    /// Moves on whenever the key set changes: tokens verified under an older one are verified
    /// again.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error(transparent)]
    Http(#[from] openidconnect::http::Error),
    #[error("response too large")]
    TooLarge,
}

/// Verifies bearer tokens from the configured issuers.
pub struct TokenVerifier {
    issuers: Vec<Arc<Issuer>>,
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Verified>>,
    client_id: String,
    leeway: u64,
    max_lifetime: u64,
    min_refresh: Duration,
    ttl: Duration,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A value from the token as a message shows it.
fn shown(raw: &str) -> String {
    crate::domain::text::shown(raw, 32)
}

fn parse_alg(name: &str) -> Option<CoreJwsSigningAlgorithm> {
    serde_json::from_value(Value::String(name.to_owned())).ok()
}

const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

impl TokenVerifier {
    pub fn new(settings: &AuthSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.http_timeout_seconds))
            .connect_timeout(Duration::from_secs(settings.http_timeout_seconds))
            .build()?;
        let issuers = settings
            .issuers
            .iter()
            .map(|s| {
                Arc::new(Issuer {
                    algorithms: s.algorithms.iter().filter_map(|a| parse_alg(a)).collect(),
                    settings: s.clone(),
                    cache: RwLock::new(None),
                    refresh: Mutex::new(()),
                    last_failure: std::sync::Mutex::new(None),
                    generation: std::sync::atomic::AtomicU64::new(0),
                })
            })
            .collect();
        Ok(Self {
            issuers,
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            client_id: settings.client_id.clone(),
            leeway: settings.leeway_seconds,
            max_lifetime: settings.max_token_lifetime_seconds,
            min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
            ttl: Duration::from_secs(settings.discovery_ttl_seconds),
            http,
        })
    }

    /// A token verified before, still within its times and under the issuer's current keys.
    fn remembered(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = verified.get(digest)?;
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.leeway).unwrap_or(0);
        let generation = self
            .issuers
            .get(v.issuer)?
            .generation
            .load(std::sync::atomic::Ordering::Acquire);
        if now > v.exp.saturating_add(leeway)
            || v.nbf.is_some_and(|nbf| nbf > now + leeway)
            || v.generation != generation
            || v.at.elapsed() > self.ttl
        {
            verified.remove(digest);
            return None;
        }
        Some(v.principal.clone())
    }

    fn remember(&self, digest: [u8; 32], v: Verified) {
        let mut verified = self.verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(digest, v);
    }

    /// Verifies a compact JWS access token and returns the caller it proves. A token verified
    /// before is answered from memory until it expires or its issuer's keys change.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token is too large"));
        }
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.remembered(&digest) {
            return Ok(p);
        }
        let (principal, verified) = self.verify_afresh(token).await?;
        self.remember(digest, verified);
        Ok(principal)
    }

    async fn verify_afresh(&self, token: &str) -> Result<(Principal, Verified), AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("token is not a signed JWT"));
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("token header is malformed"))?;
        let claims: serde_json::Map<String, Value> = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("token claims are malformed"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("token signature is malformed"))?;

        if header.alg.eq_ignore_ascii_case("none") || header.alg.starts_with("HS") {
            return Err(invalid(format!("algorithm {} is never accepted", shown(&header.alg))));
        }
        if header.crit.is_some() {
            return Err(invalid("critical header extensions are not supported"));
        }
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("token has no issuer"))?;
        let (issuer_index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.settings.issuer == iss)
            .ok_or_else(|| invalid("token issuer is not trusted"))?;
        let not_accepted = || {
            invalid(format!(
                "algorithm {} is not accepted from this issuer",
                shown(&header.alg)
            ))
        };
        let alg = parse_alg(&header.alg)
            .filter(|a| issuer.algorithms.contains(a))
            .ok_or_else(not_accepted)?;

        // The issuer's own discovery document must advertise the algorithm too: a key set
        // whose keys carry no `alg` would otherwise verify whatever the token header claims.
        let generation = issuer.generation.load(std::sync::atomic::Ordering::Acquire);
        let (key, fast, advertised) = self.key_for(issuer, header.kid.as_deref(), &alg).await?;
        if !advertised {
            return Err(not_accepted());
        }
        let signing_input = token
            .as_bytes()
            .get(..h.len() + 1 + p.len())
            .ok_or_else(|| invalid("token is malformed"))?;
        let valid = match fast.as_ref().and_then(|k| k.verify(&alg, signing_input, &signature)) {
            Some(valid) => valid,
            None => key.verify_signature(&alg, signing_input, &signature).is_ok(),
        };
        if !valid {
            return Err(invalid("token signature is not valid"));
        }

        self.check_registered_claims(&claims)?;
        let principal = principal_from_claims(issuer.settings.kind, iss, &claims)?;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let verified = Verified {
            principal: principal.clone(),
            issuer: issuer_index,
            generation,
            exp: number("exp").unwrap_or(0),
            nbf: number("nbf"),
            at: Instant::now(),
        };
        Ok((principal, verified))
    }

    fn check_registered_claims(&self, claims: &serde_json::Map<String, Value>) -> Result<(), AuthError> {
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(self.client_id.as_str())),
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("token audience does not include this service"));
        }
        let now = chrono::Utc::now().timestamp();
        let leeway = i64::try_from(self.leeway).unwrap_or(0);
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = number("exp").ok_or_else(|| invalid("token has no expiry"))?;
        if now > exp.saturating_add(leeway) {
            return Err(invalid("token has expired"));
        }
        let iat = number("iat").ok_or_else(|| invalid("token has no issued-at time"))?;
        if iat > now + leeway {
            return Err(invalid("token is issued in the future"));
        }
        // An expiry years away would keep a leaked or stale token usable long after any issuer
        // the gateway trusts would have let it lapse.
        let max_lifetime = i64::try_from(self.max_lifetime).unwrap_or(i64::MAX);
        if exp.saturating_sub(iat) > max_lifetime.saturating_add(leeway) {
            return Err(invalid(format!(
                "token lifetime (exp - iat) is longer than the {max_lifetime} seconds this service accepts"
            )));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_i64().ok_or_else(|| invalid("token not-before is malformed"))?;
            if nbf > now + leeway {
                return Err(invalid("token is not yet valid"));
            }
        }
        Ok(())
    }

    async fn key_for(
        &self,
        issuer: &Issuer,
        kid: Option<&str>,
        alg: &CoreJwsSigningAlgorithm,
    ) -> Result<(CoreJsonWebKey, Option<FastKey>, bool), AuthError> {
        let fresh = {
            let cache = issuer.cache.read().await;
            match cache.as_ref() {
                Some(c) if c.discovered_at.elapsed() < self.ttl => {
                    if let Some(found) = select_key(&c.keys, kid, alg).and_then(|i| c.key(i, alg)) {
                        return Ok(found);
                    }
                    c.keys_fetched_at.elapsed() < self.min_refresh
                }
                _ => false,
            }
        };
        if fresh {
            // The key set was fetched moments ago and does not have this key: do not let
            // tokens with made-up key ids make us hammer the issuer.
            return Err(invalid("token signing key is not recognised"));
        }
        self.refresh(issuer).await?;
        let cache = issuer.cache.read().await;
        cache
            .as_ref()
            .and_then(|c| select_key(&c.keys, kid, alg).and_then(|i| c.key(i, alg)))
            .ok_or_else(|| invalid("token signing key is not recognised"))
    }

    /// Fetches discovery (when missing or stale) and the key set, at most once per interval.
    async fn refresh(&self, issuer: &Issuer) -> Result<(), AuthError> {
        let _guard = issuer.refresh.lock().await;
        {
            let cache = issuer.cache.read().await;
            if let Some(c) = cache.as_ref()
                && c.keys_fetched_at.elapsed() < self.min_refresh
                && c.discovered_at.elapsed() < self.ttl
            {
                return Ok(()); // another task refreshed while we waited
            }
        }
        if let Some(error) = self.recent_failure(issuer) {
            return Err(AuthError::IssuerUnavailable(error));
        }
        let result = self.fetch(issuer).await;
        let mut last_failure = issuer
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &result {
            Ok(_) => *last_failure = None,
            Err(e) => {
                tracing::warn!(issuer = %issuer.settings.name, error = %e, "identity provider fetch failed");
                *last_failure = Some((Instant::now(), e.clone()));
            }
        }
        result.map_err(AuthError::IssuerUnavailable)
    }

    fn recent_failure(&self, issuer: &Issuer) -> Option<String> {
        let last_failure = issuer
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last_failure
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.min_refresh)
            .map(|(_, error)| error.clone())
    }

    async fn fetch(&self, issuer: &Issuer) -> Result<(), String> {
        let client = self.http.clone();
        let http = move |request: HttpRequest| {
            let client = client.clone();
            async move { send(&client, request).await }
        };
        let existing = {
            let cache = issuer.cache.read().await;
            cache
                .as_ref()
                .filter(|c| c.discovered_at.elapsed() < self.ttl)
                .map(|c| (c.jwks_url.clone(), c.discovered_at, c.advertised.clone()))
        };
        let (jwks_url, discovered_at, advertised, keys) = match existing {
            Some((url, at, advertised)) => {
                let set: JsonWebKeySet<CoreJsonWebKey> = JsonWebKeySet::fetch_async(&url, &http)
                    .await
                    .map_err(|e| format!("key set: {e}"))?;
                (url, at, advertised, set.keys().clone())
            }
            None => {
                let issuer_url = IssuerUrl::new(issuer.settings.issuer.clone()).map_err(|e| e.to_string())?;
                // Validates that the discovered `issuer` equals the configured one exactly.
                let metadata = CoreProviderMetadata::discover_async(issuer_url, &http)
                    .await
                    .map_err(|e| format!("discovery: {e}"))?;
                (
                    metadata.jwks_uri().clone(),
                    Instant::now(),
                    metadata.id_token_signing_alg_values_supported().clone(),
                    metadata.jwks().keys().clone(),
                )
            }
        };
        let now = Instant::now();
        let prepared = keys.iter().map(FastKey::from_jwk).collect();
        let mut cache = issuer.cache.write().await;
        let changed = cache.as_ref().is_none_or(|c| {
            serde_json::to_value(&c.keys).ok() != serde_json::to_value(&keys).ok() || c.advertised != advertised
        });
        if changed {
            // Tokens verified under the old key set are verified again.
            issuer.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        *cache = Some(KeyCache {
            jwks_url,
            advertised,
            keys,
            prepared,
            discovered_at,
            keys_fetched_at: now,
        });
        Ok(())
    }

    /// For `/health/ready`: fetch any issuer not yet fetched, then report each one.
    pub async fn status(&self) -> Vec<(String, IssuerKind, IssuerStatus)> {
        let mut out = Vec::new();
        for issuer in &self.issuers {
            let known = issuer.cache.read().await.as_ref().map(|c| c.keys.len());
            let status = match known {
                Some(keys) => IssuerStatus::Up { keys },
                None => match self.refresh(issuer).await {
                    Ok(()) => IssuerStatus::Up {
                        keys: issuer.cache.read().await.as_ref().map_or(0, |c| c.keys.len()),
                    },
                    Err(AuthError::IssuerUnavailable(error)) => IssuerStatus::Down(error),
                    Err(other) => IssuerStatus::Down(other.to_string()),
                },
            };
            out.push((issuer.settings.name.clone(), issuer.settings.kind, status));
        }
        out
    }
}

/// The position of the key a token names (or the only usable one when it names none).
fn select_key(keys: &[CoreJsonWebKey], kid: Option<&str>, alg: &CoreJwsSigningAlgorithm) -> Option<usize> {
    let usable = |k: &&CoreJsonWebKey| {
        // Encryption keys are never used to verify signatures.
        !matches!(k.key_use(), Some(u) if serde_json::to_value(u).ok() != Some(Value::String("sig".into())))
            && k.hash_bytes(b"", alg).is_ok()
    };
    let mut usable_keys = keys.iter().enumerate().filter(|(_, k)| usable(k));
    match kid {
        Some(kid) => usable_keys
            .find(|(_, k)| k.key_id().map(|id| id.as_str()) == Some(kid))
            .map(|(i, _)| i),
        None => {
            let candidates: Vec<usize> = usable_keys.map(|(i, _)| i).collect();
            // Without a kid, only an unambiguous key set can be used.
            match candidates.as_slice() {
                [only] => Some(*only),
                _ => None,
            }
        }
    }
}

/// Sends an `openidconnect` request with `client` (no redirects, timeouts), reading at most
/// `MAX_DOCUMENT_BYTES` of the answer.
pub async fn send(client: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HttpClientError> {
    let request = reqwest::Request::try_from(request)?;
    let response = client.execute(request).await?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(HttpClientError::TooLarge);
    }
    Ok(builder.body(body.to_vec())?)
}

/// Subjects and client ids are kept in the audit trail and request-id scopes: 255 bytes is more
/// than any identity provider issues.
const MAX_CLAIM_BYTES: usize = 255;
/// More roles than any staff member holds is not a token to act on.
const MAX_ROLES: usize = 64;

/// A string claim; one holding control characters counts as absent (a subject or client id
/// ends up in the audit trail and in request-id scopes).
fn string_claim<'a>(claims: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_BYTES && forbidden_character(s).is_none())
}

fn principal_from_claims(
    kind: IssuerKind,
    iss: &str,
    claims: &serde_json::Map<String, Value>,
) -> Result<Principal, AuthError> {
    let sub = string_claim(claims, "sub").ok_or_else(|| invalid("token has no subject"));
    match kind {
        IssuerKind::Staff => {
            let roles: Vec<NrbacRole> = claims
                .get("nhsid_nrbac_roles")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|_| invalid("nhsid_nrbac_roles is malformed"))?
                .unwrap_or_default();
            let roles: Vec<RoleAssignment> = roles
                .into_iter()
                .filter_map(|r| {
                    Some(RoleAssignment {
                        organisation: OdsCode::parse(&r.org_code).ok()?,
                        role: r
                            .role_code
                            .filter(|c| !c.is_empty() && c.len() <= 64 && forbidden_character(c).is_none()),
                    })
                })
                .collect();
            if roles.len() > MAX_ROLES {
                return Err(invalid("staff token carries too many roles"));
            }
            if roles.is_empty() {
                return Err(invalid(
                    "staff token carries no organisation (nhsid_nrbac_roles[].org_code)",
                ));
            }
            Ok(Principal::Staff(StaffPrincipal {
                issuer: iss.to_owned(),
                subject: sub?.to_owned(),
                roles,
            }))
        }
        IssuerKind::System => {
            let client_id = string_claim(claims, "client_id")
                .or_else(|| string_claim(claims, "azp"))
                .map(str::to_owned)
                .or_else(|| sub.ok().map(str::to_owned))
                .ok_or_else(|| invalid("system token has no client_id or subject"))?;
            let scopes = string_claim(claims, "scope")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            Ok(Principal::System(SystemPrincipal {
                issuer: iss.to_owned(),
                client_id,
                scopes,
            }))
        }
        IssuerKind::Patient => {
            let nhs_number = string_claim(claims, "nhs_number")
                .ok_or_else(|| invalid("patient token has no nhs_number"))
                .and_then(|n| {
                    NhsNumber::parse(n).map_err(|_| invalid("patient token nhs_number is not a valid NHS number"))
                })?;
            let proofing_level = string_claim(claims, "identity_proofing_level")
                .and_then(ProofingLevel::parse)
                .ok_or_else(|| invalid("patient token identity_proofing_level must be P0, P5 or P9"))?;
            let gp_ods_code = claims
                .get("gp_registration_details")
                .cloned()
                .and_then(|v| serde_json::from_value::<GpRegistrationDetails>(v).ok())
                .and_then(|d| d.gp_ods_code)
                .and_then(|c| OdsCode::parse(&c).ok());
            let vot = string_claim(claims, "vot").map(str::to_owned);
            // The vector of trust must agree with the proofing level it claims to carry.
            if let Some(v) = &vot
                && v.split('.').next() != Some(proofing_level.as_str())
            {
                return Err(invalid("patient token vot does not match its identity_proofing_level"));
            }
            let sub = sub?.to_owned();
            // Delegation: `act` names the person acting (the proxy); `sub` and `nhs_number` are the
            // patient the token was issued for.
            let (subject, nhs_number, delegated_for) = match claims.get("act") {
                None => (sub, nhs_number, None),
                Some(Value::Object(act)) => {
                    let proxy_sub = string_claim(act, "sub").ok_or_else(|| invalid("act has no sub"))?;
                    let proxy_nhs = string_claim(act, "nhs_number")
                        .ok_or_else(|| invalid("act has no nhs_number"))
                        .and_then(|n| {
                            NhsNumber::parse(n).map_err(|_| invalid("act nhs_number is not a valid NHS number"))
                        })?;
                    if proxy_nhs == nhs_number {
                        return Err(invalid("a delegated token cannot act for its own subject"));
                    }
                    (
                        proxy_sub.to_owned(),
                        proxy_nhs,
                        Some(Delegation {
                            subject: sub,
                            nhs_number,
                        }),
                    )
                }
                Some(_) => return Err(invalid("act must be an object")),
            };
            Ok(Principal::Patient(PatientPrincipal {
                issuer: iss.to_owned(),
                subject,
                nhs_number,
                proofing_level,
                vot,
                gp_ods_code,
                birthdate: string_claim(claims, "birthdate")
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                family_name: string_claim(claims, "family_name").map(str::to_owned),
                delegated_for,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;

    use super::*;

    fn verifier() -> TokenVerifier {
        let _ = rustls::crypto::ring::default_provider().install_default();
        TokenVerifier::new(&crate::config::Settings::default().auth).unwrap()
    }

    /// The registered-claims check on a token issued now and living `lifetime` seconds.
    fn lifetime_check(verifier: &TokenVerifier, lifetime: i64) -> Result<(), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({"aud": verifier.client_id, "iat": now, "exp": now + lifetime});
        let Value::Object(claims) = claims else { unreachable!() };
        verifier.check_registered_claims(&claims)
    }

    #[test]
    fn a_token_may_live_an_hour_and_the_leeway_but_no_longer() {
        let verifier = verifier();
        assert!(lifetime_check(&verifier, 300).is_ok());
        assert!(lifetime_check(&verifier, 3600).is_ok(), "NHS login's one-hour tokens");
        assert!(lifetime_check(&verifier, 3600 + 30).is_ok(), "within the leeway");
        assert!(lifetime_check(&verifier, 3600 + 31).is_err());
        let ten_years = 10 * 365 * 24 * 3600;
        assert!(
            lifetime_check(&verifier, ten_years).is_err_and(|e| e.to_string().contains("lifetime")),
            "a ten-year token is refused"
        );
    }

    #[test]
    fn the_maximum_lifetime_is_the_configured_one() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut settings = crate::config::Settings::default().auth;
        settings.max_token_lifetime_seconds = 600;
        settings.leeway_seconds = 0;
        let verifier = TokenVerifier::new(&settings).unwrap();
        assert!(lifetime_check(&verifier, 600).is_ok());
        assert!(lifetime_check(&verifier, 601).is_err());
        assert!(lifetime_check(&verifier, 3600).is_err());
    }

    #[test]
    fn extreme_times_are_refused_without_overflowing() {
        let verifier = verifier();
        for (iat, exp) in [(i64::MIN, i64::MAX), (0, i64::MAX), (i64::MIN, 0)] {
            let claims = serde_json::json!({"aud": verifier.client_id, "iat": iat, "exp": exp});
            let Value::Object(claims) = claims else { unreachable!() };
            assert!(verifier.check_registered_claims(&claims).is_err(), "{iat} {exp}");
        }
    }

    fn part() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,40}",
            "[A-Za-z0-9_-]{0,60}",
            (
                proptest::sample::select(vec!["RS256", "RS512", "none", "HS256", "ES256", "", "RS5\u{0}12"]),
                "\\PC{0,10}",
                "[a-z:/.]{0,30}"
            )
                .prop_map(|(alg, kid, iss)| URL_SAFE_NO_PAD
                    .encode(serde_json::json!({"alg": alg, "kid": kid, "typ": "JWT", "iss": iss}).to_string())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_token_is_refused_without_panicking(
            header in part(),
            payload in part(),
            signature in "[A-Za-z0-9_=.-]{0,40}",
            dots in 0usize..5,
        ) {
            let token = match dots {
                0 => header.clone(),
                1 => format!("{header}.{payload}"),
                2 => format!("{header}.{payload}.{signature}"),
                _ => format!("{header}.{payload}.{signature}{}", ".".repeat(dots - 2)),
            };
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let verifier = verifier();
            prop_assert!(runtime.block_on(verifier.verify(&token)).is_err());
        }
    }
}
