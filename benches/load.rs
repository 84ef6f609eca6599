//! The load benchmark: `cargo bench --bench load`.
//!
//! Starts the gateway (the release binary, dev profile: in-process identity provider and
//! supplier simulators) on a fresh PostgreSQL schema, adds a practice of `BENCH_PATIENTS`
//! patients (default 100,000) with online accounts, bindings made by the first call of each
//! patient token, and a proxy acting for several patients; then drives each call from
//! `BENCH_CONNECTIONS` connections (default 64) on loopback for `BENCH_SECONDS` (default 10),
//! counting every response. Staff reads are driven twice: through a spread sample of 8,192
//! patients in turn, and with each request's patient drawn uniformly at random from the whole
//! practice ("uniform over all"). The load comes from `wrk` when it is on the PATH, else from the
//! harness's own reqwest loops (`BENCH_GENERATOR=wrk|builtin` chooses). The GP record, slot
//! search and booking are each driven through the gateway and straight at the supplier
//! simulator, so what the gateway adds is the difference (`BENCH_ONLY=record`, `slot` or `book`
//! runs just those). `BENCH_PEER_URL` reads another FHIR server's copies of the same patients
//! the same way, in the same run. `BENCH_INSTANCES=2` adds a second instance on the same database, with the
//! first one's keys, and drives the uniform staff read at both at once. Then it measures
//! registration through the outbox to the supplier simulator, the opt-in job over the whole
//! practice, and verifies the audit hash chains.
//!
//! `BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) must reach a
//! PostgreSQL server where a schema may be created; the schema is dropped afterwards.
//! Results go to standard output as a Markdown table (copy them into `benches/RESULTS.md`).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use gp_online_gateway::config::IssuerKind;
use gp_online_gateway::identity::dev_idp::DevIdentityProvider;
use serde_json::{Value, json};

const PRACTICE_ID: &str = "practice-bench";
const PRACTICE_ODS: &str = "Y99999";
/// Patients with an online account (the patient-token reads use them).
const WITH_ACCOUNTS: usize = 5_000;
/// The proxy's patients.
const PROXIED: usize = 5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `i`th valid NHS number of the benchmark's range (Modulus 11): the nine-digit prefix
/// 910000000 + 2i, or the odd prefix after it when that one has no valid check digit.
fn nhs_number(i: usize) -> String {
    let check = |p: u64| {
        let sum: u64 = format!("{p:09}")
            .bytes()
            .enumerate()
            .map(|(k, b)| u64::from(b - b'0') * (10 - k as u64))
            .sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            c => Some(c),
        }
    };
    let even = 910_000_000 + 2 * i as u64;
    for p in [even, even + 1] {
        if let Some(c) = check(p) {
            return format!("{p:09}{c}");
        }
    }
    unreachable!("two consecutive prefixes cannot both lack a check digit")
}

/// Entries in each benchmark patient's record.
const RECORD_ENTRIES: usize = 500;

/// A realistic record of `n` entries for patient `i`: every kind of entry over ten years, some
/// in consultations, some marked not for online, a draft, unfiled results and unreviewed
/// documents, so the gateway's filter has work to do.
fn record_of(i: usize, n: usize) -> Value {
    let kinds = [
        json!({"kind": "allergy", "reaction": "Rash", "resolved": false}),
        json!({"kind": "medication", "prescription": "repeat", "dosage": "One tablet daily", "quantity": "28 tablet"}),
        json!({"kind": "problem", "active": true, "major": false}),
        json!({"kind": "immunisation"}),
        json!({"kind": "consultation", "draft": false, "clinician": "Dr Bench"}),
        json!({"kind": "test-result", "value": "5.2 mmol/L", "filed": true}),
        json!({"kind": "referral", "to": "Cardiology"}),
        json!({"kind": "document", "title": "Clinic letter", "reviewed": true, "content_type": "text/plain", "content": "TGV0dGVyLg=="}),
        json!({"kind": "note"}),
    ];
    let entries: Vec<Value> = (0..n)
        .map(|k| {
            let detail = kinds[k % kinds.len()].clone();
            let recorded = format!("{}-{:02}-{:02}", 2016 + (k % 10), 1 + (k % 12), 1 + (k % 28));
            let mut e = json!({
                "id": format!("p{i}-e{k}"),
                "recorded": recorded,
                "code": {"system": "http://snomed.info/sct", "code": format!("{}", 100000 + k), "display": format!("Entry {k}")},
                "text": format!("Free text of entry {k}, as a clinician would write it in a consultation."),
                "not_for_online": k % 37 == 0,
                "detail": detail,
            });
            if k % 9 != 4 && k >= 4 {
                // Recorded in the consultation before it.
                e["consultation"] = json!(format!("p{i}-e{}", k - (k % 9) + 4 - if k % 9 < 4 { 9 } else { 0 }));
            }
            e
        })
        .collect();
    json!({"entries": entries})
}

