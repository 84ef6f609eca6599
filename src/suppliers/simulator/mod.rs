//! Supplier simulators: real HTTP servers speaking the EMIS-like and TPP-like wire formats, with
//! their state in memory, the suppliers' own rules, idempotent replays and injectable faults.
//! The dev profile, the tests and the benchmarks run the adapters against them.

mod admin;
mod desk;
mod emis;
mod refusal;
mod tpp;
mod world;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::domain::Supplier;
pub use desk::AppointmentRules;
use world::World;

/// Fault rolls come from a fixed seed so a benchmark run can be repeated request for request.
const FAULT_SEED: u64 = 0x5eed_fa17;

/// A running simulator. Dropping the handle stops the server.
pub struct SimulatorHandle {
    base_url: String,
    server: ServerHandle,
    simulator: web::Data<Simulator>,
    /// Writes the state file after changes, at most every `SAVE_INTERVAL`.
    saver: Option<tokio::task::JoinHandle<()>>,
}

/// Changes are written in the background at most this often, never on a request's path.
const SAVE_INTERVAL: Duration = Duration::from_millis(500);

impl SimulatorHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Gives a patient a record unless the simulator holds one already (seed data that a
    /// sandbox's own changes outlive).
    pub fn seed_record(&self, patient_identifier: &str, record: crate::domain::clinical::ClinicalRecord) {
        let mut state = self.simulator.lock();
        if state.world.stored_record(patient_identifier).is_none() {
            state.world.set_record(patient_identifier, record);
            self.simulator.changed.store(true, Ordering::Release);
        }
    }

    /// The clinical areas a practice does not share online, unless it has a list already.
    pub fn seed_restrictions(&self, ods_code: &str, areas: &[&str]) {
        let mut state = self.simulator.lock();
        if !state.world.has_restrictions(ods_code) {
            state
                .world
                .set_restrictions(ods_code, areas.iter().map(|a| (*a).to_owned()).collect());
            self.simulator.changed.store(true, Ordering::Release);
        }
    }
}

impl SimulatorHandle {
    /// Gives a patient repeat medication templates unless they have some already.
    pub fn seed_repeats(&self, patient_identifier: &str, repeats: Vec<crate::domain::transactional::RepeatMedication>) {
        let mut state = self.simulator.lock();
        if state.world.desk.repeats(patient_identifier).is_empty() {
            state.world.desk.set_repeats(patient_identifier, repeats);
            self.simulator.changed.store(true, Ordering::Release);
        }
    }

    /// Sets a practice's rules for online appointments.
    pub fn set_appointment_rules(&self, ods_code: &str, rules: AppointmentRules) {
        self.simulator.lock().world.desk.set_rules(ods_code, rules);
        self.simulator.changed.store(true, Ordering::Release);
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        // The stop command is sent when `stop` is called; its future only reports completion.
        drop(self.server.stop(false));
        if let Some(saver) = self.saver.take() {
            saver.abort();
        }
        // What changed since the last write is not lost with the process.
        self.simulator.save_if_changed();
    }
}

/// Binds (port 0 allowed), starts the server on the current tokio runtime in the background,
/// returns once listening. What it learns is forgotten when it stops.
pub async fn spawn(flavour: Supplier, bind: SocketAddr) -> std::io::Result<SimulatorHandle> {
    start(flavour, bind, None).await
}

/// [`spawn`], keeping what the simulator knows (accounts, proxy links, practice and patient
/// states) in `state_file`: loaded at start, written in the background soon after a change and
/// when the simulator stops, so a sandbox left
/// running for days survives restarts.
pub async fn spawn_persistent(
    flavour: Supplier,
    bind: SocketAddr,
    state_file: PathBuf,
) -> std::io::Result<SimulatorHandle> {
    start(flavour, bind, Some(state_file)).await
}

