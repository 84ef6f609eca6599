//! Building and running the application.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::{Context, bail};
use utoipa_swagger_ui::SwaggerUi;

use std::sync::Arc;

use crate::config::{Environment, Settings};
use crate::crypto::SecretBox;
use crate::db;
use crate::domain::Supplier;
use crate::identity::TokenVerifier;
use crate::identity::dev_idp::{self, DevIdentityProvider};
use crate::metrics::Metrics;
use crate::services::provisioning::Provisioner;
use crate::services::{Clock, Core};
use crate::state::AppState;
use crate::suppliers::SupplierRegistry;
use crate::suppliers::emis::EmisAdapter;
use crate::suppliers::simulator::{self, SimulatorHandle};
use crate::suppliers::tpp::TppAdapter;
use crate::{dev, http};

pub struct Application {
    port: u16,
    base_url: String,
    dev_profile: bool,
    server: Server,
    state: web::Data<AppState>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    simulators: Vec<(Supplier, SimulatorHandle)>,
    /// This instance's name in leases and claims.
    instance: String,
}

impl Application {
    /// Binds the listener (port 0 picks a free port), prepares the database and builds the server.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        // One TLS crypto provider for every outbound client; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        settings.validate()?;
        let listener =
            TcpListener::bind(settings.bind).with_context(|| format!("cannot listen on {}", settings.bind))?;
        let address = listener.local_addr()?;
        let base_url = settings.base_url(address);

        let dev_profile = settings.is_dev_profile();
        let dev_idp = if dev_profile {
            if settings.env == Environment::Production {
                bail!("the dev profile (no trusted issuers configured) is refused when GATEWAY_ENV=production");
            }
            let idp = DevIdentityProvider::load_or_create(&settings.data_dir, &base_url)?;
            settings.auth.issuers = dev_idp::issuers(&base_url);
            Some(web::Data::new(idp))
        } else {
            None
        };

        let pool = db::build_pool(
            &settings.database.url,
            settings.database.pool_size,
            Duration::from_secs(settings.database.connect_timeout_seconds),
            settings.database.backend_flush_after_kb,
        )?;
        let production = settings.env == Environment::Production;
        let supplier_settings = settings.suppliers.clone();
        let seeded = db::run(&pool, move |conn| {
            if production {
                // Production schema changes are a deliberate step: `gp-online-gateway migrate`.
                let pending = match conn {
                    db::DbConnection::Postgres(c) => {
                        diesel_migrations::MigrationHarness::has_pending_migration(c, db::POSTGRES_MIGRATIONS)
                    }
                    db::DbConnection::Sqlite(c) => {
                        diesel_migrations::MigrationHarness::has_pending_migration(c, db::SQLITE_MIGRATIONS)
                    }
                }
                .map_err(|e| db::DbError::Query(e.to_string()))?;
                if pending {
                    return Err(db::DbError::Query(
                        "the database has pending migrations: run `gp-online-gateway migrate` first".into(),
                    ));
                }
                return Ok(false);
            }
            db::run_migrations(conn)?;
            if dev_profile {
                dev::seed(conn, &supplier_settings)
            } else {
                Ok(false)
            }
        })
        .await
        .context("preparing the database")?;
        if seeded {
            tracing::info!("seeded the dev profile's practices and patients");
        }

        let secrets = Arc::new(linkage_key_box(&settings)?);
        let clock = Arc::new(Clock::default());
        let (suppliers, simulators) = supplier_registry(&settings).await?;
        if dev_profile {
            for (supplier, handle) in &simulators {
                dev::records::seed(*supplier, handle);
                dev::records::seed_repeats(*supplier, handle, clock.today());
            }
        }
        let provisioner = Arc::new(Provisioner::new(
            pool.clone(),
            suppliers.clone(),
            secrets.clone(),
            settings.suppliers.clone(),
        ));
        let unfinished = db::run(&pool, db::outbox::count_unfinished).await?;
        if unfinished > 0 {
            tracing::info!(jobs = unfinished, "resuming unfinished provisioning jobs");
        }
        let workers = provisioner.spawn_workers();

