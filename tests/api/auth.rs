//! Caller authentication: every protected endpoint refuses missing, expired, wrongly signed,
//! wrongly addressed and `alg: none` tokens; staff act only within their own practice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gp_online_gateway::config::{IssuerKind, IssuerSettings};
use gp_online_gateway::identity::dev_idp::{self, DevIdentityProvider, sign_jwt};
use openidconnect::JsonWebKeyId;
use openidconnect::core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn staff_claims(app: &TestApp) -> Value {
    json!({
        "iss": app.idp.issuer(IssuerKind::Staff),
        "aud": "gp-online-gateway",
        "sub": "staff-forged",
        "iat": now(),
        "exp": now() + 300,
        "nhsid_nrbac_roles": [{"org_code": "A81001", "role_code": "R8000"}]
    })
}

fn rs512(pem: &str, kid: &str, claims: &Value) -> String {
    let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).unwrap();
    sign_jwt(
        &key,
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        "RS512",
        Some(kid),
        claims,
    )
    .unwrap()
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Tokens that must all be refused, with a name for the failure message.
fn forged_tokens(app: &TestApp) -> Vec<(&'static str, String)> {
    let kid = app.idp.kid().to_owned();
    let good = staff_claims(app);
    let real = |claims: &Value| rs512(shared_key_pem(), &kid, claims);
    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(good.to_string());
    let valid = real(&good);
    let mut tampered_parts: Vec<&str> = valid.split('.').collect();
    let other_body = URL_SAFE_NO_PAD.encode(with(good.clone(), "sub", json!("someone-else")).to_string());
    tampered_parts[1] = &other_body;
    let tampered = tampered_parts.join(".");
    // HMAC "signed" with the issuer's public key: the classic algorithm-confusion attack.
    let jwks = rsa_public_pem();
    let hs = sign_jwt(
        &CoreHmacKey::new(jwks.as_bytes()),
        &CoreJwsSigningAlgorithm::HmacSha256,
        "HS256",
        Some(&kid),
        &good,
    )
    .unwrap();
    vec![
        ("garbage", "not-a-jwt".to_owned()),
        ("alg none", format!("{header_none}.{body}.")),
        ("HS256 with the public key", hs),
        (
            "expired",
            real(&with(
                with(good.clone(), "exp", json!(now() - 3600)),
                "iat",
                json!(now() - 7200),
            )),
        ),
        ("not yet valid", real(&with(good.clone(), "nbf", json!(now() + 3600)))),
        (
            "issued in the future",
            real(&with(good.clone(), "iat", json!(now() + 3600))),
        ),
        ("no expiry", real(&without(good.clone(), "exp"))),
        (
            "valid for ten years",
            real(&with(good.clone(), "exp", json!(now() + TEN_YEARS))),
        ),
        (
            "wrong audience",
            real(&with(good.clone(), "aud", json!("another-service"))),
        ),
        (
            "wrong issuer",
            real(&with(good.clone(), "iss", json!("http://127.0.0.1:9/dev-idp/staff"))),
        ),
        (
            "issuer with trailing slash",
            real(&with(
                good.clone(),
                "iss",
                json!(format!("{}/", app.idp.issuer(IssuerKind::Staff))),
            )),
        ),
        ("wrongly signed", rs512(stranger_key_pem(), &kid, &good)),
        ("unknown key id", rs512(stranger_key_pem(), "unknown-kid", &good)),
        ("tampered claims", tampered),
    ]
}

const TEN_YEARS: i64 = 10 * 365 * 24 * 3600;

/// A token from the dev provider living `seconds` from now.
fn living(app: &TestApp, persona: &str, seconds: i64) -> String {
    let p = gp_online_gateway::dev::persona(persona).unwrap();
    app.idp
        .mint(p.realm, "gp-online-gateway", seconds, &p.claims())
        .unwrap()
}

