use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn practices_are_seeded_readable_and_searchable() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let (status, headers, org) = app.get("/Organization/practice-a81001", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "W/\"1\"");
    assert_eq!(org["resourceType"], "Organization");
    assert_eq!(
        org["identifier"][0]["system"],
        "https://fhir.nhs.uk/Id/ods-organization-code"
    );
    assert_eq!(org["identifier"][0]["value"], "A81001");
    assert_eq!(org["extension"][0]["valueCode"], "emis");

    let (_, _, all) = app.get("/Organization", &token).await;
    assert_eq!(all["total"], 3);
    let (_, _, tpp) = app
        .get(
            "/Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|b82005",
            &token,
        )
        .await;
    assert_eq!(tpp["total"], 1);
    assert_eq!(tpp["entry"][0]["resource"]["extension"][0]["valueCode"], "tpp");
    let (status, _, _) = app.get("/Organization?identifier=x|A81001", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_the_practices_own_staff_change_its_settings() {
    let app = TestApp::spawn().await;
    let emis = app.token("staff-emis");
    let (_, _, mut org) = app.get("/Organization/practice-a81001", &emis).await;
    org["extension"][1]["extension"] = json!([
        {"url": "enabled", "valueBoolean": true},
        {"url": "accessModel", "valueCode": "opt-in"},
        {"url": "proxyReviewAge", "valueInteger": 12}
    ]);
    let put = |token: &str, etag: &str, body: &serde_json::Value| {
        send(
            app.request(Method::PUT, "/Organization/practice-a81001", Some(token))
                .header("content-type", "application/fhir+json")
                .header("if-match", etag)
                .body(body.to_string()),
        )
    };
    let (status, _, body) = put(&app.token("staff-tpp"), "W/\"1\"", &org).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "OUTSIDE_OWN_PRACTICE");

    let (status, headers, updated) = put(&emis, "W/\"1\"", &org).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(headers["etag"], "W/\"2\"");
    assert_eq!(updated["extension"][1]["extension"][1]["valueCode"], "opt-in");
    assert_eq!(updated["extension"][1]["extension"][2]["valueInteger"], 12);

    let (status, _, _) = put(&emis, "W/\"1\"", &org).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "a stale If-Match");

    let mut bad = updated.clone();
    bad["identifier"][0]["value"] = json!("Z99999");
    let (status, _, body) = put(&emis, "W/\"2\"", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the ODS code cannot change: {body}");
    let mut bad = updated.clone();
    bad["extension"][1]["extension"][2]["valueInteger"] = json!(40);
    let (status, _, _) = put(&emis, "W/\"2\"", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
