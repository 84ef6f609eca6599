//! What is in effect, from outside: every surface gives the same answer for the same person and
//! patient, a proxy never has more than the patient and the supplier follows the patient,
//! lifecycle rules hold from every entry point, and the proxy request surface tells a stranger
//! nothing.

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{FREE_NHS_NUMBERS, TestApp, outcome_code, send};
use crate::registration::{account_part, part, register, registration, wait_for_task};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const AMIR: &str = "9990000034";
const JANE: &str = "9990000018";

fn person(app: &TestApp, nhs: &str) -> String {
    app.token_with(
        IssuerKind::Patient,
        gp_online_gateway::dev::person_claims(&format!("nhslogin-sub-{nhs}"), nhs, "P9.Cp.Cd"),
    )
}

fn entries(params: &Value) -> Vec<&Value> {
    params["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "access")
        .collect()
}

fn entry_part<'a>(entry: &'a Value, name: &str) -> Option<&'a Value> {
    entry["part"].as_array().unwrap().iter().find(|p| p["name"] == name)
}

/// The `$my-access` entry for a patient (by id), with its record level and `from`.
fn my_record(params: &Value, patient_id: &str) -> (String, Option<String>) {
    let entry = entries(params)
        .into_iter()
        .find(|e| entry_part(e, "patient").unwrap()["valueReference"]["reference"] == format!("Patient/{patient_id}"))
        .unwrap_or_else(|| panic!("no entry for {patient_id} in {params}"));
    let record = entry_part(entry, "recordAccess").unwrap();
    let sub = |n: &str| {
        record["part"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .and_then(|p| p["valueCode"].as_str().or(p["valueDate"].as_str()))
            .map(str::to_owned)
    };
    (sub("level").unwrap(), sub("from"))
}

fn param<'a>(params: &'a Value, name: &str) -> Option<&'a Value> {
    params["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
}

/// `$service-access?service=record` as (level, from).
async fn service_record(app: &TestApp, token: &str, patient_id: &str) -> (String, Option<String>) {
    let (s, _, b) = app
        .get(&format!("/Patient/{patient_id}/$service-access?service=record"), token)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    (
        param(&b, "recordAccess").unwrap()["valueCode"]
            .as_str()
            .unwrap()
            .to_owned(),
        param(&b, "recordFrom").map(|p| p["valueDate"].as_str().unwrap().to_owned()),
    )
}

async fn sim(app: &TestApp, flavour: &str, what: &str) -> Vec<Value> {
    app.client
        .get(format!("{}/admin/{what}", app.simulator(flavour)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the simulator until `check` holds for the proxy link of the pair (bounded).
async fn wait_for_link(
    app: &TestApp,
    flavour: &str,
    patient: &str,
    proxy: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let links = sim(app, flavour, "proxies").await;
        if let Some(l) = links
            .iter()
            .find(|l| l["patient_identifier"] == patient && l["proxy_identifier"] == proxy && check(l))
        {
            return l.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{flavour} link {proxy} -> {patient}: {links:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const STATUS_REASON_URL: &str =
    "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason";
const STATUS_REASON_SYSTEM: &str = "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason";
const GRANTOR_URL: &str = "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor";

fn reason(code: &str) -> Value {
    json!({"url": STATUS_REASON_URL, "valueCodeableConcept": {"coding": [{"system": STATUS_REASON_SYSTEM, "code": code}]}})
}

/// An active role staff make for `performer` acting for `patient`, with the patient's consent.
fn active_role(performer: &str, patient: &str, ods: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
        "patient": {"type": "Patient", "identifier": {"system": NHS, "value": patient}},
        "dateTime": "2026-11-30T10:00:00Z",
        "performer": [{"identifier": {"system": NHS, "value": performer}}],
        "policyRule": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis", "code": "consent"}]},
        "provision": {"type": "permit", "actor": [{"reference": {"type": "RelatedPerson", "identifier": {"system": NHS, "value": performer}}}]},
        "extension": [
            reason("ROLE_CREATED"),
            {"url": GRANTOR_URL,
             "valueReference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}}}
        ]
    })
}

async fn create_role(app: &TestApp, token: &str, body: &Value) -> String {
    let (s, headers, b) = app.post_fhir("/Consent", token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

fn set_proxy(level: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [
            {"name": "appointments", "valueBoolean": true},
            {"name": "prescriptions", "valueBoolean": true},
            {"name": "messaging", "valueBoolean": false}
        ]},
        {"name": "recordAccess", "part": [{"name": "level", "valueCode": level}]}
    ]})
}

fn code(code: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "code", "valueCoding": {"system": "http://snomed.info/sct", "code": code}}]})
}

