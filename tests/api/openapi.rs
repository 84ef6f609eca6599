use serde_json::Value;

use crate::helpers::*;

/// The committed spec is the generated spec: regenerate with
/// `cargo run -q -- openapi > openapi/openapi.json`.
#[tokio::test]
async fn committed_spec_matches_the_code_and_the_served_document() {
    let generated: Value = serde_json::to_value(gp_online_gateway::http::openapi()).unwrap();
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json exists"),
    )
    .unwrap();
    assert!(
        generated == committed,
        "openapi/openapi.json is out of date: run `cargo run -q -- openapi > openapi/openapi.json`"
    );
    // The committed document names the issuers of the dev profile on the default address; a
    // running gateway serves the same document naming its own.
    let app = TestApp::spawn().await;
    let served = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!committed.to_string().contains(&app.base));
    let served: Value = serde_json::from_str(&served.replace(&app.base, "http://127.0.0.1:8080")).unwrap();
    assert_eq!(served, committed);
    for path in [
        "/Patient",
        "/Patient/{id}",
        "/Organization",
        "/Organization/{id}",
        "/metadata",
        "/health/ready",
        "/metrics",
    ] {
        assert!(committed["paths"].get(path).is_some(), "{path} is documented");
    }
    let docs = app.text("/docs/").await;
    assert!(docs.contains("swagger"), "Swagger UI is served from vendored assets");
}

#[test]
fn explain_access_lists_every_action_code_it_takes() {
    let spec: Value = serde_json::to_value(gp_online_gateway::http::openapi()).unwrap();
    let params = spec["paths"]["/$explain-access"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let action = params
        .iter()
        .find(|p| p["name"] == "action")
        .expect("action is documented");
    assert_eq!(action["required"], true);
    let listed: Vec<&str> = action["schema"]["enum"]
        .as_array()
        .expect("action is an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let known: Vec<&str> = gp_online_gateway::domain::policy::Action::ALL
        .iter()
        .map(|a| a.name())
        .collect();
    assert_eq!(listed, known);
    assert!(listed.contains(&"read-patient") && listed.contains(&"my-access"));
}
