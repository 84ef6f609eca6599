use std::sync::OnceLock;

use gp_online_gateway::Application;
use gp_online_gateway::config::{IssuerKind, Settings};
use gp_online_gateway::identity::dev_idp::DevIdentityProvider;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One RSA key for the whole test run: generating a key per test would dominate the run time.
pub fn shared_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| gp_online_gateway::identity::dev_idp::generate_pem().expect("key generation"))
}

/// A second key the gateway has never seen, for forged tokens.
pub fn stranger_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| gp_online_gateway::identity::dev_idp::generate_pem().expect("key generation"))
}

pub enum TestDatabase {
    /// Holds the directory so the file lives as long as the test.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        schema: String,
    },
    /// A second handle on a database another `TestDatabase` owns (several gateway instances).
    Shared,
}

impl TestDatabase {
    /// A fresh SQLite file, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set.
    pub fn create() -> (Self, String) {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = gp_online_gateway::db::connect(&admin_url).expect("connect to TEST_DATABASE_URL");
                use diesel::RunQueryDsl;
                diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .expect("create test schema");
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{sep}options=-csearch_path%3D{schema}");
                (Self::Postgres { admin_url, schema }, url)
            }
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                (Self::Sqlite { _dir: dir }, url)
            }
        }
    }

    pub fn shared() -> Self {
        Self::Shared
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, schema } = self
            && let Ok(mut conn) = gp_online_gateway::db::connect(admin_url)
        {
            use diesel::RunQueryDsl;
            let _ = diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE")).execute(&mut conn);
        }
    }
}

pub struct TestApp {
    database_url: String,
    pub base: String,
    /// In-process supplier simulators by flavour ("emis", "tpp").
    pub simulators: Vec<(String, String)>,
    pub stop: actix_web::dev::ServerHandle,
    pub finished: tokio::task::JoinHandle<std::io::Result<()>>,
    pub client: reqwest::Client,
    pub idp: DevIdentityProvider,
    _db: TestDatabase,
    _data: tempfile::TempDir,
}

pub fn test_settings() -> (Settings, TestDatabase, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::write(data.path().join("dev-idp-signing-key.pem"), shared_key_pem()).expect("write key");
    let (db, url) = TestDatabase::create();
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_owned(),
        ..Settings::default()
    };
    settings.database.url = url;
    settings.database.pool_size = 4;
    // Tests run side by side: each gateway's simulators on free ports.
    settings.suppliers.simulator_emis_bind = "127.0.0.1:0".parse().unwrap();
    settings.suppliers.simulator_tpp_bind = "127.0.0.1:0".parse().unwrap();
    settings.http.workers = 1;
    (settings, db, data)
}

