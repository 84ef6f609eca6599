//! Registration for online services end to end: conditions, provisioning through the outbox to
//! the supplier simulators, the letter, access changes, outages and restarts.

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

pub fn registration(method: &str, email: Option<&str>, level: &str, from: Option<&str>) -> Value {
    let mut parameter = vec![
        json!({"name": "identityVerification", "part": [
            {"name": "method", "valueCode": method},
            {"name": "document", "valueString": "passport"},
            {"name": "verifiedAt", "valueDateTime": "2026-01-05T09:30:00Z"}
        ]}),
        json!({"name": "responsibilitiesAcknowledged", "valueBoolean": true}),
        json!({"name": "coercionConsidered", "valueBoolean": true}),
        json!({"name": "capacityConsidered", "valueBoolean": true}),
        json!({"name": "services", "part": [
            {"name": "appointments", "valueBoolean": true},
            {"name": "prescriptions", "valueBoolean": true},
            {"name": "messaging", "valueBoolean": false}
        ]}),
    ];
    let mut record = vec![json!({"name": "level", "valueCode": level})];
    if let Some(f) = from {
        record.push(json!({"name": "from", "valueDate": f}));
    }
    parameter.push(json!({"name": "recordAccess", "part": record}));
    if let Some(e) = email {
        parameter.push(json!({"name": "email", "valueString": e}));
    }
    json!({"resourceType": "Parameters", "parameter": parameter})
}

pub fn part<'a>(params: &'a Value, name: &str) -> &'a Value {
    params["parameter"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

pub fn account_part<'a>(params: &'a Value, name: &str) -> &'a Value {
    part(params, "account")["part"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

fn task_id(accepted: &Value) -> String {
    part(accepted, "task")["valueReference"]["reference"]
        .as_str()
        .expect("a task reference")
        .trim_start_matches("Task/")
        .to_owned()
}

/// Polls a Task until it reaches `status` (bounded).
pub async fn wait_for_task(app: &TestApp, token: &str, id: &str, status: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (code, _, task) = app.get(&format!("/Task/{id}"), token).await;
        assert_eq!(code, StatusCode::OK, "{task}");
        if task["status"] == status {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} did not reach {status}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn register(app: &TestApp, token: &str, patient: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) = app
        .post_fhir(&format!("/Patient/{patient}/$register-online-services"), token, body)
        .await;
    (status, body)
}

async fn sim_accounts(app: &TestApp, flavour: &str) -> Vec<Value> {
    app.client
        .get(format!("{}/admin/accounts", app.simulator(flavour)))
        .send()
        .await
        .unwrap()
        .json::<Vec<Value>>()
        .await
        .unwrap()
}

/// The simulator's account for one patient identifier (exactly one must exist).
async fn sim_account(app: &TestApp, flavour: &str, identifier: &str) -> Value {
    let matching: Vec<Value> = sim_accounts(app, flavour)
        .await
        .into_iter()
        .filter(|a| a["patient_identifier"] == identifier)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one {flavour} account for {identifier}: {matching:?}"
    );
    matching.into_iter().next().unwrap()
}

