//! The development identity provider: a real OpenID Connect provider (discovery, JWKS, RS512
//! signed tokens) for three realms: `staff` (CIS2-like), `patient` (NHS login-like) and
//! `system` (client credentials). Its signing key lives in the data directory so that
//! `dev-token`, run as another process, signs tokens the running dev gateway accepts.

use std::path::{Path, PathBuf};

use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use openidconnect::{JsonWebKeyId, JsonWebKeySet, PrivateSigningKey};
use serde_json::{Value, json};

use crate::config::{IssuerKind, IssuerSettings};

pub const REALMS: [IssuerKind; 3] = [IssuerKind::Staff, IssuerKind::Patient, IssuerKind::System];
const KEY_FILE: &str = "dev-idp-signing-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("dev identity provider key at {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The provider's signing key and the base URL its issuers live under.
pub struct DevIdentityProvider {
    key: CoreRsaPrivateSigningKey,
    kid: String,
    base_url: String,
}

impl DevIdentityProvider {
    /// Loads the signing key from `data_dir`, creating it on first use.
    pub fn load_or_create(data_dir: &Path, base_url: &str) -> Result<Self, DevIdpError> {
        let path = data_dir.join(KEY_FILE);
        let err = |message: String| DevIdpError::Key {
            path: path.clone(),
            message,
        };
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
                let pem = generate_pem().map_err(err)?;
                write_private(&path, &pem).map_err(|e| err(e.to_string()))?;
                pem
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Self::from_pem(&pem, base_url).map_err(err)
    }

    pub fn from_pem(pem: &str, base_url: &str) -> Result<Self, String> {
        use sha2::Digest;
        // The key id is a fingerprint of the key, so a replaced key gets a new kid.
        let kid = URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(pem.as_bytes())[..12]);
        let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.clone())))?;
        Ok(Self {
            key,
            kid,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn issuer(&self, realm: IssuerKind) -> String {
        issuer_url(&self.base_url, realm)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` with RS512, adding `iss`, `iat`, `exp`, `jti` and the audience.
    pub fn mint(
        &self,
        realm: IssuerKind,
        audience: &str,
        lifetime_seconds: i64,
        claims: &Value,
    ) -> Result<String, DevIdpError> {
        let now = chrono::Utc::now().timestamp();
        let mut body = claims.as_object().cloned().unwrap_or_default();
        body.insert("iss".into(), json!(self.issuer(realm)));
        body.entry("aud").or_insert_with(|| json!(audience));
        body.entry("iat").or_insert_with(|| json!(now));
        body.entry("exp").or_insert_with(|| json!(now + lifetime_seconds));
        body.entry("jti")
            .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        sign_jwt(
            &self.key,
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            "RS512",
            Some(&self.kid),
            &Value::Object(body),
        )
    }

    fn jwks(&self) -> Value {
        serde_json::to_value(JsonWebKeySet::new(vec![self.key.as_verification_key()])).unwrap_or(Value::Null)
    }

    fn discovery(&self, realm: IssuerKind) -> Value {
        let issuer = self.issuer(realm);
        // People sign in to the staff and patient realms; systems hold client credentials.
        let (grants, client_auth, scopes) = if realm == IssuerKind::System {
            (
                json!(["client_credentials"]),
                json!(["client_secret_basic", "client_secret_post"]),
                json!([
                    "identity:verify-linkage",
                    "identity:link",
                    "identity:register",
                    "supplier:events",
                    "operations:transitions",
                    "proxy:read",
                    "proxy:write"
                ]),
            )
        } else {
            (
                json!(["authorization_code"]),
                json!(["none", "private_key_jwt"]),
                json!(["openid", "profile", "nhs_number", "gp_registration_details"]),
            )
        };
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{}/dev-idp/token", self.base_url),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS512"],
            "token_endpoint_auth_methods_supported": client_auth,
            "grant_types_supported": grants,
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": scopes,
            "claims_supported": [
                "sub", "nhs_number", "identity_proofing_level", "vot", "birthdate", "family_name",
                "email", "gp_registration_details", "gp_integration_credentials", "nhsid_nrbac_roles"
            ]
        })
    }
}

pub fn issuer_url(base_url: &str, realm: IssuerKind) -> String {
    format!("{}/dev-idp/{}", base_url.trim_end_matches('/'), realm.as_str())
}

/// The issuers the dev profile trusts: one per realm of the provider running at `base_url`.
pub fn issuers(base_url: &str) -> Vec<IssuerSettings> {
    REALMS
        .iter()
        .map(|realm| IssuerSettings {
            name: format!("dev-{}", realm.as_str()),
            kind: *realm,
            issuer: issuer_url(base_url, *realm),
            algorithms: vec!["RS512".into()],
        })
        .collect()
}

/// Builds a compact JWS. Public so tests can forge tokens with other keys and algorithms.
pub fn sign_jwt<K: PrivateSigningKey<VerificationKey = openidconnect::core::CoreJsonWebKey>>(
    key: &K,
    alg: &CoreJwsSigningAlgorithm,
    alg_name: &str,
    kid: Option<&str>,
    claims: &Value,
) -> Result<String, DevIdpError> {
    let mut header = json!({"alg": alg_name, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key
        .sign(alg, input.as_bytes())
        .map_err(|e| DevIdpError::Signing(e.to_string()))?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A new 2048-bit RSA key as PKCS#1 PEM.
pub fn generate_pem() -> Result<String, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| e.to_string())?;
    key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| e.to_string())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

fn realm(name: &str) -> Option<IssuerKind> {
    REALMS.into_iter().find(|r| r.as_str() == name)
}

async fn discovery(idp: web::Data<DevIdentityProvider>, path: web::Path<String>) -> HttpResponse {
    match realm(&path) {
        Some(r) => HttpResponse::Ok().json(idp.discovery(r)),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn jwks(idp: web::Data<DevIdentityProvider>, path: web::Path<String>) -> HttpResponse {
    match realm(&path) {
        Some(_) => HttpResponse::Ok().json(idp.jwks()),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Mounts the provider's public endpoints (discovery and key sets) under `/dev-idp`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/dev-idp/{realm}/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/dev-idp/{realm}/jwks", web::get().to(jwks));
}