        let audit = crate::audit::AuditLog::start(
            pool.clone(),
            audit_chain_key(&settings)?,
            settings.audit.queue_capacity,
            Duration::from_millis(settings.audit.commit_timeout_ms),
        )?;

        let keeping = crate::db::reads::Keeping {
            entries: settings.database.read_cache_entries,
            lifetime: Duration::from_secs(settings.database.read_cache_seconds),
        };
        // Started whether or not reads are kept: it also tells other instances of writes here.
        db::listen_for_changes(&settings.database.url, &pool, keeping.is_on())?;
        let reader = Arc::new(crate::db::reads::ContextReader::start(pool.clone(), keeping)?);
        let metrics = Metrics::new();
        metrics.register(Box::new(reader.answered()));
        let verifier = TokenVerifier::new(&settings.auth).context("building the HTTP client for identity providers")?;
        let console_key = crate::crypto::random_token();
        let state = web::Data::new(AppState {
            console_key: console_key.clone(),
            rate_limiter: crate::ratelimit::RateLimiter::new(settings.http.rate_limit_per_minute),
            trusted_proxies: crate::ratelimit::forwarded::TrustedProxies::parse(&settings.http.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("http.trusted_proxies: {e}"))?,
            core: Core {
                policy: settings.policy(),
                settings: settings.clone(),
                pool,
                reader,
                secrets,
                audit,
                provisioner,
                suppliers,
                clock,
                instance: format!("gateway-{}", uuid::Uuid::new_v4().simple()),
            },
            verifier,
            base_url: base_url.clone(),
            metrics,
        });

        let openapi = http::openapi_for(&settings.auth.issuers);
        let instance = state.core.instance.clone();
        // The first heartbeat is on record before any request can be claimed.
        crate::services::idempotency::heartbeat(&state.core).await?;
        let server_state = state.clone();
        let claims = web::Data::new(http::middleware::ClaimsHere::default());
        let cors_origins = settings.http.cors_allowed_origins.clone();
        let docs_redirect = http::docs_oauth2_redirect(&base_url);
        let dev_login = web::Data::new(
            dev::login::DevLogin::new(&settings.auth.client_id, settings.auth.max_token_lifetime_seconds)
                .with_client(dev::login::DOCS_CLIENT_ID, &docs_redirect)
                .with_client(&settings.console.client_id, &crate::console::callback_url(&base_url)),
        );
        // The console calls this instance's API over loopback, whatever name browsers use.
        let loopback = match address.ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => {
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
            }
            ip if ip.is_unspecified() => std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, address.port())),
            _ => address,
        };
        let console = if settings.console.enabled {
            Some(web::Data::new(crate::console::Console::new(
                &settings,
                &base_url,
                format!("http://{loopback}"),
                console_key,
            )?))
        } else {
            None
        };
        // Swagger UI signs in with the authorization-code flow and PKCE through the issuers the
        // document declares; only the dev provider knows its client, so only there is it given.
        let mut docs_oauth = utoipa_swagger_ui::oauth::Config::new().use_pkce_with_authorization_code_grant(true);
        if dev_profile {
            docs_oauth = docs_oauth.client_id(dev::login::DOCS_CLIENT_ID);
        }
        let docs_config = utoipa_swagger_ui::Config::default()
            .oauth2_redirect_url(docs_redirect)
            .persist_authorization(true);
        let server = HttpServer::new(move || {
            let mut cors = actix_cors::Cors::default()
                .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
                .allow_any_header()
                .expose_headers(["etag", "location", "x-request-id", "x-correlation-id"])
                .max_age(600);
            for origin in &cors_origins {
                cors = cors.allowed_origin(origin);
            }
            let dev_idp = dev_idp.clone();
            let dev_login = dev_login.clone();
            let console = console.clone();
            App::new()
                .app_data(server_state.clone())
                .app_data(claims.clone())
                .configure(|cfg| {
                    if let Some(idp) = dev_idp {
                        cfg.app_data(idp);
                        dev_idp::configure(cfg);
                        cfg.app_data(dev_login);
                        dev::login::configure(cfg);
                        dev::clock::configure(cfg);
                    }
                })
                .configure(|cfg| {
                    if let Some(console) = console {
                        cfg.app_data(console);
                        crate::console::configure(cfg);
                    }
                })
                .configure(|cfg| http::configure(&mut utoipa_actix_web::service_config::ServiceConfig::new(cfg)))
                .service(
                    SwaggerUi::new("/docs/{_:.*}")
                        .url("/openapi.json", openapi.clone())
                        .config(docs_config.clone())
                        .oauth(docs_oauth.clone()),
                )
                .route("/docs", web::get().to(http::docs_redirect))
                .default_service(web::to(http::not_found))
                .wrap(from_fn(http::proxy::vrs_errors))
                .wrap(from_fn(http::middleware::idempotency))
                .wrap(from_fn(http::audit::audit))
                .wrap(Condition::new(!cors_origins.is_empty(), cors))
                .wrap(from_fn(http::middleware::request_context))
        })
        .workers(settings.http.workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();

        Ok(Self {
            port: address.port(),
            base_url,
            dev_profile,
            server,
            state,
            workers,
            simulators,
            instance,
        })
    }

    /// In-process supplier simulators (dev profile), with their base URLs.
    pub fn simulators(&self) -> impl Iterator<Item = (Supplier, &str)> {
        self.simulators.iter().map(|(s, h)| (*s, h.base_url()))
    }

    /// Stops the server from outside (tests, embedding).
    pub fn stop_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn is_dev_profile(&self) -> bool {
        self.dev_profile
    }

    /// Runs until the server stops (Ctrl-C or SIGTERM start a graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(self.state.clone(), self.instance.clone()));
        let bulk = tokio::spawn(bulk_worker(self.state.clone(), self.instance.clone()));
        let heartbeat = tokio::spawn(heartbeat(self.state.clone()));
        let result = self.server.await;
        housekeeping.abort();
        bulk.abort();
        heartbeat.abort();
        // Jobs a worker is in the middle of keep their lease and are taken up again after it
        // runs out, by this instance after a restart or by another instance.
        for w in self.workers {
            w.abort();
        }
        drop(self.simulators);
        result
    }
}

