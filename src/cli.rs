//! Command-line entry points. `anyhow` is used here and in start-up only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::identity::dev_idp::DevIdentityProvider;
use crate::startup::Application;
use crate::{db, dev, telemetry};

#[derive(Parser)]
#[command(name = "gp-online-gateway", version, about = "GP Online Services Gateway")]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default). With no issuer configured this is the dev profile.
    Serve {
        /// Address to listen on (also GATEWAY_BIND).
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Revert every migration instead (destroys all data).
        #[arg(long)]
        revert_all: bool,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Seal every stored linkage key again with the current encryption key, after a rotation
    /// (`secrets.linkage_key_encryption_key` new, the old one in
    /// `secrets.previous_linkage_key_encryption_keys`). Safe to run while the gateway serves, and
    /// again after an interruption; once it reports nothing left, the previous keys can go.
    ReencryptSecrets,
    /// Keep the audit trail: seal closed periods into archives, check them, drop what is archived.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run an EMIS-like or TPP-like supplier simulator on its own (with fault injection).
    SimSupplier {
        #[arg(long, value_parser = ["emis", "tpp"])]
        flavour: String,
        #[arg(long, default_value = "127.0.0.1:8091")]
        bind: SocketAddr,
    },
    /// Run the development identity provider on its own.
    DevIdp {
        #[arg(long, default_value = "127.0.0.1:8081")]
        bind: SocketAddr,
    },
    /// Exit 0 when the gateway at `--url` answers its liveness check (for container health checks).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:8080/health/live")]
        url: String,
    },
    /// Print a token signed by the development identity provider.
    DevToken {
        /// Persona to sign for (see --list).
        #[arg(long, required_unless_present_any = ["list", "nhs_number", "scope"])]
        persona: Option<String>,
        /// Sign an NHS login-like token for this NHS number instead of a persona.
        #[arg(long, conflicts_with_all = ["persona", "scope"])]
        nhs_number: Option<String>,
        /// With --nhs-number: the vector of trust (its first part is the proofing level).
        #[arg(long, default_value = "P9.Cp.Cd", requires = "nhs_number")]
        vot: String,
        /// With --nhs-number: a delegated token, used by this proxy's NHS number (the `act` claim).
        #[arg(long, requires = "nhs_number")]
        act: Option<String>,
        /// Sign a system (client credentials) token with these space-separated scopes.
        #[arg(long, conflicts_with = "persona")]
        scope: Option<String>,
        /// List the personas.
        #[arg(long)]
        list: bool,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime: i64,
        /// Base URL of the identity provider when it runs on its own (`dev-idp`);
        /// defaults to the gateway's own URL.
        #[arg(long)]
        idp_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Seal the closed period [--from, --to) (UTC dates): each chain's events recorded in it,
    /// as gzip-compressed NDJSON of FHIR AuditEvents with a signed manifest, in --out. The
    /// archive is read back and checked before it is recorded as archived.
    Export {
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: NaiveDate,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check archives with no database: each manifest's signature, every event, and that the
    /// archives of one chain join up with none missing between them. Exits 1 on a problem.
    VerifyArchive {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Drop from the database the events older than the months kept (--months, else
    /// audit.retention_months; counted back from the start of this month), once they are
    /// archived, their archives still verify and the database still holds what was archived.
    /// Refuses, dropping nothing, if any of them is not archived.
    Retain {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1200))]
        months: Option<u32>,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load()?;
    match cli.command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            telemetry::init(&settings.log);
            let app = Application::build(settings.clone()).await?;
            print_banner(&app, &settings);
            app.run_until_stopped().await?;
        }
        Command::Migrate { revert_all } => {
            telemetry::init(&settings.log);
            let url = settings.database.url.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut conn = db::connect(&url)?;
                if revert_all {
                    db::revert_all_migrations(&mut conn)
                } else {
                    db::run_migrations(&mut conn)
                }
            })
            .await??;
            let verb = if revert_all { "reverted" } else { "applied" };
            if done.is_empty() {
                println!("nothing to do: the database is up to date");
            }
            for version in done {
                println!("{verb} {version}");
            }
        }
        Command::Health { url } => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?;
            let status = client.get(&url).send().await?.status();
            if !status.is_success() {
                bail!("{url} answered {status}");
            }
        }
        Command::ReencryptSecrets => {
            telemetry::init(&settings.log);
            let report = tokio::task::spawn_blocking(move || reencrypt_secrets(&settings)).await??;
            println!(
                "linkage keys: {} sealed again with key {}, {} already current, {} changed meanwhile (left as they are)",
                report.resealed, report.key_id, report.current, report.skipped
            );
        }
        Command::Audit { command } => {
            telemetry::init(&settings.log);
            match command {
                AuditCommand::Export { from, to, out } => {
                    let today = chrono::Utc::now().date_naive();
                    let report =
                        tokio::task::spawn_blocking(move || audit_export(&settings, from, to, &out, today)).await??;
                    let events: i64 = report.manifest.segments.iter().map(|s| s.events).sum();
                    println!(
                        "archived {events} events of {} chains from {from} to {to} in {}",
                        report.manifest.segments.len(),
                        report.dir.display()
                    );
                    for s in &report.manifest.segments {
                        println!(
                            "  {} seq {}..{} ({} events)",
                            s.chain, s.first_seq, s.last_seq, s.events
                        );
                    }
                }
                AuditCommand::Retain { months } => {
                    let today = chrono::Utc::now().date_naive();
                    let report = tokio::task::spawn_blocking(move || audit_retain(&settings, months, today)).await??;
                    let cutoff = report.cutoff.map(|c| c.date().to_string()).unwrap_or_default();
                    println!("dropped {} archived events recorded before {cutoff}", report.events());
                    for (chain, through, events) in &report.chains {
                        println!("  {chain}: {events} events, now kept from seq {}", through + 1);
                    }
                }
                AuditCommand::VerifyArchive { dirs } => {
                    let report = audit_verify_archives(&settings, &dirs)?;
                    println!(
                        "{} archives verified: {} segments of {} chains, {} events",
                        report.archives, report.segments, report.chains, report.events
                    );
                }
            }
        }
        Command::Openapi => {
            println!("{}", crate::http::openapi().to_pretty_json()?);
        }
        Command::SimSupplier { flavour, bind } => {
            telemetry::init(&settings.log);
            let supplier = crate::domain::Supplier::parse(&flavour).context("flavour is emis or tpp")?;
            crate::suppliers::simulator::run(supplier, bind).await?;
        }
        Command::DevIdp { bind } => {
            telemetry::init(&settings.log);
            run_dev_idp(&settings, bind).await?;
        }
        Command::DevToken {
            persona,
            nhs_number,
            vot,
            act,
            scope,
            list,
            lifetime,
            idp_url,
        } => {
            if list {
                for p in &dev::PERSONAS {
                    println!("{:<18} {:<8} {}", p.name, p.realm.as_str(), p.description);
                }
                return Ok(());
            }
            if !settings.is_dev_profile() && idp_url.is_none() {
                bail!("trusted issuers are configured, so this gateway does not accept dev tokens");
            }
            let (realm, claims) = match (persona, nhs_number, scope) {
                (_, Some(nhs), _) => {
                    crate::domain::NhsNumber::parse(&nhs)
                        .map_err(|_| anyhow::anyhow!("--nhs-number is not a valid NHS number"))?;
                    if !["P0", "P5", "P9"].contains(&vot.split('.').next().unwrap_or_default()) {
                        bail!("--vot must start with P0, P5 or P9 (for example P9.Cp.Cd)");
                    }
                    let claims = match act {
                        Some(proxy) => {
                            crate::domain::NhsNumber::parse(&proxy)
                                .map_err(|_| anyhow::anyhow!("--act is not a valid NHS number"))?;
                            dev::delegated_claims(&nhs, &format!("nhslogin-sub-{proxy}"), &proxy, &vot)
                        }
                        None => dev::person_claims(&format!("nhslogin-sub-{nhs}"), &nhs, &vot),
                    };
                    (crate::config::IssuerKind::Patient, claims)
                }
                (_, None, Some(scope)) => (
                    crate::config::IssuerKind::System,
                    serde_json::json!({"sub": "dev-client", "client_id": "dev-client", "scope": scope}),
                ),
                (name, None, None) => {
                    let name = name.unwrap_or_default();
                    let persona = dev::persona(&name)
                        .with_context(|| format!("unknown persona {name:?}; see dev-token --list"))?;
                    (persona.realm, persona.claims())
                }
            };
            // A longer token would be refused by the gateway it is minted for.
            let max = settings.auth.max_token_lifetime_seconds;
            if !(60..=i64::try_from(max).unwrap_or(i64::MAX)).contains(&lifetime) {
                bail!("--lifetime must be between 60 and {max} seconds (auth.max_token_lifetime_seconds)");
            }
            if idp_url.is_none() && settings.bind.port() == 0 {
                bail!("the gateway's port is chosen at start (port 0): pass --idp-url with the running gateway's URL");
            }
            let base = idp_url.unwrap_or_else(|| settings.base_url(settings.bind));
            let idp = DevIdentityProvider::load_or_create(&settings.data_dir, &base)?;
            println!("{}", idp.mint(realm, &settings.auth.client_id, lifetime, &claims)?);
        }
    }
    Ok(())
}