/// Every listed account was created once: the simulator's creation count equals its accounts.
async fn assert_no_duplicate_creations(url: &str) {
    let accounts: Vec<Value> = reqwest::get(format!("{url}/admin/accounts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stats: Value = reqwest::get(format!("{url}/admin/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["accounts_created"], accounts.len(), "{stats}");
    let mut ids: Vec<&str> = accounts
        .iter()
        .map(|a| a["patient_identifier"].as_str().unwrap())
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

async fn set_faults(app: &TestApp, flavour: &str, faults: Value) {
    let r = app
        .client
        .put(format!("{}/admin/faults", app.simulator(flavour)))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

fn fast_retries(s: &mut gp_online_gateway::config::Settings) {
    s.suppliers.backoff_base_ms = 20;
    s.suppliers.backoff_cap_seconds = 1;
    s.suppliers.poll_interval_ms = 20;
    s.suppliers.timeout_seconds = 2;
    s.suppliers.lease_seconds = 7;
}

#[tokio::test]
async fn register_print_and_read_the_letter_at_an_emis_like_practice() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    let (status, accepted) = register(
        &app,
        &token,
        "patient-lucy-evans",
        &registration("documents-in-person", None, "summary", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(account_part(&accepted, "status")["valueCode"], "pending");
    let task = wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    assert_eq!(task["code"]["coding"][0]["code"], "create-online-account");
    assert_eq!(task["for"]["reference"], "Patient/patient-lucy-evans");
    assert_eq!(task["input"][0]["valueInteger"], 1, "one attempt");

    let (status, _, account) = app.get("/Patient/patient-lucy-evans/$online-account", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account_part(&account, "status")["valueCode"], "active");
    let account_id = account_part(&account, "accountId")["valueString"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !account.to_string().to_lowercase().contains("linkagekey\":\""),
        "no key outside the letter"
    );

    let (status, headers, letter) = app
        .get("/Patient/patient-lucy-evans/$registration-letter", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{letter}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(letter["practiceId"], "A81001");
    assert_eq!(letter["practiceName"], "Riverside Medical Centre");
    assert_eq!(letter["patientIdentifier"]["label"], "NHS number");
    assert_eq!(letter["patientIdentifier"]["value"], "9990000158");
    assert_eq!(letter["accountId"], account_id);
    let key = letter["linkageKey"].as_str().unwrap().to_owned();
    assert!(key.len() >= 10);
    let expires = chrono::NaiveDate::parse_from_str(letter["expiresOn"].as_str().unwrap(), "%Y-%m-%d").unwrap();
    assert_eq!(expires, chrono::Utc::now().date_naive() + chrono::Duration::days(14));
    assert!(letter["guidance"].as_array().unwrap().len() >= 5);
    assert_eq!(
        letter["practiceAddress"],
        json!(["1 Riverside Walk", "Leeds", "LS1 4AP"])
    );
    assert_eq!(letter["practiceTelephone"], "0113 496 0000");
    // What is in effect, the practice's model applied: summary was asked for, but A81001 is
    // opt-out, so an adult has the full record from the day the account was made.
    let on: Vec<&str> = letter["switchedOn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(on.iter().any(|s| s.starts_with("Appointments")), "{on:?}");
    assert!(
        on.iter().any(|s| s.starts_with("Your GP record: the full record")),
        "{on:?}"
    );

    let pdf = app
        .request(
            Method::GET,
            "/Patient/patient-lucy-evans/$registration-letter",
            Some(&token),
        )
        .header("accept", "application/pdf")
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-1.4"));
    let text = String::from_utf8_lossy(&bytes);
    for needle in [
        "Linkage Key",
        key.as_str(),
        account_id.as_str(),
        "A81001",
        "999 000 0158",
        "Keeping your access safe",
        "1 Riverside Walk",
        "LS1 4AP",
        "Telephone: 0113 496 0000",
        "What is switched on for you",
        "Appointments",
    ] {
        assert!(text.contains(needle), "the PDF shows {needle}");
    }
    assert!(text.trim_end().ends_with("%%EOF"));

    // The supplier holds exactly this account with the requested services.
    let held = sim_account(&app, "emis", "9990000158").await;
    assert_eq!(held["account_id"], account_id);
    // A81001 is an opt-out practice: an adult's account gives full prospective access.
    assert_eq!(held["record_level"], "full");
    assert_eq!(held["services"]["appointments"], true);

    // Staff at another practice can neither print the letter nor see the Task.
    let tpp = app.token("staff-tpp");
    let (status, _, _) = app.get("/Patient/patient-lucy-evans/$registration-letter", &tpp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.get(&format!("/Task/{}", task_id(&accepted)), &tpp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tpp_like_practices_register_without_email_and_use_chi_numbers() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-tpp");
    let (status, accepted) = register(
        &app,
        &token,
        "patient-tom-brown",
        &registration("vouching", None, "summary", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    sim_account(&app, "tpp", "9990000085").await;

    let mut chi = new_patient("1403775419", "Mackenzie", "B82005");
    chi["identifier"][0]["system"] = json!("https://fhir.nhs.scot/Id/chi-number");
    chi["birthDate"] = json!("1977-03-14");
    let (_, _, created) = app.post_fhir("/Patient", &token, &chi).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, accepted) = register(
        &app,
        &token,
        &id,
        &registration("documents-in-person", None, "detailed-coded", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    let (_, _, letter) = app.get(&format!("/Patient/{id}/$registration-letter"), &token).await;
    assert_eq!(letter["patientIdentifier"]["label"], "CHI number");
    assert_eq!(letter["practiceId"], "B82005");
}

#[tokio::test]
async fn every_missing_or_invalid_condition_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = app.token("staff-emis");
    let ok = registration("documents-in-person", None, "summary", None);
    let drop_param = |name: &str| {
        let mut b = ok.clone();
        b["parameter"].as_array_mut().unwrap().retain(|p| p["name"] != name);
        b
    };
    let set_bool = |name: &str, v: bool| {
        let mut b = ok.clone();
        for p in b["parameter"].as_array_mut().unwrap() {
            if p["name"] == name {
                p["valueBoolean"] = json!(v);
            }
        }
        b
    };
    let mut no_documents = ok.clone();
    no_documents["parameter"][0]["part"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "document");
    let mut bad_method = ok.clone();
    bad_method["parameter"][0]["part"][0]["valueCode"] = json!("telepathy");
    let mut future = ok.clone();
    future["parameter"][0]["part"][2]["valueDateTime"] = json!("2999-01-01T00:00:00Z");

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no verification",
            drop_param("identityVerification"),
            "identityVerification",
        ),
        ("unknown method", bad_method, "method"),
        ("documents not named", no_documents, "document"),
        ("verified in the future", future, "verifiedAt"),
        (
            "responsibilities",
            set_bool("responsibilitiesAcknowledged", false),
            "responsibilitiesAcknowledged",
        ),
        (
            "coercion missing",
            drop_param("coercionConsidered"),
            "coercionConsidered",
        ),
        ("capacity", set_bool("capacityConsidered", false), "capacityConsidered"),
        (
            "vouching for detailed",
            registration("vouching", None, "detailed-coded", None),
            "level",
        ),
        (
            "remote vouching for full",
            registration("vouching", None, "full", Some("2026-11-21")),
            "level",
        ),
        (
            "full without from",
            registration("nhs-login-p9", None, "full", None),
            "from",
        ),
        (
            "from in the future",
            registration("nhs-login-p9", None, "full", Some("2999-01-01")),
            "from",
        ),
        (
            "from on summary",
            registration("nhs-login-p9", None, "summary", Some("2020-01-01")),
            "from",
        ),
        (
            "unknown level",
            registration("nhs-login-p9", None, "everything", None),
            "level",
        ),
        (
            "bad email",
            registration("nhs-login-p9", Some("not-an-email"), "summary", None),
            "email",
        ),
    ];
    for (name, body, field) in cases {
        let (status, outcome) = register(&app, &token, "patient-lucy-evans", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {outcome}");
        assert_eq!(outcome_code(&outcome), "REGISTRATION_CONDITION_NOT_MET", "{name}");
        let expression = outcome["issue"][0]["expression"][0].as_str().unwrap_or_default();
        assert!(expression.contains(&format!("'{field}'")), "{name}: {expression}");
    }
    // Oliver Smith has no email address and EMIS-like practices need one.
    let (status, outcome) = register(&app, &token, "patient-oliver-smith", &ok).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        outcome["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .contains("'email'")
    );

    // Nothing was created by the refusals.
    let (status, _, _) = app.get("/Patient/patient-lucy-evans/$online-account", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn duplicate_registration_and_email_reuse() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    let body = registration("nhs-login-p9", None, "none", None);
    let (status, _) = register(&app, &token, "patient-lucy-evans", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, outcome) = register(&app, &token, "patient-lucy-evans", &body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome_code(&outcome), "ONLINE_ACCOUNT_EXISTS");

    // Grace Okafor registered with Lucy's address: accepted, with a warning.
    let (status, accepted) = register(
        &app,
        &token,
        "patient-grace-okafor",
        &registration("nhs-login-p9", Some("lucy.evans@example.org"), "none", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let outcome = &part(&accepted, "outcome")["resource"];
    assert_eq!(outcome["issue"][0]["severity"], "warning");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
}

#[tokio::test]
async fn supplier_rules_fail_the_task_and_reject_the_account() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    // Oliver Smith is 12: below the EMIS-like system's minimum age.
    let (status, accepted) = register(
        &app,
        &token,
        "patient-oliver-smith",
        &registration("documents-in-person", Some("parent@example.org"), "none", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = wait_for_task(&app, &token, &task_id(&accepted), "failed", Duration::from_secs(10)).await;
    assert!(
        task["output"][0]["valueString"]
            .as_str()
            .unwrap()
            .starts_with("SUPPLIER_UNDER_MINIMUM_AGE")
    );
    assert_eq!(task["input"][0]["valueInteger"], 1, "a refusal is not retried");
    let (_, _, account) = app.get("/Patient/patient-oliver-smith/$online-account", &token).await;
    assert_eq!(account_part(&account, "status")["valueCode"], "rejected");
    let (status, _, _) = app
        .get("/Patient/patient-oliver-smith/$registration-letter", &token)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A rejected registration can be made again.
    let (status, _) = register(
        &app,
        &token,
        "patient-oliver-smith",
        &registration("documents-in-person", Some("parent@example.org"), "none", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn historic_record_access_waits_for_a_completed_review() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    let (status, accepted) = register(
        &app,
        &token,
        "patient-grace-okafor",
        &registration("documents-in-person", None, "full", Some("2015-06-01")),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let review_id = part(&accepted, "reviewTask")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let from_in = |group: &Value| {
        group["part"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "from")
            .map(|x| x["valueDate"].as_str().unwrap().to_owned())
    };
    let from = |p: &Value| from_in(account_part(p, "recordAccess"));
    // A change the supplier has not confirmed yet is shown apart from the confirmed access.
    let pending_from = |p: &Value| {
        account_part(p, "pendingAccess")["part"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "recordAccess")
            .and_then(from_in)
    };
    assert_eq!(
        from(&accepted).as_deref(),
        Some(today.as_str()),
        "prospective access starts today"
    );
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;

    let (_, _, review) = app.get(&format!("/Task/{review_id}"), &token).await;
    assert_eq!(review["status"], "requested");
    assert_eq!(review["code"]["coding"][0]["code"], "record-review");
    // The patient sees the open review in their own `$my-access` entry.
    let grace = app.token_with(
        IssuerKind::Patient,
        json!({"sub": "nhslogin-sub-grace-okafor", "nhs_number": "9990000042",
               "identity_proofing_level": "P9", "vot": "P9.Cp.Cd"}),
    );
    let (status, _, mine) = app.get("/$my-access", &grace).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let own = &mine["parameter"][0]["part"];
    let pending = own
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == "pendingReview"))
        .map(|x| x["valueReference"]["reference"].clone());
    assert_eq!(pending, Some(json!(format!("Task/{review_id}"))), "{mine}");
    let (_, _, tasks) = app.get("/Task?patient=Patient/patient-grace-okafor", &token).await;
    assert_eq!(tasks["total"], 2);
    let (_, _, open) = app
        .get("/Task?patient=patient-grace-okafor&status=requested", &token)
        .await;
    assert_eq!(open["total"], 1);
    assert_eq!(
        open["entry"][0]["resource"]["code"]["coding"][0]["code"],
        "record-review"
    );
    let (_, _, done) = app
        .get("/Task?patient=patient-grace-okafor&status=completed", &token)
        .await;
    assert_eq!(done["total"], 1);
    assert_eq!(
        done["entry"][0]["resource"]["code"]["coding"][0]["code"],
        "create-online-account"
    );
    let (status, _, _) = app
        .get("/Task?patient=patient-grace-okafor&status=finished", &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Reviewing a record is a clinician's job: the administrator's role may not complete it.
    let (status, _, refused) = app
        .post_fhir(
            &format!("/Task/{review_id}/$complete"),
            &token,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(outcome_code(&refused), "ROLE_NOT_PERMITTED");
    let clinician = app.token("clinician-emis");
    let (status, _, completed) = app
        .post_fhir(&format!("/Task/{review_id}/$complete"), &clinician, &json!({"resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "no third-party information"}]}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{completed}");
    assert_eq!(pending_from(&completed).as_deref(), Some("2015-06-01"));
    assert_eq!(
        from(&completed).as_deref(),
        Some(today.as_str()),
        "confirmed only once the supplier says so"
    );
    wait_for_task(&app, &token, &task_id(&completed), "completed", Duration::from_secs(10)).await;
    let held = sim_account(&app, "emis", "9990000042").await;
    assert_eq!(held["record_level"], "full");
    assert_eq!(held["record_from"], "2015-06-01");
    let (status, _, _) = app
        .post_fhir(
            &format!("/Task/{review_id}/$complete"),
            &clinician,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a review completes once");
}

#[tokio::test]
async fn access_changes_reset_and_disable_are_forwarded() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-tpp");
    let patient = "patient-william-jones";
    let (_, accepted) = register(
        &app,
        &token,
        patient,
        &registration("documents-in-person", None, "summary", None),
    )
    .await;
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    let (_, _, first_letter) = app
        .get(&format!("/Patient/{patient}/$registration-letter"), &token)
        .await;
    let first_key = first_letter["linkageKey"].as_str().unwrap().to_owned();

    let change = json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [{"name": "messaging", "valueBoolean": true}]},
        {"name": "recordAccess", "part": [{"name": "level", "valueCode": "detailed-coded"}]}
    ]});
    let (status, _, accepted) = app
        .post_fhir(&format!("/Patient/{patient}/$set-online-access"), &token, &change)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    let held = sim_account(&app, "tpp", "9990000050").await;
    // Detailed coded access waits for a record review; only the services named change.
    assert_eq!(held["record_level"], "summary");
    assert!(
        part(&accepted, "reviewTask")["valueReference"]["reference"].is_string(),
        "{accepted}"
    );
    assert_eq!(held["services"]["messaging"], true);
    assert_eq!(held["services"]["appointments"], true, "not named, so unchanged");

    // Reset: the old key stops working at once and a new one arrives.
    let (status, _, accepted) = app
        .post_fhir(&format!("/Patient/{patient}/$reset-online-account"), &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    let (_, _, second_letter) = app
        .get(&format!("/Patient/{patient}/$registration-letter"), &token)
        .await;
    assert_ne!(second_letter["linkageKey"].as_str().unwrap(), first_key);
    assert_eq!(second_letter["accountId"], first_letter["accountId"]);

    // Disable needs a reason; a disabled account has no letter; enable brings it back.
    let (status, _, outcome) = app
        .post_fhir(
            &format!("/Patient/{patient}/$disable-online-account"),
            &token,
            &json!({"resourceType": "Parameters"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        outcome["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .contains("'reason'")
    );
    let (status, _, accepted) = app
        .post_fhir(
            &format!("/Patient/{patient}/$disable-online-account"),
            &token,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "misuse reported"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(account_part(&accepted, "status")["valueCode"], "disabled");
    assert_eq!(
        account_part(&accepted, "statusReason")["valueString"],
        "misuse reported"
    );
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    assert_eq!(sim_account(&app, "tpp", "9990000050").await["enabled"], false);
    let (status, _, _) = app
        .get(&format!("/Patient/{patient}/$registration-letter"), &token)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, accepted) = app
        .post_fhir(
            &format!("/Patient/{patient}/$enable-online-account"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(account_part(&accepted, "status")["valueCode"], "active");
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    assert_eq!(sim_account(&app, "tpp", "9990000050").await["enabled"], true);
    let (status, _, _) = app
        .post_fhir(
            &format!("/Patient/{patient}/$enable-online-account"),
            &token,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "only a disabled account is re-enabled");
}

const BURST_NUMBERS: [&str; 6] = [
    "9990000093",
    "9990000107",
    "9990000115",
    "9990000123",
    "9434765919",
    "9990000298",
];

async fn create_patients(app: &TestApp, token: &str, ods: &str, n: usize, family: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for nhs in BURST_NUMBERS.iter().take(n) {
        let mut body = new_patient(nhs, family, ods);
        body["telecom"][0]["value"] = json!(format!("{nhs}@example.org"));
        let (status, _, created) = app.post_fhir("/Patient", token, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn an_outage_during_a_burst_loses_nothing_and_creates_nothing_twice() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    let patients = create_patients(&app, &token, "A81001", 6, "Burst").await;
    // The supplier is down, then slow and flaky, then loses responses after acting on them.
    set_faults(&app, "emis", json!({"down": true})).await;
    let mut tasks = Vec::new();
    for p in &patients {
        let (status, accepted) = register(&app, &token, p, &registration("nhs-login-p9", None, "summary", None)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        tasks.push(task_id(&accepted));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Between attempts the task waits to retry; it may be caught in an attempt ("in-progress"),
    // but never failed or done while the supplier is down.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let during = loop {
        let (_, _, task) = app.get(&format!("/Task/{}", tasks[0]), &token).await;
        match task["status"].as_str() {
            Some("requested") => break task,
            Some("in-progress") if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => panic!("waiting to retry: {task}"),
        }
    };
    assert!(during["input"][0]["valueInteger"].as_i64().unwrap() >= 1);
    assert!(
        during["output"][0]["valueString"]
            .as_str()
            .unwrap()
            .starts_with("SUPPLIER_UNAVAILABLE")
    );
    set_faults(
        &app,
        "emis",
        json!({"down": false, "error_rate": 0.5, "drop_response_rate": 0.3, "latency_ms": 20}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_faults(
        &app,
        "emis",
        json!({"error_rate": 0.0, "drop_response_rate": 0.0, "latency_ms": 0}),
    )
    .await;
    for t in &tasks {
        wait_for_task(&app, &token, t, "completed", Duration::from_secs(20)).await;
    }
    for nhs in &BURST_NUMBERS[..patients.len()] {
        sim_account(&app, "emis", nhs).await;
    }
    assert_no_duplicate_creations(app.simulator("emis")).await;
    for p in &patients {
        let (_, _, account) = app.get(&format!("/Patient/{p}/$online-account"), &token).await;
        assert_eq!(account_part(&account, "status")["valueCode"], "active");
    }
}

#[tokio::test]
async fn an_outcome_that_cannot_be_recorded_holds_back_only_its_own_job() {
    let app = TestApp::spawn_with(|s| {
        fast_retries(s);
        s.suppliers.timeout_seconds = 1;
        s.suppliers.lease_seconds = 4;
    })
    .await;
    let token = app.token("staff-emis");
    let patients = create_patients(&app, &token, "A81001", 3, "Batch").await;
    // The database refuses the supplier's answer for the middle patient only.
    let when = format!(
        "NEW.patient_id = '{}' AND NEW.supplier_account_id IS NOT NULL",
        patients[1]
    );
    if app.on_sqlite() {
        execute_sql(
            &app,
            format!(
                "CREATE TRIGGER refuse_outcome BEFORE UPDATE ON online_accounts WHEN {when} \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END"
            ),
        )
        .await;
    } else {
        execute_sql(
            &app,
            "CREATE FUNCTION refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
        )
        .await;
        execute_sql(
            &app,
            format!(
                "CREATE TRIGGER refuse_outcome BEFORE UPDATE ON online_accounts FOR EACH ROW \
                 WHEN ({when}) EXECUTE FUNCTION refuse_outcome()"
            ),
        )
        .await;
    }
    // With the supplier down the three jobs wait together, and are claimed together when it
    // comes back.
    set_faults(&app, "emis", json!({"down": true})).await;
    let mut tasks = Vec::new();
    for p in &patients {
        let (status, accepted) = register(&app, &token, p, &registration("nhs-login-p9", None, "summary", None)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        tasks.push(task_id(&accepted));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_faults(&app, "emis", json!({"down": false})).await;
    for t in [&tasks[0], &tasks[2]] {
        wait_for_task(&app, &token, t, "completed", Duration::from_secs(10)).await;
    }
    // Past the longest back-off: the held job has been tried and its outcome refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, _, held) = app.get(&format!("/Task/{}", tasks[1]), &token).await;
    assert_eq!(held["status"], "in-progress", "{held}");
    let (_, _, account) = app
        .get(&format!("/Patient/{}/$online-account", patients[1]), &token)
        .await;
    assert_eq!(account_part(&account, "status")["valueCode"], "pending", "{account}");

    // Once the database takes it, the held job is done again when its lease runs out, with
    // the same idempotency key: the supplier creates nothing twice.
    let drop = if app.on_sqlite() {
        "DROP TRIGGER refuse_outcome"
    } else {
        "DROP TRIGGER refuse_outcome ON online_accounts"
    };
    execute_sql(&app, drop).await;
    wait_for_task(&app, &token, &tasks[1], "completed", Duration::from_secs(15)).await;
    for p in &patients {
        let (_, _, account) = app.get(&format!("/Patient/{p}/$online-account"), &token).await;
        assert_eq!(account_part(&account, "status")["valueCode"], "active", "{account}");
    }
    for nhs in &BURST_NUMBERS[..patients.len()] {
        sim_account(&app, "emis", nhs).await;
    }
    assert_no_duplicate_creations(app.simulator("emis")).await;
}

#[tokio::test]
async fn a_slow_supplier_does_not_hold_back_the_other_suppliers_outcomes() {
    let app = TestApp::spawn_with(|s| {
        fast_retries(s);
        s.suppliers.workers = 1;
    })
    .await;
    let (emis, tpp) = (app.token("staff-emis"), app.token("staff-tpp"));
    let body = registration("vouching", Some("slow@example.org"), "summary", None);
    let (_, _, created) = app
        .post_fhir("/Patient", &tpp, &new_patient(BURST_NUMBERS[1], "Slow", "B82005"))
        .await;
    let slow = created["id"].as_str().expect("created").to_owned();
    let fast = create_patients(&app, &emis, "A81001", 1, "Fast").await.remove(0);
    set_faults(&app, "tpp", json!({"latency_ms": 1500})).await;
    // The one worker is busy with a TPP-like call while the next two jobs are queued, so it
    // claims those two together.
    let (status, first) = register(&app, &tpp, "patient-tom-brown", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, slow_task) = register(&app, &tpp, &slow, &body).await;
    let (_, fast_task) = register(&app, &emis, &fast, &body).await;
    wait_for_task(&app, &emis, &task_id(&fast_task), "completed", Duration::from_secs(10)).await;
    let (_, _, waiting) = app.get(&format!("/Task/{}", task_id(&slow_task)), &tpp).await;
    assert_eq!(waiting["status"], "in-progress", "{waiting}");
    wait_for_task(&app, &tpp, &task_id(&slow_task), "completed", Duration::from_secs(10)).await;
    wait_for_task(&app, &tpp, &task_id(&first), "completed", Duration::from_secs(1)).await;
}

#[tokio::test]
async fn jobs_dead_letter_after_the_limit_and_can_be_retried() {
    let app = TestApp::spawn_with(|s| {
        fast_retries(s);
        s.suppliers.max_attempts = 3;
    })
    .await;
    let token = app.token("staff-emis");
    set_faults(&app, "emis", json!({"down": true})).await;
    let (_, accepted) = register(
        &app,
        &token,
        "patient-grace-okafor",
        &registration("nhs-login-p9", None, "none", None),
    )
    .await;
    let task = wait_for_task(&app, &token, &task_id(&accepted), "failed", Duration::from_secs(10)).await;
    assert_eq!(task["input"][0]["valueInteger"], 3);
    assert!(
        task["output"][0]["valueString"]
            .as_str()
            .unwrap()
            .contains("dead-lettered after 3 attempts")
    );
    let (_, _, account) = app.get("/Patient/patient-grace-okafor/$online-account", &token).await;
    assert_eq!(
        account_part(&account, "status")["valueCode"],
        "pending",
        "an outage does not reject the patient"
    );
    set_faults(&app, "emis", json!({"down": false})).await;
    let (status, _, requeued) = app
        .post_fhir(&format!("/Task/{}/$retry", task_id(&accepted)), &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{requeued}");
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    sim_account(&app, "emis", "9990000042").await;
}

#[tokio::test]
async fn jobs_in_flight_when_the_gateway_dies_finish_after_restart() {
    // The supplier runs on its own, as in production, so it outlives the gateway.
    let sim = gp_online_gateway::suppliers::simulator::spawn(
        gp_online_gateway::domain::Supplier::Emis,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let sim_url = sim.base_url().to_owned();
    let configure = |s: &mut gp_online_gateway::config::Settings| {
        fast_retries(s);
        s.suppliers.emis_url = Some(sim_url.clone());
        s.suppliers.lease_seconds = 7;
    };
    let (mut settings, db, data) = test_settings();
    configure(&mut settings);
    let app = TestApp::spawn_on(settings.clone(), db, data).await;
    let token = app.token("staff-emis");
    let client = reqwest::Client::new();
    // The seed's own jobs (accounts, proxy links) go first.
    let mut last = -1;
    let mut stable = 0;
    while stable < 3 {
        let stats: Value = client
            .get(format!("{sim_url}/admin/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let requests = stats["requests"].as_i64().unwrap();
        stable = if requests == last { stable + 1 } else { 0 };
        last = requests;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client
        .put(format!("{sim_url}/admin/faults"))
        .json(&json!({"latency_ms": 1500}))
        .send()
        .await
        .unwrap();
    let (status, accepted) = register(
        &app,
        &token,
        "patient-lucy-evans",
        &registration("nhs-login-p9", None, "none", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = task_id(&accepted);
    wait_for_task(&app, &token, &task, "in-progress", Duration::from_secs(5)).await;
    let (db, data) = app.kill().await;

    client
        .put(format!("{sim_url}/admin/faults"))
        .json(&json!({"latency_ms": 0}))
        .send()
        .await
        .unwrap();
    let restarted = TestApp::spawn_on(settings, db, data).await;
    let token = restarted.token("staff-emis");
    let done = wait_for_task(&restarted, &token, &task, "completed", Duration::from_secs(20)).await;
    assert!(
        done["input"][0]["valueInteger"].as_i64().unwrap() >= 2,
        "taken up again after the lease ran out"
    );
    let accounts: Vec<Value> = client
        .get(format!("{sim_url}/admin/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lucy = accounts
        .iter()
        .filter(|a| a["patient_identifier"] == "9990000158")
        .count();
    assert_eq!(lucy, 1, "created once although called twice");
    assert_no_duplicate_creations(&sim_url).await;
    let (_, _, account) = restarted
        .get("/Patient/patient-lucy-evans/$online-account", &token)
        .await;
    assert_eq!(account_part(&account, "status")["valueCode"], "active");
}

#[tokio::test]
async fn linkage_keys_are_not_stored_in_plain_text() {
    let app = TestApp::spawn_with(fast_retries).await;
    let token = app.token("staff-emis");
    let (_, accepted) = register(
        &app,
        &token,
        "patient-lucy-evans",
        &registration("nhs-login-p9", None, "none", None),
    )
    .await;
    wait_for_task(&app, &token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
    let (_, _, letter) = app
        .get("/Patient/patient-lucy-evans/$registration-letter", &token)
        .await;
    let key = letter["linkageKey"].as_str().unwrap().to_owned();
    let url = app.database_url().to_owned();
    let key_for_db = key.clone();
    let found = tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Cell {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        let tables = gp_online_gateway::db::describe_tables(&mut conn).unwrap();
        let mut hits = Vec::new();
        for (table, columns) in tables {
            for column in columns {
                let rows: Vec<Cell> = diesel::sql_query(format!(
                    "SELECT CAST({column} AS TEXT) AS v FROM {table} WHERE {column} IS NOT NULL"
                ))
                .load(&mut conn)
                .unwrap();
                if rows.iter().any(|r| r.v.contains(&key_for_db)) {
                    hits.push(format!("{table}.{column}"));
                }
            }
        }
        hits
    })
    .await
    .unwrap();
    assert!(found.is_empty(), "the linkage key is stored in clear in {found:?}");
}

#[tokio::test]
async fn two_gateway_instances_share_the_outbox_without_doing_any_job_twice() {
    let sim = gp_online_gateway::suppliers::simulator::spawn(
        gp_online_gateway::domain::Supplier::Emis,
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let sim_url = sim.base_url().to_owned();
    let (mut settings, db, data) = test_settings();
    fast_retries(&mut settings);
    settings.suppliers.emis_url = Some(sim_url.clone());
    settings.suppliers.workers = 3;
    let first = TestApp::spawn_on(settings.clone(), db, data).await;
    let second = first.spawn_beside(&settings).await;

    let token_a = first.token("staff-emis");
    let token_b = second.token("staff-emis");
    let patients = create_patients(&first, &token_a, "A81001", 6, "Shared").await;
    reqwest::Client::new()
        .put(format!("{sim_url}/admin/faults"))
        .json(&json!({"error_rate": 0.3, "drop_response_rate": 0.2}))
        .send()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for (i, p) in patients.iter().enumerate() {
        let (app, token) = if i % 2 == 0 {
            (&first, &token_a)
        } else {
            (&second, &token_b)
        };
        let (status, accepted) = register(app, token, p, &registration("nhs-login-p9", None, "summary", None)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        tasks.push(task_id(&accepted));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    reqwest::Client::new()
        .put(format!("{sim_url}/admin/faults"))
        .json(&json!({"error_rate": 0.0, "drop_response_rate": 0.0}))
        .send()
        .await
        .unwrap();
    for t in &tasks {
        wait_for_task(&first, &token_a, t, "completed", Duration::from_secs(20)).await;
    }
    let accounts: Vec<Value> = reqwest::get(format!("{sim_url}/admin/accounts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for nhs in &BURST_NUMBERS[..patients.len()] {
        assert_eq!(
            accounts.iter().filter(|a| a["patient_identifier"] == *nhs).count(),
            1,
            "{nhs}"
        );
    }
    assert_no_duplicate_creations(&sim_url).await;
}

#[tokio::test]
async fn linkage_keys_outlive_a_rotation_of_the_key_that_seals_them() {
    use gp_online_gateway::crypto::SecretBox;
    let (mut settings, db, data) = test_settings();
    fast_retries(&mut settings);
    let old = SecretBox::generate_key();
    settings.secrets.linkage_key_encryption_key = Some(old.clone());
    let app = TestApp::spawn_on(settings.clone(), db, data).await;
    let token = app.token("staff-emis");
    register_lucy_and_wait(&app, &token).await;
    let letter = "/Patient/patient-lucy-evans/$registration-letter";
    let (status, _, before) = app.get(letter, &token).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let (db, data) = app.kill().await;

    // A new key seals from now on; the old one is kept to open what it sealed.
    settings.secrets.linkage_key_encryption_key = Some(SecretBox::generate_key());
    settings.secrets.previous_linkage_key_encryption_keys = vec![old];
    let rotated = settings.clone();
    let report = tokio::task::spawn_blocking(move || gp_online_gateway::cli::reencrypt_secrets(&rotated))
        .await
        .unwrap()
        .unwrap();
    assert!(report.resealed >= 1, "Lucy's key at least");
    assert_eq!(report.skipped, 0);
    let rotated = settings.clone();
    let again = tokio::task::spawn_blocking(move || gp_online_gateway::cli::reencrypt_secrets(&rotated))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.resealed, again.current), (0, report.resealed + report.current));

    // With the old key gone altogether, the letter still shows the same linkage key.
    settings.secrets.previous_linkage_key_encryption_keys.clear();
    let app = TestApp::spawn_on(settings, db, data).await;
    let (status, _, after) = app.get(letter, &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["linkageKey"], before["linkageKey"]);
}

#[tokio::test]
async fn the_simulators_remember_their_accounts_across_a_restart() {
    let (mut settings, db, data) = test_settings();
    fast_retries(&mut settings);
    let app = TestApp::spawn_on(settings.clone(), db, data).await;
    let token = app.token("staff-emis");
    register_lucy_and_wait(&app, &token).await;
    let before = sim_account(&app, "emis", "9990000158").await;
    let tpp_before = sim_accounts(&app, "tpp").await.len();
    assert!(tpp_before > 0, "the seed's TPP-like accounts");
    let (db, data) = app.kill().await;

    let app = TestApp::spawn_on(settings, db, data).await;
    let after = sim_account(&app, "emis", "9990000158").await;
    assert_eq!(after["account_id"], before["account_id"]);
    assert_eq!(after["record_level"], before["record_level"]);
    assert_eq!(sim_accounts(&app, "tpp").await.len(), tpp_before);
    // The letter's details still verify at the supplier after the restart.
    let (status, _, letter) = app
        .get(
            "/Patient/patient-lucy-evans/$registration-letter",
            &app.token("staff-emis"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{letter}");
    assert_eq!(letter["accountId"], before["account_id"]);
}

/// Registers Lucy Evans at Riverside and waits until the supplier has her account.
async fn register_lucy_and_wait(app: &TestApp, token: &str) {
    let (status, accepted) = register(
        app,
        token,
        "patient-lucy-evans",
        &registration("documents-in-person", None, "summary", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    wait_for_task(app, token, &task_id(&accepted), "completed", Duration::from_secs(10)).await;
}
