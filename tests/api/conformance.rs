//! The OpenAPI document against the running server: every operation it lists is driven with
//! generated requests (good and bad ids, parameter values, bodies, tokens and headers), and
//! every answer must be a status the document lists for that operation, never a server error,
//! and every error an `OperationOutcome`.
//! The run is seeded (`CONFORMANCE_SEED`, printed on failure) and bounded in requests.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Requests per operation: enough to reach each kind of bad input, few enough for CI
/// (`CONFORMANCE_ROUNDS` runs longer).
const ROUNDS: usize = 14;

const IDS: &[&str] = &[
    "patient-jane-smith",
    "patient-amir-khan",
    "practice-a81001",
    "practice-b82005",
    "3b8f0c5e-6a3e-4b65-9d5b-2f1c4f0e9a11",
    "no-such-thing",
    "x",
    "%00",
    "a%C3%BC012345678",
    "%E2%80%AE",
    "..%2F..%2Fetc",
    "%20",
    "9990000018",
];

const VALUES: &[&str] = &[
    "",
    "x",
    "-1",
    "0",
    "99999999999999999999",
    "true",
    "9990000018",
    "https://fhir.nhs.uk/Id/nhs-number|9990000018",
    "https://fhir.nhs.uk/Id/ods-organization-code|A81001",
    "A81001",
    "Patient/patient-jane-smith",
    "patient-jane-smith",
    "ge1980-01-01",
    "2026-13-45",
    "a%C3%BC012345678",
    "%00",
    "%1B%5B31m",
    "smith",
    "read-patient",
    "appointments",
    "family,-birthdate",
    "count",
];

const PERSONAS: &[Option<&str>] = &[
    None,
    Some("staff-emis"),
    Some("staff-tpp"),
    Some("reception-emis"),
    Some("patient-p9"),
    Some("patient-p0"),
    Some("proxy-p9"),
    Some("system-idp"),
    Some("system-app"),
    Some("system-supplier"),
];

fn bodies() -> Vec<(&'static str, String)> {
    let fhir = "application/fhir+json";
    vec![
        (fhir, "{}".into()),
        (fhir, "[]".into()),
        (fhir, "not json".into()),
        (fhir, json!({"resourceType": "Parameters"}).to_string()),
        (
            fhir,
            json!({"resourceType": "Parameters", "parameter": [{"name": "x\u{0}", "valueString": "\u{7}"}]})
                .to_string(),
        ),
        (
            fhir,
            new_patient(FREE_NHS_NUMBERS[0], "Fuzz\u{1b}", "A81001").to_string(),
        ),
        (fhir, new_patient(FREE_NHS_NUMBERS[1], "Fuzz", "A81001").to_string()),
        (fhir, json!({"resourceType": "Consent", "status": "active"}).to_string()),
        (
            fhir,
            json!({"resourceType": "QuestionnaireResponse", "status": "completed"}).to_string(),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/status", "value": "inactive"}]).to_string(),
        ),
        ("application/json-patch+json", "[{\"op\": \"move\"}]".into()),
        ("text/plain", "hello".into()),
        (
            fhir,
            format!("{{\"resourceType\": \"Patient\", \"id\": \"{}\"}}", "a".repeat(70_000)),
        ),
    ]
}

fn operations(spec: &Value) -> Vec<(Method, String, Value)> {
    let mut out = vec![];
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (name, method) in [
            ("get", Method::GET),
            ("post", Method::POST),
            ("put", Method::PUT),
            ("patch", Method::PATCH),
            ("delete", Method::DELETE),
        ] {
            if let Some(op) = item.get(name) {
                out.push((method, path.clone(), op.clone()));
            }
        }
    }
    out
}