async fn run_dev_idp(settings: &Settings, bind: SocketAddr) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(bind)?;
    let base = format!("http://{}", listener.local_addr()?);
    let idp = actix_web::web::Data::new(DevIdentityProvider::load_or_create(&settings.data_dir, &base)?);
    println!("dev identity provider on {base}");
    for realm in crate::identity::dev_idp::REALMS {
        println!("  {:<8} issuer {}", realm.as_str(), idp.issuer(realm));
    }
    println!("tokens: gp-online-gateway dev-token --idp-url {base} --persona staff-emis");
    actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(idp.clone())
            .configure(crate::identity::dev_idp::configure)
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await?;
    Ok(())
}

fn print_banner(app: &Application, settings: &Settings) {
    let base = app.base_url();
    let mut out = String::new();
    out.push_str("\n  GP Online Services Gateway\n");
    out.push_str(&format!("  listening on  {base}\n"));
    out.push_str(&format!("  API docs      {base}/docs/\n"));
    if settings.console.enabled {
        out.push_str(&format!("  console       {base}/console/ (practice staff)\n"));
    }
    out.push_str(&format!("  OpenAPI       {base}/openapi.json\n"));
    out.push_str(&format!("  capability    {base}/metadata\n"));
    out.push_str(&format!("  health        {base}/health/ready\n"));
    out.push_str(&format!("  metrics       {base}/metrics\n"));
    out.push_str(&format!("  database      {}\n", redact_url(&settings.database.url)));
    for (supplier, url) in app.simulators() {
        out.push_str(&format!(
            "  {:<13} {url} (simulator; faults: PUT {url}/admin/faults)\n",
            format!("{} sim", supplier.as_str())
        ));
    }
    if app.is_dev_profile() {
        out.push_str("\n  DEV PROFILE: built-in identity provider, seed data. Never use with real patients.\n");
        out.push_str(&format!(
            "  issuers       {base}/dev-idp/staff | /dev-idp/patient | /dev-idp/system\n"
        ));
        out.push_str("  personas      cargo run --release -q -- dev-token --list\n");
        out.push_str(&format!(
            "  docs sign-in  {base}/docs/: Authorize, then dev-staff or dev-patient, then pick a persona\n"
        ));
        if settings.console.enabled {
            out.push_str(&format!(
                "  console       {base}/console/: Sign in, then staff-emis (administrator) or reception-emis (receptionist)\n"
            ));
        }
        out.push_str("\n  Try:\n");
        out.push_str("    TOKEN=$(cargo run --release -q -- dev-token --persona staff-emis)\n");
        out.push_str(&format!(
            "    curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/Patient?family=smith'\n"
        ));
        out.push_str(&format!(
            "    curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/Patient/patient-jane-smith'\n"
        ));
        out.push_str(&format!(
            "    curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018'\n"
        ));
        out.push_str(&format!(
            "    curl -s -X POST -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/fhir+json' \\\n      -d '{{\"resourceType\":\"Patient\",\"identifier\":[{{\"system\":\"https://fhir.nhs.uk/Id/nhs-number\",\"value\":\"9990000093\"}}],\"name\":[{{\"family\":\"Taylor\",\"given\":[\"Ruth\"]}}],\"gender\":\"female\",\"birthDate\":\"1990-04-02\",\"generalPractitioner\":[{{\"identifier\":{{\"system\":\"https://fhir.nhs.uk/Id/ods-organization-code\",\"value\":\"A81001\"}}}}]}}' \\\n      {base}/Patient\n"
        ));
    }
    // The banner is for a person at a terminal: on stderr, so JSON logs on stdout stay JSON.
    if settings.log.format == crate::config::LogFormat::Json {
        return;
    }
    eprintln!("{out}");
}