async fn start(flavour: Supplier, bind: SocketAddr, state_file: Option<PathBuf>) -> std::io::Result<SimulatorHandle> {
    let listener = TcpListener::bind(bind)?;
    let mut address = listener.local_addr()?;
    // Listening on every interface (in a container, so the host can reach it): the gateway
    // beside it still calls it on loopback.
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let mut simulator = Simulator::new(flavour);
    if let Some(path) = &state_file {
        match std::fs::read(path) {
            Ok(bytes) => {
                let saved: world::Saved = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not a simulator state file: {e}", path.display()),
                    )
                })?;
                simulator.lock().world = World::restore(saved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    simulator.state_file = state_file;
    let simulator = web::Data::new(simulator);
    let served = simulator.clone();
    let server = HttpServer::new(move || {
        let marker = served.clone();
        App::new()
            .app_data(served.clone())
            .wrap_fn(move |req, srv| {
                let changes = req.method() != actix_web::http::Method::GET;
                let marker = marker.clone();
                let answer = actix_web::dev::Service::call(srv, req);
                async move {
                    let response = answer.await;
                    // Marked once the change is made, so a write never misses it.
                    if changes {
                        marker.changed.store(true, Ordering::Release);
                    }
                    response
                }
            })
            .service(web::scope("/admin").configure(admin::routes))
            .configure(match flavour {
                Supplier::Emis => emis::routes,
                Supplier::Tpp => tpp::routes,
            })
    })
    // One worker is plenty for a test double, and tests start many simulators at once.
    .workers(1)
    // The process owns Ctrl-C; a simulator inside the gateway or a test must not react to it.
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    let saver = simulator.state_file.is_some().then(|| {
        let simulator = simulator.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAVE_INTERVAL);
            loop {
                every.tick().await;
                let simulator = simulator.clone();
                let _ = tokio::task::spawn_blocking(move || simulator.save_if_changed()).await;
            }
        })
    });
    Ok(SimulatorHandle {
        base_url: format!("http://{address}"),
        server: handle,
        simulator,
        saver,
    })
}

/// For the CLI: runs in the foreground until Ctrl-C, printing the base URL first.
pub async fn run(flavour: Supplier, bind: SocketAddr) -> std::io::Result<()> {
    let handle = spawn(flavour, bind).await?;
    println!("{}", handle.base_url());
    tracing::info!(
        supplier = flavour.as_str(),
        base_url = handle.base_url(),
        "supplier simulator listening"
    );
    tokio::signal::ctrl_c().await?;
    handle.server.stop(true).await;
    Ok(())
}

/// What to do to non-admin requests.
#[derive(Debug, Clone, Default, Serialize)]
struct Faults {
    latency_ms: u64,
    error_rate: f64,
    drop_response_rate: f64,
    down: bool,
    /// Reads answered 200 with a body that is not the supplier's format.
    malformed_rate: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Stats {
    accounts_created: u64,
    requests: u64,
    replays: u64,
    faults_injected: u64,
}

/// A response kept whole so it can be replayed byte for byte.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: StatusCode, body: &impl Serialize) -> Self {
        Self {
            status,
            content_type: Some("application/json"),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    fn xml(status: StatusCode, body: String) -> Self {
        Self {
            status,
            content_type: Some("application/xml"),
            body: body.into_bytes(),
        }
    }

    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            content_type: None,
            body: Vec::new(),
        }
    }

    fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(content_type) = self.content_type {
            response.content_type(content_type);
        }
        response.body(self.body.clone())
    }
}

struct State {
    faults: Faults,
    fault_rng: StdRng,
    /// Account ids and linkage keys: unpredictable, unlike the fault rolls.
    rng: StdRng,
    world: World,
    /// First replies by idempotency scope.
    replies: HashMap<String, Reply>,
    stats: Stats,
}

impl State {
    fn new() -> Self {
        Self {
            faults: Faults::default(),
            fault_rng: StdRng::seed_from_u64(FAULT_SEED),
            rng: StdRng::from_entropy(),
            world: World::default(),
            replies: HashMap::new(),
            stats: Stats::default(),
        }
    }

    fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.fault_rng.gen_bool(rate.min(1.0))
    }
}

struct Simulator {
    flavour: Supplier,
    state: Mutex<State>,
    /// Where what it knows is kept between runs, if anywhere.
    state_file: Option<PathBuf>,
    /// Set by every request that may change something; cleared when the state file is written.
    changed: AtomicBool,
}

impl Simulator {
    fn new(flavour: Supplier) -> Self {
        Self {
            flavour,
            state: Mutex::new(State::new()),
            state_file: None,
            changed: AtomicBool::new(false),
        }
    }