impl TestApp {
    /// The dev profile: in-process identity provider and seed data.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customise: impl FnOnce(&mut Settings)) -> Self {
        let (mut settings, db, data) = test_settings();
        customise(&mut settings);
        Self::spawn_on(settings, db, data).await
    }

    /// Starts a gateway on existing settings, database and data directory (restart tests).
    pub async fn spawn_on(settings: Settings, db: TestDatabase, data: tempfile::TempDir) -> Self {
        let database_url = settings.database.url.clone();
        if std::env::var_os("TEST_LOG").is_some() {
            gp_online_gateway::telemetry::init(&gp_online_gateway::config::Settings::default().log);
        }
        let app = Application::build(settings).await.expect("application builds");
        let base = app.base_url().to_owned();
        let simulators = app
            .simulators()
            .map(|(s, url)| (s.as_str().to_owned(), url.to_owned()))
            .collect();
        let stop = app.stop_handle();
        let finished = tokio::spawn(app.run_until_stopped());
        let idp = DevIdentityProvider::from_pem(shared_key_pem(), &base).expect("idp");
        Self {
            database_url,
            base,
            simulators,
            stop,
            finished,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            idp,
            _db: db,
            _data: data,
        }
    }

    /// A token for one of the dev personas, signed by the dev identity provider.
    pub fn token(&self, persona: &str) -> String {
        let p = gp_online_gateway::dev::persona(persona).expect("known persona");
        self.idp.mint(p.realm, "gp-online-gateway", 300, &p.claims()).unwrap()
    }

    /// A token from the dev provider with exactly these extra claims.
    pub fn token_with(&self, realm: IssuerKind, claims: Value) -> String {
        self.idp.mint(realm, "gp-online-gateway", 300, &claims).unwrap()
    }

    /// A practice administrator with a role at each of these practices (moving a record needs
    /// one at both).
    pub fn staff_at(&self, practices: &[&str]) -> String {
        let roles: Vec<Value> = practices
            .iter()
            .map(|ods| json!({"org_code": ods, "role_code": "S8000:G8000:R8008", "role_name": "Admin/Clinical Support Access Role"}))
            .collect();
        self.token_with(
            IssuerKind::Staff,
            json!({"sub": format!("staff-at-{}", practices.join("-")), "name": "Pat Reid", "nhsid_nrbac_roles": roles}),
        )
    }

    /// Stops the server and its workers as a crash would: jobs in flight keep their claim.
    /// Returns the database and data directory for a restart.
    pub async fn kill(self) -> (TestDatabase, tempfile::TempDir) {
        self.stop.stop(false).await;
        let _ = self.finished.await;
        (self._db, self._data)
    }

    /// Settings for a command run beside this gateway: its database and data directory (where
    /// the dev profile keeps its keys).
    pub fn command_settings(&self) -> Settings {
        let mut settings = Settings {
            data_dir: self._data.path().to_owned(),
            ..Settings::default()
        };
        settings.database.url = self.database_url.clone();
        settings
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Whether this gateway's database is SQLite (else PostgreSQL), for tests that write SQL
    /// of their own.
    pub fn on_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite://")
    }

    pub fn simulator(&self, flavour: &str) -> &str {
        &self
            .simulators
            .iter()
            .find(|(f, _)| f == flavour)
            .expect("simulator running")
            .1
    }

    /// Sets a simulator's faults (`down`, `latency_ms`, `error_rate`, `drop_response_rate`,
    /// `malformed_rate`); fields left out stay as they are.
    pub async fn faults(&self, flavour: &str, faults: Value) {
        let r = self
            .client
            .put(format!("{}/admin/faults", self.simulator(flavour)))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "setting faults: {}", r.status());
    }

    /// The body of an unauthenticated GET (metrics, documentation).
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A second gateway on this one's database, with its own port and data directory (holding
    /// the same keys): several instances behind one load balancer.
    pub async fn spawn_beside(&self, settings: &Settings) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        std::fs::write(data.path().join("dev-idp-signing-key.pem"), shared_key_pem()).expect("write key");
        std::fs::copy(
            settings.data_dir.join("linkage-key-encryption.key"),
            data.path().join("linkage-key-encryption.key"),
        )
        .expect("copy the linkage key encryption key");
        let mut second = settings.clone();
        second.data_dir = data.path().to_owned();
        Self::spawn_on(second, TestDatabase::shared(), data).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb
    }

    /// A request to a VRS path (`/Consent`, `/RelatedPerson`, `/QuestionnaireResponse`) with a
    /// fresh `X-Request-ID`, which the VRS spec requires of every call there.
    pub fn vrs(&self, method: Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        self.request(method, path, token)
            .header("x-request-id", uuid::Uuid::new_v4().to_string())
    }

    /// A request as a well-behaved client sends it: on the VRS paths, with a fresh request id.
    fn client_request(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        if is_vrs(path) {
            self.vrs(method, path, Some(token))
        } else {
            self.request(method, path, Some(token))
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        send(self.client_request(Method::GET, path, token)).await
    }

    pub async fn post_fhir(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        send(
            self.client_request(Method::POST, path, token)
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await
    }
}

/// Whether a path (with or without its query) is one of the VRS resources'.
pub fn is_vrs(path: &str) -> bool {
    gp_online_gateway::http::proxy::is_vrs(path.split('?').next().unwrap_or(path))
}

pub async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = rb.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// The gateway error code of an OperationOutcome body.
pub fn outcome_code(body: &Value) -> &str {
    assert_eq!(
        body["resourceType"], "OperationOutcome",
        "not an OperationOutcome: {body}"
    );
    body["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

pub fn new_patient(nhs: &str, family: &str, ods: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"use": "official", "family": family, "given": ["Test"]}],
        "gender": "female",
        "birthDate": "1990-04-02",
        "telecom": [{"system": "email", "value": "test@example.org"}],
        "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}}]
    })
}

/// Valid NHS numbers not used by the seed data.
pub const FREE_NHS_NUMBERS: [&str; 6] = [
    "9990000093",
    "9990000107",
    "9990000115",
    "9990000123",
    "9434765919",
    "9990000298",
];

/// One component's entry in a `/health/ready` answer.
pub fn health_check<'a>(health: &'a Value, component: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["component"] == component))
        .unwrap_or_else(|| panic!("no {component} check in {health}"))
}

/// The audit trail's hash chains verify (as a clinician at Riverside sees them), from the last
/// checkpoint and from the start.
pub async fn assert_trail_verifies(app: &TestApp) {
    for path in ["/AuditEvent/$verify", "/AuditEvent/$verify?mode=full"] {
        let (status, _, verified) = app.get(path, &app.token("clinician-emis")).await;
        assert_eq!(status, StatusCode::OK, "{verified}");
        assert_eq!(
            crate::registration::part(&verified, "valid")["valueBoolean"],
            true,
            "{path}: {verified}"
        );
    }
}

/// Runs a statement on the test's database beside the gateway, as someone with access to the
/// database would.
pub async fn execute_sql(app: &TestApp, sql: impl Into<String>) {
    let url = app.database_url().to_owned();
    let sql = sql.into();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        diesel::sql_query(sql).execute(&mut conn).unwrap();
    })
    .await
    .unwrap();
}

/// How many audit events match this SQL condition.
pub async fn audit_rows(app: &TestApp, filter: impl Into<String>) -> i64 {
    let url = app.database_url().to_owned();
    let filter = filter.into();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM audit_events WHERE {filter}"))
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
    })
    .await
    .unwrap()
}