struct Gateway {
    child: Child,
    base: String,
    /// The in-process EMIS-like simulator the benchmark practice's records come from.
    emis: String,
    data: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts the benchmark's patients on a peer FHIR server under the same ids, `connections` at a
/// time.
async fn load_peer(client: &reqwest::Client, peer: &str, token: Option<&str>, n: usize, connections: usize) {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..connections {
        let (client, next, peer, token) = (client.clone(), next.clone(), peer.to_owned(), token.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let body = json!({"resourceType": "Patient", "id": format!("bench-{i:06}"),
                    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(i)}],
                    "name": [{"family": format!("Bench{}", i % 997), "given": ["Pat"]}],
                    "gender": "unknown", "birthDate": "1980-01-01"});
                let mut rb = client
                    .put(format!("{peer}/Patient/bench-{i:06}"))
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string());
                if let Some(t) = &token {
                    rb = rb.bearer_auth(t);
                }
                let r = rb.send().await.expect("the peer answers");
                assert!(r.status().is_success(), "the peer refused a patient: {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await.expect("loading the peer");
    }
    eprintln!(
        "put {n} patients on the peer in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(url: &str) -> Gateway {
    start_beside(url, None)
}

/// A gateway on `url`; `beside` another's data directory, it shares that one's keys (the dev
/// identity provider's, the audit chain's and the linkage keys'), as every instance of one
/// deployment must.
fn start_beside(url: &str, beside: Option<&std::path::Path>) -> Gateway {
    let data = tempfile::tempdir().expect("temp dir");
    if let Some(other) = beside {
        for key in [
            "dev-idp-signing-key.pem",
            "audit-chain.key",
            "linkage-key-encryption.key",
        ] {
            std::fs::copy(other.join(key), data.path().join(key)).expect("copy a key");
        }
    }
    let port = free_port();
    let emis_port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_gp-online-gateway"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("GATEWAY_DATABASE__URL", url)
        .env(
            "GATEWAY_DATABASE__POOL_SIZE",
            std::env::var("BENCH_POOL_SIZE").unwrap_or_else(|_| "16".into()),
        )
        .env("GATEWAY_DATA_DIR", data.path())
        .env(
            "GATEWAY_SUPPLIERS__SIMULATOR_EMIS_BIND",
            format!("127.0.0.1:{emis_port}"),
        )
        .env("GATEWAY_SUPPLIERS__SIMULATOR_TPP_BIND", "127.0.0.1:0")
        .env(
            "GATEWAY_LOG__FILTER",
            std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("GATEWAY_HTTP__RATE_LIMIT_PER_MINUTE", "100000000")
        .stdout(if std::env::var_os("BENCH_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the gateway binary starts");
    Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
        emis: format!("http://127.0.0.1:{emis_port}"),
        data,
    }
}

fn sql(url: &str, statements: &[String]) {
    let mut c = gp_online_gateway::db::connect(url).expect("connect");
    for s in statements {
        diesel::sql_query(s)
            .execute(&mut c)
            .unwrap_or_else(|e| panic!("{e}: {}", &s[..s.len().min(300)]));
    }
}

/// The benchmark practice, its patients, accounts copied from a seeded one, and proxy roles
/// copied from a seeded role.
fn populate(url: &str, patients: usize) {
    let mut statements = vec![format!(
        "INSERT INTO practices (id, ods_code, name, supplier, settings, version, created_at, updated_at) \
         SELECT '{PRACTICE_ID}', '{PRACTICE_ODS}', 'Benchmark Practice', 'emis', settings, 1, now(), now() \
         FROM practices WHERE id = 'practice-a81001'"
    )];
    for chunk in (0..patients).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                let year = 1940 + (i % 70);
                let month = 1 + (i % 12);
                let day = 1 + (i % 28);
                format!(
                    "('bench-{i:06}', '{PRACTICE_ID}', 'nhs', '{}', 'Bench{}', 'bench{}', '[\"Test\"]', \
                     '{year}-{month:02}-{day:02}', 'female', NULL, 1, now(), now())",
                    nhs_number(*i),
                    i % 500,
                    i % 500
                )
            })
            .collect();
        statements.push(format!(
            "INSERT INTO patients (id, practice_id, identifier_system, identifier_value, family, family_folded, given, \
             birth_date, gender, email, version, created_at, updated_at) VALUES {}",
            values.join(", ")
        ));
    }
    statements.push(format!(
        "INSERT INTO online_accounts (id, patient_id, practice_id, status, status_reason, email, access, verification, \
         attestation, supplier_ref, supplier_account_id, linkage_key_enc, linkage_key_issued_at, letter_printed_at, \
         letter_expires_at, last_error, version, created_at, updated_at, pending_access, sent_access, source) \
         SELECT 'acct-' || p.id, p.id, p.practice_id, 'active', NULL, '', t.access, t.verification, t.attestation, \
         'ref-' || p.id, NULL, NULL, NULL, NULL, NULL, NULL, 1, now(), now(), NULL, t.sent_access, 'practice' \
         FROM patients p, online_accounts t WHERE t.id = 'account-jane-smith' AND p.practice_id = '{PRACTICE_ID}' \
         AND p.id < 'bench-{WITH_ACCOUNTS:06}'"
    ));
    statements.push(format!(
        "INSERT INTO proxy_roles (id, proxy_nhs_number, patient_id, patient_nhs_number, practice_id, status, reason_code, \
         reason_text, legal_basis, relationships, grantor, date_time, period_start, period_end, grants, assessment, \
         access_request_id, supplier_ref, last_used_at, reviewed_at, version, created_at, updated_at) \
         SELECT 'role-' || p.id, '{}', p.id, p.identifier_value, p.practice_id, 'active', 'ROLE_CREATED', NULL, \
         'consent', t.relationships, '{PRACTICE_ODS}', now(), now(), NULL, t.grants, t.assessment, NULL, NULL, \
         now(), now(), 1, now(), now() \
         FROM patients p, proxy_roles t WHERE t.id = '1a7e0000-0000-4000-8000-000000000001' \
         AND p.id > 'bench-000000' AND p.id <= 'bench-{PROXIED:06}'",
        nhs_number(0)
    ));
    // What an operator runs after a bulk load (and autovacuum would in time): the planner's
    // statistics, the visibility map and the hint bits set now, and the load's dirty pages
    // written out, so that the reads measured next do not pay for the load's write-back.
    statements.push("VACUUM (ANALYZE) practices, patients, online_accounts, proxy_roles".into());
    sql(url, &statements);
    let mut c = gp_online_gateway::db::connect(url).expect("connect");
    if let Err(e) = diesel::sql_query("CHECKPOINT").execute(&mut c) {
        eprintln!("no checkpoint after the load ({e}): its write-back may overlap the first call");
    }
}