#[tokio::test]
async fn a_token_may_live_as_long_as_an_nhs_login_token_and_no_longer() {
    let app = TestApp::spawn().await;
    for (persona, path) in [("patient-p9", "/$my-access"), ("staff-emis", "/Organization")] {
        let (status, _, body) = app.get(path, &living(&app, persona, 3600)).await;
        assert_eq!(status, StatusCode::OK, "{persona}, one hour: {body}");
        let (status, _, body) = app.get(path, &living(&app, persona, TEN_YEARS)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{persona}, ten years: {body}");
        assert_eq!(outcome_code(&body), "INVALID_ACCESS_TOKEN");
        assert!(body.to_string().contains("lifetime"), "{body}");
    }
    // Within the leeway beyond the hour, as for the other times.
    let (status, _, _) = app.get("/Organization", &living(&app, "staff-emis", 3600 + 20)).await;
    assert_eq!(status, StatusCode::OK);

    // The maximum is the configured one.
    let strict = TestApp::spawn_with(|s| s.auth.max_token_lifetime_seconds = 600).await;
    let (status, _, _) = strict.get("/Organization", &living(&strict, "staff-emis", 600)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = strict.get("/Organization", &living(&strict, "staff-emis", 3600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

fn rsa_public_pem() -> String {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(shared_key_pem()).unwrap();
    key.to_public_key().to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap()
}

const PROTECTED: [(&str, &str); 23] = [
    ("GET", "/Patient"),
    ("GET", "/Patient/patient-jane-smith"),
    ("GET", "/Patient/patient-jane-smith/_history/1"),
    ("POST", "/Patient"),
    ("PUT", "/Patient/patient-jane-smith"),
    ("GET", "/Organization"),
    ("GET", "/Organization/practice-a81001"),
    ("PUT", "/Organization/practice-a81001"),
    ("POST", "/Patient/patient-lucy-evans/$register-online-services"),
    ("POST", "/Patient/patient-jane-smith/$set-online-access"),
    ("POST", "/Patient/patient-jane-smith/$reset-online-account"),
    ("POST", "/Patient/patient-jane-smith/$disable-online-account"),
    ("POST", "/Patient/patient-jane-smith/$enable-online-account"),
    ("GET", "/Patient/patient-jane-smith/$online-account"),
    ("GET", "/Patient/patient-jane-smith/$registration-letter"),
    ("GET", "/Task?patient=patient-jane-smith"),
    ("GET", "/Task/some-task"),
    ("POST", "/Task/some-task/$retry"),
    ("GET", "/$my-access"),
    ("POST", "/$verify-linkage"),
    ("POST", "/$link-identity"),
    ("GET", "/AuditEvent?patient=patient-jane-smith"),
    ("GET", "/AuditEvent/$verify"),
];

#[tokio::test]
async fn every_protected_endpoint_refuses_missing_and_forged_tokens() {
    let app = TestApp::spawn().await;
    let body = new_patient(FREE_NHS_NUMBERS[0], "Forged", "A81001");
    for (method, path) in PROTECTED {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, headers, outcome) = send(
            app.request(method.clone(), path, None)
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} without a token");
        assert_eq!(outcome_code(&outcome), "MISSING_ACCESS_TOKEN");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error="),
            "{challenge}"
        );

        for (name, token) in forged_tokens(&app) {
            let (status, headers, outcome) = send(
                app.request(method.clone(), path, Some(&token))
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string()),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with a token that is {name}: {outcome}"
            );
            assert_eq!(outcome_code(&outcome), "INVALID_ACCESS_TOKEN", "{name}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("error=\"invalid_token\"")
            );
        }
    }
    // Nothing was created by any of the refused writes.
    let (_, _, bundle) = app.get("/Patient?family=Forged", &app.token("staff-emis")).await;
    assert_eq!(bundle["total"], 0);
}

#[tokio::test]
async fn a_valid_token_is_accepted_and_the_same_token_without_bearer_scheme_is_not() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = send(
        app.client
            .get(app.url("/Patient/patient-jane-smith"))
            .header("authorization", format!("Basic {token}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome_code(&body), "INVALID_ACCESS_TOKEN");
}

#[tokio::test]
async fn open_endpoints_need_no_token() {
    let app = TestApp::spawn().await;
    for path in [
        "/metadata",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs/",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn staff_act_only_within_their_own_practice() {
    let app = TestApp::spawn().await;
    let tpp = app.token("staff-tpp");
    // Another practice's patient is answered exactly like a patient that does not exist.
    let (status, _, hidden) = app.get("/Patient/patient-jane-smith", &tpp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(outcome_code(&hidden), "RESOURCE_NOT_FOUND");
    let (status, _, missing) = app.get("/Patient/no-such-patient", &tpp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hidden, missing);

    let (status, _, body) = app
        .post_fhir(
            "/Patient",
            &tpp,
            &new_patient(FREE_NHS_NUMBERS[1], "Elsewhere", "A81001"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "OUTSIDE_OWN_PRACTICE");

    let (status, _, body) = app
        .get("/Patient?organization=Organization/practice-a81001", &tpp)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Without an organization, a staff search sees only their own practice.
    let (status, _, bundle) = app.get("/Patient?family=smith", &tpp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["total"], 0, "staff at B82005 must not see A81001's Smiths");
}

#[tokio::test]
async fn staff_tokens_need_an_organisation_and_system_clients_cannot_read_patients() {
    let app = TestApp::spawn().await;
    let no_org = app.token_with(IssuerKind::Staff, json!({"sub": "staff-without-role"}));
    let (status, _, body) = app.get("/Patient/patient-jane-smith", &no_org).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome_code(&body), "INVALID_ACCESS_TOKEN");

    let system = app.token("system-idp");
    let (status, _, body) = app.get("/Patient/patient-jane-smith", &system).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "ACCESS_DENIED");
    let (status, _, _) = app.get("/Organization/practice-a81001", &system).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn patient_tokens_are_verified_on_the_shared_path() {
    let app = TestApp::spawn().await;
    // A P9 patient reads their own record (once the seeded account is confirmed) and no other.
    let p9 = app.token("patient-p9");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _, body) = app.get("/Patient/patient-jane-smith", &p9).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _, body) = app.get("/Patient/patient-amir-khan", &p9).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another patient's record must look absent: {body}"
    );
    let (status, _, bundle) = app.get("/Patient", &p9).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bundle["total"], 1);

    // P5 is not enough for a record.
    let (status, _, body) = app.get("/Patient/patient-amir-khan", &app.token("patient-p5")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "INSUFFICIENT_IDENTITY_ASSURANCE");

    // Missing or invalid NHS numbers are refused at verification.
    for claims in [
        json!({"sub": "x", "identity_proofing_level": "P9"}),
        json!({"sub": "x", "identity_proofing_level": "P9", "nhs_number": "9990000019"}),
        json!({"sub": "x", "identity_proofing_level": "P7", "nhs_number": "9990000018"}),
    ] {
        let token = app.token_with(IssuerKind::Patient, claims.clone());
        let (status, _, body) = app.get("/Patient/patient-jane-smith", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{claims}");
        assert_eq!(outcome_code(&body), "INVALID_ACCESS_TOKEN");
    }
}

/// An identity provider the gateway knows only by its issuer URL: discovery and JWKS are
/// fetched over HTTP, exactly as for a production issuer.
async fn spawn_external_idp() -> (String, DevIdentityProvider) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let idp = actix_web::web::Data::new(DevIdentityProvider::from_pem(stranger_key_pem(), &base).unwrap());
    let served = idp.clone();
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
    (
        base.clone(),
        DevIdentityProvider::from_pem(stranger_key_pem(), &base).unwrap(),
    )
}

#[tokio::test]
async fn a_configured_external_issuer_is_trusted_through_discovery_alone() {
    let (_, external) = spawn_external_idp().await;
    let issuer = external.issuer(IssuerKind::Staff);
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "external-staff".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            algorithms: vec!["RS512".into()],
        }];
    })
    .await;
    // Not the dev profile: no seed data, no dev issuer.
    let persona = gp_online_gateway::dev::persona("staff-emis").unwrap();
    let token = external
        .mint(IssuerKind::Staff, "gp-online-gateway", 300, &persona.claims())
        .unwrap();
    let (status, _, bundle) = app.get("/Organization", &token).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert_eq!(bundle["total"], 0);

    // The dev provider's tokens mean nothing to this gateway.
    let (status, _, _) = app.get("/Organization", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // RS256 is not in this issuer's configured list.
    let mut claims = persona.claims();
    claims["iss"] = json!(issuer);
    claims["aud"] = json!("gp-online-gateway");
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);
    let key = CoreRsaPrivateSigningKey::from_pem(stranger_key_pem(), None).unwrap();
    let rs256 = sign_jwt(
        &key,
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "RS256",
        Some(external.kid()),
        &claims,
    )
    .unwrap();
    let (status, _, body) = app.get("/Organization", &rs256).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["issue"][0]["details"]["text"].as_str().unwrap().contains("RS256"));

    let (_, _, health) = app.get("/health/ready", &token).await;
    assert_eq!(health_check(&health, "issuer:external-staff")["status"], "pass");
}

