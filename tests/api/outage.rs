//! PostgreSQL going away under the gateway and coming back: answers are 503 within a bounded
//! time while it is away, nothing is half-written, every change is on record before it is
//! made, and service returns by itself. The outage is made by a TCP relay between the gateway
//! and PostgreSQL: cut (every connection dropped where it is, new ones refused), or crashed
//! (the server ends the gateway's sessions, as a server that dies does, and new connections
//! are refused until it is back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;

/// A relay to PostgreSQL that can be cut and restored.
struct Relay {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// The local ports of the relay's connections to the server, by which the server knows
    /// the gateway's sessions.
    upstream: Arc<std::sync::Mutex<Vec<u16>>>,
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        let upstream = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ports = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    // Down: the connection is closed at once, as by a stopped server.
                    drop(client);
                    continue;
                }
                let mut cuts = cuts.clone();
                let target = target.clone();
                let ports = ports.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    if let Ok(local) = server.local_addr() {
                        ports.lock().unwrap().push(local.port());
                    }
                    cuts.borrow_and_update();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            cut,
            upstream,
        }
    }

    /// The server "crashes": new connections are refused and the server itself ends every
    /// session the gateway has through the relay, whatever it was doing (a commit included).
    async fn crash(&self, admin_url: &str) {
        self.up.store(false, Ordering::SeqCst);
        let ports: Vec<String> = self.upstream.lock().unwrap().iter().map(u16::to_string).collect();
        if ports.is_empty() {
            return;
        }
        let (url, ports) = (admin_url.to_owned(), ports.join(","));
        tokio::task::spawn_blocking(move || {
            use diesel::RunQueryDsl;
            let mut conn = gp_online_gateway::db::connect(&url).unwrap();
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE client_addr = '127.0.0.1' AND client_port IN ({ports}) AND pid <> pg_backend_pid()"
            ))
            .execute(&mut conn)
            .unwrap();
        })
        .await
        .unwrap();
    }

    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn start_again(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// The test database URL with its host and port replaced by the relay's.
fn through(url: &str, port: u16) -> (String, String) {
    let mut parsed = url::Url::parse(url).unwrap();
    let target = format!(
        "{}:{}",
        parsed.host_str().unwrap_or("127.0.0.1"),
        parsed.port().unwrap_or(5432)
    );
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(port)).unwrap();
    (parsed.to_string(), target)
}

