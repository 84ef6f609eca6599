use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn capability_statement_lists_what_is_supported() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/metadata")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    let cs: Value = response.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let resources: Vec<&str> = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "AllergyIntolerance",
            "Appointment",
            "AuditEvent",
            "Binary",
            "Condition",
            "Consent",
            "DocumentReference",
            "Encounter",
            "Immunization",
            "MedicationRequest",
            "MedicationStatement",
            "Observation",
            "Organization",
            "Patient",
            "QuestionnaireResponse",
            "RelatedPerson",
            "ServiceRequest",
            "Slot",
            "Task"
        ],
        "every resource type the server routes, and no other"
    );
    let patient = cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    let patient_params: Vec<&str> = patient["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "identifier",
        "_id",
        "family",
        "family:exact",
        "given",
        "name",
        "birthdate",
        "organization",
        "_sort",
        "_count",
        "_offset",
        "_total",
        "_summary",
        "_elements",
    ] {
        assert!(patient_params.contains(&p), "{p} in {patient_params:?}");
    }
    let interactions: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    for i in ["read", "vread", "history-instance", "update", "create", "search-type"] {
        assert!(interactions.contains(&i), "{i} in {interactions:?}");
    }
    let operations = cs.to_string();
    for op in [
        "register-online-services",
        "set-online-access",
        "my-access",
        "verify-linkage",
        "apply-opt-in-model",
        "run-transitions",
        "set-proxy-access",
    ] {
        assert!(operations.contains(&format!("\"name\":\"{op}\"")), "{op} is listed");
    }
}

#[tokio::test]
async fn formats_the_server_does_not_produce_are_406() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    for (accept, format, want) in [
        (Some("application/fhir+xml"), None, 406),
        (Some("text/html"), None, 406),
        (Some("application/fhir+json"), None, 200),
        (Some("application/json, text/plain"), None, 200),
        (Some("*/*"), None, 200),
        (None, Some("xml"), 406),
        (None, Some("json"), 200),
    ] {
        let path = match format {
            Some(f) => format!("/Patient/patient-jane-smith?_format={f}"),
            None => "/Patient/patient-jane-smith".to_owned(),
        };
        let mut rb = app.request(reqwest::Method::GET, &path, Some(&token));
        if let Some(a) = accept {
            rb = rb.header("accept", a);
        }
        let response = rb.send().await.unwrap();
        assert_eq!(response.status().as_u16(), want, "{accept:?} {format:?}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::spawn().await;
    let live: Value = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "pass");
    let ready: Value = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "pass");
    assert_eq!(health_check(&ready, "database")["status"], "pass");
    assert_eq!(health_check(&ready, "audit")["status"], "pass");
    // The dev profile's three issuers are fetched over HTTP from the gateway itself.
    for issuer in ["issuer:dev-staff", "issuer:dev-patient", "issuer:dev-system"] {
        assert_eq!(health_check(&ready, issuer)["status"], "pass", "{issuer}");
    }

    let token = app.token("staff-emis");
    app.get("/Patient/patient-jane-smith", &token).await;
    let metrics = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"gateway_http_requests_total{method="GET",route="/Patient/{id}",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_http_request_duration_seconds_bucket"));
    assert!(!metrics.contains("patient-jane-smith"), "raw paths never become labels");
}

#[tokio::test]
async fn unknown_paths_are_operation_outcomes() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app.get("/Practitioner/1", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome_code(&body), "RESOURCE_NOT_FOUND");
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.http.rate_limit_per_minute = 5).await;
    let mut limited = None;
    for _ in 0..10 {
        let r = app.client.get(app.url("/metadata")).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the sixth request within a minute is limited");
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(outcome_code(&body), "TOO_MANY_REQUESTS");
    // Health checks are never limited: orchestrators must always get an answer.
    assert_eq!(
        app.client.get(app.url("/health/live")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

/// Sends `n` requests as if forwarded for `client`; the statuses in order.
async fn statuses_forwarded_for(app: &TestApp, client: &str, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let r = app
            .client
            .get(app.url("/metadata"))
            .header("X-Forwarded-For", client)
            .send()
            .await
            .unwrap();
        out.push(r.status());
    }
    out
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = TestApp::spawn_with(|s| {
        s.http.rate_limit_per_minute = 3;
        s.http.trusted_proxies = vec!["127.0.0.0/8".into(), "::1".into()];
    })
    .await;
    let first = statuses_forwarded_for(&app, "198.51.100.1", 5).await;
    assert_eq!(&first[..3], &[StatusCode::OK; 3], "{first:?}");
    assert_eq!(first[4], StatusCode::TOO_MANY_REQUESTS, "{first:?}");
    // Another client behind the same proxy is not held back by the first.
    let second = statuses_forwarded_for(&app, "198.51.100.2", 1).await;
    assert_eq!(second, [StatusCode::OK]);
    // A client cannot escape its budget by writing its own entry first: the proxy appends.
    let spoofed = statuses_forwarded_for(&app, "203.0.113.50, 198.51.100.1", 1).await;
    assert_eq!(spoofed, [StatusCode::TOO_MANY_REQUESTS]);
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_budget_by_header() {
    let app = TestApp::spawn_with(|s| s.http.rate_limit_per_minute = 3).await;
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.extend(statuses_forwarded_for(&app, &format!("198.51.100.{n}"), 1).await);
    }
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn a_trusted_proxy_that_is_not_an_address_is_refused_at_start() {
    let (mut settings, _db, _data) = test_settings();
    settings.http.trusted_proxies = vec!["10.0.0.0/8".into(), "the-load-balancer".into()];
    let err = gp_online_gateway::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("the-load-balancer"), "{err:#}");
}

#[tokio::test]
async fn production_refuses_the_dev_profile() {
    let (mut settings, _db, _data) = test_settings();
    settings.env = gp_online_gateway::config::Environment::Production;
    let err = gp_online_gateway::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("dev profile"), "{err}");
}

#[test]
fn every_bad_setting_in_the_environment_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gp-online-gateway"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("GATEWAY_HTTP__WORKERS", "abc")
        .env("GATEWAY_BIND", "nonsense")
        .env("GATEWAY_AUDIT__COMMIT_TIMEOUT_MS", "-5")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the gateway did not stop on bad settings");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let messages: Vec<&str> = stderr.lines().filter(|l| l.trim_start().starts_with("- ")).collect();
    assert_eq!(messages.len(), 3, "{stderr}");
    for var in [
        "GATEWAY_HTTP__WORKERS",
        "GATEWAY_BIND",
        "GATEWAY_AUDIT__COMMIT_TIMEOUT_MS",
    ] {
        assert!(messages.iter().any(|m| m.contains(var)), "{var} not named: {stderr}");
    }
}