/// Hides a password in a database URL before printing it.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `audit export`: seals `[from, to)` into `out`; `today` says which periods are closed.
pub fn audit_export(
    settings: &Settings,
    from: NaiveDate,
    to: NaiveDate,
    out: &Path,
    today: NaiveDate,
) -> anyhow::Result<crate::audit::archive::ExportReport> {
    let key = crate::startup::audit_chain_key(settings)?;
    let mut conn = db::connect(&settings.database.url)?;
    Ok(crate::audit::archive::export(&mut conn, &key, from, to, today, out)?)
}

/// `audit retain`: keeps `months` (or `audit.retention_months`) months before the one `today`
/// is in.
pub fn audit_retain(
    settings: &Settings,
    months: Option<u32>,
    today: NaiveDate,
) -> anyhow::Result<crate::audit::retention::RetentionReport> {
    use crate::audit::retention::{RetentionError, cutoff};
    let months = months
        .or(settings.audit.retention_months)
        .ok_or(RetentionError::NotConfigured)?;
    audit_drop_before(settings, cutoff(today, months))
}

/// Drops the archived events recorded before `cutoff` (see `audit_retain`).
pub fn audit_drop_before(
    settings: &Settings,
    cutoff: chrono::NaiveDateTime,
) -> anyhow::Result<crate::audit::retention::RetentionReport> {
    let key = crate::startup::audit_chain_key(settings)?;
    let mut conn = db::connect(&settings.database.url)?;
    Ok(crate::audit::retention::drop_before(&mut conn, &key, cutoff)?)
}

