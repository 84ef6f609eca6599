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

#[tokio::test]
async fn practice_staff_with_edit_practice_keep_the_address_and_telephone() {
    let app = TestApp::spawn().await;
    let admin = app.token("staff-emis");
    let (_, _, mut org) = app.get("/Organization/practice-a81001", &admin).await;
    assert_eq!(org["telecom"][0]["system"], "phone");
    assert_eq!(org["telecom"][0]["value"], "0113 496 0000");
    assert_eq!(org["address"][0]["line"][0], "1 Riverside Walk");
    assert_eq!(org["address"][0]["city"], "Leeds");
    assert_eq!(org["address"][0]["postalCode"], "LS1 4AP");

    org["address"] = json!([{"line": ["Riverside House", "2 Quay Street"], "city": "Leeds", "postalCode": "ls11aa"}]);
    org["telecom"] = json!([{"system": "phone", "value": "0113 496 0999", "use": "work"}]);
    let put = |token: &str, etag: &str, body: &serde_json::Value| {
        send(
            app.request(Method::PUT, "/Organization/practice-a81001", Some(token))
                .header("content-type", "application/fhir+json")
                .header("if-match", etag)
                .body(body.to_string()),
        )
    };
    // A receptionist's role does not edit the practice; a GP's (R8000) neither.
    for persona in ["reception-emis", "clinician-emis"] {
        let (status, _, body) = put(&app.token(persona), "W/\"1\"", &org).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{persona}: {body}");
    }
    let (status, _, updated) = put(&admin, "W/\"1\"", &org).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        updated["address"][0]["line"],
        json!(["Riverside House", "2 Quay Street"])
    );
    assert_eq!(updated["address"][0]["postalCode"], "LS1 1AA", "stored as printed");
    assert_eq!(updated["telecom"][0]["value"], "0113 496 0999");
    let (_, _, read) = app.get("/Organization/practice-a81001", &admin).await;
    assert_eq!(read["address"], updated["address"]);
    assert_eq!(read["telecom"], updated["telecom"]);

    for (field, value) in [
        ("telecom", json!([{"system": "phone", "value": "call us"}])),
        ("telecom", json!([{"system": "email", "value": "x@example.org"}])),
        (
            "address",
            json!([{"line": ["1 Street"], "postalCode": "not a postcode"}]),
        ),
        ("address", json!([{"city": "Leeds"}])),
        ("address", json!([{"line": ["a"]}, {"line": ["b"]}])),
    ] {
        let mut bad = updated.clone();
        bad[field] = value.clone();
        let (status, _, body) = put(&admin, "W/\"2\"", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field} {value}: {body}");
        assert_eq!(
            body["issue"][0]["expression"][0],
            format!("Organization.{field}"),
            "{body}"
        );
    }

    // An update replaces the practice: what it leaves out is removed.
    let mut without = updated.clone();
    without.as_object_mut().unwrap().remove("telecom");
    let (status, _, cleared) = put(&admin, "W/\"2\"", &without).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared.get("telecom").is_none(), "{cleared}");
    assert_eq!(cleared["address"], updated["address"]);
}
