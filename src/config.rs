//! Typed, layered configuration: built-in defaults, then an optional TOML file
//! (`GATEWAY_CONFIG`, or `gateway.toml` when present), then `GATEWAY_*` environment variables
//! (`__` separates nested keys, e.g. `GATEWAY_AUTH__CLIENT_ID`), then `DATABASE_URL`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerKind {
    /// Practice staff (CIS2-like): an ODS organisation claim and roles.
    Staff,
    /// Supplier systems and identity providers using client credentials.
    System,
    /// NHS login-like patient identity.
    Patient,
}

impl IssuerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::System => "system",
            Self::Patient => "patient",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// A short name used in logs, metrics and health output.
    pub name: String,
    pub kind: IssuerKind,
    /// The issuer identifier exactly as it appears in `iss`; discovery is fetched from
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// JWS algorithms accepted from this issuer. `none` and HMAC are never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS512".into(), "RS256".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Our client id: every token's `aud` must contain it.
    pub client_id: String,
    /// Clock skew allowed on `exp`, `iat` and `nbf`.
    pub leeway_seconds: u64,
    /// The longest lifetime (`exp - iat`) a token may have, before the leeway is added. NHS
    /// login issues one-hour access tokens: a token that claims to live for years was not
    /// issued by a flow the gateway trusts, or would outlive any revocation.
    pub max_token_lifetime_seconds: u64,
    /// A JWKS is refetched for an unknown `kid` at most once per this interval.
    pub jwks_min_refresh_seconds: u64,
    /// Discovery documents and key sets are refreshed after this long even without an unknown `kid`.
    pub discovery_ttl_seconds: u64,
    /// Timeout for discovery and JWKS requests.
    pub http_timeout_seconds: u64,
    /// Trusted issuers. Empty means the dev profile (refused in production).
    pub issuers: Vec<IssuerSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout_seconds: u64,
    /// Answers of the hot reads kept, per kind (records by id, tokens' bindings, proxies'
    /// roles...); 0 keeps none.
    pub read_cache_entries: usize,
    /// The longest a kept answer is given out, whatever is heard of writes; 0 keeps none.
    pub read_cache_seconds: u64,
    /// PostgreSQL: each session of the gateway's asks the operating system to write out its
    /// writes every so many kB (`backend_flush_after`), so that they do not go out in bursts
    /// that stall commits; 0 leaves the server's setting.
    pub backend_flush_after_kb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Requests per minute allowed per client address.
    pub rate_limit_per_minute: u32,
    /// Load balancers and reverse proxies in front of the gateway (addresses or CIDR ranges):
    /// from these the client's address is read from `X-Forwarded-For`. Empty: the peer is the
    /// client.
    pub trusted_proxies: Vec<String>,
    /// Origins allowed for CORS. Empty means CORS is off.
    pub cors_allowed_origins: Vec<String>,
    /// How long a completed write is remembered for `X-Request-ID` replay.
    pub idempotency_ttl_hours: u64,
    pub workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// `tracing` filter directives, e.g. `info` or `gp_online_gateway=debug,info`.
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierSettings {
    /// Base URL of the EMIS-like system. Unset in the dev profile: an in-process simulator runs.
    pub emis_url: Option<String>,
    /// Base URL of the TPP-like system. Unset in the dev profile: an in-process simulator runs.
    pub tpp_url: Option<String>,
    /// Timeout for one supplier HTTP request.
    pub timeout_seconds: u64,
    /// Timeout for a read made on a patient's request (the record): the answer is 504 after it.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// The largest answer taken from a supplier for a read; a larger one is refused (502).
    #[serde(default = "default_max_reply_bytes")]
    pub max_reply_bytes: usize,
    /// Outbox workers per gateway instance.
    pub workers: usize,
    /// Attempts before a job is dead-lettered (it stays visible as a failed Task and can be retried).
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_seconds: u64,
    /// How long a claimed job belongs to its worker; a worker that dies loses it after this.
    pub lease_seconds: u64,
    /// How often idle workers look for due jobs (new jobs wake them at once).
    pub poll_interval_ms: u64,
    /// Where the in-process EMIS-like simulator listens when `emis_url` is unset: a fixed port,
    /// so fault-injection URLs stay valid across restarts (port 0 picks a free one).
    #[serde(default = "default_emis_simulator")]
    pub simulator_emis_bind: SocketAddr,
    /// Where the in-process TPP-like simulator listens when `tpp_url` is unset.
    #[serde(default = "default_tpp_simulator")]
    pub simulator_tpp_bind: SocketAddr,
}