/// A secret key from configuration, or (outside production) one kept in the data directory so
/// that restarts can still read (or verify) what was stored with it.
fn secret_key(settings: &Settings, configured: Option<&String>, setting: &str, file: &str) -> anyhow::Result<String> {
    if let Some(key) = configured {
        return Ok(key.clone());
    }
    if settings.env == Environment::Production {
        bail!("{setting} is required in production");
    }
    let path = settings.data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(k) => Ok(k),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&settings.data_dir)?;
            let k = SecretBox::generate_key();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, k.as_bytes())?;
            Ok(k)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The key that seals linkage keys, with the previous keys that still open what they sealed.
pub(crate) fn linkage_key_box(settings: &Settings) -> anyhow::Result<SecretBox> {
    let key = secret_key(
        settings,
        settings.secrets.linkage_key_encryption_key.as_ref(),
        "secrets.linkage_key_encryption_key",
        "linkage-key-encryption.key",
    )?;
    SecretBox::with_previous(&key, &settings.secrets.previous_linkage_key_encryption_keys)
        .context("a linkage-key encryption key is not valid")
}

/// The key that signs audit chain anchors and heads (shared by every instance).
pub(crate) fn audit_chain_key(settings: &Settings) -> anyhow::Result<crate::audit::ChainKey> {
    let key = secret_key(
        settings,
        settings.secrets.audit_chain_key.as_ref(),
        "secrets.audit_chain_key",
        "audit-chain.key",
    )?;
    crate::audit::ChainKey::from_base64(&key).context("the audit chain key is not valid")
}

