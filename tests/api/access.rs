//! The access-decision engine from outside: ambiguous credentials, existence probes, the order
//! of checks, staff roles, audit by construction, audit search and `$explain-access`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gp_online_gateway::config::{IssuerKind, IssuerSettings};
use gp_online_gateway::identity::dev_idp::{self, DevIdentityProvider, sign_jwt};
use openidconnect::JsonWebKeyId;
use openidconnect::core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::registration::{part, registration};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_request_carrying_its_token_twice_or_in_the_url_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let (status, headers, body) = send(
        app.client
            .get(app.url("/Patient/patient-jane-smith"))
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", "Bearer garbage"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(outcome_code(&body), "INVALID_REQUEST");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_request")
    );

    for path in [
        format!("/Patient/patient-jane-smith?access_token={token}"),
        format!("/Patient?family=smith&access_token={token}"),
    ] {
        let (status, _, body) = app.get(&path, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(outcome_code(&body), "INVALID_REQUEST");
    }
    let (status, _, _) = send(
        app.client
            .get(app.url(&format!("/Patient/patient-jane-smith?access_token={token}"))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for two in [" ", ",", "\t"] {
        let (status, _, _) = send(
            app.client
                .get(app.url("/Patient/patient-jane-smith"))
                .header("authorization", format!("Bearer {token}{two}{token}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "two credentials split by {two:?}");
    }
}

/// A token whose header says `alg` is whatever the caller wrote.
fn with_header(alg: &str, app: &TestApp) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT", "kid": app.idp.kid()}).to_string());
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": app.idp.issuer(IssuerKind::Staff), "aud": "gp-online-gateway", "sub": "x", "iat": now(), "exp": now() + 60})
            .to_string(),
    );
    format!("{header}.{claims}.c2lnbmF0dXJl")
}

#[tokio::test]
async fn a_crafted_algorithm_is_refused_and_never_echoed_raw() {
    let app = TestApp::spawn().await;
    for alg in [
        "RS512\nX-Forged: yes",
        "none\r\nLocation: x",
        "\u{1b}[31mRS256",
        &"A".repeat(500),
    ] {
        let token = with_header(alg, &app);
        let (status, headers, body) = app.get("/Organization", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg:?}");
        let text = body["issue"][0]["details"]["text"].as_str().unwrap();
        assert!(!text.contains(['\n', '\r', '\u{1b}']), "{text:?}");
        assert!(text.len() < 200, "{text}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(!challenge.contains('\n'));
    }
}

#[tokio::test]
async fn an_algorithm_the_issuer_does_not_advertise_is_refused_even_when_its_keys_carry_no_alg() {
    // The provider advertises RS512 only; its key set's keys carry no `alg`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = actix_web::web::Data::new(DevIdentityProvider::from_pem(stranger_key_pem(), &base).unwrap());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(served.clone())
            .configure(dev_idp::configure)
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let external = DevIdentityProvider::from_pem(stranger_key_pem(), &base).unwrap();
    let issuer = external.issuer(IssuerKind::Staff);
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "external".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            // The gateway's configuration would take RS256 from this issuer...
            algorithms: vec!["RS512".into(), "RS256".into()],
        }];
    })
    .await;
    let claims = json!({
        "iss": issuer, "aud": "gp-online-gateway", "sub": "s", "iat": now(), "exp": now() + 300,
        "nhsid_nrbac_roles": [{"org_code": "A81001", "role_code": "R8000"}]
    });
    let key =
        CoreRsaPrivateSigningKey::from_pem(stranger_key_pem(), Some(JsonWebKeyId::new(external.kid().into()))).unwrap();
    let rs256 = sign_jwt(
        &key,
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "RS256",
        Some(external.kid()),
        &claims,
    )
    .unwrap();
    // ...but the issuer itself only signs RS512, so an RS256 token cannot be its own.
    let (status, _, body) = app.get("/Organization", &rs256).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let rs512 = sign_jwt(
        &key,
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        "RS512",
        Some(external.kid()),
        &claims,
    )
    .unwrap();
    let (status, _, body) = app.get("/Organization", &rs512).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn register_body() -> Value {
    registration("documents-in-person", None, "summary", None)
}

/// Each request's (status, body) for a patient who exists and one who does not.
async fn probe(
    app: &TestApp,
    token: &str,
    existing: &str,
    missing: &str,
) -> Vec<(String, (StatusCode, Value), (StatusCode, Value))> {
    let mut out = vec![];
    let paths = [
        (Method::GET, "/Patient/{}"),
        (Method::GET, "/Patient/{}/_history/1"),
        (Method::PUT, "/Patient/{}"),
        (Method::GET, "/Task?patient={}"),
        (Method::GET, "/Patient/{}/$online-account"),
        (Method::GET, "/Patient/{}/$registration-letter"),
        (Method::POST, "/Patient/{}/$register-online-services"),
        (Method::POST, "/Patient/{}/$set-online-access"),
        (Method::POST, "/Patient/{}/$reset-online-account"),
        (Method::POST, "/Patient/{}/$disable-online-account"),
        (Method::POST, "/Patient/{}/$enable-online-account"),
        (Method::GET, "/AuditEvent?patient={}"),
        (Method::GET, "/$explain-access?patient={}&action=read-patient"),
    ];
    for (method, template) in paths {
        let mut answers = vec![];
        for id in [existing, missing] {
            let path = template.replace("{}", id);
            let (status, _, body) = send(
                app.request(method.clone(), &path, Some(token))
                    .header("content-type", "application/fhir+json")
                    .header("if-match", "W/\"1\"")
                    .body(register_body().to_string()),
            )
            .await;
            answers.push((status, body));
        }
        let missing = answers.pop().unwrap();
        let existing = answers.pop().unwrap();
        out.push((format!("{method} {template}"), existing, missing));
    }
    out
}

#[tokio::test]
async fn refusals_say_nothing_about_whether_a_patient_exists() {
    let app = TestApp::spawn().await;
    // A patient probing another patient's records, and staff probing another practice's.
    for (who, token, existing) in [
        ("patient", app.token("patient-p9"), "patient-amir-khan"),
        (
            "staff of another practice",
            app.token("staff-tpp"),
            "patient-jane-smith",
        ),
        (
            "a read-only role elsewhere",
            app.token("reception-emis"),
            "patient-megan-jones",
        ),
    ] {
        for (request, existing, missing) in probe(&app, &token, existing, "no-such-patient").await {
            assert!(
                existing.0.is_client_error(),
                "{who}: {request} answered {} {}",
                existing.0,
                existing.1
            );
            assert_eq!(
                existing, missing,
                "{who}: {request} differs for an existing and a missing patient"
            );
        }
    }
}

#[tokio::test]
async fn the_caller_is_authorised_before_the_body_is_validated() {
    let app = TestApp::spawn().await;
    let patient = app.token("patient-p9");
    // A patient sending a body to a staff-only operation is refused for who they are, not for
    // what is wrong with the body.
    for body in [
        json!({"resourceType": "Parameters"}),
        json!({"nonsense": true}),
        json!("x"),
    ] {
        let (status, _, outcome) = app
            .post_fhir("/Patient/patient-jane-smith/$register-online-services", &patient, &body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
        assert_eq!(outcome_code(&outcome), "ACCESS_DENIED");
    }
    let (status, _, outcome) = send(
        app.request(
            Method::POST,
            "/Patient/patient-jane-smith/$set-online-access",
            Some(&patient),
        )
        .header("content-type", "text/plain")
        .body("not even json"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    // A role that may not create records is refused before its body is read.
    let reception = app.token("reception-emis");
    let (status, _, outcome) = app
        .post_fhir("/Patient", &reception, &json!({"resourceType": "Patient"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    assert_eq!(outcome_code(&outcome), "ROLE_NOT_PERMITTED");
    // A system client with the wrong scope, likewise.
    let other = app.token_with(
        IssuerKind::System,
        json!({"sub": "c", "client_id": "c", "scope": "identity:link"}),
    );
    let (status, _, outcome) = app.post_fhir("/$verify-linkage", &other, &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    assert_eq!(outcome_code(&outcome), "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn staff_roles_decide_what_staff_may_do() {
    let app = TestApp::spawn().await;
    let reception = app.token("reception-emis");
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &reception).await;
    assert_eq!(status, StatusCode::OK, "reception may look a patient up");
    let (status, _, _) = app.get("/Patient/patient-jane-smith/$online-account", &reception).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = app
        .post_fhir(
            "/Patient/patient-lucy-evans/$register-online-services",
            &reception,
            &register_body(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(outcome_code(&body), "ROLE_NOT_PERMITTED");
    let (status, _, body) = app.get("/AuditEvent/$verify", &reception).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, headers, org) = app.get("/Organization/practice-a81001", &reception).await;
    let (status, _, body) = send(
        app.request(Method::PUT, "/Organization/practice-a81001", Some(&reception))
            .header("content-type", "application/fhir+json")
            .header("if-match", headers["etag"].to_str().unwrap())
            .body(org.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(outcome_code(&body), "ROLE_NOT_PERMITTED");
    // The administrator may change the practice's settings; the clinician reads the trail.
    let (status, _, body) = send(
        app.request(
            Method::PUT,
            "/Organization/practice-a81001",
            Some(&app.token("staff-emis")),
        )
        .header("content-type", "application/fhir+json")
        .header("if-match", headers["etag"].to_str().unwrap())
        .body(org.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = app.get("/AuditEvent/$verify", &app.token("clinician-emis")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_role_table_is_configuration() {
    let app = TestApp::spawn_with(|s| {
        s.access
            .staff_roles
            .insert("R8010".into(), vec!["read".into(), "register".into()]);
    })
    .await;
    let (status, _, body) = app
        .post_fhir(
            "/Patient/patient-lucy-evans/$register-online-services",
            &app.token("reception-emis"),
            &register_body(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The events the trail holds for one request id, as a role allowed to audit sees them.
/// Every event of a request, read by the service operator's system client, which sees the
/// whole trail (a practice's auditor sees only the events of their practice).
async fn events_for(app: &TestApp, request_id: &str) -> Vec<Value> {
    let auditor = app.token_with(
        IssuerKind::System,
        json!({"sub": "operator", "client_id": "operator", "scope": "audit:read"}),
    );
    let (status, _, bundle) = app.get(&format!("/AuditEvent?request-id={request_id}"), &auditor).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_client_asking_the_audit_trail_for_a_large_page_gets_the_largest_allowed() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    for _ in 0..3 {
        app.get("/Patient/patient-jane-smith", &staff).await;
    }
    let auditor = app.token("clinician-emis");
    let (status, _, bundle) = app.get("/AuditEvent?_count=500", &auditor).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert!(bundle["total"].as_i64().unwrap() >= 3, "{bundle}");
    let own = bundle["link"][0]["url"].as_str().unwrap();
    assert!(own.contains("_count=100"), "{own}");
    // Paging on from the link a client is given walks the same trail.
    let (status, _, small) = app.get("/AuditEvent?_count=1", &auditor).await;
    assert_eq!(status, StatusCode::OK, "{small}");
    let next = small["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next");
    assert!(next.is_some(), "{small}");
    let (status, _, outcome) = send(
        app.request(Method::GET, "/AuditEvent?_count=500", Some(&auditor))
            .header("prefer", "handling=strict"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome_code(&outcome), "INVALID_SEARCH_PARAMETER");
}

#[tokio::test]
async fn every_endpoint_leaves_an_audit_event_with_its_request_id() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let clinician = app.token("clinician-emis");
    let patient = app.token("patient-p9");
    let idp = app.token("system-idp");
    let (_, headers, org) = app.get("/Organization/practice-a81001", &staff).await;
    let (_, patient_headers, jane) = app.get("/Patient/patient-jane-smith", &staff).await;
    let calls: Vec<(&str, Method, &str, Option<Value>, &str)> = vec![
        (
            "staff",
            Method::GET,
            "/Patient/patient-jane-smith",
            None,
            "read-patient",
        ),
        (
            "staff",
            Method::GET,
            "/Patient/patient-jane-smith/_history/1",
            None,
            "read-patient",
        ),
        ("staff", Method::GET, "/Patient?family=smith", None, "search-patients"),
        (
            "staff",
            Method::POST,
            "/Patient",
            Some(new_patient(FREE_NHS_NUMBERS[0], "Audited", "A81001")),
            "create-patient",
        ),
        (
            "staff",
            Method::PUT,
            "/Patient/patient-jane-smith",
            Some(jane.clone()),
            "update-patient",
        ),
        ("staff", Method::GET, "/Organization", None, "search-practices"),
        (
            "staff",
            Method::GET,
            "/Organization/practice-a81001",
            None,
            "read-practice",
        ),
        (
            "staff",
            Method::PUT,
            "/Organization/practice-a81001",
            Some(org.clone()),
            "update-practice",
        ),
        (
            "staff",
            Method::GET,
            "/Patient/patient-jane-smith/$online-account",
            None,
            "read-online-account",
        ),
        (
            "staff",
            Method::POST,
            "/Patient/patient-jane-smith/$set-online-access",
            Some(json!({"resourceType": "Parameters"})),
            "set-online-access",
        ),
        (
            "staff",
            Method::GET,
            "/Task?patient=patient-jane-smith",
            None,
            "search-tasks",
        ),
        ("staff", Method::GET, "/Task/no-such-task", None, "read-task"),
        (
            "clinician",
            Method::POST,
            "/Task/no-such-task/$complete",
            None,
            "complete-task",
        ),
        ("staff", Method::POST, "/Task/no-such-task/$retry", None, "retry-task"),
        (
            "clinician",
            Method::GET,
            "/AuditEvent?patient=patient-jane-smith",
            None,
            "search-audit",
        ),
        ("clinician", Method::GET, "/AuditEvent/$verify", None, "verify-audit"),
        (
            "clinician",
            Method::GET,
            "/$explain-access?patient=patient-jane-smith&action=read-patient&actor=9990000018",
            None,
            "explain-access",
        ),
        ("patient", Method::GET, "/$my-access", None, "my-access"),
        (
            "system",
            Method::POST,
            "/$verify-linkage",
            Some(json!({"resourceType": "Parameters"})),
            "verify-linkage",
        ),
        (
            "system",
            Method::POST,
            "/$link-identity",
            Some(json!({"resourceType": "Parameters"})),
            "link-identity",
        ),
        ("none", Method::GET, "/Patient/patient-jane-smith", None, "read-patient"),
        ("staff", Method::GET, "/NoSuchResource", None, "unknown-endpoint"),
    ];
    for (who, method, path, body, action) in calls {
        let token = match who {
            "staff" => Some(staff.as_str()),
            "clinician" => Some(clinician.as_str()),
            "patient" => Some(patient.as_str()),
            "system" => Some(idp.as_str()),
            _ => None,
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut request = app
            .request(method.clone(), path, token)
            .header("x-request-id", &request_id)
            .header("content-type", "application/fhir+json");
        if path.starts_with("/Organization/") {
            request = request.header("if-match", headers["etag"].to_str().unwrap());
        } else if path.starts_with("/Patient/patient-jane-smith") && method == Method::PUT {
            request = request.header("if-match", patient_headers["etag"].to_str().unwrap());
        }
        if let Some(b) = body {
            request = request.body(b.to_string());
        }
        let (status, _, answer) = send(request).await;
        let events = events_for(&app, &request_id).await;
        assert!(
            events.iter().any(|e| e["subtype"][0]["code"] == action),
            "{method} {path} answered {status} {answer} and left no {action} event: {events:?}"
        );
        // The newest event says how the request ended.
        let outcome = events[0]["outcome"].as_str().unwrap();
        assert_eq!(
            outcome == "0",
            status.is_success(),
            "{method} {path}: {status} recorded as outcome {outcome}: {events:?}"
        );
    }
}

#[tokio::test]
async fn refused_authentications_and_other_events_are_found_without_a_patient() {
    let app = TestApp::spawn().await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let (status, _, _) = send(
        app.request(Method::GET, "/Patient/patient-jane-smith", Some("not-a-token"))
            .header("x-request-id", &request_id),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.get("/Patient/patient-jane-smith", &app.token("staff-emis")).await;
    let auditor = app.token("clinician-emis");
    let today = chrono::Utc::now().date_naive();
    // A refused authentication belongs to no practice: a practice's auditor does not see it,
    // the service operator's system client does.
    let (status, _, theirs) = app
        .get(&format!("/AuditEvent?outcome=4&agent=unknown&date=ge{today}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(theirs["total"], 0, "{theirs}");
    let operator = app.token_with(
        IssuerKind::System,
        json!({"sub": "operator", "client_id": "operator", "scope": "audit:read"}),
    );
    let (status, _, refused) = app
        .get(
            &format!("/AuditEvent?outcome=4&agent=unknown&date=ge{today}"),
            &operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    let found = refused["entry"].as_array().unwrap();
    assert!(found.iter().any(|e| {
        e["resource"]["entity"][0]["detail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["valueString"] == request_id)
    }));
    assert!(found.iter().all(|e| e["resource"]["outcome"] == "4"));
    let (_, _, reads) = app.get("/AuditEvent?action=read-patient&outcome=0", &auditor).await;
    assert!(reads["total"].as_i64().unwrap() >= 1);
    let (_, _, none) = app.get(&format!("/AuditEvent?date=lt{today}"), &auditor).await;
    assert_eq!(none["total"], 0);
    let (_, _, r_events) = app.get("/AuditEvent?action=R", &auditor).await;
    assert!(r_events["total"].as_i64().unwrap() >= 1);
    // Only roles allowed to audit search the trail.
    for persona in ["reception-emis", "patient-p9"] {
        let (status, _, body) = app.get("/AuditEvent?outcome=4", &app.token(persona)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{persona}: {body}");
    }
    for bad in [
        "date=ge2026-13-01",
        "date=a%C3%BC012345678",
        "outcome=7",
        "patient=x%00",
        "action=%00",
    ] {
        let (status, _, body) = app.get(&format!("/AuditEvent?{bad}"), &auditor).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Staff of another practice do not see this practice's events.
    let (_, _, theirs) = app
        .get("/AuditEvent?action=read-patient&outcome=0", &app.token("clinician-tpp"))
        .await;
    assert_eq!(theirs["total"], 0, "{theirs}");
}

fn rule<'a>(explained: &'a Value, name: &str) -> Option<&'a Value> {
    explained["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "rule")
        .find(|p| p["part"][0]["valueCode"] == name)
}

async fn explain(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, _, body) = app.get(&format!("/$explain-access?{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

#[tokio::test]
async fn explain_access_replays_the_engine_for_patients_staff_and_systems() {
    let app = TestApp::spawn().await;
    let clinician = app.token("clinician-emis");
    wait_for_active_account(&app, "patient-jane-smith").await;
    // Jane at P9 reads her own record; at P5 she may not.
    let allowed = explain(
        &app,
        &clinician,
        "patient=patient-jane-smith&action=read-patient&actor=9990000018",
    )
    .await;
    assert_eq!(part(&allowed, "allowed")["valueBoolean"], true, "{allowed}");
    assert_eq!(part(&allowed, "decidingRule")["valueCode"], "patient-account");
    assert_eq!(
        rule(&allowed, "patient-relationship").unwrap()["part"][1]["valueCode"],
        "passed"
    );
    let p5 = explain(
        &app,
        &clinician,
        "patient=patient-jane-smith&action=read-patient&actor=https://fhir.nhs.uk/Id/nhs-number|9990000018&vot=P5.Cp.Cd",
    )
    .await;
    assert_eq!(part(&p5, "allowed")["valueBoolean"], false);
    assert_eq!(part(&p5, "code")["valueCode"], "INSUFFICIENT_IDENTITY_ASSURANCE");
    assert_eq!(part(&p5, "decidingRule")["valueCode"], "patient-assurance");
    // Amir may not read Jane's record: no relationship.
    let other = explain(
        &app,
        &clinician,
        "patient=patient-jane-smith&action=read-patient&actor=9990000034",
    )
    .await;
    assert_eq!(part(&other, "code")["valueCode"], "RESOURCE_NOT_FOUND");
    assert_eq!(part(&other, "decidingRule")["valueCode"], "patient-relationship");
    // Lucy has no online account.
    let lucy = explain(
        &app,
        &clinician,
        "patient=patient-lucy-evans&action=read-patient&actor=9990000158",
    )
    .await;
    assert_eq!(part(&lucy, "code")["valueCode"], "NO_ACTIVE_ONLINE_ACCOUNT");

    // Staff and systems are named as the audit trail names them, after they have been seen.
    let tpp = app.token("staff-tpp");
    app.get("/Patient/patient-jane-smith", &tpp).await;
    app.get("/Organization", &app.token("system-idp")).await;
    let (_, _, events) = app.get("/AuditEvent?action=read-patient&outcome=4", &clinician).await;
    let tpp_key = events["entry"][0]["resource"]["agent"][0]["who"]["identifier"]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(tpp_key.starts_with("staff|"), "{tpp_key}");
    let staff = explain(
        &app,
        &clinician,
        &format!(
            "patient=patient-jane-smith&action=read-patient&actor={}",
            urlencode(&tpp_key)
        ),
    )
    .await;
    assert_eq!(part(&staff, "code")["valueCode"], "RESOURCE_NOT_FOUND");
    assert_eq!(part(&staff, "decidingRule")["valueCode"], "staff-practice");
    let system_key = format!("system|{}|nhs-login-idp", app.idp.issuer(IssuerKind::System));
    let system = explain(
        &app,
        &clinician,
        &format!(
            "patient=patient-jane-smith&action=read-patient&actor={}",
            urlencode(&system_key)
        ),
    )
    .await;
    assert_eq!(part(&system, "code")["valueCode"], "ACCESS_DENIED");
    assert_eq!(part(&system, "decidingRule")["valueCode"], "actor-kind");
    // The caller themself, by default.
    let me = explain(&app, &clinician, "patient=patient-jane-smith&action=complete-task").await;
    assert_eq!(part(&me, "allowed")["valueBoolean"], true);
    let admin = explain(
        &app,
        &app.token("staff-emis"),
        "patient=patient-jane-smith&action=complete-task",
    )
    .await;
    assert_eq!(part(&admin, "code")["valueCode"], "ROLE_NOT_PERMITTED");

    // Only staff of the patient's practice may ask, and bad questions are clear errors.
    let (status, _, _) = app
        .get("/$explain-access?patient=patient-jane-smith&action=read-patient", &tpp)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .get(
            "/$explain-access?patient=patient-jane-smith&action=read-patient",
            &app.token("patient-p9"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for bad in [
        "patient=patient-jane-smith&action=fly",
        "patient=patient-jane-smith",
        "action=read-patient",
        "patient=patient-jane-smith&action=read-patient&actor=123",
        "patient=patient-jane-smith&action=read-patient&actor=staff%7Cnobody%7Cx",
    ] {
        let (status, _, body) = app.get(&format!("/$explain-access?{bad}"), &clinician).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

/// Seeded accounts are created at the supplier through the outbox after start.
pub async fn wait_for_active_account(app: &TestApp, patient: &str) {
    let staff = app.token("staff-emis");
    for _ in 0..100 {
        let (_, _, account) = app.get(&format!("/Patient/{patient}/$online-account"), &staff).await;
        if account["parameter"][0]["part"][0]["valueCode"] == "active" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{patient}'s account never became active");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn one_bad_character_never_stops_the_audited_endpoints() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let patient = app.token("patient-p9");
    let bad = [
        "/Patient/x%00",
        "/Patient/x%00/$online-account",
        "/AuditEvent?patient=x%00",
        "/Task?patient=x%00",
        "/Patient?family=a%00",
        "/Patient?identifier=%00",
        "/Patient?organization=%07",
    ];
    for token in [&staff, &patient] {
        for path in bad {
            let answer = tokio::time::timeout(Duration::from_secs(5), app.get(path, token)).await;
            let (status, _, body) = answer.unwrap_or_else(|_| panic!("{path} did not answer"));
            assert!(status.is_client_error(), "{path}: {status} {body}");
            assert_eq!(body["resourceType"], "OperationOutcome");
        }
    }
    let mut nul = new_patient(FREE_NHS_NUMBERS[1], "Nul", "A81001");
    nul["name"][0]["family"] = json!("Nul\u{0}");
    let (status, _, body) = app.post_fhir("/Patient", &staff, &nul).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "Patient.name[0].family");
    let mut bell = new_patient(FREE_NHS_NUMBERS[2], "Bell", "A81001");
    bell["name"][0]["given"] = json!(["Ri\u{7}ng"]);
    let (status, _, _) = app.post_fhir("/Patient", &staff, &bell).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = app
        .post_fhir(
            "/$verify-linkage",
            &app.token("system-idp"),
            &json!({"resourceType": "Parameters", "parameter": [{"name": "accountId", "valueString": "A\u{0}"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Everything still answers, quickly, and every decision is still written.
    for _ in 0..3 {
        let answer = tokio::time::timeout(Duration::from_secs(5), app.get("/Patient/patient-jane-smith", &staff)).await;
        assert_eq!(answer.expect("still answering").0, StatusCode::OK);
    }
    let (_, _, verified) = app.get("/AuditEvent/$verify", &app.token("clinician-emis")).await;
    assert_eq!(part(&verified, "valid")["valueBoolean"], true, "{verified}");
}

#[tokio::test]
async fn a_target_that_does_not_exist_is_not_found_for_every_kind_of_caller() {
    let app = TestApp::spawn().await;
    for persona in ["patient-p9", "system-idp", "system-app", "staff-emis"] {
        let (status, _, body) = app.get("/Organization/no-such-practice", &app.token(persona)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{persona}: {body}");
        assert_eq!(body["resourceType"], "OperationOutcome", "{persona}: {body}");
    }
}

#[tokio::test]
async fn another_practices_job_is_answered_like_one_that_does_not_exist() {
    let app = TestApp::spawn().await;
    let (status, _, task) = app
        .post_fhir(
            "/Organization/practice-a81001/$apply-opt-in-model",
            &app.token("staff-emis"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    let id = task["id"].as_str().unwrap();
    let other = app.token("staff-tpp");
    let (existing, _, existing_body) = app.get(&format!("/Task/{id}"), &other).await;
    let (missing, _, missing_body) = app.get("/Task/no-such-task", &other).await;
    assert_eq!(existing, StatusCode::NOT_FOUND, "{existing_body}");
    assert_eq!((existing, existing_body), (missing, missing_body));
}

#[tokio::test]
async fn a_conditional_create_matches_only_within_the_callers_practice() {
    let app = TestApp::spawn().await;
    // Smiths are registered at Riverside; Moorland's condition does not see them.
    let (status, _, created) = send(
        app.request(Method::POST, "/Patient", Some(&app.token("staff-tpp")))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "family=smith")
            .body(new_patient(FREE_NHS_NUMBERS[3], "Smith", "B82005").to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["generalPractitioner"][0]["reference"],
        "Organization/practice-b82005"
    );
}

#[tokio::test]
async fn a_repeated_request_is_refused_once_the_caller_may_no_longer_make_it() {
    let app = TestApp::spawn().await;
    let staff_as = |role: &str| {
        app.token_with(
            IssuerKind::Staff,
            json!({
                "sub": "staff-0099-riverside",
                "name": "Pat Doe",
                "nhsid_nrbac_roles": [{"org_code": "A81001", "role_code": role, "role_name": "test"}]
            }),
        )
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let create = |token: String| {
        send(
            app.request(Method::POST, "/Patient", Some(&token))
                .header("content-type", "application/fhir+json")
                .header("x-request-id", &request_id)
                .body(new_patient(FREE_NHS_NUMBERS[2], "Replay", "A81001").to_string()),
        )
    };
    let (status, _, body) = create(staff_as("S8000:G8000:R8008")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, headers, _) = create(staff_as("S8000:G8000:R8008")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(headers.contains_key("x-idempotent-replay"));
    // The same person, now holding only a clerical role: the replay is refused.
    let (status, _, outcome) = create(staff_as("S8000:G8001:R8010")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outcome}");
    assert_eq!(outcome_code(&outcome), "ROLE_NOT_PERMITTED");
    let events = events_for(&app, &request_id).await;
    assert!(
        events.iter().any(|e| e.to_string().contains("ROLE_NOT_PERMITTED")),
        "the refusal is on record: {events:?}"
    );
}
