//! Swagger UI at `/docs/` signs in through the issuers the OpenAPI document declares: in the dev
//! profile, the dev identity provider's authorization-code flow with PKCE, a persona chosen on
//! the provider's page. What a browser does is driven here by hand (`.ci/swagger_ui.py` drives a
//! real one).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gp_online_gateway::dev::login::DOCS_CLIENT_ID;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Digest;

use crate::helpers::*;

const VERIFIER: &str = "swagger-ui-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn docs_redirect(app: &TestApp) -> String {
    app.url("/docs/oauth2-redirect.html")
}

/// The provider's authorize URL as Swagger UI builds it, with `extra` parameters after.
fn authorize_url(app: &TestApp, realm: &str, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> url::Url {
    let mut url = url::Url::parse(&app.url(&format!("/dev-idp/{realm}/authorize"))).unwrap();
    url.query_pairs_mut()
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", "V2VkIERlYyAwOSAyMDI2"),
            ("code_challenge", challenge(VERIFIER).as_str()),
            ("code_challenge_method", "S256"),
        ])
        .extend_pairs(extra);
    url
}

fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs in as `persona` the way the chooser page's button does, returning the code.
async fn code_for(app: &TestApp, realm: &str, persona: &str) -> String {
    let url = authorize_url(
        app,
        realm,
        DOCS_CLIENT_ID,
        &docs_redirect(app),
        &[("login_hint", persona)],
    );
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{persona}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&docs_redirect(app)), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("V2VkIERlYyAwOSAyMDI2"));
    query_param(&location, "code").expect("a code")
}

/// The token request Swagger UI makes from the redirect page.
async fn exchange(app: &TestApp, code: &str, verifier: &str) -> (StatusCode, Value) {
    let redirect = docs_redirect(app);
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", DOCS_CLIENT_ID),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier),
        ])
        .finish();
    let response = app
        .client
        .post(app.url("/dev-idp/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-requested-with", "XMLHttpRequest")
        .body(form)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_document_declares_every_issuers_discovery_beside_the_bearer_scheme() {
    let app = TestApp::spawn().await;
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for realm in ["staff", "patient", "system"] {
        let scheme = &schemes[&format!("dev-{realm}")];
        assert_eq!(scheme["type"], "openIdConnect");
        let discovery_url = scheme["openIdConnectUrl"].as_str().unwrap();
        assert_eq!(
            discovery_url,
            app.url(&format!("/dev-idp/{realm}/.well-known/openid-configuration")),
            "the running gateway's issuer, not the default"
        );
        let discovery: Value = app
            .client
            .get(discovery_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], app.url(&format!("/dev-idp/{realm}")));
    }
    assert_eq!(schemes.len(), 4);

    // Every operation that takes a token takes one from any of them.
    let mut secured = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(security) = op.get("security").and_then(Value::as_array) else {
                continue;
            };
            secured += 1;
            let names: Vec<&str> = security
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                .collect();
            assert_eq!(
                names,
                ["bearer", "dev-staff", "dev-patient", "dev-system"],
                "{method} {path}"
            );
        }
    }
    assert!(secured > 50, "{secured} operations take a token");

    // The health checks stay open.
    assert!(spec["paths"]["/health/live"]["get"].get("security").is_none());
}