/// `audit verify-archive`: needs the audit chain key and nothing else.
pub fn audit_verify_archives(
    settings: &Settings,
    dirs: &[PathBuf],
) -> anyhow::Result<crate::audit::archive::ArchiveReport> {
    let key = crate::startup::audit_chain_key(settings)?;
    Ok(crate::audit::archive::verify_archives(dirs, &key)?)
}

pub struct ReencryptReport {
    pub key_id: String,
    pub resealed: usize,
    pub current: usize,
    pub skipped: usize,
}

/// Walks every sealed linkage key in id order, one page per transaction, and seals again with
/// the current key whatever an older key sealed. A value that no configured key opens stops
/// the run: the key that sealed it is missing from the configuration.
pub fn reencrypt_secrets(settings: &Settings) -> anyhow::Result<ReencryptReport> {
    let secrets = crate::startup::linkage_key_box(settings)?;
    let mut conn = db::connect(&settings.database.url)?;
    let mut report = ReencryptReport {
        key_id: secrets.current_key_id().to_owned(),
        resealed: 0,
        current: 0,
        skipped: 0,
    };
    let mut after = String::new();
    loop {
        let page = db::accounts::sealed_linkage_keys(&mut conn, &after, 500)?;
        let Some((last, _)) = page.last() else {
            return Ok(report);
        };
        after = last.clone();
        let (resealed, current, skipped) = db::write_transaction(&mut conn, |c| {
            let (mut resealed, mut current, mut skipped) = (0, 0, 0);
            for (id, sealed) in &page {
                if !secrets.needs_resealing(sealed) {
                    current += 1;
                    continue;
                }
                let plain = secrets.open(sealed, id).map_err(|_| {
                    db::DbError::Query(format!(
                        "the linkage key of account {id} opens with none of the configured keys"
                    ))
                })?;
                if db::accounts::reseal_linkage_key(c, id, sealed, &secrets.seal(&plain, id))? {
                    resealed += 1;
                } else {
                    skipped += 1;
                }
            }
            Ok::<_, db::DbError>((resealed, current, skipped))
        })?;
        report.resealed += resealed;
        report.current += current;
        report.skipped += skipped;
    }
}