async fn ready(app: &TestApp) -> (StatusCode, Value) {
    let response = app.client.get(app.url("/health/ready")).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn a_database_outage_is_503_while_it_lasts_and_service_returns_by_itself() {
    let (mut settings, db, data) = test_settings();
    if !db.is_postgres() {
        // SQLite is a file in the process: it cannot go away like a server.
        return;
    }
    let target_url = settings.database.url.clone();
    let (_, target) = through(&target_url, 1);
    let relay = Relay::start(target).await;
    settings.database.url = through(&target_url, relay.port).0;
    settings.database.connect_timeout_seconds = 1;
    settings.audit.commit_timeout_ms = 1500;
    let app = TestApp::spawn_on(settings, db, data).await;
    let staff = app.token("staff-emis");
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &staff).await;
    assert_eq!(status, StatusCode::OK);

    // Load throughout: reads, a search and a write that is a duplicate while the database is up.
    let stop_load = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (client, base, token, stop) = (
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            app.base.clone(),
            staff.clone(),
            stop_load.clone(),
        );
        load.spawn(async move {
            let mut seen = std::collections::BTreeMap::<u16, usize>::new();
            while !stop.load(Ordering::SeqCst) {
                let request = match worker {
                    0 => client.get(format!("{base}/Patient/patient-jane-smith")),
                    1 => client.get(format!("{base}/Patient?family=smith")),
                    2 => client.get(format!("{base}/Patient/patient-jane-smith/$online-account")),
                    _ => client
                        .post(format!("{base}/Patient"))
                        .header("content-type", "application/fhir+json")
                        .body(new_patient("9990000018", "Smith", "A81001").to_string()),
                };
                let status = request
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("answered within 10 s")
                    .status();
                *seen.entry(status.as_u16()).or_default() += 1;
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    relay.stop();
    let create = |request_id: &str| {
        send(
            app.request(Method::POST, "/Patient", Some(&staff))
                .header("content-type", "application/fhir+json")
                .header("x-request-id", request_id)
                .body(new_patient(FREE_NHS_NUMBERS[5], "Outage", "A81001").to_string()),
        )
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = app.get("/Patient/patient-jane-smith", &staff).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "answered in {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let (status, _, body) = create(&request_id).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "answered in {:?}",
            started.elapsed()
        );
    }
    let (status, health) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health_check(&health, "database")["status"], "fail", "{health}");

    relay.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = app.get("/Patient/patient-jane-smith", &staff).await;
        if status == StatusCode::OK {
            break;
        }
        let (_, health) = ready(&app).await;
        assert!(
            Instant::now() < deadline,
            "service did not return: {status} {body} {health}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, health) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_load.store(true, Ordering::SeqCst);
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(counts) = load.join_next().await {
        for (status, n) in counts.unwrap() {
            *seen.entry(status).or_default() += n;
        }
    }
    // Only answers that say what happened: done, a duplicate, or unavailable for now.
    assert!(
        seen.keys().all(|s| [200, 409, 503].contains(s)),
        "answers under load: {seen:?}"
    );
    assert!(seen.contains_key(&503) && seen.contains_key(&200), "{seen:?}");
    // Nothing was written while it was down, and the write can be made now with the same id.
    let search = format!("/Patient?identifier={}", FREE_NHS_NUMBERS[5]);
    let (_, _, found) = app.get(&search, &staff).await;
    assert_eq!(found["total"], 0, "{found}");
    let (status, _, body) = create(&request_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, _, found) = app.get(&search, &staff).await;
    assert_eq!(found["total"], 1, "{found}");
    // The trail is whole: every refusal during the outage that was recorded, and no gap.
    assert_trail_verifies(&app).await;
}

/// How the database goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    Crash,
    Cut,
}

/// A valid NHS number not in the seed data, the `n`th of a range kept for this test.
fn nhs_number(n: u32) -> Option<String> {
    let body = format!("99951{n:04}");
    let digits: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum: u32 = digits.iter().enumerate().map(|(i, d)| d * (10 - i as u32)).sum();
    match 11 - sum % 11 {
        11 => Some(format!("{body}0")),
        10 => None,
        check => Some(format!("{body}{check}")),
    }
}

/// The gateway error code of an answer, if it is an OperationOutcome.
fn code_of(answer: &Value) -> String {
    answer["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// One answer a client loop saw.
#[derive(Debug, Clone)]
struct Seen {
    status: u16,
    took: Duration,
    /// When the answer came, from the test's start.
    at: Duration,
    code: String,
    retry_after: bool,
}

/// Writes in flight when the database goes away: patient creates, registrations for online
/// services and updates with `X-Request-ID`, each retried with its id until it is answered, beside reads and readiness
/// checks. Every answer while the database is away is 503 within the allowance; readiness
/// answers within a second and follows the database; each write is made exactly once and
/// answered (made, or replayed) as soon as the database is back; every patient created has its
/// decision on record from before the record was made.
async fn writes_in_flight_when_the_database_goes_away(outage: Outage) {
    let (mut settings, db, data) = test_settings();
    if !db.is_postgres() {
        return;
    }
    let target_url = settings.database.url.clone();
    let (_, target) = through(&target_url, 1);
    let relay = Relay::start(target).await;
    settings.database.url = through(&target_url, relay.port).0;
    settings.database.connect_timeout_seconds = 1;
    settings.audit.commit_timeout_ms = 1500;
    // The loops below are paced, not limited.
    settings.http.rate_limit_per_minute = 1_000_000;
    let allowance = settings.outage_answer_within();
    // What a loaded test machine adds to an answer's own time.
    let slack = Duration::from_millis(700);
    let app = TestApp::spawn_on(settings, db, data).await;
    let staff = app.token("staff-emis");
    let (status, _, jane) = app.get("/Patient/patient-jane-smith", &staff).await;
    assert_eq!(status, StatusCode::OK);

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let numbers = Arc::new(std::sync::Mutex::new((0..10_000).filter_map(nhs_number)));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Writers: each sends a write, then retries it with the same id until it is answered.
    let mut writers = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (client, base, token, stop, numbers, jane) = (
            client.clone(),
            app.base.clone(),
            staff.clone(),
            stop.clone(),
            numbers.clone(),
            jane.clone(),
        );
        writers.spawn(async move {
            let mut writes = Vec::new();
            // The last patient this worker created, to register for online services next.
            let mut to_register: Option<String> = None;
            while !stop.load(Ordering::SeqCst) {
                let request_id = uuid::Uuid::new_v4().to_string();
                let (method, path, body) = if worker == 3 {
                    (Method::PUT, "/Patient/patient-jane-smith".to_owned(), jane.clone())
                } else if let Some(patient) = to_register.take() {
                    (
                        Method::POST,
                        format!("/Patient/{patient}/$register-online-services"),
                        crate::registration::registration("nhs-login-p9", None, "summary", None),
                    )
                } else {
                    let nhs = numbers.lock().unwrap().next().expect("enough NHS numbers");
                    (
                        Method::POST,
                        "/Patient".to_owned(),
                        new_patient(&nhs, "Inflight", "A81001"),
                    )
                };
                let mut answers: Vec<Seen> = Vec::new();
                let created = loop {
                    let sent = Instant::now();
                    let response = client
                        .request(method.clone(), format!("{base}{path}"))
                        .bearer_auth(&token)
                        .header("content-type", "application/fhir+json")
                        .header("x-request-id", &request_id)
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("answered");
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    let replayed = response.headers().contains_key("x-idempotent-replay");
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    answers.push(Seen {
                        status,
                        took: sent.elapsed(),
                        at: start.elapsed(),
                        code: code_of(&answer),
                        retry_after,
                    });
                    if status == 503 || (status == 409 && code_of(&answer) == "REQUEST_IN_PROGRESS") {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    break (answer["id"].as_str().map(str::to_owned), replayed);
                };
                if worker == 2 && path == "/Patient" {
                    to_register = created.0.clone();
                }
                writes.push((path, request_id, answers, created));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            writes
        });
    }
    // A reader, and readiness.
    let reader = {
        let (client, base, token, stop) = (client.clone(), app.base.clone(), staff.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let response = client
                    .get(format!("{base}/Patient/patient-jane-smith"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("answered");
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                seen.push(Seen {
                    status,
                    took: sent.elapsed(),
                    at: start.elapsed(),
                    code: code_of(&answer),
                    retry_after,
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let readiness = {
        let (client, base, stop) = (client.clone(), app.base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let sent = Instant::now();
                let response = client
                    .get(format!("{base}/health/ready"))
                    .send()
                    .await
                    .expect("answered");
                let status = response.status().as_u16();
                let health: Value = response.json().await.unwrap_or(Value::Null);
                let database = health_check(&health, "database")["status"] == "pass";
                seen.push((start.elapsed(), sent.elapsed(), status, database));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };

    tokio::time::sleep(Duration::from_millis(700)).await;
    let went = start.elapsed();
    match outage {
        Outage::Crash => relay.crash(&target_url).await,
        Outage::Cut => relay.stop(),
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let back = start.elapsed();
    relay.start_again();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);

    let mut writes = Vec::new();
    while let Some(w) = writers.join_next().await {
        writes.extend(w.unwrap());
    }
    let reads = reader.await.unwrap();
    let ready = readiness.await.unwrap();

    // Every 503 came within the allowance and said when to come back.
    let answers = writes.iter().flat_map(|(_, _, a, _)| a.iter()).chain(reads.iter());
    let mut unavailable = 0;
    for seen in answers {
        assert!(
            [200, 201, 202, 503].contains(&seen.status) || (seen.status == 409 && seen.code == "REQUEST_IN_PROGRESS"),
            "{outage:?}: unexpected answer {seen:?}"
        );
        if seen.status == 503 {
            unavailable += 1;
            assert!(seen.took <= allowance + slack, "{outage:?}: a 503 took {seen:?}");
            assert!(seen.retry_after, "{outage:?}: a 503 without Retry-After: {seen:?}");
        }
        // In progress only while the request could still be running: not once the database
        // has been back for longer than a request takes.
        if seen.status == 409 {
            assert!(
                seen.at < back + allowance + slack,
                "{outage:?}: still in progress at {seen:?}"
            );
        }
    }
    assert!(unavailable > 0, "{outage:?}: the outage was not seen");
    assert!(
        reads.iter().any(|r| r.status == 200 && r.at > back),
        "{outage:?}: reads did not return"
    );

    // Readiness answered within a second, failed while the database was away, and followed its
    // return within a second.
    for (at, took, _, _) in &ready {
        assert!(
            *took < Duration::from_secs(1),
            "{outage:?}: readiness took {took:?} at {at:?}"
        );
    }
    assert!(
        ready
            .iter()
            .any(|(at, _, status, database)| *at > went && *at < back && *status == 503 && !database),
        "{outage:?}: readiness did not say the database failed: {ready:?}"
    );
    let returned = ready
        .iter()
        .find(|(at, _, status, _)| *at > back && *status == 200)
        .map(|(at, ..)| *at)
        .expect("ready again");
    assert!(
        returned - back < Duration::from_secs(1) + Duration::from_millis(300),
        "{outage:?}: ready {:?} after the database returned",
        returned - back
    );

    let slowest = writes
        .iter()
        .flat_map(|(_, _, a, _)| a.iter())
        .chain(reads.iter())
        .filter(|s| s.status == 503)
        .map(|s| s.took)
        .max();
    let slowest_ready = ready.iter().map(|(_, took, ..)| *took).max();
    eprintln!(
        "{outage:?}: {unavailable} answers 503, the slowest in {slowest:?} (allowance {allowance:?}); readiness answered within {slowest_ready:?} and was ready {:?} after the database returned",
        returned - back
    );

    // Each write was answered in the end, as made or as a replay of its making.
    let mut created = std::collections::BTreeSet::new();
    for (path, request_id, answers, (id, _)) in &writes {
        let last = answers.last().unwrap();
        let expected = match path.as_str() {
            "/Patient" => 201,
            p if p.ends_with("$register-online-services") => 202,
            _ => 200,
        };
        assert_eq!(
            last.status, expected,
            "{outage:?}: {path} {request_id} ended {answers:?}"
        );
        if path == "/Patient" {
            assert!(
                created.insert(id.clone().expect("an id")),
                "{outage:?}: one record for two writes"
            );
        }
    }
    assert!(
        writes
            .iter()
            .any(|(_, _, answers, _)| answers.iter().any(|a| a.status == 503)),
        "{outage:?}: no write was in flight at the outage"
    );

    // Made exactly once each, and each on record before it was made.
    let rows = {
        let url = target_url.clone();
        tokio::task::spawn_blocking(move || {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Text)]
                id: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                audited_first: i64,
            }
            let mut conn = gp_online_gateway::db::connect(&url).unwrap();
            diesel::sql_query(
                "SELECT p.id, (SELECT COUNT(*) FROM audit_events e WHERE e.action = 'create-patient' \
                 AND e.outcome = 'success' AND e.patient_id = p.id AND e.recorded_at <= p.created_at) AS audited_first \
                 FROM patients p WHERE p.family = 'Inflight'",
            )
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| (r.id, r.audited_first))
            .collect::<Vec<_>>()
        })
        .await
        .unwrap()
    };
    let stored: std::collections::BTreeSet<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(stored, created, "{outage:?}: the records made are the records answered");
    for (id, audited_first) in &rows {
        assert!(
            *audited_first >= 1,
            "{outage:?}: {id} was made before its decision was on record"
        );
    }
    assert_trail_verifies(&app).await;
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn writes_in_flight_at_a_crash_are_made_once_after_their_audit_event() {
    writes_in_flight_when_the_database_goes_away(Outage::Crash).await;
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn writes_in_flight_at_a_cut_are_made_once_after_their_audit_event() {
    writes_in_flight_when_the_database_goes_away(Outage::Cut).await;
}