    /// Writes what the simulator knows to its state file if anything may have changed since the
    /// last write (through a temporary file and a rename, so a crash never leaves half a file).
    fn save_if_changed(&self) {
        let Some(path) = &self.state_file else {
            return;
        };
        if !self.changed.swap(false, Ordering::AcqRel) {
            return;
        }
        let saved = serde_json::to_vec(&self.lock().world.save());
        let written = saved.map_err(std::io::Error::other).and_then(|bytes| {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, path)
        });
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "could not keep the simulator's state");
        }
    }

    /// A handler that panicked mid-request leaves nothing half-written worth refusing to serve.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn minimum_age(&self) -> u32 {
        match self.flavour {
            Supplier::Emis => emis::MINIMUM_AGE,
            Supplier::Tpp => tpp::MINIMUM_AGE,
        }
    }

    fn unavailable(&self) -> HttpResponse {
        match self.flavour {
            Supplier::Emis => emis::unavailable(),
            Supplier::Tpp => tpp::unavailable(),
        }
        .to_response()
    }

    /// Runs one supplier request through the faults and the idempotency store.
    ///
    /// `scope` is the idempotency scope (None: no `X-Request-ID`, nothing remembered). `guard`
    /// may refuse the request before it is looked up or remembered (an expired session), so a
    /// retry after the refusal is carried out rather than replayed. `operation` runs under the
    /// state lock, which makes each request atomic.
    async fn serve(
        &self,
        scope: Option<String>,
        guard: impl FnOnce(&World) -> Option<Reply>,
        operation: impl FnOnce(&mut World, &mut StdRng) -> Reply,
    ) -> HttpResponse {
        let latency = {
            let mut state = self.lock();
            state.stats.requests += 1;
            if state.faults.down {
                state.stats.faults_injected += 1;
                return self.unavailable();
            }
            state.faults.latency_ms
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }

        let mut guarded = self.lock();
        let state = &mut *guarded;
        let error_rate = state.faults.error_rate;
        if state.roll(error_rate) {
            state.stats.faults_injected += 1;
            return self.unavailable();
        }
        if let Some(refusal) = guard(&state.world) {
            return refusal.to_response();
        }
        let stored = scope.as_ref().and_then(|scope| state.replies.get(scope)).cloned();
        let reply = match stored {
            Some(reply) => {
                state.stats.replays += 1;
                reply
            }
            None => {
                let before = state.world.accounts().len();
                let reply = operation(&mut state.world, &mut state.rng);
                state.stats.accounts_created += (state.world.accounts().len() - before) as u64;
                if let Some(scope) = scope {
                    state.replies.insert(scope, reply.clone());
                }
                reply
            }
        };
        let drop_rate = state.faults.drop_response_rate;
        if state.roll(drop_rate) {
            state.stats.faults_injected += 1;
            return self.unavailable();
        }
        reply.to_response()
    }
}

impl Simulator {
    /// Runs one read through the faults: slow, down, failing, and (for reads only) answering
    /// 200 with a body that is not the supplier's format. Nothing is remembered for replay.
    async fn serve_read(
        &self,
        guard: impl FnOnce(&World) -> Option<Reply>,
        operation: impl FnOnce(&World) -> Reply,
    ) -> HttpResponse {
        let latency = {
            let mut state = self.lock();
            state.stats.requests += 1;
            if state.faults.down {
                state.stats.faults_injected += 1;
                return self.unavailable();
            }
            state.faults.latency_ms
        };
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut guarded = self.lock();
        let state = &mut *guarded;
        let (error_rate, malformed_rate) = (state.faults.error_rate, state.faults.malformed_rate);
        if state.roll(error_rate) {
            state.stats.faults_injected += 1;
            return self.unavailable();
        }
        if let Some(refusal) = guard(&state.world) {
            return refusal.to_response();
        }
        let mut reply = operation(&state.world);
        if reply.status.is_success() && state.roll(malformed_rate) {
            state.stats.faults_injected += 1;
            reply.body = b"<<not the supplier's format>>".to_vec();
        }
        reply.to_response()
    }
}

/// The `X-Request-ID` header, if the caller sent a usable one.
fn request_id(request: &actix_web::HttpRequest) -> Option<String> {
    request
        .headers()
        .get("X-Request-ID")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
}