#[tokio::test]
async fn swagger_ui_is_set_up_for_the_authorization_code_flow_with_pkce() {
    let app = TestApp::spawn().await;
    let initializer = app.text("/docs/swagger-initializer.js").await;
    for expected in [
        format!(r#""oauth2RedirectUrl": "{}""#, docs_redirect(&app)),
        r#""persistAuthorization": true"#.to_owned(),
        r#""usePkceWithAuthorizationCodeGrant": true"#.to_owned(),
        format!(r#""clientId": "{DOCS_CLIENT_ID}""#),
    ] {
        assert!(initializer.contains(&expected), "{expected} in\n{initializer}");
    }
    let redirect_page = app.client.get(docs_redirect(&app)).send().await.unwrap();
    assert_eq!(redirect_page.status(), StatusCode::OK);
    assert!(
        redirect_page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn a_sign_in_without_login_hint_shows_the_realms_personas() {
    let app = TestApp::spawn().await;
    let page = |realm: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let url = authorize_url(&app, realm, DOCS_CLIENT_ID, &docs_redirect(&app), &extra);
        app.client.get(url).send()
    };
    let staff = page("staff", vec![]).await.unwrap();
    assert_eq!(staff.status(), StatusCode::OK);
    assert!(
        staff.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(staff.headers()["cache-control"], "no-store");
    let staff = staff.text().await.unwrap();
    assert!(
        staff.contains(r#"<button type="submit" name="login_hint" value="staff-emis">"#),
        "{staff}"
    );
    assert!(!staff.contains(r#"value="patient-p9""#), "only the realm's personas");
    // The request's parameters ride along with the choice.
    assert!(staff.contains(&format!(r#"name="code_challenge" value="{}""#, challenge(VERIFIER))));
    assert!(staff.contains(&format!(r#"name="redirect_uri" value="{}""#, docs_redirect(&app))));
    assert!(staff.contains(r#"name="state" value="V2VkIERlYyAwOSAyMDI2""#));

    let patient = page("patient", vec![("login_hint", "")])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for persona in ["patient-p9", "proxy-p9", "proxy-p9-for-lily", "carer-p9"] {
        assert!(patient.contains(&format!(r#"value="{persona}""#)), "{persona}");
    }
    assert!(patient.contains("NHS number"), "anyone by NHS number");
    assert!(!patient.contains(r#"value="staff-emis""#));

    // What the page repeats is escaped.
    let url = authorize_url(
        &app,
        "staff",
        r#"app"><script>alert(1)</script>"#,
        "http://127.0.0.1:9/cb",
        &[],
    );
    let escaped = app.client.get(url).send().await.unwrap().text().await.unwrap();
    assert!(!escaped.contains("<script>"), "{escaped}");
    assert!(escaped.contains("app&quot;&gt;&lt;script&gt;"), "{escaped}");

    // A bad request is refused before any choice is offered.
    let url = authorize_url(&app, "staff", DOCS_CLIENT_ID, &docs_redirect(&app), &[]);
    let plain = url
        .as_str()
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let plain = app.client.get(plain).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::FOUND);
    assert!(
        plain.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=invalid_request")
    );
}

#[tokio::test]
async fn the_docs_client_returns_only_to_its_own_page() {
    let app = TestApp::spawn().await;
    for elsewhere in [
        "http://127.0.0.1:9/cb".to_owned(),
        app.url("/docs/oauth2-redirect.html?next=x"),
        "https://attacker.example/docs/oauth2-redirect.html".to_owned(),
    ] {
        let url = authorize_url(
            &app,
            "staff",
            DOCS_CLIENT_ID,
            &elsewhere,
            &[("login_hint", "staff-emis")],
        );
        let response = app.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{elsewhere}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
}

#[tokio::test]
async fn staff_patient_and_proxy_personas_sign_in_through_the_docs_and_their_calls_go_ahead() {
    let app = TestApp::spawn().await;

    // The wrong verifier spends the code.
    let code = code_for(&app, "staff", "staff-emis").await;
    let (status, body) = exchange(&app, &code, &"w".repeat(43)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = exchange(&app, &code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code is used once");

    for (realm, persona, call) in [
        ("staff", "staff-emis", "/Patient?family=smith"),
        ("patient", "patient-p9", "/$my-access"),
        (
            "patient",
            "proxy-p9",
            "/Patient/patient-lily-jones/$service-access?service=appointments",
        ),
    ] {
        let code = code_for(&app, realm, persona).await;
        let (status, token) = exchange(&app, &code, VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{persona}: {token}");
        assert_eq!(token["token_type"], "Bearer");
        let access_token = token["access_token"].as_str().unwrap();
        let (status, _, body) = app.get(call, access_token).await;
        assert_eq!(status, StatusCode::OK, "{persona} {call}: {body}");
    }
}

#[tokio::test]
async fn a_system_client_gets_its_token_with_client_credentials() {
    let app = TestApp::spawn().await;
    let discovery: Value = app
        .client
        .get(app.url("/dev-idp/system/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    let ask = |client: &str, scope: &str| {
        app.client
            .post(app.url("/dev-idp/token"))
            .basic_auth(client, Some("any secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope={}",
                scope.replace(' ', "+")
            ))
            .send()
    };
    let issued: Value = ask("nhs-login-idp", "identity:verify-linkage")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(issued["scope"], "identity:verify-linkage", "narrowed to what was asked");
    let token = issued["access_token"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["iss"], app.url("/dev-idp/system"));
    assert_eq!(claims["client_id"], "nhs-login-idp");
    let (status, _, body) = app.get("/$my-access", token).await;
    assert_ne!(status, StatusCode::UNAUTHORIZED, "the gateway takes the token: {body}");

    assert_eq!(
        ask("nhs-login-idp", "proxy:write").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        ask("someone-else", "").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