/// Fills the path's parameters and a random selection of its query parameters.
fn request_path(rng: &mut StdRng, path: &str, op: &Value) -> String {
    let mut concrete = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        concrete.push_str(&rest[..start]);
        concrete.push_str(IDS.choose(rng).expect("ids"));
        rest = &rest[end..];
    }
    concrete.push_str(rest);
    let mut query = vec![];
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] == "query" && rng.gen_bool(0.6) {
            let name = p["name"].as_str().unwrap_or_default();
            query.push(format!("{name}={}", VALUES.choose(rng).expect("values")));
        }
    }
    if rng.gen_bool(0.1) {
        query.push(format!(
            "{}=1",
            ["_format", "_elements", "unknown", "_sort"].choose(rng).unwrap()
        ));
    }
    if query.is_empty() {
        concrete
    } else {
        format!("{concrete}?{}", query.join("&"))
    }
}

#[tokio::test]
async fn every_answer_is_documented_and_none_is_a_server_error() {
    let seed: u64 = std::env::var("CONFORMANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen());
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = std::env::var("CONFORMANCE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS);
    let app = TestApp::spawn_with(|s| s.http.rate_limit_per_minute = 1_000_000).await;
    let spec = serde_json::to_value(gp_online_gateway::http::openapi()).expect("spec");
    let tokens: Vec<Option<String>> = PERSONAS.iter().map(|p| p.map(|p| app.token(p))).collect();
    let bodies = bodies();
    let mut problems = vec![];
    let mut sent = 0;
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for (method, path, op) in operations(&spec) {
        let documented = op["responses"].as_object().expect("responses");
        for _ in 0..rounds {
            let target = request_path(&mut rng, &path, &op);
            let token = tokens.choose(&mut rng).expect("tokens").clone();
            let mut rb = app.request(method.clone(), &target, token.as_deref());
            if rng.gen_bool(0.1) {
                rb = rb.header(
                    "accept",
                    *["application/fhir+xml", "text/html", "*/*"].choose(&mut rng).unwrap(),
                );
            }
            if rng.gen_bool(0.1) {
                let id = ["not-a-uuid", &uuid::Uuid::new_v4().to_string()]
                    .choose(&mut rng)
                    .unwrap()
                    .to_string();
                rb = rb.header("x-request-id", id);
            } else if is_vrs(&path) && rng.gen_bool(0.9) {
                // The VRS paths refuse a request without one: most calls carry one, so that
                // the rest of each operation is driven too.
                rb = rb.header("x-request-id", uuid::Uuid::new_v4().to_string());
            }
            if matches!(method, Method::PUT | Method::PATCH) && rng.gen_bool(0.5) {
                rb = rb.header(
                    "if-match",
                    *["W/\"1\"", "*", "W/\"x\"", "\"1\""].choose(&mut rng).unwrap(),
                );
            }
            let mut shown_body = String::new();
            if method != Method::GET && rng.gen_bool(0.9) {
                let (content_type, body) = bodies.choose(&mut rng).expect("bodies");
                shown_body = body.chars().take(120).collect();
                rb = rb.header("content-type", *content_type).body(body.clone());
            }
            let response = rb.send().await.expect("the server answers");
            sent += 1;
            let status = response.status();
            *seen.entry(status.as_u16()).or_default() += 1;
            let body = response.text().await.unwrap_or_default();
            let listed = documented.contains_key(status.as_str()) || documented.contains_key("default");
            let outcome = status.is_success()
                || serde_json::from_str::<Value>(&body).is_ok_and(|b| b["resourceType"] == "OperationOutcome");
            if status.is_server_error() || !listed || !outcome {
                problems.push(format!(
                    "{method} {target} as {:?} with {shown_body:?}: {status} {}",
                    token.as_ref().map(|_| "token"),
                    body.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    assert!(sent > 300, "the whole document was driven ({sent} requests)");
    eprintln!("seed {seed}: {sent} requests, answers by status {seen:?}");
    for expected in [200, 400, 401, 403, 404] {
        assert!(seen.contains_key(&expected), "the inputs reach {expected}: {seen:?}");
    }
    assert!(
        problems.is_empty(),
        "seed {seed}: {} of {sent} answers were server errors or undocumented:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Still serving, and the trail of everything above still verifies.
    let (status, _, _) = app.get("/metadata", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::OK);
    assert_trail_verifies(&app).await;
}
