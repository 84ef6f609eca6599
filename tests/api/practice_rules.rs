//! Practice access rules from outside: record-access codes, the opt-out and opt-in models,
//! self-registration with NHS login, the opt-in job, the daily transitions, practice moves and
//! deaths, and access changes the supplier refuses.

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, new_patient, outcome_code};
use crate::registration::{account_part, part, register, registration, wait_for_task};

const SNOMED: &str = "http://snomed.info/sct";
const REVIEW_INDICATED: &str = "1364731000000104";
const REVIEW_NOT_INDICATED: &str = "1364751000000106";
const DECLINED: &str = "1290331000000103";

fn code_body(code: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "code", "valueCoding": {"system": SNOMED, "code": code}}]})
}

fn person(app: &TestApp, nhs: &str, vot: &str) -> String {
    app.token_with(
        IssuerKind::Patient,
        gp_online_gateway::dev::person_claims(&format!("nhslogin-sub-{nhs}"), nhs, vot),
    )
}

async fn sim_account(app: &TestApp, flavour: &str, identifier: &str) -> Option<Value> {
    let accounts: Vec<Value> = app
        .client
        .get(format!("{}/admin/accounts", app.simulator(flavour)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    accounts.into_iter().find(|a| a["patient_identifier"] == identifier)
}

/// Polls the simulator until the account gives this record level (bounded).
async fn wait_for_level(app: &TestApp, flavour: &str, identifier: &str, level: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = sim_account(app, flavour, identifier).await;
        if let Some(h) = &held
            && h["record_level"] == level
        {
            return h.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{identifier} at {flavour} never had {level}: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn effective_level(view: &Value) -> String {
    let group = view["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "effectiveAccess")
        .unwrap_or_else(|| panic!("no effectiveAccess in {view}"));
    group["part"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "recordAccess")
        .unwrap()["part"][0]["valueCode"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn my_record_level(access: &Value) -> String {
    let me = access["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "access")
        .unwrap();
    me["part"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "recordAccess")
        .unwrap()["part"][0]["valueCode"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn run_transitions(app: &TestApp, now: &str) -> Value {
    let (s, _, report) = app
        .post_fhir(
            "/$run-transitions",
            &app.token("system-supplier"),
            &json!({"resourceType": "Parameters", "parameter": [{"name": "now", "valueDateTime": now}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    report
}

fn int(params: &Value, name: &str) -> i64 {
    part(params, name)["valueInteger"].as_i64().unwrap()
}

#[tokio::test]
async fn codes_and_the_opt_out_model_decide_record_access_and_reach_the_supplier() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    // Amir Khan (A81001, opt-out, 70) was granted summary; the model gives him full prospective access.
    wait_for_level(&app, "emis", "9990000034", "full").await;
    // The supplier holds the account; the gateway records its answer a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let view = loop {
        let (_, _, view) = app.get("/Patient/patient-amir-khan/$online-account", &staff).await;
        if account_part(&view, "status")["valueCode"] == "active" || tokio::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(effective_level(&view), "full", "{view}");
    assert_eq!(
        account_part(&view, "recordAccess")["part"][0]["valueCode"],
        "summary",
        "granted"
    );

    // 104: no automatic access. The supplier is told at once.
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &staff,
            &code_body(REVIEW_INDICATED),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(part(&b, "changed")["valueBoolean"], true);
    wait_for_level(&app, "emis", "9990000034", "summary").await;
    let (_, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &staff,
            &code_body(REVIEW_INDICATED),
        )
        .await;
    assert_eq!(
        part(&b, "changed")["valueBoolean"],
        false,
        "adding it again changes nothing"
    );
    // 106 overrides 104.
    app.post_fhir(
        "/Patient/patient-amir-khan/$add-record-access-code",
        &staff,
        &code_body(REVIEW_NOT_INDICATED),
    )
    .await;
    wait_for_level(&app, "emis", "9990000034", "full").await;
    // 103: no record access at all.
    app.post_fhir(
        "/Patient/patient-amir-khan/$add-record-access-code",
        &staff,
        &code_body(DECLINED),
    )
    .await;
    wait_for_level(&app, "emis", "9990000034", "none").await;
    let amir = person(&app, "9990000034", "P9.Cp.Cd");
    let (_, _, mine) = app.get("/$my-access", &amir).await;
    assert_eq!(my_record_level(&mine), "none", "{mine}");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$remove-record-access-code",
            &staff,
            &code_body(DECLINED),
        )
        .await;
    assert_eq!(
        (s, part(&b, "changed")["valueBoolean"].clone()),
        (StatusCode::OK, json!(true)),
        "{b}"
    );
    wait_for_level(&app, "emis", "9990000034", "full").await;

    // Bad input.
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &staff,
            &code_body("123456"),
        )
        .await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::BAD_REQUEST, "INVALID_REQUEST"),
        "{b}"
    );
    let (s, _, _) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &staff,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "code", "valueCoding": {"system": "http://loinc.org", "code": DECLINED}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = app
        .post_fhir(
            "/Patient/patient-megan-jones/$add-record-access-code",
            &staff,
            &code_body(DECLINED),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a patient of another practice");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-amir-khan/$add-record-access-code",
            &app.token("reception-emis"),
            &code_body(DECLINED),
        )
        .await;
    assert_eq!((s, outcome_code(&b)), (StatusCode::FORBIDDEN, "ROLE_NOT_PERMITTED"));

    // A P5 token never shows record access.
    let (_, _, p5) = app.get("/$my-access", &app.token("patient-p5")).await;
    assert_eq!(my_record_level(&p5), "none", "{p5}");

    // Every change is on the audit trail.
    let (_, _, events) = app
        .get(
            "/AuditEvent?patient=patient-amir-khan&subtype=add-access-code",
            &app.token("clinician-emis"),
        )
        .await;
    assert!(events["total"].as_i64().unwrap() >= 4, "{events}");
}

#[tokio::test]
async fn patients_register_themselves_with_nhs_login() {
    let app = TestApp::spawn().await;
    // Lucy Evans (A81001, opt-out, 38) has no account.
    let lucy = person(&app, "9990000158", "P9.Cp.Cd");
    let (s, _, accepted) = app
        .post_fhir(
            "/Patient/$register-online-services",
            &lucy,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(account_part(&accepted, "source")["valueCode"], "nhs-login");
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    let staff = app.token("staff-emis");
    wait_for_task(&app, &staff, &task, "completed", Duration::from_secs(10)).await;
    let held = wait_for_level(&app, "emis", "9990000158", "full").await;
    assert_eq!(held["services"]["appointments"], true);
    let (_, _, mine) = app.get("/$my-access", &lucy).await;
    assert_eq!(
        my_record_level(&mine),
        "full",
        "opt-out gives full prospective access: {mine}"
    );
    // No letter, no linkage key.
    let (s, _, b) = app
        .get("/Patient/patient-lucy-evans/$registration-letter", &staff)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/$register-online-services",
            &lucy,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!((s, outcome_code(&b)), (StatusCode::CONFLICT, "ONLINE_ACCOUNT_EXISTS"));

    // Refused: under 16, declined online access, P5, not registered at the practice named.
    let oliver = person(&app, "9990000026", "P9.Cp.Cd");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/$register-online-services",
            &oliver,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "REGISTRATION_CONDITION_NOT_MET"),
        "{b}"
    );
    app.post_fhir(
        "/Patient/patient-grace-okafor/$add-record-access-code",
        &staff,
        &code_body(DECLINED),
    )
    .await;
    let grace = person(&app, "9990000042", "P9.Cp.Cd");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/$register-online-services",
            &grace,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "REGISTRATION_CONDITION_NOT_MET"),
        "{b}"
    );
    let ravi_p5 = person(&app, "9990000166", "P5.Cp.Cd");
    let (s, _, _) = app
        .post_fhir(
            "/Patient/$register-online-services",
            &ravi_p5,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // An identity provider registers Ravi Shah (B82005, TPP-like) for him.
    let idp = app.token("system-idp");
    let wrong = json!({"resourceType": "Parameters", "parameter": [
        {"name": "nhsNumber", "valueString": "9990000166"}, {"name": "odsCode", "valueString": "A81001"}]});
    let (s, _, b) = app.post_fhir("/Patient/$register-online-services", &idp, &wrong).await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::UNPROCESSABLE_ENTITY, "PATIENT_NOT_REGISTERED"),
        "{b}"
    );
    // A number no practice here holds gets exactly the same answer.
    let unknown = json!({"resourceType": "Parameters", "parameter": [
        {"name": "nhsNumber", "valueString": "9434765919"}, {"name": "odsCode", "valueString": "A81001"}]});
    let (s2, _, b2) = app
        .post_fhir("/Patient/$register-online-services", &idp, &unknown)
        .await;
    assert_eq!(
        (s2, b2),
        (s, b),
        "no difference between unknown and registered elsewhere"
    );
    let right = json!({"resourceType": "Parameters", "parameter": [
        {"name": "nhsNumber", "valueString": "9990000166"}, {"name": "odsCode", "valueString": "B82005"}]});
    let (s, _, accepted) = app.post_fhir("/Patient/$register-online-services", &idp, &right).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    // B82005 is opt-in: no record access until Ravi asks and the practice agrees.
    let held = wait_for_level(&app, "tpp", "9990000166", "none").await;
    assert_eq!(held["services"]["prescriptions"], true);
}

#[tokio::test]
async fn at_an_opt_in_practice_record_access_comes_from_a_request_the_practice_approves() {
    let app = TestApp::spawn().await;
    // Megan Jones (B82005, opt-in) has detailed coded access; ask for full prospective access.
    wait_for_level(&app, "tpp", "9990000069", "detailed-coded").await;
    let megan = app.token("proxy-p9");
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let ask = json!({"resourceType": "Parameters", "parameter": [{"name": "recordAccess", "part": [
        {"name": "level", "valueCode": "full"}, {"name": "from", "valueDate": today}]}]});
    let (s, _, accepted) = app.post_fhir("/$request-record-access", &megan, &ask).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let review = part(&accepted, "reviewTask")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    let (s, _, _) = app.post_fhir("/$request-record-access", &megan, &ask).await;
    assert_eq!(s, StatusCode::CONFLICT, "one request at a time");
    let (_, _, mine) = app.get("/$my-access", &megan).await;
    assert!(
        mine.to_string().contains(&format!("Task/{review}")),
        "the pending review shows: {mine}"
    );

    // Declined with a reason: nothing changes.
    let clinician = app.token("clinician-tpp");
    let (s, _, b) = app
        .post_fhir(
            &format!("/Task/{review}/$complete"),
            &clinician,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "decline"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a decline needs a reason: {b}");
    let (s, _, b) = app
        .post_fhir(
            &format!("/Task/{review}/$complete"),
            &clinician,
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "decision", "valueCode": "decline"},
                {"name": "reason", "valueString": "third-party information needs redacting first"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let (_, _, task) = app.get(&format!("/Task/{review}"), &clinician).await;
    assert_eq!(task["status"], "rejected", "{task}");
    assert_eq!(
        wait_for_level(&app, "tpp", "9990000069", "detailed-coded").await["record_level"],
        "detailed-coded"
    );

    // Asked again and approved: switched on through the outbox.
    let (_, _, accepted) = app.post_fhir("/$request-record-access", &megan, &ask).await;
    let review = part(&accepted, "reviewTask")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    let (s, _, b) = app
        .post_fhir(
            &format!("/Task/{review}/$complete"),
            &clinician,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    wait_for_level(&app, "tpp", "9990000069", "full").await;
}

#[tokio::test]
async fn set_online_access_changes_only_what_it_names_and_a_refusal_changes_nothing() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-tpp");
    // Megan: all three services and detailed coded access, confirmed.
    wait_for_level(&app, "tpp", "9990000069", "detailed-coded").await;
    let only_messaging = json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [{"name": "messaging", "valueBoolean": false}]}]});
    let (s, _, accepted) = app
        .post_fhir(
            "/Patient/patient-megan-jones/$set-online-access",
            &staff,
            &only_messaging,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(&app, &staff, &task, "completed", Duration::from_secs(10)).await;
    let held = sim_account(&app, "tpp", "9990000069").await.unwrap();
    assert_eq!(
        held["record_level"], "detailed-coded",
        "record access untouched: {held}"
    );
    assert_eq!(held["services"]["messaging"], false);
    assert_eq!(held["services"]["appointments"], true);

    // The supplier refuses the next change (the practice switched its services off there).
    let r = app
        .client
        .put(format!("{}/admin/practices/B82005", app.simulator("tpp")))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = app
        .client
        .put(format!("{}/admin/faults", app.simulator("tpp")))
        .json(&json!({"latency_ms": 400}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let summary = json!({"resourceType": "Parameters", "parameter": [
        {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}]});
    let (_, _, accepted) = app
        .post_fhir("/Patient/patient-megan-jones/$set-online-access", &staff, &summary)
        .await;
    let (_, _, view) = app.get("/Patient/patient-megan-jones/$online-account", &staff).await;
    assert!(
        account_part(&view, "pendingAccess").is_object(),
        "pending until confirmed: {view}"
    );
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(&app, &staff, &task, "failed", Duration::from_secs(10)).await;
    let (_, _, view) = app.get("/Patient/patient-megan-jones/$online-account", &staff).await;
    assert_eq!(
        account_part(&view, "recordAccess")["part"][0]["valueCode"],
        "detailed-coded",
        "{view}"
    );
    assert!(
        view["parameter"][0]["part"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "pendingAccess"),
        "the refused change is no longer pending: {view}"
    );
    let (_, _, mine) = app.get("/$my-access", &app.token("proxy-p9")).await;
    assert_eq!(my_record_level(&mine), "detailed-coded");
}

#[tokio::test]
async fn the_opt_in_job_codes_who_has_no_access_and_revokes_automatic_access() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    // Amir's full access is automatic (granted summary); Jane's was granted.
    wait_for_level(&app, "emis", "9990000034", "full").await;
    wait_for_level(&app, "emis", "9990000018", "full").await;
    let (s, headers, task) = app
        .post_fhir(
            "/Organization/practice-a81001/$apply-opt-in-model",
            &staff,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "turningSixteenWithinDays", "valueInteger": 30}]}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    assert!(headers.contains_key("content-location"));
    let id = task["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&app, &staff, &id, "completed", Duration::from_secs(20)).await;
    let output = |name: &str| {
        done["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["type"]["text"] == name)
            .and_then(|o| o["valueInteger"].as_i64())
            .unwrap()
    };
    assert_eq!(output("percentDone"), 100, "{done}");
    // Adults without granted record access: Grace, Lucy, Daniel, Edith, Harold (Oliver is 12;
    // Amir was granted summary access, Jane full).
    assert_eq!(output("coded"), 5, "{done}");
    assert_eq!(output("revoked"), 1, "{done}");
    wait_for_level(&app, "emis", "9990000034", "summary").await;
    assert_eq!(
        sim_account(&app, "emis", "9990000018").await.unwrap()["record_level"],
        "full",
        "granted access stays"
    );
    let (_, _, org) = app.get("/Organization/practice-a81001", &staff).await;
    assert!(org.to_string().contains("opt-in"), "{org}");

    // Run again: nothing more to do.
    let (_, _, again) = app
        .post_fhir(
            "/Organization/practice-a81001/$apply-opt-in-model",
            &staff,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    let done = wait_for_task(
        &app,
        &staff,
        again["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(20),
    )
    .await;
    assert!(done.to_string().contains("\"alreadyCoded\""));
    let coded = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"]["text"] == "coded")
        .unwrap()["valueInteger"]
        .clone();
    assert_eq!(coded, 0, "{done}");
    // Staff of another practice may not start it.
    let (s, _, _) = app
        .post_fhir(
            "/Organization/practice-a81001/$apply-opt-in-model",
            &app.token("staff-tpp"),
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn turning_16_at_an_opt_out_practice_gives_access_and_letters_expire() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-tpp");
    // Moorland Surgery moves to opt-out.
    let (_, headers, mut org) = app.get("/Organization/practice-b82005", &staff).await;
    for e in org["extension"][1]["extension"].as_array_mut().unwrap() {
        if e["url"] == "accessModel" {
            e["valueCode"] = json!("opt-out");
        }
    }
    let (s, _, b) = crate::helpers::send(
        app.request(reqwest::Method::PUT, "/Organization/practice-b82005", Some(&staff))
            .header("content-type", "application/fhir+json")
            .header("if-match", headers["etag"].to_str().unwrap())
            .body(org.to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The supplier hears at once: Priya Patel (24, granted no record access) now has full.
    wait_for_level(&app, "tpp", "9990000077", "full").await;
    // A patient of 15 at a TPP-like practice (which makes accounts from 11).
    let today = chrono::Utc::now().date_naive();
    let birth = today - chrono::Duration::days(16 * 365 - 20);
    let mut body = new_patient(crate::helpers::FREE_NHS_NUMBERS[0], "Young", "B82005");
    body["birthDate"] = json!(birth.format("%Y-%m-%d").to_string());
    let (s, _, created) = app.post_fhir("/Patient", &staff, &body).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, accepted) = register(
        &app,
        &staff,
        &id,
        &registration("documents-in-person", None, "summary", None),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(&app, &staff, &task, "completed", Duration::from_secs(10)).await;
    // The letter: printed today, valid two weeks.
    let (s, _, _) = app.get(&format!("/Patient/{id}/$registration-letter"), &staff).await;
    assert_eq!(s, StatusCode::OK);

    let sixteen = birth.checked_add_months(chrono::Months::new(192)).unwrap();
    let before = format!("{}T12:00:00Z", (sixteen - chrono::Duration::days(1)).format("%Y-%m-%d"));
    // Today's run first: anything a background job was changing at the same moment is done.
    run_transitions(&app, &format!("{}T12:00:00Z", today.format("%Y-%m-%d"))).await;
    // More than two weeks on, the letter has expired; the patient is not 16 yet.
    let report = run_transitions(&app, &before).await;
    assert_eq!(int(&report, "accountsUpdated"), 0, "{report}");
    assert_eq!(int(&report, "lettersExpired"), 1, "{report}");
    let after = format!("{}T12:00:00Z", sixteen.format("%Y-%m-%d"));
    let report = run_transitions(&app, &after).await;
    assert_eq!(int(&report, "accountsUpdated"), 1, "{report}");
    let held = wait_for_level(&app, "tpp", crate::helpers::FREE_NHS_NUMBERS[0], "full").await;
    assert_eq!(
        held["record_from"],
        sixteen.format("%Y-%m-%d").to_string(),
        "prospective from the 16th birthday"
    );
    // Safe to run twice.
    let report = run_transitions(&app, &after).await;
    assert_eq!(
        (int(&report, "accountsUpdated"), int(&report, "lettersExpired")),
        (0, 0),
        "{report}"
    );
    let (_, _, view) = app.get(&format!("/Patient/{id}/$online-account"), &staff).await;
    assert!(view.to_string().contains("registration letter expired"), "{view}");
    // Only the scheduler may run them.
    let (s, _, _) = app
        .post_fhir("/$run-transitions", &staff, &json!({"resourceType": "Parameters"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn moves_and_deaths_end_access_and_roles_once() {
    let app = TestApp::spawn().await;
    let supplier = app.token("system-supplier");
    let event = |id: &str, kind: &str, nhs: &str, ods: Option<&str>, date: &str| {
        let mut p = vec![
            json!({"name": "eventId", "valueString": id}),
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "nhsNumber", "valueString": nhs}),
            json!({"name": "date", "valueDate": date}),
        ];
        if let Some(o) = ods {
            p.push(json!({"name": "odsCode", "valueString": o}));
        }
        json!({"resourceType": "Parameters", "parameter": p})
    };
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();

    // Jane Smith moves from A81001 to B82005.
    wait_for_level(&app, "emis", "9990000018", "full").await;
    let move_jane = event("evt-1", "transferred", "9990000018", Some("B82005"), &today);
    let (s, _, first) = app.post_fhir("/$registration-event", &supplier, &move_jane).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert_eq!(part(&first, "outcome")["valueCode"], "applied");
    assert_eq!(int(&first, "accountsEnded"), 1);
    let (_, _, again) = app.post_fhir("/$registration-event", &supplier, &move_jane).await;
    assert_eq!(part(&again, "replayed")["valueBoolean"], true, "{again}");
    assert_eq!(int(&again, "accountsEnded"), 1, "the same answer");
    let jane = app.token("patient-p9");
    let (_, _, mine) = app.get("/$my-access", &jane).await;
    assert!(mine.to_string().contains("ended"), "{mine}");
    // The old supplier disables the account; the new practice can register her.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sim_account(&app, "emis", "9990000018").await.unwrap()["enabled"] != false {
        assert!(tokio::time::Instant::now() < deadline, "the old supplier was not told");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, accepted) = register(
        &app,
        &app.token("staff-tpp"),
        "patient-jane-smith",
        &registration("documents-in-person", None, "summary", None),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{accepted}");

    // Bad events change nothing.
    for (body, status) in [
        (
            event("evt-2", "transferred", "9990000018", Some("Z99999"), &today),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            event("evt-3", "deceased", "9434765919", None, &today),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            event("evt-4", "deceased", "9990000050", None, "2999-01-01"),
            StatusCode::BAD_REQUEST,
        ),
        (
            event("evt-5", "married", "9990000050", None, &today),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, _, b) = app.post_fhir("/$registration-event", &supplier, &body).await;
        assert_eq!(s, status, "{b}");
    }
    let (s, _, _) = app
        .post_fhir("/$registration-event", &app.token("staff-tpp"), &move_jane)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "staff cannot send supplier events");

    // Megan Jones dies: her account ends, and the role in which she was Lily's proxy.
    let (s, _, died) = app
        .post_fhir(
            "/$registration-event",
            &supplier,
            &event("evt-6", "deceased", "9990000069", None, &today),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{died}");
    assert_eq!(int(&died, "accountsEnded"), 1);
    assert!(int(&died, "rolesEnded") >= 1, "{died}");
    let (s, _, role) = app
        .get("/Consent/1a7e0000-0000-4000-8000-000000000001", &app.token("staff-tpp"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let consent = &role["entry"][0]["resource"];
    assert_eq!(consent["status"], "inactive");
    assert_eq!(
        consent["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
        "ROLE_DEACTIVATED_PROXY_DECEASED"
    );
    let (s, _, b) = app
        .get(
            "/Patient/patient-lily-jones/$service-access?service=appointments",
            &app.token("proxy-p9"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
}

/// Suppliers retry: the same event id can arrive several times at once. One request applies it
/// and every other answers what it did, on either database.
#[tokio::test]
async fn concurrent_repeats_of_one_event_apply_it_once_and_replay_it_to_the_rest() {
    let app = TestApp::spawn().await;
    let supplier = app.token("system-supplier");
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    // Megan Jones holds an online account and is Lily's proxy: her death ends both.
    let died = json!({"resourceType": "Parameters", "parameter": [
        {"name": "eventId", "valueString": "evt-burst"},
        {"name": "type", "valueCode": "deceased"},
        {"name": "nhsNumber", "valueString": "9990000069"},
        {"name": "date", "valueDate": today},
    ]});
    let answers =
        futures_util::future::join_all((0..5).map(|_| app.post_fhir("/$registration-event", &supplier, &died))).await;
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let (first, repeats): (Vec<&Value>, Vec<&Value>) = answers
        .iter()
        .map(|(_, _, body)| body)
        .partition(|body| part(body, "replayed")["valueBoolean"] == false);
    assert_eq!(first.len(), 1, "exactly one request applies the event: {answers:?}");
    let first = first[0];
    assert_eq!(part(first, "outcome")["valueCode"], "applied", "{first}");
    assert_eq!(int(first, "accountsEnded"), 1, "{first}");
    assert!(int(first, "rolesEnded") >= 1, "{first}");
    for repeat in repeats {
        for name in ["eventId", "outcome", "patient", "accountsEnded", "rolesEnded"] {
            assert_eq!(part(repeat, name), part(first, name), "{name}: {repeat}");
        }
    }
    // Nothing was done twice: the account and the role were each ended once.
    let (_, _, again) = app.post_fhir("/$registration-event", &supplier, &died).await;
    assert_eq!(part(&again, "replayed")["valueBoolean"], true, "{again}");
    assert_eq!(int(&again, "accountsEnded"), 1);

    // A refused event keeps nothing, its id included: the corrected event is applied.
    let moved = |ods: &str| {
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "eventId", "valueString": "evt-corrected"},
            {"name": "type", "valueCode": "transferred"},
            {"name": "nhsNumber", "valueString": "9990000018"},
            {"name": "odsCode", "valueString": ods},
            {"name": "date", "valueDate": today},
        ]})
    };
    let (status, _, refused) = app.post_fhir("/$registration-event", &supplier, &moved("Z99999")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, _, applied) = app.post_fhir("/$registration-event", &supplier, &moved("B82005")).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(part(&applied, "replayed")["valueBoolean"], false, "{applied}");
    assert_eq!(part(&applied, "outcome")["valueCode"], "applied", "{applied}");
}
