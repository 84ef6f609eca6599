//! Proxy access from outside: the VRS resources with their examples and error codes, who may
//! see and change roles, what roles let proxies do, the age and consent rules with the clock
//! moved, and forwarding to the supplier simulators.
//!
//! `tests/fixtures/vrs-request-examples.json` holds the VRS request examples with the dev
//! profile's valid stand-ins for the examples' invalid NHS numbers (README, "Proxy access").

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, send};

const VRS_ERRORS: &str = "https://fhir.nhs.uk/R4/CodeSystem/ValidatedRelationships-ErrorOrWarningCode";
const STATUS_REASON_URL: &str =
    "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason";
const STATUS_REASON_SYSTEM: &str = "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason";
const GRANTOR_URL: &str = "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn examples() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vrs-request-examples.json"
    ))
    .expect("fixtures");
    serde_json::from_str(&text).expect("fixture JSON")
}

pub fn example(name: &str) -> Value {
    examples()[name].clone()
}

/// A P9 NHS login-like token for anyone, with the seed's demographics where it has them.
fn person(app: &TestApp, nhs: &str) -> String {
    app.token_with(
        IssuerKind::Patient,
        gp_online_gateway::dev::person_claims(&format!("nhslogin-sub-{nhs}"), nhs, "P9.Cp.Cd"),
    )
}

fn vrs_code(body: &Value) -> &str {
    assert_eq!(
        body["resourceType"], "OperationOutcome",
        "not an OperationOutcome: {body}"
    );
    let coding = &body["issue"][0]["details"]["coding"][0];
    coding["code"].as_str().unwrap_or_default()
}

fn assert_vrs(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(vrs_code(body), want_code, "{body}");
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    app.post_fhir(path, token, body).await
}

async fn patch(app: &TestApp, id: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let (s, _, b) = send(
        app.vrs(Method::PATCH, &format!("/Consent/{id}"), Some(token))
            .header("content-type", "application/json-patch+json")
            .body(body.to_string()),
    )
    .await;
    (s, b)
}

fn reason(code: &str, text: Option<&str>) -> Value {
    let mut concept = json!({"coding": [{"system": STATUS_REASON_SYSTEM, "code": code}]});
    if let Some(t) = text {
        concept["text"] = json!(t);
    }
    json!({"url": STATUS_REASON_URL, "valueCodeableConcept": concept})
}