struct Outcome {
    name: String,
    /// CPU time per request of the gateway's process and of the whole machine, µs: steadier
    /// than req/s when the machine's speed moves between rounds.
    gateway_us: f64,
    machine_us: f64,
    requests: usize,
    non_2xx: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One call's requests: the harness cycles through them, pairing `paths[i % len]` with
/// `tokens[i % len]` (either list may hold one entry, used for every request).
struct Load {
    name: &'static str,
    paths: Vec<String>,
    tokens: Vec<String>,
    /// `POST` with a FHIR JSON body instead of `GET`: request `i` sends `bodies[i % len]`.
    bodies: Vec<String>,
    /// Each request picks one of the requests uniformly at random, instead of going through
    /// them in turn: what a cache can keep helps only as much as real traffic lets it.
    uniform: bool,
}

impl Load {
    fn len(&self) -> usize {
        self.paths.len().max(self.tokens.len())
    }

    fn request(&self, i: usize) -> (&str, &str) {
        (pick(&self.paths, i), pick(&self.tokens, i))
    }

    fn body(&self, i: usize) -> Option<&str> {
        (!self.bodies.is_empty()).then(|| pick(&self.bodies, i))
    }

    fn get(name: &'static str, paths: Vec<String>, tokens: Vec<String>) -> Self {
        Self {
            name,
            paths,
            tokens,
            bodies: vec![],
            uniform: false,
        }
    }

    /// Each request picks its target uniformly at random among all of them.
    fn uniform(self) -> Self {
        Self { uniform: true, ..self }
    }
}

fn pick(v: &[String], i: usize) -> &str {
    v.get(i % v.len().max(1)).map_or("", String::as_str)
}

/// The load generator: `wrk` when it is installed (a light C generator, which costs the shared
/// cores little), else the harness's own (reqwest), which costs them more per request.
#[derive(Clone, Copy, PartialEq)]
enum Generator {
    Wrk,
    Builtin,
}

impl Generator {
    fn choose() -> Self {
        let installed = || {
            Command::new("wrk")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        };
        match std::env::var("BENCH_GENERATOR").as_deref() {
            Ok("builtin") => Self::Builtin,
            Ok("wrk") => {
                assert!(installed(), "BENCH_GENERATOR=wrk, but wrk is not on the PATH");
                Self::Wrk
            }
            Ok(other) if !other.is_empty() => panic!("BENCH_GENERATOR is wrk or builtin, not {other}"),
            _ if installed() => Self::Wrk,
            _ => Self::Builtin,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Wrk => "wrk",
            Self::Builtin => "the harness's reqwest generator",
        }
    }

