//! X-Request-ID replay of completed writes, and X-Correlation-ID mirroring.

use reqwest::{Method, StatusCode};
use serde_json::json;

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

/// The VRS paths require `X-Request-ID`, as the VRS spec marks it; everywhere else the gateway
/// generates one. Both ids come back exactly as sent (the spec's own example id is in
/// capitals), while replay and the audit trail take an id in any case as the same id.
#[tokio::test]
async fn vrs_paths_require_a_request_id_and_ids_come_back_as_sent() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let role = "74eed847-ca25-4e76-8cf2-f2c2d7842a7a";
    let create = crate::proxy::example("adult_to_adult_proxy_creation");
    let end = json!([{"op": "add", "path": "/provision/period/end", "value": "2031-01-01"}]);
    let access_request = crate::proxy::example("mother-child");
    let grants = json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [{"name": "appointments", "valueBoolean": true}]}
    ]});
    let fhir = "application/fhir+json";
    for (method, path, body, content_type) in [
        (
            Method::GET,
            "/RelatedPerson?identifier=9000000017".to_owned(),
            None,
            fhir,
        ),
        (
            Method::GET,
            "/Consent?performer:identifier=9000000017".to_owned(),
            None,
            fhir,
        ),
        (Method::GET, format!("/Consent/{role}"), None, fhir),
        (Method::POST, "/Consent".to_owned(), Some(&create), fhir),
        (
            Method::PATCH,
            format!("/Consent/{role}"),
            Some(&end),
            "application/json-patch+json",
        ),
        (
            Method::POST,
            format!("/Consent/{role}/$set-proxy-access"),
            Some(&grants),
            fhir,
        ),
        (
            Method::POST,
            "/QuestionnaireResponse".to_owned(),
            Some(&access_request),
            fhir,
        ),
        (
            Method::GET,
            "/QuestionnaireResponse/156e1560-e532-4e2a-85ad-5aeff03dc43e".to_owned(),
            None,
            fhir,
        ),
    ] {
        let mut request = app.request(method.clone(), &path, Some(&staff));
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body.to_string());
        }
        let (status, headers, outcome) = send(request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {outcome}");
        let coding = &outcome["issue"][0]["details"]["coding"][0];
        assert_eq!(coding["code"], "MISSING_VALUE", "{method} {path}: {outcome}");
        assert_eq!(
            coding["system"], "https://fhir.nhs.uk/R4/CodeSystem/ValidatedRelationships-ErrorOrWarningCode",
            "the VRS shape"
        );
        assert!(
            outcome["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains("X-Request-ID"),
            "{outcome}"
        );
        // The refusal has an id of its own to quote.
        assert!(uuid::Uuid::parse_str(headers["x-request-id"].to_str().unwrap()).is_ok());
    }
    // Nothing was done by the refused writes.
    let pair = "/Consent?performer:identifier=9000000017&patient:identifier=9000010128";
    let (_, _, none) = app.get(pair, &staff).await;
    assert_eq!(none["total"], 0, "{none}");
    let (_, _, unchanged) = app.get(&format!("/Consent/{role}"), &staff).await;
    assert!(!unchanged.to_string().contains("2031-01-01"), "{unchanged}");

    // Sent in capitals (the spec's examples), echoed in capitals; the same id in lower case is
    // the same request, replayed.
    let request_id = "60E0B220-8136-4CA5-AE46-1D97EF59D068";
    let correlation_id = "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA";
    let post = |id: String| {
        send(
            app.request(Method::POST, "/Consent", Some(&staff))
                .header("content-type", fhir)
                .header("X-Request-ID", id)
                .header("X-Correlation-ID", correlation_id)
                .body(create.to_string()),
        )
    };
    let (status, headers, first) = post(request_id.to_owned()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(headers["x-request-id"], request_id);
    assert_eq!(headers["x-correlation-id"], correlation_id);
    let (status, replay_headers, again) = post(request_id.to_lowercase()).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(replay_headers["x-idempotent-replay"], "true");
    assert_eq!(replay_headers["x-request-id"], request_id.to_lowercase().as_str());
    assert_eq!(replay_headers["location"], headers["location"]);
    let (_, _, one) = app.get(pair, &staff).await;
    assert_eq!(one["total"], 1, "{one}");
    // The trail finds the request by its id as the caller sent it.
    let (status, _, events) = app.get(&format!("/AuditEvent?request-id={request_id}"), &staff).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(events["entry"].as_array().is_some_and(|e| !e.is_empty()), "{events}");

    // Elsewhere an id is still generated when absent, and a supplied one echoed as sent.
    let (status, headers, _) = app.get("/Patient/patient-jane-smith", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(uuid::Uuid::parse_str(headers["x-request-id"].to_str().unwrap()).is_ok());
    let (_, headers, _) = send(
        app.request(
            Method::GET,
            "/Patient/patient-jane-smith",
            Some(&app.token("staff-emis")),
        )
        .header("X-Request-ID", request_id),
    )
    .await;
    assert_eq!(headers["x-request-id"], request_id);
}