#[tokio::test]
async fn an_unreachable_issuer_gives_503_not_401_and_is_reported_by_readiness() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("http://127.0.0.1:{port}/idp");
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "down".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            algorithms: vec!["RS512".into()],
        }];
        s.auth.http_timeout_seconds = 2;
    })
    .await;
    let mut claims = gp_online_gateway::dev::persona("staff-emis").unwrap().claims();
    claims["iss"] = json!(issuer);
    claims["aud"] = json!("gp-online-gateway");
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);
    let token = rs512(stranger_key_pem(), "k1", &claims);
    let (status, _, body) = app.get("/Organization", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(outcome_code(&body), "SERVICE_UNAVAILABLE");

    let response = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the database is fine, so the gateway is ready"
    );
    let health: Value = response.json().await.unwrap();
    assert_eq!(health_check(&health, "issuer:down")["status"], "warn");
}

#[tokio::test]
async fn a_failing_issuer_is_not_asked_again_by_every_request() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}/broken", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let counter = counter.clone();
        App::new().default_service(web::to(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { HttpResponse::ServiceUnavailable().finish() }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "broken".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            algorithms: vec!["RS512".into()],
        }];
        s.auth.jwks_min_refresh_seconds = 60;
    })
    .await;
    let mut claims = gp_online_gateway::dev::persona("staff-emis").unwrap().claims();
    claims["iss"] = json!(issuer);
    claims["aud"] = json!("gp-online-gateway");
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);
    let token = rs512(stranger_key_pem(), "k1", &claims);
    for _ in 0..10 {
        let (status, _, _) = app.get("/Organization", &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    for _ in 0..3 {
        let health: Value = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health_check(&health, "issuer:broken")["status"], "warn");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "one attempt per refresh interval, however many callers"
    );
}

