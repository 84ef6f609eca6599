//! X-Request-ID replay of completed writes, and X-Correlation-ID mirroring.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn a_replayed_write_returns_the_first_response_and_creates_nothing_new() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = new_patient(FREE_NHS_NUMBERS[0], "Replay", "A81001");
    let post = || {
        send(
            app.request(Method::POST, "/Patient", Some(&token))
                .header("content-type", "application/fhir+json")
                .header("x-request-id", &request_id)
                .body(body.to_string()),
        )
    };
    let (status, headers, first) = post().await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-request-id"].to_str().unwrap(), request_id);
    let (status, headers, second) = post().await;
    assert_eq!(status, StatusCode::CREATED, "the replay carries the first status");
    assert_eq!(second, first);
    assert_eq!(headers["x-idempotent-replay"], "true");
    assert_eq!(
        headers["location"].to_str().unwrap(),
        app.url(&format!("/Patient/{}/_history/1", first["id"].as_str().unwrap()))
    );
    let (_, _, bundle) = app.get("/Patient?family=replay", &token).await;
    assert_eq!(bundle["total"], 1);

    // The same id with a different body is refused rather than silently replayed.
    let (status, _, outcome) = send(
        app.request(Method::POST, "/Patient", Some(&token))
            .header("content-type", "application/fhir+json")
            .header("x-request-id", &request_id)
            .body(new_patient(FREE_NHS_NUMBERS[1], "Other", "A81001").to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outcome_code(&outcome), "REQUEST_ID_REUSED");

    // Another caller using the same id does not see the first caller's response.
    let (status, _, other) = send(
        app.request(Method::POST, "/Patient", Some(&app.token("staff-tpp")))
            .header("content-type", "application/fhir+json")
            .header("x-request-id", &request_id)
            .body(body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{other}");
}

#[tokio::test]
async fn refused_writes_are_replayed_too_but_server_errors_are_not_remembered() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let request_id = uuid::Uuid::new_v4().to_string();
    let bad = new_patient("9990000019", "Invalid", "A81001");
    for _ in 0..2 {
        let (status, _, outcome) = send(
            app.request(Method::POST, "/Patient", Some(&token))
                .header("content-type", "application/fhir+json")
                .header("x-request-id", &request_id)
                .body(bad.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(outcome_code(&outcome), "INVALID_IDENTIFIER");
    }
}

#[tokio::test]
async fn concurrent_duplicates_of_one_request_create_one_record() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = new_patient(FREE_NHS_NUMBERS[2], "Burst", "A81001");
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            send(
                app.request(Method::POST, "/Patient", Some(&token))
                    .header("content-type", "application/fhir+json")
                    .header("x-request-id", &request_id)
                    .body(body.to_string()),
            )
        })
        .collect();
    let results = futures_util::future::join_all(attempts).await;
    for (status, _, outcome) in &results {
        assert!(
            *status == StatusCode::CREATED
                || (*status == StatusCode::CONFLICT && outcome_code(outcome) == "REQUEST_IN_PROGRESS"),
            "{status} {outcome}"
        );
    }
    let (_, _, bundle) = app.get("/Patient?family=burst", &token).await;
    assert_eq!(bundle["total"], 1);
}

#[tokio::test]
async fn ids_are_mirrored_generated_and_validated() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/metadata"))
        .header("x-correlation-id", "practice-batch-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "practice-batch-42");
    let generated = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let generated = uuid::Uuid::parse_str(&generated).expect("a UUID");
    // Time-ordered (version 7), made just now: the trail's index of request ids grows at its end.
    assert_eq!(generated.get_version_num(), 7, "{generated}");
    let (secs, _) = generated.get_timestamp().expect("a v7 id carries its time").to_unix();
    let now = chrono::Utc::now().timestamp().unsigned_abs();
    assert!(secs.abs_diff(now) < 60, "{secs} is not about now ({now})");

    let (status, _, outcome) = send(
        app.client
            .get(app.url("/metadata"))
            .header("x-request-id", "not-a-uuid"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome_code(&outcome), "INVALID_REQUEST");
}

/// A claim left by an instance that died (its heartbeat stopped) is taken over at once; one
/// whose instance is alive still answers REQUEST_IN_PROGRESS.
#[tokio::test]
async fn a_write_abandoned_by_a_dead_instance_can_be_retried_within_seconds() {
    use diesel::RunQueryDsl;
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let caller = format!("staff|{}/dev-idp/staff|staff-0001-riverside", app.base);
    let claim = |owner: &str, beat_seconds_ago: i64, request_id: &str, body: &str| {
        let mut h = sha2::Sha256::new();
        for part in ["POST", "/Patient", ""] {
            h.update(part);
            h.update([0]);
        }
        h.update(body);
        let fingerprint = format!("{:x}", h.finalize());
        let mut c = gp_online_gateway::db::connect(app.database_url()).unwrap();
        if app.on_sqlite() {
            // The gateway writes at the same time: wait for its lock rather than fail.
            diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut c).unwrap();
        }
        let now = gp_online_gateway::db::now();
        let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
        diesel::sql_query(format!(
            "INSERT INTO idempotency_records (caller, request_id, method, path, fingerprint, created_at, owner) \
             VALUES ('{caller}', '{request_id}', 'POST', '/Patient', '{fingerprint}', '{}', '{owner}')",
            fmt(now)
        ))
        .execute(&mut c)
        .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO instance_heartbeats (instance, beat_at) VALUES ('{owner}', '{}')",
            fmt(now - chrono::Duration::seconds(beat_seconds_ago))
        ))
        .execute(&mut c)
        .unwrap();
    };
    let post = |request_id: String, body: String| {
        send(
            app.request(Method::POST, "/Patient", Some(&token))
                .header("content-type", "application/fhir+json")
                .header("x-request-id", request_id)
                .body(body),
        )
    };
    let dead = uuid::Uuid::new_v4().to_string();
    let body = new_patient(FREE_NHS_NUMBERS[0], "Retried", "A81001").to_string();
    claim("gateway-dead", 30, &dead, &body);
    let (status, _, created) = post(dead, body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "taken over from the dead instance: {created}"
    );

    let alive = uuid::Uuid::new_v4().to_string();
    let body = new_patient(FREE_NHS_NUMBERS[1], "Running", "A81001").to_string();
    claim("gateway-alive", 0, &alive, &body);
    let (status, _, outcome) = post(alive, body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome_code(&outcome), "REQUEST_IN_PROGRESS");
}