fn default_read_timeout() -> u64 {
    5000
}

fn default_max_reply_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_emis_simulator() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8091))
}

fn default_tpp_simulator() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8092))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Serve the practice console at `/console/`.
    pub enabled: bool,
    /// The client id the console signs staff in with at the staff issuer (authorization code
    /// with PKCE). In the dev profile the dev identity provider knows it.
    pub client_id: String,
    /// The client's secret, where the staff issuer registers the console as a confidential
    /// client; without one the console is a public client and PKCE alone protects the code.
    pub client_secret: Option<String>,
    /// A session unused for this long ends; the member of staff signs in again.
    pub idle_timeout_minutes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// NHS login vectors of trust accepted from patient tokens. A token whose `vot` is not listed
    /// is refused whatever its proofing level says.
    pub accepted_vot: Vec<String>,
    /// Minimum identity proofing level per endpoint policy (`patient-record`, `my-access`).
    /// Values may be raised, never lowered below the rule (P9 clinical, P5 patient-identifiable).
    pub minimum_assurance: std::collections::BTreeMap<String, String>,
    /// Failed `$verify-linkage` attempts per Account ID before it is locked.
    pub linkage_max_failures: u32,
    /// How long failures are counted, and how long a lock lasts.
    pub linkage_lockout_minutes: u64,
    /// Proxy access requests (`POST /QuestionnaireResponse`) one person may submit in 24 hours.
    pub access_requests_per_day: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSettings {
    /// CIS2-like role codes and the permissions each grants (read, register, change-access,
    /// complete-reviews, retry-tasks, edit-practice, read-audit). A token's full role code
    /// (`S8000:G8000:R8000`) matches an entry for itself or for its last part (`R8000`).
    pub staff_roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// How long a request waits for its audit event to be committed before it is refused with
    /// 503. Nothing is returned or changed until its decision is on record.
    pub commit_timeout_ms: u64,
    /// Events waiting to be written; beyond this, requests are refused with 503 at once.
    pub queue_capacity: usize,
    /// Months of the trail kept in the database besides the current one; `audit retain` drops
    /// older events once they are archived. Unset: everything is kept.
    #[serde(default)]
    pub retention_months: Option<u32>,
    /// AuditEvents per file of a bulk export (`GET /AuditEvent/$export`).
    pub export_file_events: u32,
    /// The most events one bulk export may hold: a period holding more fails, naming the
    /// limit, so that the database never keeps more than this for one export.
    pub export_max_events: u32,
    /// Hours a bulk export and its files are kept: from the kick-off, and again from when it
    /// completes. Then they are removed and the status and file URLs answer 404.
    pub export_expiry_hours: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    /// Base64 of 32 random bytes; encrypts linkage keys at rest. Required in production; the dev
    /// profile creates one in the data directory.
    pub linkage_key_encryption_key: Option<String>,
    /// Keys that sealed linkage keys before the current one: kept only to open them until
    /// `reencrypt-secrets` has sealed them again with the current key.
    #[serde(default)]
    pub previous_linkage_key_encryption_keys: Vec<String>,
    /// Base64 of at least 32 random bytes; signs the audit trail's chain anchors and heads. The
    /// same on every instance, and kept out of the database. Required in production.
    pub audit_chain_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub env: Environment,
    pub bind: SocketAddr,
    /// The externally visible base URL (used in `Location`, `fullUrl` and paging links).
    /// Defaults to `http://{bind}`.
    pub public_url: Option<Url>,
    /// Where the dev profile keeps its SQLite file and signing key.
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub suppliers: SupplierSettings,
    pub secrets: SecretSettings,
    pub identity: IdentitySettings,
    pub access: AccessSettings,
    pub console: ConsoleSettings,
    pub audit: AuditSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: Environment::Development,
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database: DatabaseSettings {
                url: "sqlite://data/gateway.db".into(),
                pool_size: 8,
                connect_timeout_seconds: 5,
                read_cache_entries: 16_384,
                read_cache_seconds: 5,
                backend_flush_after_kb: 256,
            },
            auth: AuthSettings {
                client_id: "gp-online-gateway".into(),
                leeway_seconds: 30,
                max_token_lifetime_seconds: 3600,
                jwks_min_refresh_seconds: 30,
                discovery_ttl_seconds: 3600,
                http_timeout_seconds: 5,
                issuers: vec![],
            },
            http: HttpSettings {
                body_limit_bytes: 64 * 1024,
                rate_limit_per_minute: 1200,
                trusted_proxies: vec![],
                cors_allowed_origins: vec![],
                idempotency_ttl_hours: 24,
                workers: 2,
            },
            log: LogSettings {
                format: LogFormat::Pretty,
                filter: "info".into(),
            },
            suppliers: SupplierSettings {
                emis_url: None,
                tpp_url: None,
                timeout_seconds: 10,
                read_timeout_ms: default_read_timeout(),
                max_reply_bytes: default_max_reply_bytes(),
                workers: 2,
                max_attempts: 12,
                backoff_base_ms: 1000,
                backoff_cap_seconds: 300,
                lease_seconds: 60,
                poll_interval_ms: 1000,
                simulator_emis_bind: default_emis_simulator(),
                simulator_tpp_bind: default_tpp_simulator(),
            },
            secrets: SecretSettings {
                linkage_key_encryption_key: None,
                previous_linkage_key_encryption_keys: Vec::new(),
                audit_chain_key: None,
            },
            console: ConsoleSettings {
                enabled: true,
                client_id: "gp-online-gateway-console".into(),
                client_secret: None,
                idle_timeout_minutes: 15,
            },
            identity: IdentitySettings {
                accepted_vot: [
                    "P9.Cp.Cd", "P9.Cp.Ck", "P9.Cm", "P5.Cp.Cd", "P5.Cp.Ck", "P5.Cm", "P0.Cp.Cd", "P0.Cp.Ck", "P0.Cm",
                    "P0.Cp",
                ]
                .map(String::from)
                .to_vec(),
                minimum_assurance: crate::domain::AssurancePolicy::ALL
                    .iter()
                    .map(|p| (p.name().to_owned(), p.floor().as_str().to_owned()))
                    .collect(),
                linkage_max_failures: 5,
                linkage_lockout_minutes: 15,
                access_requests_per_day: 10,
            },
            access: AccessSettings {
                staff_roles: default_staff_roles(),
            },
            audit: AuditSettings {
                commit_timeout_ms: 5000,
                queue_capacity: 10_000,
                retention_months: None,
                export_file_events: 10_000,
                export_max_events: 1_000_000,
                export_expiry_hours: 24,
            },
        }
    }
}