/// An identity provider whose key set the test controls, counting key-set fetches.
struct RotatingIdp {
    issuer: String,
    keys: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    jwks_hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn public_jwk(pem: &str, kid: &str) -> Value {
    use openidconnect::PrivateSigningKey;
    let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).unwrap();
    serde_json::to_value(key.as_verification_key()).unwrap()
}

async fn spawn_rotating_idp(initial: Vec<Value>) -> RotatingIdp {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}/oidc", listener.local_addr().unwrap());
    let keys = std::sync::Arc::new(std::sync::Mutex::new(initial));
    let jwks_hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (k, h, i) = (keys.clone(), jwks_hits.clone(), issuer.clone());
    let server = HttpServer::new(move || {
        let (k, h, i) = (k.clone(), h.clone(), i.clone());
        App::new()
            .route(
                "/oidc/.well-known/openid-configuration",
                web::get().to(move || {
                    let i = i.clone();
                    async move {
                        HttpResponse::Ok().json(json!({
                            "issuer": i,
                            "authorization_endpoint": format!("{i}/authorize"),
                            "jwks_uri": format!("{i}/keys"),
                            "response_types_supported": ["code"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS512"]
                        }))
                    }
                }),
            )
            .route(
                "/oidc/keys",
                web::get().to(move || {
                    let (k, h) = (k.clone(), h.clone());
                    async move {
                        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        HttpResponse::Ok().json(json!({"keys": *k.lock().unwrap()}))
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    RotatingIdp {
        issuer,
        keys,
        jwks_hits,
    }
}

#[tokio::test]
async fn key_rotation_is_picked_up_on_an_unknown_kid_and_refetches_are_rate_limited() {
    use std::sync::atomic::Ordering;
    let idp = spawn_rotating_idp(vec![public_jwk(shared_key_pem(), "key-a")]).await;
    let issuer = idp.issuer.clone();
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "rotating".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            algorithms: vec!["RS512".into()],
        }];
        s.auth.jwks_min_refresh_seconds = 1;
    })
    .await;
    let mut claims = gp_online_gateway::dev::persona("staff-emis").unwrap().claims();
    claims["iss"] = json!(issuer);
    claims["aud"] = json!("gp-online-gateway");
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);

    let (status, _, _) = app
        .get("/Organization", &rs512(shared_key_pem(), "key-a", &claims))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1);
    let (status, _, _) = app
        .get("/Organization", &rs512(shared_key_pem(), "key-a", &claims))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 1, "the key set is cached");

    // The provider rotates to a new key; tokens signed with it carry a kid the gateway has not seen.
    idp.keys.lock().unwrap().push(public_jwk(stranger_key_pem(), "key-b"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, body) = app
        .get("/Organization", &rs512(stranger_key_pem(), "key-b", &claims))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // A burst of made-up key ids cannot make the gateway hammer the provider.
    for i in 0..5 {
        let (status, _, _) = app
            .get(
                "/Organization",
                &rs512(stranger_key_pem(), &format!("made-up-{i}"), &claims),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn remembered_tokens_are_forgotten_when_the_key_set_changes_and_forgeries_still_fail() {
    let idp = spawn_rotating_idp(vec![public_jwk(shared_key_pem(), "key-a")]).await;
    let issuer = idp.issuer.clone();
    let app = TestApp::spawn_with(|s| {
        s.auth.issuers = vec![IssuerSettings {
            name: "rotating".into(),
            kind: IssuerKind::Staff,
            issuer: issuer.clone(),
            algorithms: vec!["RS512".into()],
        }];
        s.auth.jwks_min_refresh_seconds = 1;
    })
    .await;
    let mut claims = gp_online_gateway::dev::persona("staff-emis").unwrap().claims();
    claims["iss"] = json!(issuer);
    claims["aud"] = json!("gp-online-gateway");
    claims["iat"] = json!(now());
    claims["exp"] = json!(now() + 300);
    let token = rs512(shared_key_pem(), "key-a", &claims);
    let (status, _, _) = app.get("/Organization", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.get("/Organization", &token).await;
    assert_eq!(status, StatusCode::OK, "remembered");

    // Any change to a remembered token is verified afresh and refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged_claims = claims.clone();
    forged_claims["nhsid_nrbac_roles"][0]["org_code"] = json!("B82005");
    parts[1] = URL_SAFE_NO_PAD.encode(forged_claims.to_string());
    let (status, _, _) = app.get("/Organization", &parts.join(".")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "new claims under the old signature");
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let (status, _, _) = app.get("/Organization", &String::from_utf8(flipped).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a changed signature");

    // The provider drops key-a (it was compromised) and signs with key-b: once the gateway sees
    // the new key set, the remembered key-a token is verified again and refused.
    *idp.keys.lock().unwrap() = vec![public_jwk(stranger_key_pem(), "key-b")];
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, _) = app
        .get("/Organization", &rs512(stranger_key_pem(), "key-b", &claims))
        .await;
    assert_eq!(status, StatusCode::OK, "the new key set is fetched");
    let (status, _, _) = app.get("/Organization", &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the remembered token went with its key"
    );
}

#[tokio::test]
async fn a_patient_app_signs_in_with_the_authorization_code_flow_and_pkce() {
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let discovery: Value = browser
        .get(app.url("/dev-idp/patient/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["code_challenge_methods_supported"], json!(["S256"]));
    let authorize = discovery["authorization_endpoint"].as_str().unwrap().to_owned();
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap().to_owned();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect_uri = "http://127.0.0.1:9/callback";
    let sign_in = |challenge: &str, method: &str, redirect_uri: &str| {
        let mut url = url::Url::parse(&authorize).unwrap();
        url.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", "example-app"),
            ("redirect_uri", redirect_uri),
            ("scope", "openid"),
            ("state", "s-123"),
            ("code_challenge", challenge),
            ("code_challenge_method", method),
            ("login_hint", "9990000018"),
        ]);
        browser.get(url).send()
    };
    let response = sign_in(&challenge, "S256", redirect_uri).await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect_uri), "{location}");
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("s-123"));
    let code = param("code").expect("a code");
    let exchange = |code: String, verifier: &str| {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri),
                ("client_id", "example-app"),
                ("code_verifier", verifier),
            ])
            .finish();
        browser
            .post(&token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    // The wrong verifier spends the code: an intercepted code is useless.
    let wrong = exchange(code.clone(), &"x".repeat(43)).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let again = exchange(code, verifier).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "a code is used once");

    let response = sign_in(&challenge, "S256", redirect_uri).await.unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let issued = exchange(code, verifier).await.unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    assert_eq!(issued.headers()["cache-control"], "no-store");
    let issued: Value = issued.json().await.unwrap();
    assert_eq!(issued["token_type"], "Bearer");
    let token = issued["access_token"].as_str().unwrap();
    let (status, _, access) = app.get("/$my-access", token).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    assert!(access.to_string().contains("patient-jane-smith"), "{access}");

    // Only PKCE with S256, and only loopback redirects.
    let plain = sign_in(verifier, "plain", redirect_uri).await.unwrap();
    assert_eq!(plain.status(), StatusCode::FOUND);
    assert!(
        plain.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_request")
    );
    let elsewhere = sign_in(&challenge, "S256", "https://attacker.example/cb")
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);
}
