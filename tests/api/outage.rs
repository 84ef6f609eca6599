//! PostgreSQL going away under the gateway and coming back: answers are 503 within a bounded
//! time while it is away, nothing is half-written, and service returns by itself. The outage
//! is made by a TCP relay between the gateway and PostgreSQL that drops every connection and
//! refuses new ones, which is what a stopped server looks like from the gateway.

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
}

impl Relay {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let accepting = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    // Down: the connection is closed at once, as by a stopped server.
                    drop(client);
                    continue;
                }
                let mut cuts = cuts.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    cuts.borrow_and_update();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
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