    async fn drive(self, load: &Load, base: &str, connections: usize, seconds: u64, pid: u32) -> Outcome {
        let before = (process_cpu_seconds(pid), machine_busy_seconds());
        let mut outcome = match self {
            Self::Wrk => drive_wrk(load, base, connections, seconds).await,
            Self::Builtin => drive_builtin(load, base, connections, seconds).await,
        };
        let per_request = |s: f64| s * 1e6 / outcome.requests.max(1) as f64;
        outcome.gateway_us = per_request(process_cpu_seconds(pid) - before.0);
        outcome.machine_us = per_request(machine_busy_seconds() - before.1);
        outcome
    }
}

/// `connections` loops, connection `c` sending request `c + connections * n` of the load until
/// the time is up; every response counted.
async fn drive_builtin(load: &Load, base: &str, connections: usize, seconds: u64) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let requests: Arc<Vec<(String, String, Option<String>)>> = Arc::new(
        (0..load.len().max(load.bodies.len()))
            .map(|i| {
                let (path, token) = load.request(i);
                (
                    format!("{base}{path}"),
                    token.to_owned(),
                    load.body(i).map(str::to_owned),
                )
            })
            .collect(),
    );
    let uniform = load.uniform;
    let mut tasks = vec![];
    for conn in 0..connections {
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(conn as u64);
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()
                .expect("client");
            let (mut lat, mut bad) = (Vec::with_capacity(40_000), 0usize);
            let mut n = 0;
            while Instant::now() < deadline {
                let at = if uniform {
                    rng.gen_range(0..requests.len())
                } else {
                    (conn + connections * n) % requests.len()
                };
                let (url, token, body) = &requests[at];
                n += 1;
                let t = Instant::now();
                let mut rb = match body {
                    Some(b) => client
                        .post(url)
                        .header("content-type", "application/fhir+json")
                        .body(b.clone()),
                    None => client.get(url),
                };
                if !token.is_empty() {
                    rb = rb.bearer_auth(token);
                }
                match rb.send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        if !ok {
                            bad += 1;
                        }
                    }
                    Err(_) => bad += 1,
                }
                lat.push(t.elapsed().as_micros() as u32);
            }
            (lat, bad)
        }));
    }
    let mut all = vec![];
    let mut non_2xx = 0;
    for t in tasks {
        let (lat, bad) = t.await.expect("load task");
        all.extend(lat);
        non_2xx += bad;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Outcome {
        gateway_us: 0.0,
        machine_us: 0.0,
        name: load.name.to_owned(),
        requests: all.len(),
        non_2xx,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// One booking: where it goes, as whom, and what it books.
struct Booking {
    url: String,
    token: Option<String>,
    body: String,
}

/// Sends every booking once, `connections` at a time, each with its own `X-Request-ID`; every
/// answer counts, and one that is not a 201 is a failure, not throughput.
async fn book_all(name: &str, bookings: Vec<Booking>, connections: usize) -> Outcome {
    let client = reqwest::Client::new();
    let sem = Arc::new(tokio::sync::Semaphore::new(connections));
    let started = Instant::now();
    let mut tasks = vec![];
    for b in bookings {
        let (client, sem) = (client.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let t = Instant::now();
            let mut rb = client
                .post(&b.url)
                .header("content-type", "application/fhir+json")
                .header("X-Request-ID", uuid::Uuid::new_v4().to_string())
                .body(b.body);
            if let Some(token) = &b.token {
                rb = rb.bearer_auth(token);
            }
            let ok = match rb.send().await {
                Ok(r) => {
                    let created = r.status() == reqwest::StatusCode::CREATED;
                    let _ = r.bytes().await;
                    created
                }
                Err(_) => false,
            };
            (t.elapsed().as_micros() as u32, ok)
        }));
    }
    let mut lat = vec![];
    let mut non_2xx = 0;
    for t in tasks {
        let (us, ok) = t.await.expect("booking task");
        lat.push(us);
        non_2xx += usize::from(!ok);
    }
    let seconds = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Outcome {
        gateway_us: 0.0,
        machine_us: 0.0,
        name: name.to_owned(),
        requests: lat.len(),
        non_2xx,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// A Lua string literal (the paths and tokens are ASCII without quotes, but escape anyway).
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            // Lua escapes bytes, as exactly three decimal digits so a digit after one is not
            // read as part of it.
            c => {
                for b in c.encode_utf8(&mut [0u8; 4]).bytes() {
                    out.push_str(&format!("\\{b:03}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// wrk with a script that formats every request of the load once, then has thread `t` of `T`
/// send request `t + T * n`. Every response outside 2xx is counted as a failure, and so are
/// wrk's socket errors (connect, read, write, timeout).
async fn drive_wrk(load: &Load, base: &str, connections: usize, seconds: u64) -> Outcome {
    // wrk gives each thread connections / threads of them: two threads when that is exact.
    let threads: usize = if connections >= 2 && connections.is_multiple_of(2) {
        2
    } else {
        1
    };
    let header = |token: &str| {
        if token.is_empty() {
            String::new()
        } else {
            format!(
                "wrk.headers[\"Authorization\"] = {}\n",
                lua_string(&format!("Bearer {token}"))
            )
        }
    };
    // One request: wrk's own static request, as `wrk -H ... URL` would send it. Several: each
    // formatted once, thread `t` of `T` sending request `t + T * n` (`thread_id` is set in
    // each thread's state by `setup`).
    let requests = if load.len() == 1 && load.bodies.is_empty() {
        let (path, token) = load.request(0);
        format!("wrk.path = {}\n{}", lua_string(path), header(token))
    } else {
        let list = |v: &[String]| v.iter().map(|s| lua_string(s)).collect::<Vec<_>>().join(",\n");
        format!(
            r#"local paths = {{ {paths} }}
local tokens = {{ {tokens} }}
local bodies = {{ {bodies} }}
local count = {count}

local requests = {{}}
local n = 0

function init(args)
  for i = 0, count - 1 do
    local headers = {{}}
    if #tokens > 0 then
      headers["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]
    end
    if #bodies > 0 then
      headers["Content-Type"] = "application/fhir+json"
      requests[i] = wrk.format("POST", paths[(i % #paths) + 1], headers, bodies[(i % #bodies) + 1])
    else
      requests[i] = wrk.format("GET", paths[(i % #paths) + 1], headers)
    end
  end
  n = thread_id
end

function request()
  local r
  if {uniform} then
    r = requests[math.random(0, count - 1)]
  else
    r = requests[n % count]
  end
  n = n + {threads}
  return r
end
"#,
            uniform = load.uniform,
            paths = list(&load.paths),
            tokens = list(&load.tokens),
            bodies = list(&load.bodies),
            count = load.len().max(load.bodies.len()),
        )
    };
    // Every response outside 2xx is counted in its thread (wrk's own status count starts at
    // 400), and summed over the threads at the end with the socket errors.
    let script = format!(
        r#"local threads = {{}}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

not_2xx = 0

function response(status, headers, body)
  if status < 200 or status > 299 then
    not_2xx = not_2xx + 1
  end
end

{requests}
function done(summary, latency, requests)
  local e = summary.errors
  local other = 0
  for _, thread in ipairs(threads) do
    other = other + thread:get("not_2xx")
  end
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    other, e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"#
    );
    let file = tempfile::Builder::new().suffix(".lua").tempfile().expect("temp file");
    std::fs::write(file.path(), script).expect("wrk script");
    let args = [
        "-t".to_owned(),
        threads.to_string(),
        "-c".to_owned(),
        connections.to_string(),
        "-d".to_owned(),
        format!("{seconds}s"),
        "-s".to_owned(),
        file.path().display().to_string(),
        base.to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || Command::new("wrk").args(args).output())
        .await
        .expect("the wrk task")
        .expect("wrk runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .unwrap_or_else(|| panic!("wrk's summary: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    let f: Vec<u64> = line.split_whitespace().map(|v| v.parse().expect("a count")).collect();
    Outcome {
        gateway_us: 0.0,
        machine_us: 0.0,
        name: load.name.to_owned(),
        requests: f[0] as usize,
        non_2xx: f[2..7].iter().sum::<u64>() as usize,
        seconds: f[1] as f64 / 1e6,
        p50_ms: f[7] as f64 / 1000.0,
        p99_ms: f[8] as f64 / 1000.0,
    }
}

/// The clock ticks of /proc (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User and system CPU time of a process so far.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / TICKS_PER_SECOND
}

/// CPU time the whole machine spent busy so far (every state but idle and iowait).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / TICKS_PER_SECOND
}

fn peak_rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = client.get(format!("{base}/health/live")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let patients = env_usize("BENCH_PATIENTS", 100_000);
    let connections = env_usize("BENCH_CONNECTIONS", 64);
    let seconds = env_usize("BENCH_SECONDS", 10) as u64;
    let registrations = env_usize("BENCH_REGISTRATIONS", 1_000).min(patients.saturating_sub(WITH_ACCOUNTS));
    let admin = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".into());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    sql(&admin, &[format!("CREATE SCHEMA {schema}")]);
    let sep = if admin.contains('?') { '&' } else { '?' };
    let url = format!("{admin}{sep}options=-csearch_path%3D{schema}");
    let result = std::panic::AssertUnwindSafe(bench(&url, patients, connections, seconds, registrations));
    let outcome = futures_util::FutureExt::catch_unwind(result).await;
    sql(&admin, &[format!("DROP SCHEMA {schema} CASCADE")]);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}

async fn bench(url: &str, patients: usize, connections: usize, seconds: u64, registrations: usize) {
    let generator = Generator::choose();
    eprintln!("load from {}", generator.name());
    let client = reqwest::Client::new();
    let mut gateway = start(url);
    wait_ready(&client, &gateway.base).await;
    let t = Instant::now();
    populate(url, patients);
    eprintln!("populated {patients} patients in {:.1}s", t.elapsed().as_secs_f64());
    // A restart, as a real deployment would run: caches cold, the data set in place.
    drop(gateway);
    gateway = start(url);
    wait_ready(&client, &gateway.base).await;
    let base = gateway.base.clone();
    let pem = std::fs::read_to_string(gateway.data.path().join("dev-idp-signing-key.pem")).expect("dev key");
    let idp = DevIdentityProvider::from_pem(&pem, &base).expect("idp");
    let staff = idp
        .mint(
            IssuerKind::Staff,
            "gp-online-gateway",
            3600,
            &json!({"sub": "bench-staff", "name": "Bench Admin",
                    "nhsid_nrbac_roles": [{"org_code": PRACTICE_ODS, "role_code": "S8000:G8000:R8008", "role_name": "Admin"}]}),
        )
        .expect("staff token");
    let patient_token = |i: usize| {
        idp.mint(
            IssuerKind::Patient,
            "gp-online-gateway",
            3600,
            &json!({"sub": format!("bench-sub-{i}"), "nhs_number": nhs_number(i), "identity_proofing_level": "P9", "vot": "P9.Cp.Cd"}),
        )
        .expect("patient token")
    };
    let patient_tokens: Vec<(String, String)> = (0..connections)
        .map(|c| {
            let i = 100 + c;
            (format!("bench-{i:06}"), patient_token(i))
        })
        .collect();
    let proxy = patient_token(0);
    // First calls bind each patient token to its record.
    for (id, token) in &patient_tokens {
        let r = client
            .get(format!("{base}/Patient/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("warm");
        assert!(r.status().is_success(), "warm-up read: {}", r.status());
    }
    let r = client
        .get(format!("{base}/$my-access"))
        .bearer_auth(&proxy)
        .send()
        .await
        .expect("warm");
    let body: Value = r.json().await.expect("my-access");
    let acting = body["parameter"].as_array().map_or(0, Vec::len);
    assert_eq!(
        acting,
        PROXIED + 1,
        "the proxy sees their record and {PROXIED} patients: {body}"
    );

    let pid = gateway.child.id();
    eprintln!("gateway pid {pid}");
    if let Ok(pause) = std::env::var("BENCH_PAUSE") {
        // Time to attach a profiler: `perf record -g -p <pid>`.
        tokio::time::sleep(Duration::from_secs(pause.parse().unwrap_or(5))).await;
    }
    let n = patients;
    // Patients spread over the whole practice (104,729 is prime, so the sample has no repeats).
    let spread: Vec<usize> = (0..n.min(8192)).map(|k| (k * 104_729 + 7919) % n).collect();
    let loads = [
        Load::get("GET /metadata", vec!["/metadata".into()], vec![]),
        Load::get(
            "staff GET /Patient/{id}",
            spread.iter().map(|i| format!("/Patient/bench-{i:06}")).collect(),
            vec![staff.clone()],
        ),
        Load::get(
            "patient GET /Patient/{id}",
            patient_tokens.iter().map(|(id, _)| format!("/Patient/{id}")).collect(),
            patient_tokens.iter().map(|(_, t)| t.clone()).collect(),
        ),
        Load::get(
            "staff GET /Patient?identifier=",
            spread
                .iter()
                .map(|i| {
                    format!(
                        "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}",
                        nhs_number(*i)
                    )
                })
                .collect(),
            vec![staff.clone()],
        ),
        // The same two staff calls with every request's patient drawn uniformly at random from
        // the whole practice, beside the spread sample above (which goes through 8,192 of them
        // in turn).
        Load::get(
            "staff GET /Patient/{id} (uniform over all)",
            (0..n).map(|i| format!("/Patient/bench-{i:06}")).collect(),
            vec![staff.clone()],
        )
        .uniform(),
        Load::get(
            "staff GET /Patient?identifier= (uniform over all)",
            (0..n)
                .map(|i| {
                    format!(
                        "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{}",
                        nhs_number(i)
                    )
                })
                .collect(),
            vec![staff.clone()],
        )
        .uniform(),
        Load::get(
            "proxy GET /$my-access (6 patients)",
            vec!["/$my-access".into()],
            vec![proxy.clone()],
        ),
    ];
    // BENCH_ONLY=staff (a part of a call's name) runs the load calls matching it, for profiling.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut results = vec![];
    for load in &loads {
        if only.is_empty() || load.name.contains(&only) || load.name == "GET /metadata" {
            results.push(generator.drive(load, &base, connections, seconds, pid).await);
        }
    }
    // BENCH_PEER_URL: another FHIR server read the same way in the same run, for comparison.
    // Its patients get the same ids (PUT first, unless BENCH_PEER_LOADED is set), and every
    // request picks one uniformly at random from the whole population, as the staff read
    // above; BENCH_PEER_TOKEN is sent as its bearer token, BENCH_PEER_PID names its process
    // for the CPU column.
    if let Ok(peer) = std::env::var("BENCH_PEER_URL") {
        let peer = peer.trim_end_matches('/').to_owned();
        let token = std::env::var("BENCH_PEER_TOKEN").ok();
        if std::env::var_os("BENCH_PEER_LOADED").is_none() {
            load_peer(&client, &peer, token.as_deref(), n, connections).await;
        }
        let peer_pid = env_usize("BENCH_PEER_PID", 0) as u32;
        let read = Load::get(
            "peer GET /Patient/{id} (uniform over all)",
            (0..n).map(|i| format!("/Patient/bench-{i:06}")).collect(),
            token.into_iter().collect(),
        )
        .uniform();
        results.push(generator.drive(&read, &peer, connections, seconds, peer_pid).await);
    }
    // BENCH_INSTANCES=2: a second instance on the same database beside the first, each with
    // its own audit chain, and the uniform staff read driven at both at once (half the
    // connections each); the trail is verified as a whole at the end, as always.
    let mut instances_row = None;
    if env_usize("BENCH_INSTANCES", 1) >= 2 && (only.is_empty() || only.contains("staff")) {
        let second = start_beside(url, Some(gateway.data.path()));
        wait_ready(&client, &second.base).await;
        let second_pid = second.child.id();
        let idp2 = DevIdentityProvider::from_pem(&pem, &second.base).expect("idp");
        let staff2 = idp2
            .mint(
                IssuerKind::Staff,
                "gp-online-gateway",
                3600,
                &json!({"sub": "bench-staff", "name": "Bench Admin",
                        "nhsid_nrbac_roles": [{"org_code": PRACTICE_ODS, "role_code": "S8000:G8000:R8008", "role_name": "Admin"}]}),
            )
            .expect("staff token");
        let all: Vec<String> = (0..n).map(|i| format!("/Patient/bench-{i:06}")).collect();
        let first_load = Load::get(
            "staff GET /Patient/{id} (uniform over all), instance 1",
            all.clone(),
            vec![staff.clone()],
        )
        .uniform();
        let second_load = Load::get(
            "staff GET /Patient/{id} (uniform over all), instance 2",
            all,
            vec![staff2],
        )
        .uniform();
        let half = (connections / 2).max(1);
        let (a, b) = tokio::join!(
            generator.drive(&first_load, &base, half, seconds, pid),
            generator.drive(&second_load, &second.base, half, seconds, second_pid),
        );
        let requests = a.requests + b.requests;
        let together = Outcome {
            name: "staff GET /Patient/{id} (uniform over all), two instances together".into(),
            gateway_us: (a.gateway_us * a.requests as f64 + b.gateway_us * b.requests as f64) / requests.max(1) as f64,
            // Both drives ran over the same seconds, so each counted the whole machine's time.
            machine_us: (a.machine_us * a.requests as f64).max(b.machine_us * b.requests as f64)
                / requests.max(1) as f64,
            requests,
            non_2xx: a.non_2xx + b.non_2xx,
            seconds: a.seconds.max(b.seconds),
            p50_ms: a.p50_ms.max(b.p50_ms),
            p99_ms: a.p99_ms.max(b.p99_ms),
        };
        let (peak2, _) = peak_rss_mib(second_pid);
        results.push(a);
        results.push(b);
        results.push(together);
        let mut c = gp_online_gateway::db::connect(url).expect("connect");
        #[derive(diesel::QueryableByName)]
        struct Chains {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let chains = diesel::sql_query("SELECT COUNT(DISTINCT chain) AS n FROM audit_events")
            .get_result::<Chains>(&mut c)
            .map(|c| c.n)
            .unwrap_or(0);
        instances_row = Some((chains, peak2));
        drop(second);
    }
    // The GP record: a 500-entry record for each patient with a token, read through the
    // gateway and straight from the simulator, so the gateway's share is the difference.
    let mut record_added = None;
    if only.is_empty() || "record".contains(&only) || only.contains("record") {
        for (i, (_, _)) in patient_tokens.iter().enumerate() {
            let r = client
                .put(format!("{}/admin/records/{}", gateway.emis, nhs_number(100 + i)))
                .json(&record_of(100 + i, RECORD_ENTRIES))
                .send()
                .await
                .expect("seed a record");
            assert!(r.status().is_success(), "seeding a record: {}", r.status());
        }
        let everything = |i: usize| {
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "patientNHSNumber", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(100 + i)}},
                {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": true}]},
                {"name": "includeMedication"}, {"name": "includeConsultations"}, {"name": "includeProblems"},
                {"name": "includeImmunisations"}, {"name": "includeInvestigations"}, {"name": "includeReferrals"},
                {"name": "includeDocuments"}]})
            .to_string()
        };
        let own = Load::get(
            "simulator GET /records/{nhs} (500 entries)",
            (0..patient_tokens.len())
                .map(|i| format!("/records/{}?NationalPracticeCode={PRACTICE_ODS}", nhs_number(100 + i)))
                .collect(),
            vec![],
        );
        let through = Load {
            name: "patient POST /Patient/$gpc.getstructuredrecord (500 entries)",
            paths: vec!["/Patient/$gpc.getstructuredrecord".into()],
            tokens: patient_tokens.iter().map(|(_, t)| t.clone()).collect(),
            bodies: (0..patient_tokens.len()).map(everything).collect(),
            uniform: false,
        };
        let sim = generator.drive(&own, &gateway.emis, connections, seconds, pid).await;
        let gw = generator.drive(&through, &base, connections, seconds, pid).await;
        record_added = Some((sim.p99_ms, gw.p99_ms));
        results.push(sim);
        results.push(gw);
    }
    // Appointments: a week of free slots through the gateway and straight from the simulator,
    // then bookings of distinct free slots, the same number each way at the same concurrency,
    // so the gateway's share is the difference.
    let mut slots_added = None;
    let mut booking_added = None;
    if only.is_empty() || only.contains("slot") || only.contains("book") {
        let today = chrono::Utc::now().date_naive();
        let (from, to) = (today + chrono::Duration::days(1), today + chrono::Duration::days(7));
        let own = Load::get(
            "simulator GET /appointments/slots (7 days)",
            vec![format!(
                "/appointments/slots?NationalPracticeCode={PRACTICE_ODS}&From={from}&To={to}"
            )],
            vec![],
        );
        let through = Load::get(
            "patient GET /Slot (7 days)",
            vec![format!("/Slot?start=ge{from}&start=le{to}&_count=50")],
            patient_tokens.iter().map(|(_, t)| t.clone()).collect(),
        );
        let sim = generator.drive(&own, &gateway.emis, connections, seconds, pid).await;
        let gw = generator.drive(&through, &base, connections, seconds, pid).await;
        slots_added = Some((sim.p99_ms, gw.p99_ms));
        results.push(sim);
        results.push(gw);

        let listed: Value = client
            .get(format!(
                "{}/appointments/slots?NationalPracticeCode={PRACTICE_ODS}&From={from}&To={}",
                gateway.emis,
                today + chrono::Duration::days(30)
            ))
            .send()
            .await
            .expect("slots")
            .json()
            .await
            .expect("slots json");
        let free: Vec<String> = listed["Slots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["SlotId"].as_str().map(str::to_owned))
            .collect();
        let half = free.len() / 2;
        let direct: Vec<Booking> = free[..half]
            .iter()
            .enumerate()
            .map(|(k, slot)| Booking {
                url: format!("{}/appointments", gateway.emis),
                token: None,
                body: json!({"SlotId": slot, "PatientNhsNumber": nhs_number(100 + k % connections),
                    "NationalPracticeCode": PRACTICE_ODS})
                .to_string(),
            })
            .collect();
        let gatewayed: Vec<Booking> = free[half..2 * half]
            .iter()
            .enumerate()
            .map(|(k, slot)| Booking {
                url: format!("{base}/Appointment"),
                token: Some(patient_tokens[k % patient_tokens.len()].1.clone()),
                body: json!({"resourceType": "Appointment", "status": "booked",
                    "slot": [{"reference": format!("Slot/{slot}")}], "participant": [{"status": "accepted"}]})
                .to_string(),
            })
            .collect();
        let sim = book_all("simulator POST /appointments", direct, connections).await;
        let gw = book_all("patient POST /Appointment", gatewayed, connections).await;
        booking_added = Some((sim.p99_ms, gw.p99_ms, half));
        results.push(sim);
        results.push(gw);
    }
    let (peak, now_rss) = peak_rss_mib(pid);

    // Registration through the outbox to the simulator.
    // One connection for all the polls below: a new one every poll would be a new server
    // process, on the cores being measured.
    let mut poll = gp_online_gateway::db::connect(url).expect("connect");
    let started = Instant::now();
    let mut posts = vec![];
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "identityVerification", "part": [{"name": "method", "valueCode": "documents-in-person"},
            {"name": "document", "valueString": "passport"}]},
        {"name": "email", "valueString": "bench@example.org"},
        {"name": "responsibilitiesAcknowledged", "valueBoolean": true},
        {"name": "coercionConsidered", "valueBoolean": true},
        {"name": "capacityConsidered", "valueBoolean": true},
        {"name": "services", "part": [{"name": "appointments", "valueBoolean": true}]}]});
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    for i in WITH_ACCOUNTS..WITH_ACCOUNTS + registrations {
        let (client, base, staff, body, sem) = (client.clone(), base.clone(), staff.clone(), body.clone(), sem.clone());
        posts.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            let r = client
                .post(format!("{base}/Patient/bench-{i:06}/$register-online-services"))
                .bearer_auth(&staff)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .expect("register");
            r.status().as_u16()
        }));
    }
    let mut refused = 0;
    for p in posts {
        if p.await.expect("post") != 202 {
            refused += 1;
        }
    }
    eprintln!(
        "{registrations} registrations answered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut count_active = || {
        let c = &mut poll;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM online_accounts WHERE practice_id = '{PRACTICE_ID}' AND status = 'active' \
             AND supplier_account_id IS NOT NULL"
        ))
        .get_result::<N>(c)
        .map(|r| r.n)
        .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while (count_active() as usize) < registrations - refused && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registration_seconds = started.elapsed().as_secs_f64();

    // The opt-in job over the whole practice.
    let started = Instant::now();
    let r = client
        .post(format!("{base}/Organization/{PRACTICE_ID}/$apply-opt-in-model"))
        .bearer_auth(&staff)
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Parameters", "parameter": [{"name": "turningSixteenWithinDays", "valueInteger": 90}]}).to_string())
        .send()
        .await
        .expect("opt-in");
    let task: Value = r.json().await.expect("task");
    let id = task["id"].as_str().expect("task id").to_owned();
    let done = loop {
        let t: Value = client
            .get(format!("{base}/Task/{id}"))
            .bearer_auth(&staff)
            .send()
            .await
            .expect("task")
            .json()
            .await
            .expect("task json");
        if t["status"] == "completed" || t["status"] == "failed" || started.elapsed() > Duration::from_secs(600) {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let opt_in_seconds = started.elapsed().as_secs_f64();
    let coded = done["output"]
        .as_array()
        .and_then(|o| o.iter().find(|x| x["type"]["text"] == "coded"))
        .and_then(|x| x["valueInteger"].as_i64())
        .unwrap_or(-1);

    // Every decision was audited: the chains verify.
    let started = Instant::now();
    let verify: Value = client
        .get(format!("{base}/AuditEvent/$verify?mode=full"))
        .bearer_auth(&staff)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("verify json");
    let verify_seconds = started.elapsed().as_secs_f64();
    let intact = verify["parameter"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == "valid"))
        .is_some_and(|x| x["valueBoolean"] == true);

    let metadata = results[0].requests as f64 / results[0].seconds;
    println!(
        "\n{patients} patients, {connections} connections, {seconds} s per call, PostgreSQL, load from {}\n",
        generator.name()
    );
    println!(
        "| call | req/s | ratio to /metadata | p50 ms | p99 ms | non-2xx | gateway CPU µs/req | machine CPU µs/req |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &results {
        let rps = r.requests as f64 / r.seconds;
        println!(
            "| {} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {:.0} | {:.0} |",
            r.name,
            rps,
            rps / metadata,
            r.p50_ms,
            r.p99_ms,
            r.non_2xx,
            r.gateway_us,
            r.machine_us
        );
    }
    println!("\n| measure | value |");
    println!("| --- | ---: |");
    if let Some((sim, gw)) = record_added {
        println!(
            "| GP record p99 added by the gateway (500 entries) | {:.1} ms ({gw:.1} through the gateway, {sim:.1} at the simulator) |",
            gw - sim
        );
    }
    if let Some((sim, gw)) = slots_added {
        println!(
            "| slot search p99 added by the gateway (7 days) | {:.1} ms ({gw:.1} through the gateway, {sim:.1} at the simulator) |",
            gw - sim
        );
    }
    if let Some((sim, gw, n)) = booking_added {
        println!(
            "| booking p99 added by the gateway ({n} bookings each way) | {:.1} ms ({gw:.1} through the gateway, {sim:.1} at the simulator) |",
            gw - sim
        );
    }
    println!("| gateway peak RSS under load | {peak:.0} MiB (now {now_rss:.0} MiB) |");
    if let Some((chains, peak2)) = instances_row {
        println!("| second instance's peak RSS | {peak2:.0} MiB |");
        println!("| audit chains in the trail after the two-instance run | {chains} |");
    }
    println!(
        "| registration to supplier account | {registrations} in {registration_seconds:.1} s = {:.0} accounts/s ({refused} refused) |",
        registrations as f64 / registration_seconds
    );
    println!(
        "| opt-in job over {patients} patients | {opt_in_seconds:.1} s ({coded} coded, status {}) |",
        done["status"]
    );
    println!(
        "| audit chains verified after the run | {} in {verify_seconds:.1} s |",
        if intact { "intact" } else { "NOT INTACT" }
    );
    assert!(intact, "{verify}");
}