fn grantor(ods: &str) -> Value {
    json!({"url": GRANTOR_URL, "valueReference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}}})
}

/// A Consent for staff to create: `status` for proxy `performer` and `patient`.
fn consent(status: &str, performer: &str, patient: &str, basis: &str, ods: &str) -> Value {
    let reason_code = if status == "active" {
        "ROLE_CREATED"
    } else {
        "APPLICATION_SUBMITTED"
    };
    json!({
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
        "patient": {"type": "Patient", "identifier": {"system": NHS, "value": patient}},
        "dateTime": "2026-11-30T10:00:00Z",
        "performer": [{"identifier": {"system": NHS, "value": performer}}],
        "policyRule": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis", "code": basis}]},
        "provision": {"type": "permit", "actor": [{"reference": {"type": "RelatedPerson", "identifier": {"system": NHS, "value": performer}}}]},
        "extension": [reason(reason_code, None), grantor(ods)]
    })
}

/// Creates a role and answers its id (from `Location`).
async fn create_role(app: &TestApp, token: &str, body: &Value) -> String {
    let (status, headers, outcome) = post(app, "/Consent", token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    let location = headers["location"].to_str().unwrap();
    location.rsplit('/').next().unwrap().to_owned()
}

async fn read_role(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, _, bundle) = app.get(&format!("/Consent/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    bundle["entry"][0]["resource"].clone()
}

async fn move_clock(app: &TestApp, now: &str) {
    let r = app
        .client
        .put(app.url("/dev/clock"))
        .json(&json!({"now": now}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn service(app: &TestApp, token: &str, patient: &str, service: &str) -> (StatusCode, Value) {
    let (s, _, b) = app
        .get(&format!("/Patient/{patient}/$service-access?service={service}"), token)
        .await;
    (s, b)
}

async fn sim_proxies(app: &TestApp, flavour: &str) -> Vec<Value> {
    app.client
        .get(format!("{}/admin/proxies", app.simulator(flavour)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the simulator until a proxy link for the pair is in the wanted state (bounded).
async fn wait_for_link(app: &TestApp, flavour: &str, patient: &str, proxy: &str, revoked: bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let links = sim_proxies(app, flavour).await;
        if let Some(l) = links
            .iter()
            .find(|l| l["patient_identifier"] == patient && l["proxy_identifier"] == proxy && l["revoked"] == revoked)
        {
            return l.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {flavour} link {proxy} -> {patient} revoked={revoked}: {links:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The record level a Consent's `proxy-access` extension grants.
fn record_level(consent: &Value) -> String {
    consent["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/proxy-access")
        .and_then(|e| e["extension"].as_array())
        .and_then(|x| x.iter().find(|p| p["url"] == "recordAccess"))
        .and_then(|p| p["valueCode"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn access_entries(params: &Value) -> Vec<&Value> {
    params["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "access")
        .collect()
}

fn part<'a>(entry: &'a Value, name: &str) -> &'a Value {
    entry["part"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {entry}"))
}

#[tokio::test]
async fn every_vrs_request_example_gives_its_documented_result() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");

    // Access requests, each sent by the person named as its source.
    for (name, want) in [
        ("mother-child", 200),
        ("adult-to-adult-without-capacity", 200),
        ("adult-to-adult-with-capacity", 200),
        ("duplicate_relationship", 409),
    ] {
        let body = example(name);
        let source = body["source"]["identifier"]["value"].as_str().unwrap().to_owned();
        let (status, headers, outcome) = post(&app, "/QuestionnaireResponse", &person(&app, &source), &body).await;
        assert_eq!(status.as_u16(), want, "{name}: {outcome}");
        if want == 200 {
            let reference = outcome["issue"][0]["details"]["coding"][0]["code"].as_str().unwrap();
            assert_eq!(reference.len(), 10, "{outcome}");
            let location = headers["location"].to_str().unwrap();
            assert!(location.starts_with(&app.url("/QuestionnaireResponse/")), "{location}");
            let path = location.trim_start_matches(&app.base);
            let (s, _, stored) = app.get(path, &staff).await;
            assert_eq!(s, StatusCode::OK, "{stored}");
            assert_eq!(stored["identifier"]["value"], reference);
            assert_eq!(stored["resourceType"], "QuestionnaireResponse");
        } else {
            assert_vrs(status, &outcome, 409, "DUPLICATE_RELATIONSHIP");
        }
    }
    // The patient nominating the proxy who already asked: the same relationship.
    let body = example("adult-nominates-adult");
    let (status, _, outcome) = post(&app, "/QuestionnaireResponse", &person(&app, "9000010063"), &body).await;
    assert_vrs(status, &outcome, 409, "DUPLICATE_RELATIONSHIP");

    // Each request became a proposed role with a review Task at the patient's practice.
    let (_, _, roles) = app
        .get("/Consent?patient:identifier=9000010020&status=proposed", &staff)
        .await;
    assert_eq!(roles["total"], 1, "{roles}");
    let (_, _, tasks) = app.get("/Task?patient=vrs-9000010020", &staff).await;
    assert!(
        tasks["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["resource"]["code"]["coding"][0]["code"] == "proxy-review"),
        "{tasks}"
    );

    // The spec's header examples: its X-Request-ID is in capitals, and both ids come back as
    // sent. Without the id, a VRS call is refused.
    let read = "/QuestionnaireResponse/156e1560-e532-4e2a-85ad-5aeff03dc43e";
    let (s, headers, body) = send(
        app.request(Method::GET, read, Some(&staff))
            .header("X-Request-ID", "60E0B220-8136-4CA5-AE46-1D97EF59D068")
            .header("X-Correlation-ID", "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(headers["x-request-id"], "60E0B220-8136-4CA5-AE46-1D97EF59D068");
    assert_eq!(headers["x-correlation-id"], "11C46F5F-CDEF-4865-94B2-0EE0EDCC26DA");
    let (s, _, body) = send(app.request(Method::GET, read, Some(&staff))).await;
    assert_vrs(s, &body, 400, "MISSING_VALUE");

    // Staff create roles. Sent without X-Request-ID, or with a provision that is not a
    // permit, an example creates nothing (else the real creation below would be a duplicate).
    for name in ["parent_child_proxy_creation", "adult_to_adult_proxy_creation"] {
        let (s, _, outcome) = send(
            app.request(Method::POST, "/Consent", Some(&staff))
                .header("content-type", "application/fhir+json")
                .body(example(name).to_string()),
        )
        .await;
        assert_vrs(s, &outcome, 400, "MISSING_VALUE");
        for kind in ["deny", "maybe"] {
            let mut body = example(name);
            body["provision"]["type"] = json!(kind);
            let (s, _, outcome) = post(&app, "/Consent", &staff, &body).await;
            assert_vrs(s, &outcome, 422, "INVALID_PROVISION");
        }
    }
    for name in ["parent_child_proxy_creation", "adult_to_adult_proxy_creation"] {
        let (status, headers, outcome) = post(&app, "/Consent", &staff, &example(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {outcome}");
        assert_eq!(outcome["issue"][0]["code"], "informational");
        let id = headers["location"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let role = read_role(&app, &staff, &id).await;
        assert_eq!(role["status"], "active");
        assert_eq!(role["patient"]["identifier"]["value"], "9000010128");
    }

    // Patches on seeded roles.
    let (s, b) = patch(
        &app,
        "6b71ac92-baa3-4b76-b0f5-a601257e2722",
        &staff,
        &example("replace_provision_end_date"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let role = read_role(&app, &staff, "6b71ac92-baa3-4b76-b0f5-a601257e2722").await;
    assert!(
        role["provision"]["period"]["end"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-31"),
        "{role}"
    );
    let (s, b) = patch(
        &app,
        "6b71ac92-baa3-4b76-b0f5-a601257e2722",
        &staff,
        &example("replace_policy_rule"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = patch(
        &app,
        "43003db8-ffcd-4bd6-ab2f-b49b9656f9e5",
        &staff,
        &example("multiple_updates"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let role = read_role(&app, &staff, "43003db8-ffcd-4bd6-ab2f-b49b9656f9e5").await;
    assert_eq!(role["status"], "active");
    assert_eq!(
        role["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "ROLE_ACTIVATED"
    );
    // `replace_status` ends a role with ROLE_CREATED, which does not explain an ending.
    let (s, b) = patch(
        &app,
        "74eed847-ca25-4e76-8cf2-f2c2d7842a7a",
        &staff,
        &example("replace_status"),
    )
    .await;
    assert_vrs(s, &b, 422, "INVALID_STATUS_REASON");
    assert_eq!(
        read_role(&app, &staff, "74eed847-ca25-4e76-8cf2-f2c2d7842a7a").await["status"],
        "active"
    );
}

#[tokio::test]
async fn search_and_read_errors_have_the_vrs_codes() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    for (path, status, code) in [
        ("/RelatedPerson", 400, "MISSING_IDENTIFIER_VALUE"),
        ("/RelatedPerson?identifier=900000000", 400, "INVALID_IDENTIFIER_VALUE"),
        ("/RelatedPerson?identifier=9000000012", 400, "INVALID_IDENTIFIER_VALUE"),
        (
            "/RelatedPerson?patient:identifier=9000000012",
            400,
            "INVALID_PATIENT_IDENTIFIER_VALUE",
        ),
        (
            "/RelatedPerson?identifier=https://fhir.nhs.uk/Id/nhs-number/9730675929",
            400,
            "INVALID_IDENTIFIER_SYSTEM",
        ),
        (
            "/RelatedPerson?identifier=invalid%7C9000000017",
            400,
            "INVALID_IDENTIFIER_SYSTEM",
        ),
        // The RelatedPerson table's invalid-parameter row is 400 INVALID_VALUE (it has no 422).
        (
            "/RelatedPerson?identifier=9000000017&_include=Patient:x",
            400,
            "INVALID_VALUE",
        ),
        ("/RelatedPerson?identifier=9000000017&_unknown=1", 400, "INVALID_VALUE"),
        ("/Consent", 400, "MISSING_IDENTIFIER_VALUE"),
        (
            "/Consent?performer:identifier=900000000",
            422,
            "INVALID_IDENTIFIER_VALUE",
        ),
        // The Consent search's own table: a malformed identifier on either side.
        (
            "/Consent?patient:identifier=9000000012",
            422,
            "INVALID_IDENTIFIER_VALUE",
        ),
        (
            "/Consent?patient:identifier=900000000&_include=Consent:patient",
            422,
            "INVALID_IDENTIFIER_VALUE",
        ),
        (
            "/Consent?performer:identifier=invalid%7C9000000017",
            422,
            "INVALID_IDENTIFIER_SYSTEM",
        ),
        (
            "/Consent?performer:identifier=9000000017&status=test",
            422,
            "INVALID_PARAMETER",
        ),
        (
            "/Consent?performer:identifier=9000000017&_include=test",
            422,
            "INVALID_PARAMETER",
        ),
        ("/Consent/not-a-uuid", 400, "INVALID_ID_VALUE"),
        (
            "/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a?_include=test",
            422,
            "INVALID_PARAMETER",
        ),
        (
            "/Consent/60d09b82-f4bb-41f9-b41e-767999b4ac9b",
            404,
            "RESOURCE_NOT_FOUND",
        ),
        (
            "/Consent/a0922245-1072-40c3-8f4e-a7490c10d365",
            404,
            "INVALIDATED_RESOURCE",
        ),
        ("/QuestionnaireResponse/INVALID", 400, "INVALID_IDENTIFIER_VALUE"),
        (
            "/QuestionnaireResponse/60d09b82-f4bb-41f9-b41e-767999b4ac9b",
            404,
            "QUESTIONNAIRE_RESPONSE_NOT_FOUND",
        ),
        ("/QuestionnaireResponse", 405, "METHOD_NOT_ALLOWED"),
        ("/QuestionnaireResponse/", 405, "METHOD_NOT_ALLOWED"),
    ] {
        let (s, _, body) = app.get(path, &staff).await;
        assert_eq!(s.as_u16(), status, "{path}: {body}");
        assert_eq!(vrs_code(&body), code, "{path}: {body}");
        assert_eq!(body["issue"].as_array().unwrap().len(), 1, "one issue: {body}");
    }
    // The shapes: the VRS code system with version 1, or Spine's without, as the examples use.
    let (_, _, body) = app.get("/Consent", &staff).await;
    assert_eq!(body["issue"][0]["details"]["coding"][0]["system"], VRS_ERRORS);
    assert_eq!(body["issue"][0]["details"]["coding"][0]["version"], "1");
    let (_, _, body) = app.get("/QuestionnaireResponse/INVALID", &staff).await;
    assert_eq!(
        body["issue"][0]["details"]["coding"][0]["system"],
        "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
    );
    // No token, a bad token, a method VRS does not have.
    let (s, _, body) = send(app.vrs(Method::GET, "/Consent?performer:identifier=9000000017", None)).await;
    assert_vrs(s, &body, 401, "ACCESS_DENIED");
    let (s, _, body) = app.get("/Consent?performer:identifier=9000000017", "not-a-token").await;
    assert_vrs(s, &body, 401, "ACCESS_DENIED");
    let (s, _, body) = send(app.vrs(
        Method::DELETE,
        "/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a",
        Some(&staff),
    ))
    .await;
    assert_vrs(s, &body, 405, "METHOD_NOT_ALLOWED");
    // A known practice in X-IM1-Connection-Params narrows the search; an unknown one is 404.
    let (s, _, body) = send(
        app.vrs(Method::GET, "/Consent?performer:identifier=9000000017", Some(&staff))
            .header("X-IM1-Connection-Params", "token;Z99999"),
    )
    .await;
    assert_vrs(s, &body, 404, "GP_PRACTICE_NOT_FOUND");
    let (s, _, body) = send(
        app.vrs(Method::GET, "/Consent?performer:identifier=9000000017", Some(&staff))
            .header("X-IM1-Connection-Params", "token;G8101234"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn searches_filter_by_status_include_the_parties_and_match_nothing_with_an_empty_bundle() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let total = |b: &Value| b["total"].as_u64().unwrap();
    let (_, _, active) = app
        .get("/Consent?performer:identifier=9000000017&status=active", &staff)
        .await;
    assert!(
        active["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["status"] == "active")
    );
    let (_, _, either) = app
        .get(
            "/Consent?performer:identifier=9000000017&status=active,proposed",
            &staff,
        )
        .await;
    let (_, _, proposed) = app
        .get("/Consent?performer:identifier=9000000017&status=proposed", &staff)
        .await;
    assert_eq!(total(&either), total(&active) + total(&proposed));
    assert!(total(&proposed) >= 1 && total(&active) >= 1);
    let (_, _, none) = app
        .get(
            "/Consent?performer:identifier=9000000017&status=active,proposed&status=inactive",
            &staff,
        )
        .await;
    assert_eq!(total(&none), 0, "repeated status parameters must all hold");
    assert_eq!(none["entry"], json!([]), "an empty Consent bundle keeps entry: []");

    // Includes: the performer as Patient and RelatedPerson, the patient once per patient.
    let (_, _, single) = app
        .get(
            "/Consent?patient:identifier=9000011000&_include=Consent:patient&_include=Consent:performer",
            &staff,
        )
        .await;
    let entries = single["entry"].as_array().unwrap();
    let count = |kind: &str, mode: &str| {
        entries
            .iter()
            .filter(|e| e["resource"]["resourceType"] == kind && e["search"]["mode"] == mode)
            .count()
    };
    assert_eq!(total(&single), 3, "{single}");
    assert_eq!(count("Consent", "match"), 3);
    assert_eq!(count("RelatedPerson", "include"), 3);
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Patient"
                && e["resource"]["identifier"][0]["value"] == "9000011000")
            .count(),
        1,
        "the shared patient is included once"
    );
    assert_eq!(count("Patient", "include"), 4, "the patient and three proxies");

    // GET /Consent/{id} is a searchset Bundle too.
    let (_, _, by_id) = app
        .get(
            "/Consent/39df03a2-1b14-4d19-b1dc-d5d8cbf96948?_include=Consent:patient",
            &staff,
        )
        .await;
    assert_eq!(by_id["type"], "searchset");
    assert_eq!(by_id["total"], 1);
    assert_eq!(by_id["entry"].as_array().unwrap().len(), 2);

    // RelatedPerson: a proxy's relationships, one pair, and nothing (no entry at all).
    let (_, _, list) = app
        .get(
            "/RelatedPerson?identifier=9000010195&_include=RelatedPerson:patient",
            &staff,
        )
        .await;
    assert_eq!(list["total"], 1, "{list}");
    let related = list["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "match")
        .unwrap();
    assert_eq!(related["resource"]["resourceType"], "RelatedPerson");
    assert_eq!(
        related["resource"]["birthDate"], "2022-10-22",
        "the patient's birth date"
    );
    assert_eq!(related["resource"]["patient"]["identifier"]["value"], "9000000009");
    let (_, _, pair) = app
        .get(
            "/RelatedPerson?identifier=9000010195&patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009",
            &staff,
        )
        .await;
    assert_eq!(pair["total"], 1);
    let (_, _, empty) = app.get("/RelatedPerson?identifier=9000000033", &staff).await;
    assert_eq!(empty["total"], 0);
    assert!(empty.get("entry").is_none(), "{empty}");
}

#[tokio::test]
async fn consent_and_patch_bodies_are_checked_and_nothing_changes_on_error() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let base = consent("active", "9000010551", "9000010063", "consent", "G8101234");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        v
    };
    for (body, status, code) in [
        (
            with(&|v| v["extension"] = json!([reason("ROLE_CREATED", None)])),
            400,
            "MISSING_GRANTOR",
        ),
        (
            with(&|v| v["extension"][1] = json!({"url": GRANTOR_URL})),
            400,
            "MISSING_GRANTOR_REFERENCE",
        ),
        (
            with(&|v| v["extension"][1]["valueReference"] = json!({})),
            400,
            "MISSING_GRANTOR_IDENTIFIER",
        ),
        (
            with(&|v| v["extension"][1]["valueReference"]["identifier"]["system"] = json!("https://wrong-system.com")),
            422,
            "INVALID_GRANTOR_SYSTEM",
        ),
        (
            with(&|v| v["extension"][1]["valueReference"]["identifier"]["value"] = json!("")),
            422,
            "INVALID_GRANTOR_VALUE",
        ),
        (
            with(&|v| v["extension"][0] = reason("OTHER", None)),
            400,
            "MISSING_FREE_TEXT_FOR_OTHER",
        ),
        (with(&|v| v["status"] = json!("rejected")), 400, "BAD_REQUEST"),
        // A proxy role is a permit; nothing else is stored.
        (
            with(&|v| v["provision"]["type"] = json!("maybe")),
            422,
            "INVALID_PROVISION",
        ),
        (
            with(&|v| v["provision"]["type"] = json!("deny")),
            422,
            "INVALID_PROVISION",
        ),
        (with(&|v| v["status"] = json!("done")), 422, "INVALID_STATUS"),
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("scope");
            }),
            400,
            "MISSING_SCOPE",
        ),
        (
            with(&|v| v["performer"][0]["identifier"]["value"] = json!("9000000051")),
            422,
            "INVALID_IDENTIFIER_VALUE",
        ),
        (
            with(&|v| v["patient"]["identifier"]["value"] = json!("9000000012")),
            422,
            "INVALID_PATIENT_IDENTIFIER_VALUE",
        ),
        (
            with(&|v| {
                v["patient"]["identifier"].as_object_mut().unwrap().remove("system");
            }),
            400,
            "MISSING_IDENTIFIER_SYSTEM",
        ),
        (
            with(&|v| v["policyRule"]["coding"][0]["code"] = json!("friendship")),
            422,
            "INVALID_LEGAL_BASIS_CODE",
        ),
        (
            with(&|v| v["policyRule"]["coding"][0]["code"] = json!("parental-responsibility")),
            422,
            "INVALID_LEGAL_BASIS_CODE",
        ),
        (
            with(&|v| v["extension"][1] = grantor("A81001")),
            422,
            "INVALID_GRANTOR_VALUE",
        ),
        (json!({"resourceType": "Patient"}), 400, "BAD_REQUEST"),
        // A patient the caller's practice does not hold.
        (
            consent("active", "9000010551", "9990000018", "consent", "A81001"),
            422,
            "INVALID_PATIENT",
        ),
        // 9000000049 already has a proposed role for 9000000006.
        (
            consent("proposed", "9000010497", "9000010063", "consent", "G8101234"),
            409,
            "DUPLICATE_RELATIONSHIP",
        ),
    ] {
        let (s, _, outcome) = post(&app, "/Consent", &staff, &body).await;
        assert_vrs(s, &outcome, status, code);
    }
    let (s, _, outcome) = send(
        app.vrs(Method::POST, "/Consent", Some(&staff))
            .header("content-type", "text/plain")
            .body(base.to_string()),
    )
    .await;
    assert_vrs(s, &outcome, 415, "UNSUPPORTED_MEDIA");
    let (_, _, none) = app.get("/Consent?performer:identifier=9000010551", &staff).await;
    assert_eq!(none["total"], 0, "nothing was created: {none}");

    let id = "74eed847-ca25-4e76-8cf2-f2c2d7842a7a";
    let before = read_role(&app, &staff, id).await;
    for (body, status, code) in [
        (json!({"op": "replace"}), 400, "INVALID_PATCH_FORMAT"),
        (
            json!([{"op": "move", "path": "/status", "from": "/x"}]),
            400,
            "INVALID_PATCH_FORMAT",
        ),
        (
            json!([{"op": "replace", "path": "/someotherpath", "value": "active"}]),
            400,
            "INVALID_PATCH_PATH",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "inactive"}, {"op": "replace", "path": "/status", "value": "active"}]),
            409,
            "DUPLICATE_PATCHES",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "paused"}]),
            422,
            "INVALID_STATUS_CODE",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "inactive"}]),
            400,
            "MISSING_STATUS_REASON",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "inactive"}, {"op": "add", "path": "/extension/-", "value": reason("NOT_A_REASON", None)}]),
            422,
            "INVALID_STATUS_REASON",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "inactive"}, {"op": "add", "path": "/extension/-", "value": [reason("OTHER", None)]}]),
            400,
            "MISSING_FREE_TEXT_FOR_OTHER",
        ),
        (
            json!([{"op": "replace", "path": "/status", "value": "proposed"}, {"op": "add", "path": "/extension/-", "value": [reason("APPLICATION_RESUBMITTED", None)]}]),
            422,
            "INVALID_STATE_TRANSITION",
        ),
        (
            json!([{"op": "add", "path": "/provision/period/end", "value": "2020-01-01"}]),
            422,
            "INVALID_END_DATE",
        ),
        (
            json!([{"op": "add", "path": "/policyRule", "value": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis", "code": "nope"}]}}]),
            422,
            "INVALID_LEGAL_BASIS_CODE",
        ),
        (
            json!([{"op": "add", "path": "/extension/-", "value": {"url": GRANTOR_URL}}]),
            400,
            "MISSING_GRANTOR_REFERENCE",
        ),
        // The proxy of a role is never patched: neither replaced, nor removed, nor alongside
        // a change that would be allowed alone.
        (
            json!([{"op": "replace", "path": "/provision/actor", "value": [{"reference": {"type": "RelatedPerson", "identifier": {"system": NHS, "value": "9000000009"}}}]}]),
            400,
            "INVALID_PATCH_PATH",
        ),
        (
            json!([{"op": "remove", "path": "/provision/actor"}]),
            400,
            "INVALID_PATCH_PATH",
        ),
        (
            json!([
                {"op": "add", "path": "/provision/period/end", "value": "2031-01-01"},
                {"op": "add", "path": "/provision/actor", "value": {"reference": {"type": "RelatedPerson", "identifier": {"system": NHS, "value": "9000000009"}}}}
            ]),
            400,
            "INVALID_PATCH_PATH",
        ),
    ] {
        let (s, outcome) = patch(&app, id, &staff, &body).await;
        assert_vrs(s, &outcome, status, code);
    }
    let (s, _, outcome) = send(
        app.vrs(Method::PATCH, &format!("/Consent/{id}"), Some(&staff))
            .header("content-type", "application/fhir+json")
            .body("[]"),
    )
    .await;
    assert_vrs(s, &outcome, 415, "UNSUPPORTED_MEDIA");
    let (s, outcome) = patch(&app, "60d09b82-f4bb-41f9-b41e-767999b4ac9b", &staff, &json!([])).await;
    assert_vrs(s, &outcome, 404, "RESOURCE_NOT_FOUND");
    assert_eq!(
        read_role(&app, &staff, id).await,
        before,
        "no failed patch changed the role"
    );
}

#[tokio::test]
async fn who_may_call_what_and_people_see_only_their_own_relationships() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let app_token = app.token("system-app");
    let lisa = person(&app, "9000000017");
    let stranger = person(&app, "9000000033");

    // A person sees the roles they are part of, as proxy or patient, and nothing else.
    let (s, _, mine) = app.get("/Consent?performer:identifier=9000000017", &lisa).await;
    assert_eq!(s, StatusCode::OK);
    assert!(mine["total"].as_u64().unwrap() >= 3, "{mine}");
    let (_, _, theirs) = app.get("/Consent?performer:identifier=9000000017", &stranger).await;
    assert_eq!(theirs["total"], 0, "{theirs}");
    let (_, _, as_patient) = app
        .get(
            "/RelatedPerson?patient:identifier=9000010055",
            &person(&app, "9000010055"),
        )
        .await;
    assert!(as_patient["total"].as_u64().unwrap() >= 2, "{as_patient}");
    let (_, _, not_theirs) = app.get("/RelatedPerson?patient:identifier=9000010055", &stranger).await;
    assert_eq!(not_theirs["total"], 0);

    // Who may call what (the VRS access modes).
    let body = consent("proposed", "9000010551", "9000010063", "consent", "G8101234");
    let (s, _, b) = post(&app, "/Consent", &lisa, &body).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (s, _, b) = app.get("/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &lisa).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (s, _, b) = app.get("/RelatedPerson?identifier=9000000017", &app_token).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (s, _, b) = post(&app, "/QuestionnaireResponse", &staff, &example("mother-child")).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (s, _, _) = app
        .get("/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &app_token)
        .await;
    assert_eq!(s, StatusCode::OK);
    create_role(&app, &app_token, &body).await;
    // A receptionist may look roles up but not manage them; staff elsewhere see none.
    let reception = app.token("reception-emis");
    let (s, _, b) = post(
        &app,
        "/Consent",
        &reception,
        &consent("proposed", "9000010551", "9990000018", "consent", "A81001"),
    )
    .await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (_, _, elsewhere) = app
        .get("/Consent?performer:identifier=9000000017", &app.token("staff-emis"))
        .await;
    assert_eq!(elsewhere["total"], 0);
    // A person may submit only as the request's source.
    let (s, _, b) = post(&app, "/QuestionnaireResponse", &stranger, &example("mother-child")).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");

    // The patient or proxy may end a role that concerns them, and do nothing else with it.
    let end = json!([
        {"op": "replace", "path": "/status", "value": "inactive"},
        {"op": "add", "path": "/extension/-", "value": [reason("ROLE_DEACTIVATED_PATIENT_REQUEST", None)]}
    ]);
    let (s, b) = patch(&app, "74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &stranger, &end).await;
    assert_vrs(s, &b, 404, "RESOURCE_NOT_FOUND");
    let sally = person(&app, "9000010055");
    let extend = json!([{"op": "add", "path": "/provision/period/end", "value": "2030-01-01"}]);
    let (s, b) = patch(&app, "74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &sally, &extend).await;
    assert_vrs(s, &b, 403, "FORBIDDEN");
    let (s, b) = patch(&app, "74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &sally, &end).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        read_role(&app, &staff, "74eed847-ca25-4e76-8cf2-f2c2d7842a7a").await["status"],
        "inactive"
    );
}

#[tokio::test]
async fn a_proxy_reaches_a_patient_only_through_an_active_role_and_only_for_what_it_grants() {
    let app = TestApp::spawn().await;
    let megan = app.token("proxy-p9");
    let staff = app.token("staff-tpp");

    // $my-access: her own record and her daughter's, with what the role grants.
    let (s, _, access) = app.get("/$my-access", &megan).await;
    assert_eq!(s, StatusCode::OK, "{access}");
    let entries = access_entries(&access);
    assert_eq!(entries.len(), 2, "{access}");
    let lily = entries
        .iter()
        .find(|e| part(e, "relationship")["valueCode"] == "MTH")
        .expect("Lily through the proxy role");
    assert_eq!(
        part(lily, "patient")["valueReference"]["reference"],
        "Patient/patient-lily-jones"
    );
    assert_eq!(part(lily, "roleStatus")["valueCode"], "active");
    assert_eq!(
        part(lily, "accountStatus")["valueCode"],
        "none",
        "a seven-year-old has no online account of her own"
    );
    assert_eq!(
        part(lily, "role")["valueReference"]["reference"],
        "Consent/1a7e0000-0000-4000-8000-000000000001"
    );

    // The services the role grants; never the record unless staff switch it on.
    let (s, b) = service(&app, &megan, "patient-lily-jones", "appointments").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = service(&app, &megan, "patient-lily-jones", "record").await;
    assert_eq!(
        (s, crate::helpers::outcome_code(&b)),
        (StatusCode::FORBIDDEN, "SERVICE_NOT_GRANTED"),
        "{b}"
    );
    let (s, _, record) = app.get("/Patient/patient-lily-jones", &megan).await;
    assert_eq!(s, StatusCode::OK, "{record}");
    // Patients she does not act for answer as if they did not exist.
    let (s, b) = service(&app, &megan, "patient-tom-brown", "appointments").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

    // The delegated form: issued for Lily, used by Megan.
    let delegated = app.token("proxy-p9-for-lily");
    let (_, _, access) = app.get("/$my-access", &delegated).await;
    assert_eq!(
        access_entries(&access).len(),
        1,
        "a delegated token sees its patient only: {access}"
    );
    let (s, _) = service(&app, &delegated, "patient-lily-jones", "prescriptions").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = service(&app, &delegated, "patient-megan-jones", "appointments").await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a token delegated for Lily does not act for Megan"
    );

    // The audit trail names both the proxy and the patient.
    let (_, _, events) = app
        .get(
            "/AuditEvent?patient=patient-lily-jones&subtype=use-appointments",
            &app.token("clinician-tpp"),
        )
        .await;
    let event = &events["entry"][0]["resource"];
    assert!(
        event["agent"][0]["who"]
            .to_string()
            .contains("nhslogin-sub-megan-jones"),
        "the proxy is the agent: {event}"
    );
    assert_eq!(event["entity"][0]["what"]["reference"], "Patient/patient-lily-jones");
    assert!(event["outcomeDesc"].as_str().unwrap().contains("proxy role"), "{event}");

    // The practice ends the role: every call through it is refused at once.
    let end = json!([
        {"op": "replace", "path": "/status", "value": "inactive"},
        {"op": "add", "path": "/extension/-", "value": [reason("ROLE_DEACTIVATED_SAFEGUARDING", None)]}
    ]);
    let (s, b) = patch(&app, "1a7e0000-0000-4000-8000-000000000001", &staff, &end).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = service(&app, &megan, "patient-lily-jones", "appointments").await;
    assert_eq!(
        (s, crate::helpers::outcome_code(&b)),
        (StatusCode::FORBIDDEN, "PROXY_ROLE_NOT_ACTIVE"),
        "{b}"
    );
    let (_, _, access) = app.get("/$my-access", &megan).await;
    let lily = access_entries(&access)
        .into_iter()
        .find(|e| part(e, "relationship")["valueCode"] == "MTH")
        .unwrap()
        .clone();
    assert_eq!(part(&lily, "roleStatus")["valueCode"], "inactive");
    // And the supplier revokes the link.
    wait_for_link(&app, "tpp", "9990000174", "9990000069", true).await;
}

#[tokio::test]
async fn carers_and_care_homes_act_for_the_people_they_look_after() {
    let app = TestApp::spawn().await;
    let (_, _, carer) = app.get("/$my-access", &app.token("carer-p9")).await;
    assert_eq!(
        access_entries(&carer).len(),
        2,
        "his own record and his father's: {carer}"
    );
    let (_, _, home) = app.get("/$my-access", &app.token("carehome-p9")).await;
    let residents = access_entries(&home);
    assert_eq!(residents.len(), 2, "two residents, no record of her own here: {home}");
    let rosa = app.token("carehome-p9");
    let (s, _) = service(&app, &rosa, "patient-edith-clarke", "prescriptions").await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = service(&app, &rosa, "patient-edith-clarke", "appointments").await;
    assert_eq!(
        (s, crate::helpers::outcome_code(&b)),
        (StatusCode::FORBIDDEN, "SERVICE_NOT_GRANTED")
    );
    let (s, _) = service(&app, &rosa, "patient-harold-baker", "appointments").await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn the_age_rules_apply_as_the_clock_moves() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    // Noah Clarke (9000000012's stand-in) was born on 2019-06-01.
    let role = consent(
        "active",
        "9000000017",
        "9000010128",
        "parental-responsibility",
        "G8101234",
    );
    move_clock(&app, "2030-05-31T12:00:00Z").await;
    let young = create_role(&app, &staff, &role).await;
    // From 11, the child's consent or why it was not sought must be on record.
    move_clock(&app, "2030-06-01T12:00:00Z").await;
    let mut other = consent(
        "active",
        "9000010195",
        "9000010128",
        "parental-responsibility",
        "G8101234",
    );
    let (s, _, b) = post(&app, "/Consent", &staff, &other).await;
    assert_vrs(s, &b, 400, "BAD_REQUEST");
    other["extension"]
        .as_array_mut()
        .unwrap()
        .push(json!({"url": "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/proxy-assessment", "extension": [{"url": "childConsent", "valueCode": "given"}]}));
    create_role(&app, &staff, &other).await;
    assert_eq!(
        read_role(&app, &staff, &young).await["status"],
        "active",
        "roles made before 11 stand"
    );

    // At the practice's review age (13 by default) the roles are suspended for review.
    move_clock(&app, "2032-05-31T12:00:00Z").await;
    assert_eq!(read_role(&app, &staff, &young).await["status"], "active");
    move_clock(&app, "2032-06-01T12:00:00Z").await;
    let suspended = read_role(&app, &staff, &young).await;
    assert_eq!(suspended["status"], "inactive", "{suspended}");
    assert_eq!(
        suspended["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "ROLE_SUSPENDED_PENDING_REVIEW"
    );
    // Staff review it: at 13 the child's view is needed to reactivate it.
    let reactivate = json!([
        {"op": "replace", "path": "/status", "value": "active"},
        {"op": "add", "path": "/extension/-", "value": [reason("ROLE_REACTIVATED", None)]}
    ]);
    let (s, b) = patch(&app, &young, &staff, &reactivate).await;
    assert_vrs(s, &b, 400, "BAD_REQUEST");
    let mut with_consent = reactivate.clone();
    with_consent[1]["value"]
        .as_array_mut()
        .unwrap()
        .push(json!({"url": "https://gp-online-gateway.nhs.uk/fhir/StructureDefinition/proxy-assessment", "extension": [{"url": "childConsent", "valueCode": "given"}]}));
    let (s, b) = patch(&app, &young, &staff, &with_consent).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(read_role(&app, &staff, &young).await["status"], "active");

    // At 16 a role resting on parental responsibility ends.
    move_clock(&app, "2035-05-31T12:00:00Z").await;
    assert_eq!(read_role(&app, &staff, &young).await["status"], "active");
    move_clock(&app, "2035-06-01T12:00:00Z").await;
    assert_eq!(read_role(&app, &staff, &young).await["status"], "inactive");
}

#[tokio::test]
async fn record_access_is_off_by_default_and_never_beyond_the_patients_own() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-tpp");
    let set = |level: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "services", "part": [
                {"name": "appointments", "valueBoolean": true},
                {"name": "prescriptions", "valueBoolean": true},
                {"name": "messaging", "valueBoolean": true}
            ]},
            {"name": "recordAccess", "part": [{"name": "level", "valueCode": level}]}
        ]})
    };
    // Lily has no online account of her own, so no proxy of hers may see her record.
    let (s, _, b) = post(
        &app,
        "/Consent/1a7e0000-0000-4000-8000-000000000001/$set-proxy-access",
        &staff,
        &set("summary"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = post(
        &app,
        "/Consent/1a7e0000-0000-4000-8000-000000000001/$set-proxy-access",
        &staff,
        &set("none"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A new role for Priya Patel, whose own account has no record access, by Ravi Shah.
    let role = consent("active", "9990000166", "9990000077", "consent", "B82005");
    let id = create_role(&app, &staff, &role).await;
    assert_eq!(
        record_level(&read_role(&app, &staff, &id).await),
        "none",
        "no record access by default"
    );
    let (s, _, b) = post(
        &app,
        &format!("/Consent/{id}/$set-proxy-access"),
        &staff,
        &set("summary"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "Priya's own record access is none: {b}");
    // Megan Jones has detailed coded access of her own: her proxy may get up to that.
    let role = consent("active", "9990000166", "9990000069", "consent", "B82005");
    let id = create_role(&app, &staff, &role).await;
    let (s, _, b) = post(&app, &format!("/Consent/{id}/$set-proxy-access"), &staff, &set("full")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "beyond detailed coded: {b}");
    let (s, _, b) = post(
        &app,
        &format!("/Consent/{id}/$set-proxy-access"),
        &staff,
        &set("summary"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(record_level(&b), "summary");
    let link = wait_for_link(&app, "tpp", "9990000069", "9990000166", false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut link = link;
    while link["record_level"] != "summary" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "access change not forwarded: {link}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        link = wait_for_link(&app, "tpp", "9990000069", "9990000166", false).await;
    }
    // The link and the change reach the supplier.
    wait_for_link(&app, "tpp", "9990000077", "9990000166", false).await;
}

#[tokio::test]
async fn a_supplier_outage_while_roles_are_linked_loses_and_duplicates_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.suppliers.backoff_base_ms = 20;
        s.suppliers.backoff_cap_seconds = 1;
        s.suppliers.poll_interval_ms = 20;
        s.suppliers.timeout_seconds = 2;
    })
    .await;
    let staff = app.token("staff-vrs");
    let r = app
        .client
        .put(format!("{}/admin/faults", app.simulator("emis")))
        .json(&json!({"down": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let people = ["9000010519", "9000010527", "9000010535"];
    for p in people {
        create_role(&app, &staff, &consent("active", p, "9000010063", "consent", "G8101234")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = app
        .client
        .put(format!("{}/admin/faults", app.simulator("emis")))
        .json(&json!({"down": false, "drop_response_rate": 0.5}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    for p in people {
        wait_for_link(&app, "emis", "9000010063", p, false).await;
    }
    let links = sim_proxies(&app, "emis").await;
    for p in people {
        assert_eq!(
            links
                .iter()
                .filter(|l| l["proxy_identifier"] == p && l["patient_identifier"] == "9000010063")
                .count(),
            1,
            "exactly one link for {p}: {links:?}"
        );
    }
}

#[tokio::test]
async fn moving_practice_ends_the_patients_roles_with_the_transfer_reason() {
    let app = TestApp::spawn().await;
    // Moving a record needs a role at both practices.
    let staff = app.staff_at(&["B82005", "A81001"]);
    wait_for_link(&app, "tpp", "9990000174", "9990000069", false).await;
    let (_, headers, mut lily) = app.get("/Patient/patient-lily-jones", &staff).await;
    lily["generalPractitioner"] =
        json!([{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}]);
    let (s, _, b) = send(
        app.request(Method::PUT, "/Patient/patient-lily-jones", Some(&staff))
            .header("content-type", "application/fhir+json")
            .header("if-match", headers["etag"].to_str().unwrap())
            .body(lily.to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = service(&app, &app.token("proxy-p9"), "patient-lily-jones", "appointments").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let role = read_role(&app, &app.token("staff-emis"), "1a7e0000-0000-4000-8000-000000000001").await;
    assert_eq!(role["status"], "inactive", "{role}");
    assert_eq!(
        role["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "ROLE_DEACTIVATED_PATIENT_GP_TRANSFERRED"
    );
    wait_for_link(&app, "tpp", "9990000174", "9990000069", true).await;
}

#[test]
fn every_stand_in_is_valid_and_the_readme_lists_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let fixtures = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/vrs-request-examples.json"
    ))
    .unwrap();
    for (original, stand_in) in gp_online_gateway::dev::VRS_STAND_INS {
        assert!(
            gp_online_gateway::domain::NhsNumber::parse(original).is_err(),
            "{original} fails Modulus 11"
        );
        assert!(
            gp_online_gateway::domain::NhsNumber::parse(stand_in).is_ok(),
            "{stand_in} is valid"
        );
        assert!(
            readme.contains(&format!("| {original} | {stand_in} |")),
            "README lists {original} -> {stand_in}"
        );
        assert!(
            !fixtures.contains(original),
            "the fixtures use {stand_in}, not {original}"
        );
    }
}

#[tokio::test]
async fn control_characters_in_vrs_bodies_and_queries_are_refused_at_the_boundary() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-vrs");
    let mut body = consent("active", "9000010543", "9000010063", "consent", "G8101234");
    body["extension"][0] = reason("OTHER", Some("bad\u{0}text"));
    let (s, _, outcome) = post(&app, "/Consent", &staff, &body).await;
    assert_vrs(s, &outcome, 400, "INVALID_VALUE");
    let (_, _, none) = app.get("/Consent?performer:identifier=9000010543", &staff).await;
    assert_eq!(none["total"], 0, "nothing was stored");
    let (s, b) = patch(
        &app,
        "74eed847-ca25-4e76-8cf2-f2c2d7842a7a",
        &staff,
        &json!([{"op": "replace", "path": "/status", "value": "inactive"},
                {"op": "add", "path": "/extension/-", "value": [reason("OTHER", Some("bell\u{7}"))]}]),
    )
    .await;
    assert_vrs(s, &b, 400, "INVALID_VALUE");
    let (s, _, b) = app.get("/Consent?performer:identifier=9000000017%00", &staff).await;
    assert_vrs(s, &b, 400, "INVALID_VALUE");
    let mut request = example("mother-child");
    request["item"][0]["text"] = json!("nul\u{0}");
    let (s, _, b) = post(&app, "/QuestionnaireResponse", &person(&app, "9000000017"), &request).await;
    assert_vrs(s, &b, 400, "INVALID_VALUE");
    let (s, _, _) = app.get("/Consent/74eed847-ca25-4e76-8cf2-f2c2d7842a7a", &staff).await;
    assert_eq!(s, StatusCode::OK, "still serving");
}

#[tokio::test]
async fn a_system_client_naming_what_does_not_exist_is_told_so() {
    let app = TestApp::spawn().await;
    let system = app.token("system-app");
    let (s, _, outcome) = app.get("/Consent/3b8f0c5e-6a3e-4b65-9d5b-2f1c4f0e9a11", &system).await;
    assert_vrs(s, &outcome, 404, "RESOURCE_NOT_FOUND");
    // A patient no practice holds: the same answer staff get.
    let body = consent(
        "active",
        "9000010551",
        crate::helpers::FREE_NHS_NUMBERS[0],
        "consent",
        "A81001",
    );
    let (s, _, outcome) = post(&app, "/Consent", &system, &body).await;
    assert_vrs(s, &outcome, 422, "INVALID_PATIENT");
}

#[tokio::test]
async fn concurrent_my_access_calls_each_list_their_own_people() {
    // `$my-access` calls waiting at the same moment read their roles together: each proxy must
    // still see exactly the people they act for.
    let app = TestApp::spawn().await;
    let people = |body: &Value| {
        let mut refs: Vec<String> = access_entries(body)
            .iter()
            .map(|e| part(e, "patient")["valueReference"]["reference"].to_string())
            .collect();
        refs.sort();
        refs
    };
    let mut expected = vec![];
    for name in ["proxy-p9", "carer-p9", "carehome-p9"] {
        let token = app.token(name);
        let (status, _, body) = app.get("/$my-access", &token).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        expected.push((name, token, people(&body)));
    }
    assert!(expected.iter().all(|(_, _, refs)| refs.len() == 2), "{expected:?}");
    let calls: Vec<&(&str, String, Vec<String>)> = (0..48).map(|k| &expected[k % expected.len()]).collect();
    let results = futures_util::future::join_all(
        calls
            .iter()
            .map(|(_, token, _)| send(app.request(Method::GET, "/$my-access", Some(token)))),
    )
    .await;
    for ((name, _, refs), (status, _, body)) in calls.iter().zip(&results) {
        assert_eq!(*status, StatusCode::OK, "{name}: {body}");
        assert_eq!(&people(body), refs, "{name}");
    }
    crate::helpers::assert_trail_verifies(&app).await;
}

#[tokio::test]
async fn an_access_request_is_refused_unless_its_source_is_the_person_signed_in() {
    let app = TestApp::spawn().await;
    let body = example("mother-child");
    let source = body["source"]["identifier"]["value"].as_str().unwrap().to_owned();
    let someone_else = if source == "9000010063" {
        "9000010020"
    } else {
        "9000010063"
    };
    let (status, _, outcome) = post(&app, "/QuestionnaireResponse", &person(&app, someone_else), &body).await;
    assert_vrs(status, &outcome, 403, "FORBIDDEN");
    // Nothing was asked for: no proposed role for the patient.
    let staff = app.token("staff-vrs");
    let patient = body["subject"]["identifier"]["value"].as_str().unwrap().to_owned();
    let (_, _, roles) = app
        .get(
            &format!("/Consent?patient:identifier={patient}&status=proposed"),
            &staff,
        )
        .await;
    assert_eq!(roles["total"], 0, "{roles}");
    // The refusal is on the audit trail.
    let denied = crate::helpers::audit_rows(&app, "action = 'create-access-request' AND outcome = 'denied'").await;
    assert_eq!(denied, 1);
    crate::helpers::assert_trail_verifies(&app).await;
}