/// Adapters for the configured suppliers. Outside production, a supplier without a URL gets an
/// in-process simulator, so the dev profile and the tests work end to end.
async fn supplier_registry(
    settings: &Settings,
) -> anyhow::Result<(SupplierRegistry, Vec<(Supplier, SimulatorHandle)>)> {
    let timeout = Duration::from_secs(settings.suppliers.timeout_seconds);
    let mut simulators = Vec::new();
    let mut url_for = async |supplier: Supplier,
                             configured: &Option<String>,
                             bind: std::net::SocketAddr|
           -> anyhow::Result<String> {
        if let Some(url) = configured {
            return Ok(url.clone());
        }
        // Kept in the data directory, so the dev sandbox survives restarts.
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let state = settings.data_dir.join(format!("simulator-{}.json", supplier.as_str()));
        let handle = simulator::spawn_persistent(supplier, bind, state).await.with_context(|| {
            format!(
                "starting the {} simulator on {bind} (set suppliers.simulator_{}_bind to another address, or port 0)",
                supplier.as_str(),
                supplier.as_str()
            )
        })?;
        let url = handle.base_url().to_owned();
        tracing::info!(supplier = supplier.as_str(), url = %url, "no supplier URL configured: using the in-process simulator");
        simulators.push((supplier, handle));
        Ok(url)
    };
    let s = &settings.suppliers;
    let emis = url_for(Supplier::Emis, &s.emis_url, s.simulator_emis_bind).await?;
    let tpp = url_for(Supplier::Tpp, &s.tpp_url, s.simulator_tpp_bind).await?;
    let registry = SupplierRegistry::default()
        .with(Arc::new(EmisAdapter::new(&emis, timeout)?))
        .with(Arc::new(TppAdapter::new(&tpp, timeout)?));
    Ok((registry, simulators))
}

/// Periodic clean-up: forget request-id replay records past their time.
/// Says every two seconds that this instance is alive, so requests it claimed are known to be
/// its own while it runs, and free for a retry soon after it dies.
async fn heartbeat(state: web::Data<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        match crate::services::idempotency::heartbeat(&state.core).await {
            Ok(_) => {}
            // An outage is said once by the database watcher.
            Err(e @ db::DbError::Unavailable(_)) => {
                tracing::debug!(error = %e, "could not record this instance's heartbeat")
            }
            Err(e) => tracing::warn!(error = %e, "could not record this instance's heartbeat"),
        }
    }
}

/// Practice-wide jobs ($apply-opt-in-model) and bulk exports of the audit trail
/// (`$export`): each instance looks for due ones every second.
async fn bulk_worker(state: web::Data<AppState>, instance: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match crate::services::bulk::work(&state.core, &instance).await {
            Ok(_) => {}
            // An outage is said once by the database watcher.
            Err(e @ crate::services::Error::Unavailable) => tracing::debug!(error = %e, "bulk job worker"),
            Err(e) => tracing::warn!(error = %e, "bulk job worker"),
        }
        match crate::services::audit_export::work(&state.core, &instance).await {
            Ok(_) => {}
            Err(e @ crate::services::Error::Unavailable) => tracing::debug!(error = %e, "audit export worker"),
            Err(e) => tracing::warn!(error = %e, "audit export worker"),
        }
    }
}

async fn housekeeping(state: web::Data<AppState>, instance: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let ttl = chrono::Duration::hours(i64::try_from(state.core.settings.http.idempotency_ttl_hours).unwrap_or(24));
        match crate::services::idempotency::purge(&state.core, ttl).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "purged expired request-id replay records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "request-id replay purge failed"),
        }
        // Proxy roles that lapsed (end date, review age, 16, five years unused) are ended and
        // revoked at the supplier; access decisions already treat them as ended.
        if let Err(e) = crate::services::proxy::apply_lapses(&state.core).await {
            tracing::warn!(error = %e, "ending lapsed proxy roles failed");
        }
        // The audit trail's partitions for this month and the next two (PostgreSQL), made long
        // before the writer needs them.
        let today = chrono::Utc::now().date_naive();
        match db::run(&state.core.pool, move |c| {
            db::audit_partitions::create_ahead(c, today, 2)
        })
        .await
        {
            Ok(created) if !created.is_empty() => tracing::info!(?created, "created audit trail partitions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "creating the audit trail's next partitions failed"),
        }
        // Bulk exports of the audit trail past their expiry go, with their files.
        match crate::services::audit_export::purge(&state.core).await {
            Ok(n) if n > 0 => tracing::info!(removed = n, "removed expired audit exports"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing expired audit exports failed"),
        }
        // Once a day, on one instance: 16th birthdays, expired letters (and lapses again).
        if let Err(e) = crate::services::transitions::run_daily(&state.core, &instance).await {
            tracing::warn!(error = %e, "the daily transitions failed");
        }
    }
}