/// National RBAC access roles and what each may do here. Practices with other local roles
/// configure `access.staff_roles`.
fn default_staff_roles() -> BTreeMap<String, Vec<String>> {
    let table: [(&str, &[&str]); 7] = [
        // Clinical Practitioner Access Role (GPs): everything clinical, and the audit trail.
        (
            "R8000",
            &[
                "read",
                "register",
                "change-access",
                "complete-reviews",
                "retry-tasks",
                "read-audit",
                "manage-proxies",
            ],
        ),
        // Nurse Access Role
        ("R8001", &["read", "register", "change-access"]),
        // Health Professional Access Role
        (
            "R8003",
            &[
                "read",
                "register",
                "change-access",
                "complete-reviews",
                "manage-proxies",
            ],
        ),
        // Healthcare Student Access Role
        ("R8004", &["read"]),
        // Admin/Clinical Support Access Role (practice administrators and managers)
        (
            "R8008",
            &[
                "read",
                "register",
                "change-access",
                "retry-tasks",
                "edit-practice",
                "read-audit",
                "manage-proxies",
            ],
        ),
        // Clerical Access Role (reception): look things up only.
        ("R8010", &["read"]),
        // Health Records Manager Access Role
        ("R8013", &["read", "complete-reviews", "read-audit"]),
    ];
    table
        .iter()
        .map(|(role, permissions)| {
            (
                (*role).to_owned(),
                permissions.iter().map(|p| (*p).to_owned()).collect(),
            )
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(String),
    #[error("configuration is not valid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

const ENV_PREFIX: &str = "GATEWAY_";
const ENV_SEPARATOR: &str = "__";

/// One value that could not be read, named as the operator wrote it: the environment variable,
/// or the key and the file.
fn describe(figment: &Figment, error: &figment::Error) -> String {
    let path = &error.path;
    let key = path.join(".");
    let kind = match &error.kind {
        figment::error::Kind::UnknownField(field, _) => format!("unknown setting `{field}`"),
        kind => kind.to_string(),
    };
    let env_name = Env::prefixed(ENV_PREFIX).metadata().name;
    match figment.find_metadata(&key) {
        Some(m) if m.name == env_name => {
            let var = path
                .iter()
                .map(|k| k.to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(ENV_SEPARATOR);
            format!("{ENV_PREFIX}{var} ({key}): {kind}")
        }
        Some(figment::Metadata {
            source: Some(figment::Source::File(file)),
            ..
        }) => format!("{key} in {}: {kind}", file.display()),
        _ if key.is_empty() => kind,
        _ => format!("{key}: {kind}"),
    }
}

/// Puts the value an error is about back to its default, or removes it when it is unknown; a
/// value with no default of its own (inside a list, a new map entry) takes its nearest
/// ancestor's. Returns whether anything changed.
fn repair(value: &mut figment::value::Value, defaults: &figment::value::Value, error: &figment::Error) -> bool {
    use figment::value::Value;
    fn dict_at<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut figment::value::Dict> {
        let mut at = value;
        for key in path {
            at = match at {
                Value::Dict(_, dict) => dict.get_mut(key)?,
                _ => return None,
            };
        }
        match at {
            Value::Dict(_, dict) => Some(dict),
            _ => None,
        }
    }
    // The path of an unknown key ends with the key itself.
    if let figment::error::Kind::UnknownField(field, _) = &error.kind
        && let Some((_, parent)) = error.path.split_last()
        && let Some(dict) = dict_at(value, parent)
        && dict.remove(field).is_some()
    {
        return true;
    }
    for depth in (1..=error.path.len()).rev() {
        let (parent, last) = error.path[..depth].split_at(depth - 1);
        let Some(default) = defaults.find_ref(&error.path[..depth].join(".")) else {
            continue;
        };
        let Some(dict) = dict_at(value, parent) else {
            continue;
        };
        if dict.get(&last[0]) == Some(default) {
            continue;
        }
        dict.insert(last[0].clone(), default.clone());
        return true;
    }
    false
}

/// Algorithms an asymmetric issuer may be configured with.
pub const SUPPORTED_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl Settings {
    /// How long a request may go unanswered while the database is away: the larger of the
    /// connection and audit commit timeouts. Past it, a request still waiting is answered 503.
    pub fn outage_answer_within(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.database.connect_timeout_seconds)
            .max(std::time::Duration::from_millis(self.audit.commit_timeout_ms))
    }

    /// Loads from the layered sources described at the top of this module.
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let file = std::env::var_os("GATEWAY_CONFIG").map(PathBuf::from);
        match &file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Load(format!(
                    "GATEWAY_CONFIG names {}, which does not exist",
                    path.display()
                )));
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new("gateway.toml").exists() => figment = figment.merge(Toml::file("gateway.toml")),
            None => {}
        }
        figment =
            figment.merge(Env::prefixed(ENV_PREFIX).ignore(&["CONFIG"]).split(ENV_SEPARATOR).map(
                |k| match k.as_str() {
                    // Friendly flat aliases for the most common settings.
                    "database_url" => "database.url".into(),
                    _ => k.into(),
                },
            ));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(("database.url", url));
        }
        Self::from_figment(&figment)
    }

    /// Extracts and validates the settings, reporting every bad value at once: serde stops at
    /// the first value it cannot read, so each one it stops at is put back to its default (or
    /// dropped, if the key is unknown) and the reading goes on, and the values that could be
    /// read are then validated as usual.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let mut value = figment.find_value("").map_err(|e| ConfigError::Load(e.to_string()))?;
        let defaults = Figment::from(Serialized::defaults(Settings::default()))
            .find_value("")
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let mut problems = Vec::new();
        let settings = loop {
            match Figment::from(Serialized::defaults(&value)).extract::<Settings>() {
                Ok(settings) => break Some(settings),
                Err(errors) => {
                    let mut repaired = false;
                    for error in errors {
                        problems.push(describe(figment, &error));
                        repaired |= repair(&mut value, &defaults, &error);
                    }
                    // Every pass repairs at least one value, so this ends; a value that cannot
                    // be repaired ends it early with what has been found so far.
                    if !repaired || problems.len() > 100 {
                        break None;
                    }
                }
            }
        };
        if let Some(settings) = &settings
            && let Err(ConfigError::Invalid(more)) = settings.validate()
        {
            problems.extend(more);
        }
        match settings {
            Some(settings) if problems.is_empty() => Ok(settings),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// With no trusted issuer configured, the gateway runs its development profile.
    pub fn is_dev_profile(&self) -> bool {
        self.auth.issuers.is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.env == Environment::Production && self.is_dev_profile() {
            problems.push(
                "GATEWAY_ENV=production needs at least one trusted issuer (auth.issuers); the dev profile and its built-in identity provider are refused in production".to_owned(),
            );
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite://") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            problems.push("database.url (DATABASE_URL) must start with sqlite:// or postgres://".to_owned());
        }
        if self.env == Environment::Production && db.starts_with("sqlite://") {
            problems.push("database.url: production runs on PostgreSQL (postgres://...)".to_owned());
        }
        if !(1..=256).contains(&self.database.pool_size) {
            problems.push("database.pool_size must be between 1 and 256".to_owned());
        }
        if self.database.connect_timeout_seconds == 0 {
            problems.push("database.connect_timeout_seconds must be at least 1".to_owned());
        }
        if self.database.read_cache_entries > 1_000_000 {
            problems.push("database.read_cache_entries must be at most 1000000".to_owned());
        }
        if self.database.backend_flush_after_kb > 2048 {
            problems.push("database.backend_flush_after_kb must be at most 2048 (PostgreSQL's limit, 2 MB)".to_owned());
        }
        if self.database.read_cache_seconds > 60 {
            problems.push("database.read_cache_seconds must be at most 60".to_owned());
        }
        if self.auth.client_id.trim().is_empty() {
            problems.push("auth.client_id must not be empty".to_owned());
        }
        if self.auth.leeway_seconds > 300 {
            problems.push("auth.leeway_seconds must be at most 300".to_owned());
        }
        if !(60..=86_400).contains(&self.auth.max_token_lifetime_seconds) {
            problems.push("auth.max_token_lifetime_seconds must be between 60 and 86400 (one day)".to_owned());
        }
        if self.auth.http_timeout_seconds == 0 || self.auth.http_timeout_seconds > 60 {
            problems.push("auth.http_timeout_seconds must be between 1 and 60".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for (i, issuer) in self.auth.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}] ({})", issuer.name);
            if issuer.name.trim().is_empty() || !names.insert(issuer.name.clone()) {
                problems.push(format!("{at}: name must be present and unique"));
            }
            match Url::parse(&issuer.issuer) {
                Ok(url) => {
                    let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
                    if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                        problems.push(format!(
                            "{at}: issuer must use https (http is allowed only on loopback)"
                        ));
                    }
                }
                Err(e) => problems.push(format!("{at}: issuer is not a URL: {e}")),
            }
            if issuer.algorithms.is_empty() {
                problems.push(format!("{at}: algorithms must not be empty"));
            }
            for alg in &issuer.algorithms {
                if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                    problems.push(format!(
                        "{at}: algorithm {alg:?} is not accepted (allowed: {}; none and HMAC are never accepted)",
                        SUPPORTED_ALGORITHMS.join(", ")
                    ));
                }
            }
        }
        if self.http.body_limit_bytes < 1024 || self.http.body_limit_bytes > 16 * 1024 * 1024 {
            problems.push("http.body_limit_bytes must be between 1024 and 16777216".to_owned());
        }
        if !(1..=480).contains(&self.console.idle_timeout_minutes) {
            problems.push("console.idle_timeout_minutes must be 1 to 480".to_owned());
        }
        if self.console.client_id.is_empty() {
            problems.push("console.client_id must not be empty".to_owned());
        }
        if self.http.rate_limit_per_minute == 0 {
            problems.push("http.rate_limit_per_minute must be at least 1".to_owned());
        }
        if let Err(e) = crate::ratelimit::forwarded::TrustedProxies::parse(&self.http.trusted_proxies) {
            problems.push(format!("http.trusted_proxies: {e}"));
        }
        if !(1..=64).contains(&self.http.workers) {
            problems.push("http.workers must be between 1 and 64".to_owned());
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            problems.push("public_url must be an http or https URL".to_owned());
        }
        let sup = &self.suppliers;
        for (name, url) in [
            ("suppliers.emis_url", &sup.emis_url),
            ("suppliers.tpp_url", &sup.tpp_url),
        ] {
            match url {
                Some(u)
                    if Url::parse(u)
                        .map(|u| !matches!(u.scheme(), "http" | "https"))
                        .unwrap_or(true) =>
                {
                    problems.push(format!("{name} must be an http or https URL"));
                }
                None if self.env == Environment::Production => {
                    problems.push(format!("{name} is required in production"));
                }
                _ => {}
            }
        }
        if !(1..=120).contains(&sup.timeout_seconds) {
            problems.push("suppliers.timeout_seconds must be between 1 and 120".to_owned());
        }
        if !(100..=60_000).contains(&sup.read_timeout_ms) {
            problems.push("suppliers.read_timeout_ms must be between 100 and 60000".to_owned());
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&sup.max_reply_bytes) {
            problems.push("suppliers.max_reply_bytes must be between 65536 and 268435456".to_owned());
        }
        if !(1..=32).contains(&sup.workers) {
            problems.push("suppliers.workers must be between 1 and 32".to_owned());
        }
        if !(1..=1000).contains(&sup.max_attempts) {
            problems.push("suppliers.max_attempts must be between 1 and 1000".to_owned());
        }
        if sup.backoff_base_ms == 0 || sup.backoff_cap_seconds == 0 {
            problems.push("suppliers.backoff_base_ms and suppliers.backoff_cap_seconds must be positive".to_owned());
        }
        // A job makes up to three supplier calls; its lease must outlast them.
        if sup.lease_seconds < 3 * sup.timeout_seconds + 1 {
            problems.push("suppliers.lease_seconds must be more than three times suppliers.timeout_seconds".to_owned());
        }
        if !(10..=60_000).contains(&sup.poll_interval_ms) {
            problems.push("suppliers.poll_interval_ms must be between 10 and 60000".to_owned());
        }
        match &self.secrets.audit_chain_key {
            Some(k)
                if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, k.trim())
                    .map_or(true, |b| b.len() < 32) =>
            {
                problems.push("secrets.audit_chain_key must be base64 of at least 32 bytes".to_owned());
            }
            None if self.env == Environment::Production => {
                problems.push("secrets.audit_chain_key is required in production".to_owned());
            }
            _ => {}
        }
        match &self.secrets.linkage_key_encryption_key {
            Some(k) if crate::crypto::SecretBox::from_base64(k).is_err() => {
                problems.push("secrets.linkage_key_encryption_key must be base64 of exactly 32 bytes".to_owned());
            }
            None if self.env == Environment::Production => {
                problems.push("secrets.linkage_key_encryption_key is required in production".to_owned());
            }
            _ => {}
        }
        for (i, k) in self.secrets.previous_linkage_key_encryption_keys.iter().enumerate() {
            if crate::crypto::SecretBox::from_base64(k).is_err() {
                problems.push(format!(
                    "secrets.previous_linkage_key_encryption_keys[{i}] must be base64 of exactly 32 bytes"
                ));
            }
        }
        for vot in &self.identity.accepted_vot {
            if !crate::domain::vot_is_well_formed(vot) {
                problems.push(format!(
                    "identity.accepted_vot: {vot:?} is not a vector of trust such as P9.Cp.Cd"
                ));
            }
        }
        for (name, level) in &self.identity.minimum_assurance {
            match (
                crate::domain::AssurancePolicy::parse(name),
                crate::domain::ProofingLevel::parse(level),
            ) {
                (None, _) => problems.push(format!(
                    "identity.minimum_assurance: unknown policy {name:?} (known: {})",
                    crate::domain::AssurancePolicy::ALL.map(|p| p.name()).join(", ")
                )),
                (_, None) => problems.push(format!(
                    "identity.minimum_assurance.{name}: {level:?} is not P0, P5 or P9"
                )),
                (Some(p), Some(l)) if l < p.floor() => problems.push(format!(
                    "identity.minimum_assurance.{name} cannot be below {} ({})",
                    p.floor().as_str(),
                    p.why()
                )),
                _ => {}
            }
        }
        if self.identity.linkage_max_failures == 0 || self.identity.linkage_lockout_minutes == 0 {
            problems
                .push("identity.linkage_max_failures and identity.linkage_lockout_minutes must be positive".to_owned());
        }
        if self.identity.access_requests_per_day == 0 {
            problems.push("identity.access_requests_per_day must be positive".to_owned());
        }
        for (role, permissions) in &self.access.staff_roles {
            if role.trim().is_empty() || crate::domain::text::forbidden_character(role).is_some() {
                problems.push(format!("access.staff_roles: {role:?} is not a role code"));
            }
            for p in permissions {
                if crate::domain::policy::Permission::parse(p).is_none() {
                    problems.push(format!(
                        "access.staff_roles.{role}: unknown permission {p:?} (known: {})",
                        crate::domain::policy::Permission::ALL.map(|p| p.name()).join(", ")
                    ));
                }
            }
        }
        if !(100..=60_000).contains(&self.audit.commit_timeout_ms) {
            problems.push("audit.commit_timeout_ms must be between 100 and 60000".to_owned());
        }
        if !(100..=1_000_000).contains(&self.audit.queue_capacity) {
            problems.push("audit.queue_capacity must be between 100 and 1000000".to_owned());
        }
        if self.audit.retention_months.is_some_and(|m| !(1..=1200).contains(&m)) {
            problems.push("audit.retention_months must be between 1 and 1200".to_owned());
        }
        if !(1..=100_000).contains(&self.audit.export_file_events) {
            problems.push("audit.export_file_events must be between 1 and 100000".to_owned());
        }
        if !(1..=100_000_000).contains(&self.audit.export_max_events) {
            problems.push("audit.export_max_events must be between 1 and 100000000".to_owned());
        }
        if !(1..=720).contains(&self.audit.export_expiry_hours) {
            problems.push("audit.export_expiry_hours must be between 1 and 720".to_owned());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.push(format!("log.filter is not a valid filter: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The rules the access-decision engine applies, from this configuration.
    pub fn policy(&self) -> crate::domain::policy::Policy {
        use crate::domain::policy::{Permission, Policy};
        use crate::domain::{AssurancePolicy, ProofingLevel};
        Policy {
            staff_roles: self
                .access
                .staff_roles
                .iter()
                .map(|(role, permissions)| {
                    (
                        role.clone(),
                        permissions.iter().filter_map(|p| Permission::parse(p)).collect(),
                    )
                })
                .collect(),
            accepted_vot: self.identity.accepted_vot.iter().cloned().collect(),
            minimum_assurance: self
                .identity
                .minimum_assurance
                .iter()
                .filter_map(|(name, level)| Some((AssurancePolicy::parse(name)?, ProofingLevel::parse(level)?)))
                .collect(),
        }
    }

    /// The base URL callers see, without a trailing slash.
    pub fn base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_select_the_dev_profile() {
        let s = Settings::default();
        assert!(s.validate().is_ok());
        assert!(s.is_dev_profile());
    }

    #[test]
    fn production_refuses_the_dev_profile_and_sqlite() {
        let s = Settings {
            env: Environment::Production,
            ..Settings::default()
        };
        let Err(ConfigError::Invalid(problems)) = s.validate() else {
            panic!("production dev profile accepted")
        };
        assert!(problems.iter().any(|p| p.contains("dev profile")));
        assert!(problems.iter().any(|p| p.contains("PostgreSQL")));
    }

    fn from_toml(toml: &str) -> Result<Settings, ConfigError> {
        Settings::from_figment(&Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml)))
    }

    #[test]
    fn every_unreadable_value_gets_its_own_message_with_the_valid_ones_checked_too() {
        let Err(ConfigError::Invalid(problems)) = from_toml(
            r#"
            bind = "nonsense"
            [http]
            workers = "abc"
            worker = 3
            [audit]
            commit_timeout_ms = -5
            [database]
            pool_size = 0
            "#,
        ) else {
            panic!("accepted")
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems.iter().any(|p| p.starts_with("bind:")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.starts_with("http.workers:")), "{problems:#?}");
        assert!(
            problems.iter().any(|p| p.starts_with("http.worker: unknown setting")),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("audit.commit_timeout_ms:")),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| p.contains("pool_size")), "{problems:#?}");
    }

    #[test]
    fn an_unreadable_entry_in_a_list_is_reported_and_the_rest_still_read() {
        let Err(ConfigError::Invalid(problems)) = from_toml(
            r#"
            [[auth.issuers]]
            name = "x"
            kind = "nurse"
            issuer = "https://idp.example.org"
            [log]
            format = "xml"
            "#,
        ) else {
            panic!("accepted")
        };
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("nurse")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("xml")), "{problems:#?}");
    }

    #[test]
    fn good_values_load() {
        let s = from_toml("bind = \"127.0.0.1:9000\"\n[http]\nworkers = 4\n").expect("valid");
        assert_eq!(s.http.workers, 4);
        assert_eq!(s.bind.port(), 9000);
    }

    #[test]
    fn every_bad_value_gets_its_own_message() {
        let mut s = Settings::default();
        s.database.pool_size = 0;
        s.auth.max_token_lifetime_seconds = 10 * 365 * 24 * 3600;
        s.auth.issuers.push(IssuerSettings {
            name: "x".into(),
            kind: IssuerKind::Staff,
            issuer: "http://idp.example.org".into(),
            algorithms: vec!["HS256".into(), "none".into()],
        });
        let Err(ConfigError::Invalid(problems)) = s.validate() else {
            panic!("accepted")
        };
        assert!(problems.iter().any(|p| p.contains("pool_size")));
        assert!(problems.iter().any(|p| p.contains("auth.max_token_lifetime_seconds")));
        assert!(problems.iter().any(|p| p.contains("https")));
        assert!(problems.iter().any(|p| p.contains("\"HS256\"")));
        assert!(problems.iter().any(|p| p.contains("\"none\"")));
    }
}