fn event(id: &str, kind: &str, nhs: &str, ods: Option<&str>) -> Value {
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let mut p = vec![
        json!({"name": "eventId", "valueString": id}),
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "nhsNumber", "valueString": nhs}),
        json!({"name": "date", "valueDate": today}),
    ];
    if let Some(o) = ods {
        p.push(json!({"name": "odsCode", "valueString": o}));
    }
    json!({"resourceType": "Parameters", "parameter": p})
}

/// Waits until the person's own account is active (seeded accounts are created through the
/// outbox when the gateway starts).
async fn active(app: &TestApp, token: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, mine) = app.get("/$my-access", token).await;
        let me = entries(&mine)
            .into_iter()
            .find(|e| entry_part(e, "relationship").unwrap()["valueCode"] == "self");
        if me.is_some_and(|e| entry_part(e, "accountStatus").unwrap()["valueCode"] == "active") {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never active: {mine}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_surface_shows_the_access_in_effect_not_the_grant() {
    let app = TestApp::spawn().await;
    // Amir was granted summary access; his practice's opt-out model gives him full prospective
    // access, which is what is in effect.
    let amir = person(&app, AMIR);
    active(&app, &amir).await;
    let (_, _, mine) = app.get("/$my-access", &amir).await;
    let in_my_access = my_record(&mine, "patient-amir-khan");
    assert_eq!(in_my_access.0, "full", "{mine}");
    assert_eq!(service_record(&app, &amir, "patient-amir-khan").await, in_my_access);
    let (s, _, view) = app
        .get("/Patient/patient-amir-khan/$online-account", &app.token("staff-emis"))
        .await;
    assert_eq!(s, StatusCode::OK, "{view}");
    let effective = param(&view, "effectiveAccess").unwrap();
    assert!(effective.to_string().contains("\"full\""), "{view}");
    assert_eq!(
        account_part(&view, "recordAccess")["part"][0]["valueCode"],
        "summary",
        "the grant is shown as the grant: {view}"
    );
    // Why is part of the answer.
    let (_, _, service) = app
        .get("/Patient/patient-amir-khan/$service-access?service=record", &amir)
        .await;
    assert!(service.to_string().contains("opt-out practice"), "{service}");

    // A proxy: Megan for Lily, by her own token and by one delegated for Lily.
    for token in [app.token("proxy-p9"), app.token("proxy-p9-for-lily")] {
        let (_, _, mine) = app.get("/$my-access", &token).await;
        let lily = my_record(&mine, "patient-lily-jones");
        assert_eq!(lily.0, "none", "Lily has no record access of her own: {mine}");
        assert_eq!(
            service_record_status(&app, &token, "patient-lily-jones").await,
            StatusCode::FORBIDDEN,
            "no record access in $my-access, none in $service-access"
        );
        let (s, _, b) = app
            .get(
                "/Patient/patient-lily-jones/$service-access?service=appointments",
                &token,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(param(&b, "through").unwrap()["valueCode"], "proxy-role");
    }
}

#[tokio::test]
async fn a_proxy_is_held_to_the_patients_access_in_effect_and_the_supplier_follows_it() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    active(&app, &person(&app, AMIR)).await;
    // Full access is in effect for Amir through the model, though summary was granted: a proxy
    // may have it.
    let id = create_role(&app, &staff, &active_role("9990000158", AMIR, "A81001")).await;
    let (s, _, b) = app
        .post_fhir(&format!("/Consent/{id}/$set-proxy-access"), &staff, &set_proxy("full"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_for_link(&app, "emis", AMIR, "9990000158", |l| l["record_level"] == "full").await;

    // Amir declines online access: his proxy's link at the supplier loses the record too.
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &staff,
            &code("1290331000000103"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_for_link(&app, "emis", AMIR, "9990000158", |l| l["record_level"] == "none").await;
    let lucy = person(&app, "9990000158");
    assert_eq!(
        service_record_status(&app, &lucy, "patient-amir-khan").await,
        StatusCode::FORBIDDEN
    );
    // And staff cannot give the proxy what Amir has not got.
    let (s, _, b) = app
        .post_fhir(
            &format!("/Consent/{id}/$set-proxy-access"),
            &staff,
            &set_proxy("summary"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

    // The code goes: the link gets the record back.
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$remove-record-access-code",
            &staff,
            &code("1290331000000103"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_for_link(&app, "emis", AMIR, "9990000158", |l| l["record_level"] == "full").await;

    // Megan, at an opt-in practice, has detailed coded access and a proxy with as much.
    // Lowering her own access holds the proxy's link at once, before the supplier confirms it.
    let staff = app.token("staff-tpp");
    active(&app, &app.token("proxy-p9")).await;
    let id = create_role(&app, &staff, &active_role("9990000166", "9990000069", "B82005")).await;
    let (s, _, b) = app
        .post_fhir(
            &format!("/Consent/{id}/$set-proxy-access"),
            &staff,
            &set_proxy("detailed-coded"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    wait_for_link(&app, "tpp", "9990000069", "9990000166", |l| {
        l["record_level"] == "detailed-coded"
    })
    .await;
    let lower = json!({"resourceType": "Parameters", "parameter": [
        {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}]});
    let (s, _, b) = app
        .post_fhir("/Patient/patient-megan-jones/$set-online-access", &staff, &lower)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    wait_for_link(&app, "tpp", "9990000069", "9990000166", |l| {
        l["record_level"] == "summary"
    })
    .await;
    let held = sim(&app, "tpp", "accounts").await;
    let megan = held.iter().find(|a| a["patient_identifier"] == "9990000069").unwrap();
    assert_eq!(megan["record_level"], "summary", "{megan}");
}

async fn service_record_status(app: &TestApp, token: &str, patient_id: &str) -> StatusCode {
    app.get(&format!("/Patient/{patient_id}/$service-access?service=record"), token)
        .await
        .0
}

#[tokio::test]
async fn an_access_change_touches_only_what_it_names() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    active(&app, &app.token("patient-p9")).await;
    // Jane has full access from 2024-01-01, confirmed. A change that names messaging alone
    // leaves it exactly as it is, and asks for no review.
    let only_messaging = json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [{"name": "messaging", "valueBoolean": true}]}]});
    let (s, _, accepted) = app
        .post_fhir(
            "/Patient/patient-jane-smith/$set-online-access",
            &staff,
            &only_messaging,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    assert!(
        accepted["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "review"),
        "no review Task: {accepted}"
    );
    let (_, _, view) = app.get("/Patient/patient-jane-smith/$online-account", &staff).await;
    let account = view["parameter"][0].to_string();
    assert!(account.contains("2024-01-01"), "historic access kept: {view}");
    // Provisioning Tasks may still be on their way to the supplier; no record review is open.
    let (_, _, tasks) = app.get("/Task?patient=patient-jane-smith", &staff).await;
    let open_reviews = tasks["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["resource"]["code"]["coding"][0]["code"] == "record-review" && e["resource"]["status"] == "requested"
        })
        .count();
    assert_eq!(open_reviews, 0, "no review was opened: {tasks}");
}

#[tokio::test]
async fn death_is_terminal_from_every_entry_point() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let supplier = app.token("system-supplier");
    active(&app, &app.token("patient-p9")).await;
    let role = create_role(&app, &staff, &active_role("9990000158", JANE, "A81001")).await;
    let (s, _, b) = app
        .post_fhir(
            "/$registration-event",
            &supplier,
            &event("died-1", "deceased", JANE, None),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let lucy = person(&app, "9990000158");
    let (s, _, b) = app
        .get(
            "/Patient/patient-jane-smith/$service-access?service=appointments",
            &lucy,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (_, _, view_before) = app.get("/Patient/patient-jane-smith/$online-account", &staff).await;

    let nothing = json!({"resourceType": "Parameters", "parameter": []});
    for path in [
        "/Patient/patient-jane-smith/$enable-online-account",
        "/Patient/patient-jane-smith/$reset-online-account",
    ] {
        let (s, _, b) = app.post_fhir(path, &staff, &nothing).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {b}");
        assert_eq!(outcome_code(&b), "PATIENT_DECEASED", "{path}: {b}");
    }
    let (s, b) = register(
        &app,
        &staff,
        "patient-jane-smith",
        &registration("documents-in-person", Some("jane@example.org"), "none", None),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, _, view_after) = app.get("/Patient/patient-jane-smith/$online-account", &staff).await;
    assert_eq!(view_before, view_after, "nothing changed");

    // The role ended with the death cannot be made active again, and no new one can be made.
    let (s, _, b) = send(
        app.request(Method::PATCH, &format!("/Consent/{role}"), Some(&staff))
            .header("content-type", "application/json-patch+json")
            .header("x-request-id", uuid::Uuid::new_v4().to_string())
            .body(
                json!([
                    {"op": "replace", "path": "/status", "value": "active"},
                    {"op": "add", "path": "/extension/-", "value": reason("ROLE_REACTIVATED")}
                ])
                .to_string(),
            ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, _, b) = app
        .post_fhir("/Consent", &staff, &active_role("9990000166", JANE, "A81001"))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, _, roles) = app
        .get(
            &format!("/Consent?patient:identifier={NHS}|{JANE}&status=active"),
            &staff,
        )
        .await;
    assert_eq!(roles["total"], 0, "{roles}");
}

#[tokio::test]
async fn a_move_between_practices_on_one_supplier_lets_the_new_practice_register() {
    let app = TestApp::spawn().await;
    let supplier = app.token("system-supplier");
    active(&app, &app.token("patient-p9")).await;
    // A81001 and G8101234 both run the EMIS-like system.
    let (s, _, b) = app
        .post_fhir(
            "/$registration-event",
            &supplier,
            &event("moved-1", "transferred", JANE, Some("G8101234")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let staff = app.token("staff-vrs");
    let (s, accepted) = register(
        &app,
        &staff,
        "patient-jane-smith",
        &registration("documents-in-person", Some("jane@example.org"), "none", None),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(&app, &staff, &task, "completed", Duration::from_secs(10)).await;
    let accounts = sim(&app, "emis", "accounts").await;
    let janes: Vec<&Value> = accounts.iter().filter(|a| a["patient_identifier"] == JANE).collect();
    assert_eq!(janes.len(), 2, "one account at each practice: {janes:?}");
    assert!(
        janes.iter().any(|a| a["ods_code"] == "A81001" && a["enabled"] == false),
        "the account at the practice she left is disabled first: {janes:?}"
    );
}

/// A QuestionnaireResponse from `source` asking to be the proxy of `patient`.
fn request_from(source: &str, patient: &str) -> Value {
    let text = include_str!("../fixtures/vrs-request-examples.json");
    let all: Value = serde_json::from_str(text).unwrap();
    let mother_child = all["mother-child"].to_string();
    serde_json::from_str(
        &mother_child
            .replace("9000000017", source)
            .replace("9000010020", patient),
    )
    .unwrap()
}

async fn ask(app: &TestApp, token: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        app.request(Method::POST, "/QuestionnaireResponse", Some(token))
            .header("content-type", "application/fhir+json")
            .header("x-request-id", uuid::Uuid::new_v4().to_string())
            .body(body.to_string()),
    )
    .await
}

/// What a person can see of themselves as a proxy, with everything `_include` offers.
async fn what_they_see(app: &TestApp, token: &str, me: &str) -> Vec<Value> {
    let mut seen = vec![];
    for path in [
        format!("/RelatedPerson?identifier={NHS}|{me}&_include=RelatedPerson:patient"),
        format!("/Consent?performer:identifier={NHS}|{me}&_include=Consent:patient&_include=Consent:performer"),
        "/$my-access".to_owned(),
    ] {
        let (s, _, b) = send(
            app.request(Method::GET, &path, Some(token))
                .header("x-request-id", uuid::Uuid::new_v4().to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        seen.push(b);
    }
    seen
}

/// Strips what differs between any two answers (ids, times, links) so they compare.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "id" | "url" | "lastUpdated" | "fullUrl" | "link" | "timestamp"
                    )
                })
                .map(|(k, v)| (k.clone(), shape(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        Value::String(s) if s.len() == 10 && s.chars().all(|c| c.is_ascii_alphanumeric()) => json!("code"),
        other => other.clone(),
    }
}

#[tokio::test]
async fn a_stranger_learns_nothing_about_the_patient_they_name() {
    let app = TestApp::spawn_with(|s| s.identity.access_requests_per_day = 3).await;
    // Two strangers with fresh NHS logins: one names Jane (registered), the other a valid NHS
    // number no practice here holds.
    let (one, two) = (FREE_NHS_NUMBERS[0], FREE_NHS_NUMBERS[1]);
    let unregistered = FREE_NHS_NUMBERS[2];
    let (t1, t2) = (person(&app, one), person(&app, two));
    let (s1, h1, b1) = ask(&app, &t1, &request_from(one, JANE)).await;
    let (s2, h2, b2) = ask(&app, &t2, &request_from(two, unregistered)).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{b1} {b2}");
    assert_eq!(shape(&b1), shape(&b2), "the same answer");
    assert!(h1.contains_key("location") && h2.contains_key("location"));
    let seen1 = what_they_see(&app, &t1, one).await;
    let seen2 = what_they_see(&app, &t2, two).await;
    for seen in [&seen1, &seen2] {
        let text = seen.iter().map(Value::to_string).collect::<String>();
        assert!(
            !text.contains("Smith") && !text.contains("1980-05-01") && !text.contains("A81001"),
            "{text}"
        );
        assert!(!text.contains("patient-jane-smith"), "{text}");
    }
    assert_eq!(
        seen1.iter().map(shape).collect::<Vec<_>>(),
        seen2.iter().map(shape).collect::<Vec<_>>(),
        "the same view whether or not the NHS number is registered"
    );
    // Each can read back their own request, alike.
    for (token, headers) in [(&t1, &h1), (&t2, &h2)] {
        let path = headers["location"]
            .to_str()
            .unwrap()
            .trim_start_matches(&app.base)
            .to_owned();
        let (s, _, b) = send(
            app.request(Method::GET, &path, Some(token))
                .header("x-request-id", uuid::Uuid::new_v4().to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    // A repeat is refused alike.
    let (s1, _, r1) = ask(&app, &t1, &request_from(one, JANE)).await;
    let (s2, _, r2) = ask(&app, &t2, &request_from(two, unregistered)).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (409, 409), "{r1} {r2}");
    assert_eq!(shape(&r1), shape(&r2));
    // A request for oneself is refused; and requests are limited per person.
    let (s, _, b) = ask(&app, &t1, &request_from(one, one)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, _) = ask(&app, &t1, &request_from(one, FREE_NHS_NUMBERS[3])).await;
    assert_eq!(s, StatusCode::OK);
    let (s, headers, b) = ask(&app, &t1, &request_from(one, FREE_NHS_NUMBERS[4])).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, b) = ask(&app, &t1, &request_from(one, FREE_NHS_NUMBERS[5])).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert!(b.to_string().contains("THROTTLED"), "{b}");
    let _ = headers;

    // The practice sees the proposed role; Jane's trail says someone asked about her.
    let staff = app.token("staff-emis");
    let (_, _, roles) = app
        .get(
            &format!("/Consent?patient:identifier={NHS}|{JANE}&status=proposed"),
            &staff,
        )
        .await;
    assert!(roles.to_string().contains(one), "{roles}");
    let (_, _, trail) = app
        .get(
            "/AuditEvent?patient=patient-jane-smith&action=create-access-request",
            &app.token("clinician-emis"),
        )
        .await;
    assert!(trail["total"].as_i64().unwrap() >= 1, "{trail}");
}

#[tokio::test]
async fn a_delegated_token_acts_only_for_its_patient() {
    let app = TestApp::spawn().await;
    let delegated = app.token("proxy-p9-for-lily");
    // Megan's own record is not reached through a token delegated for Lily.
    let (s, _, b) = app.get("/Patient/patient-megan-jones", &delegated).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _, b) = app.get("/Patient", &delegated).await;
    assert!(!b.to_string().contains("patient-megan-jones"), "{s} {b}");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/$request-record-access",
            &delegated,
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}]}),
        )
        .await;
    assert!(s.is_client_error(), "{s} {b}");
    let (_, _, tasks) = app
        .get("/Task?patient=patient-megan-jones", &app.token("staff-tpp"))
        .await;
    assert!(
        !tasks.to_string().contains("\"requested\""),
        "no review on Megan's account: {tasks}"
    );
    // Only Lily's role is listed, and no role can be ended with it.
    let (_, _, mine) = app.get("/$my-access", &delegated).await;
    let listed: Vec<String> = entries(&mine)
        .iter()
        .map(|e| entry_part(e, "patient").unwrap()["valueReference"]["reference"].to_string())
        .collect();
    assert_eq!(listed, vec!["\"Patient/patient-lily-jones\"".to_owned()], "{mine}");
    let (s, _, consents) = send(
        app.request(
            Method::GET,
            &format!("/Consent?performer:identifier={NHS}|9990000069"),
            Some(&delegated),
        )
        .header("x-request-id", uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{consents}");
    for e in consents["entry"].as_array().into_iter().flatten() {
        assert_eq!(
            e["resource"]["patient"]["identifier"]["value"], "9990000174",
            "only Lily's role: {consents}"
        );
    }
    let (s, _, b) = send(
        app.request(
            Method::PATCH,
            "/Consent/1a7e0000-0000-4000-8000-000000000001",
            Some(&delegated),
        )
        .header("content-type", "application/json-patch+json")
        .header("x-request-id", uuid::Uuid::new_v4().to_string())
        .body(
            json!([
                {"op": "replace", "path": "/status", "value": "inactive"},
                {"op": "add", "path": "/extension/-", "value": reason("ROLE_DEACTIVATED_PATIENT_REQUEST")}
            ])
            .to_string(),
        ),
    )
    .await;
    assert!(s.is_client_error(), "{s} {b}");
}

#[tokio::test]
async fn every_disclosure_is_on_the_patients_own_trail() {
    let app = TestApp::spawn().await;
    let megan = app.token("proxy-p9");
    let auditor = app.token("clinician-tpp");
    let count = |trail: &Value| trail["total"].as_i64().unwrap();
    let (_, _, before) = app.get("/AuditEvent?patient=patient-lily-jones", &auditor).await;
    app.get("/$my-access", &megan).await;
    let (s, _, _) = send(
        app.request(
            Method::GET,
            &format!("/Consent?performer:identifier={NHS}|9990000069&_include=Consent:patient"),
            Some(&megan),
        )
        .header("x-request-id", uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, after) = app.get("/AuditEvent?patient=patient-lily-jones", &auditor).await;
    assert!(count(&after) >= count(&before) + 2, "{before} {after}");
    let actions = after.to_string();
    assert!(
        actions.contains("my-access") && actions.contains("search-proxy-roles"),
        "{after}"
    );

    // A practice's auditor sees nothing of another practice's patients' searches.
    let (_, _, theirs) = app
        .get("/AuditEvent?action=search-proxy-roles", &app.token("clinician-emis"))
        .await;
    assert!(!theirs.to_string().contains("patient-lily-jones"), "{theirs}");
    assert!(!theirs.to_string().contains("B82005"), "{theirs}");
}

#[tokio::test]
async fn explaining_access_for_a_person_outside_the_practice_says_nothing_of_them() {
    let app = TestApp::spawn().await;
    let auditor = app.token("clinician-emis");
    // Megan is registered at B82005; a number no one holds is registered nowhere. Asked about
    // a patient of A81001, the explanation is the same for both.
    let explain = |actor: &'static str| {
        let auditor = auditor.clone();
        let app = &app;
        async move {
            let (s, _, b) = app
                .get(
                    &format!("/$explain-access?patient=patient-jane-smith&actor={actor}&action=read-patient"),
                    &auditor,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            b
        }
    };
    let registered = explain("9990000069").await;
    let nowhere = explain("9990000093").await;
    assert_eq!(shape(&registered), shape(&nowhere), "{registered} {nowhere}");
}
