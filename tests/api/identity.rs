//! NHS login identity: patient tokens, assurance gates, identity bindings, `$my-access`,
//! the identity-provider operations and the audit trail.

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::registration::{part, register, registration, wait_for_task};

fn patient_claims(sub: &str, nhs: &str, level: &str, vot: &str) -> Value {
    json!({
        "sub": sub,
        "nhs_number": nhs,
        "identity_proofing_level": level,
        "vot": vot,
        "birthdate": "1980-05-01",
        "family_name": "Smith",
        "gp_registration_details": {"gp_ods_code": "A81001"}
    })
}

fn access_entries(params: &Value) -> Vec<Value> {
    params["parameter"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["name"] == "access")
        .collect()
}

fn entry_part<'a>(entry: &'a Value, name: &str) -> &'a Value {
    entry["part"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

fn service(entry: &Value, name: &str) -> bool {
    entry_part(entry, "services")["part"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == name))
        .and_then(|x| x["valueBoolean"].as_bool())
        .unwrap_or(false)
}

/// `$my-access` once the seeded account has been confirmed by the supplier.
async fn my_access_when_active(app: &TestApp, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = app.get("/$my-access", token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entries = access_entries(&body);
        if entries
            .first()
            .is_some_and(|e| entry_part(e, "accountStatus")["valueCode"] == "active")
        {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "account never active: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_p9_patient_sees_their_own_access_and_record() {
    let app = TestApp::spawn().await;
    let token = app.token("patient-p9");
    let body = my_access_when_active(&app, &token).await;
    let entries = access_entries(&body);
    assert_eq!(entries.len(), 1);
    let me = &entries[0];
    assert_eq!(
        entry_part(me, "patient")["valueReference"]["reference"],
        "Patient/patient-jane-smith"
    );
    assert_eq!(
        entry_part(me, "patient")["valueReference"]["identifier"]["value"],
        "9990000018"
    );
    assert_eq!(entry_part(me, "relationship")["valueCode"], "self");
    assert_eq!(entry_part(me, "practice")["valueString"], "A81001");
    assert!(service(me, "appointments") && service(me, "prescriptions") && service(me, "messaging"));
    let record = &entry_part(me, "recordAccess")["part"];
    assert_eq!(record[0]["valueCode"], "full");
    assert_eq!(record[1]["valueDate"], "2024-01-01");

    let (status, _, patient) = app.get("/Patient/patient-jane-smith", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patient["identifier"][0]["value"], "9990000018");
    let (_, _, bundle) = app
        .get(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
            &token,
        )
        .await;
    assert_eq!(bundle["total"], 1);
    let (_, _, other) = app
        .get(
            "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000034",
            &token,
        )
        .await;
    assert_eq!(other["total"], 0, "another patient's number finds nothing");

    // Another patient's record and a record that does not exist look the same.
    let (s1, _, existing) = app.get("/Patient/patient-amir-khan", &token).await;
    let (s2, _, missing) = app.get("/Patient/no-such-patient", &token).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(existing["issue"], missing["issue"]);

    // Staff see each decision in the audit trail, with the assurance it was made at.
    let (status, _, audit) = app
        .get(
            "/AuditEvent?patient=Patient/patient-jane-smith",
            &app.token("staff-emis"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let events = audit["entry"].as_array().unwrap();
    let read = events
        .iter()
        .map(|e| &e["resource"])
        .find(|e| e["subtype"][0]["code"] == "read-patient" && e["agent"][0]["type"]["text"] == "patient")
        .expect("the patient's read is audited");
    assert_eq!(read["outcome"], "0");
    assert_eq!(read["entity"][0]["what"]["reference"], "Patient/patient-jane-smith");
    assert!(
        read["entity"][0]["detail"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["type"] == "vot" && d["valueString"] == "P9.Cp.Cd")
    );
    assert!(
        read["agent"][0]["who"]["identifier"]["value"]
            .as_str()
            .unwrap()
            .contains("nhslogin-sub-jane-smith")
    );
}

#[tokio::test]
async fn assurance_levels_and_vectors_of_trust_are_enforced() {
    let app = TestApp::spawn().await;
    // P5: non-clinical only.
    let p5 = app.token("patient-p5");
    let (status, _, _) = app.get("/$my-access", &p5).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = app.get("/Patient/patient-amir-khan", &p5).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "INSUFFICIENT_IDENTITY_ASSURANCE");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // P0: nothing patient-identifiable.
    let p0 = app.token("patient-p0");
    for path in ["/$my-access", "/Patient/patient-priya-patel", "/Patient"] {
        let (status, _, body) = app.get(path, &p0).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(outcome_code(&body), "INSUFFICIENT_IDENTITY_ASSURANCE");
    }
    // A high level with a vector of trust outside the accepted profiles (single factor).
    let weak = app.token_with(
        IssuerKind::Patient,
        patient_claims("nhslogin-sub-jane-smith", "9990000018", "P9", "P9.Cp"),
    );
    let (status, _, body) = app.get("/Patient/patient-jane-smith", &weak).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["issue"][0]["details"]["text"].as_str().unwrap().contains("P9.Cp"));
    // A vector of trust that contradicts the proofing level is a broken token.
    let liar = app.token_with(
        IssuerKind::Patient,
        patient_claims("nhslogin-sub-jane-smith", "9990000018", "P9", "P5.Cp.Cd"),
    );
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &liar).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Staff and system tokens have no $my-access.
    let (status, _, _) = app.get("/$my-access", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Every refusal was audited.
    assert!(audit_rows(&app, "actor_kind = 'patient' AND outcome = 'denied'").await >= 5);
}

#[tokio::test]
async fn a_known_subject_with_a_different_nhs_number_is_refused_and_audited() {
    let app = TestApp::spawn().await;
    let (status, _, _) = app.get("/$my-access", &app.token("patient-p9")).await;
    assert_eq!(status, StatusCode::OK);
    let other = app.token_with(
        IssuerKind::Patient,
        patient_claims("nhslogin-sub-jane-smith", "9990000034", "P9", "P9.Cp.Cd"),
    );
    for path in ["/$my-access", "/Patient/patient-amir-khan", "/Patient"] {
        let (status, _, body) = app.get(path, &other).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(outcome_code(&body), "IDENTITY_MISMATCH");
    }
    assert!(audit_rows(&app, "code = 'IDENTITY_MISMATCH'").await >= 3);
}

#[tokio::test]
async fn forged_and_degraded_patient_tokens_are_refused_with_an_audit_event() {
    let app = TestApp::spawn().await;
    let good = gp_online_gateway::dev::persona("patient-p9").unwrap().claims();
    let mint = |claims: Value| {
        app.idp
            .mint(IssuerKind::Patient, "gp-online-gateway", 300, &claims)
            .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let mut expired = good.clone();
    expired["exp"] = json!(now - 600);
    expired["iat"] = json!(now - 1200);
    let mut future = good.clone();
    future["nbf"] = json!(now + 600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut no_nhs = good.clone();
    no_nhs.as_object_mut().unwrap().remove("nhs_number");
    let mut bad_nhs = good.clone();
    bad_nhs["nhs_number"] = json!("9990000019");
    let valid = mint(good.clone());
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let tampered = parts.join(".");
    use base64::Engine;
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        valid.split('.').nth(1).unwrap()
    );
    let before = audit_rows(&app, "rule = 'authentication'").await;
    let tokens = [
        mint(expired),
        mint(future),
        mint(wrong_aud),
        mint(no_nhs),
        mint(bad_nhs),
        tampered,
        none,
    ];
    for token in &tokens {
        for path in ["/$my-access", "/Patient/patient-jane-smith"] {
            let (status, _, body) = app.get(path, token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
            assert_eq!(outcome_code(&body), "INVALID_ACCESS_TOKEN");
        }
    }
    let after = audit_rows(&app, "rule = 'authentication' AND outcome = 'denied'").await;
    assert_eq!(
        after - before,
        i64::try_from(tokens.len() * 2).unwrap(),
        "every refusal is audited"
    );
}

#[tokio::test]
async fn the_binding_follows_the_patient_to_a_new_practice_and_old_access_ends() {
    let app = TestApp::spawn().await;
    let token = app.token("patient-p9");
    my_access_when_active(&app, &token).await;
    // The patient registers at Moorland Surgery: the record moves.
    let staff = app.staff_at(&["A81001", "B82005"]);
    let (_, headers, mut record) = app.get("/Patient/patient-jane-smith", &staff).await;
    record["generalPractitioner"] = json!([{"reference": "Organization/practice-b82005"}]);
    let (status, _, moved) = send(
        app.request(Method::PUT, "/Patient/patient-jane-smith", Some(&staff))
            .header("content-type", "application/fhir+json")
            .header("if-match", headers["etag"].to_str().unwrap())
            .body(record.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");

    let (_, _, body) = app.get("/$my-access", &token).await;
    let me = &access_entries(&body)[0];
    assert_eq!(entry_part(me, "practice")["valueString"], "B82005");
    assert_eq!(entry_part(me, "accountStatus")["valueCode"], "ended");
    assert!(!service(me, "appointments"), "access at the old practice has ended");
    assert_eq!(entry_part(me, "recordAccess")["part"][0]["valueCode"], "none");
    // The old practice's staff no longer see the record; the new practice's do.
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &app.token("staff-emis")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.get("/Patient/patient-jane-smith", &app.token("staff-tpp")).await;
    assert_eq!(status, StatusCode::OK);
}

fn linkage(ods: &str, account: &str, key: &str, family: &str, dob: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "odsCode", "valueString": ods},
        {"name": "accountId", "valueString": account},
        {"name": "linkageKey", "valueString": key},
        {"name": "familyName", "valueString": family},
        {"name": "birthDate", "valueDate": dob}
    ]})
}

/// Registers Lucy Evans, prints her letter and returns (account id, linkage key).
async fn lucy_with_letter(app: &TestApp) -> (String, String) {
    let staff = app.token("staff-emis");
    let (status, accepted) = register(
        app,
        &staff,
        "patient-lucy-evans",
        &registration("documents-in-person", None, "detailed-coded", None),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let task = part(&accepted, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(app, &staff, &task, "completed", Duration::from_secs(10)).await;
    let (_, _, letter) = app
        .get("/Patient/patient-lucy-evans/$registration-letter", &staff)
        .await;
    (
        letter["accountId"].as_str().unwrap().to_owned(),
        letter["linkageKey"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn register_print_verify_link_and_see_the_granted_services() {
    let app = TestApp::spawn().await;
    let (account, key) = lucy_with_letter(&app).await;
    let idp = app.token("system-idp");

    // The identity provider checks the letter the patient typed in...
    let (status, _, verified) = app
        .post_fhir(
            "/$verify-linkage",
            &idp,
            &linkage("A81001", &account, &key, "evans", "1988-08-14"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(part(&verified, "nhsNumber")["valueString"], "9990000158");
    assert_eq!(part(&verified, "accountStatus")["valueCode"], "active");

    // ...uplifts its user and tells the gateway who they are...
    let issuer = app.idp.issuer(IssuerKind::Patient);
    let link = json!({"resourceType": "Parameters", "parameter": [
        {"name": "issuer", "valueString": issuer},
        {"name": "sub", "valueString": "nhslogin-sub-lucy"},
        {"name": "nhsNumber", "valueString": "9990000158"},
        {"name": "identityProofingLevel", "valueCode": "P9"},
        {"name": "odsCode", "valueString": "A81001"}
    ]});
    let (status, _, linked) = app.post_fhir("/$link-identity", &idp, &link).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    assert_eq!(
        part(&linked, "patient")["valueReference"]["reference"],
        "Patient/patient-lucy-evans"
    );
    assert_eq!(part(&linked, "source")["valueCode"], "link-identity");

    // ...and Lucy's app sees what the practice granted.
    let lucy = app.token_with(
        IssuerKind::Patient,
        json!({
            "sub": "nhslogin-sub-lucy", "nhs_number": "9990000158", "identity_proofing_level": "P9", "vot": "P9.Cp.Cd"
        }),
    );
    let (status, _, body) = app.get("/$my-access", &lucy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = &access_entries(&body)[0];
    assert_eq!(entry_part(me, "accountStatus")["valueCode"], "active");
    assert!(service(me, "appointments") && service(me, "prescriptions") && !service(me, "messaging"));
    // Detailed coded access waits for a review, but A81001 is an opt-out practice: an adult
    // account holder has full prospective access meanwhile.
    assert_eq!(entry_part(me, "recordAccess")["part"][0]["valueCode"], "full");

    // The same subject cannot be linked to someone else afterwards.
    let mut other = link.clone();
    other["parameter"][2]["valueString"] = json!("9990000042");
    let (status, _, body) = app.post_fhir("/$link-identity", &idp, &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "IDENTITY_MISMATCH");
    // A patient not registered at the named practice.
    let mut elsewhere = link.clone();
    elsewhere["parameter"][1]["valueString"] = json!("another-sub");
    elsewhere["parameter"][4]["valueString"] = json!("B82005");
    let (status, _, body) = app.post_fhir("/$link-identity", &idp, &elsewhere).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outcome_code(&body), "PATIENT_NOT_REGISTERED");
}

#[tokio::test]
async fn verify_linkage_gives_one_answer_for_any_wrong_detail_and_locks_out() {
    let app = TestApp::spawn_with(|s| s.identity.linkage_max_failures = 3).await;
    let (account, key) = lucy_with_letter(&app).await;
    let idp = app.token("system-idp");
    let wrong = [
        linkage("A81001", &account, "WRONGKEY2345678", "Evans", "1988-08-14"),
        linkage("A81001", "NOSUCHACCOUNT", &key, "Evans", "1988-08-14"),
        linkage("A81001", &account, &key, "Jones", "1988-08-14"),
        linkage("A81001", &account, &key, "Evans", "1988-08-15"),
        linkage("Z99999", &account, &key, "Evans", "1988-08-14"),
    ];
    let mut bodies = Vec::new();
    for (i, body) in wrong.iter().enumerate() {
        let (status, _, outcome) = app.post_fhir("/$verify-linkage", &idp, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "case {i}: {outcome}");
        assert_eq!(outcome_code(&outcome), "LINKAGE_DETAILS_INVALID");
        bodies.push(outcome["issue"].clone());
        if i == 1 {
            // Reset the right account's counter so the lockout below is counted from zero.
            let (status, _, _) = app
                .post_fhir(
                    "/$verify-linkage",
                    &idp,
                    &linkage("A81001", &account, &key, "Evans", "1988-08-14"),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "uniform refusals: {bodies:?}");

    // Three failures in a row lock the Account ID, even for the right details.
    for _ in 0..3 {
        app.post_fhir(
            "/$verify-linkage",
            &idp,
            &linkage("A81001", &account, "WRONGKEY2345678", "Evans", "1988-08-14"),
        )
        .await;
    }
    let (status, headers, outcome) = app
        .post_fhir(
            "/$verify-linkage",
            &idp,
            &linkage("A81001", &account, &key, "Evans", "1988-08-14"),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(outcome_code(&outcome), "LINKAGE_LOCKED");
    assert!(headers.contains_key("retry-after"));
    // Account IDs that do not exist lock the same way, so the lock reveals nothing.
    for _ in 0..3 {
        app.post_fhir(
            "/$verify-linkage",
            &idp,
            &linkage("A81001", "NOSUCHACCOUNT2", &key, "Evans", "1988-08-14"),
        )
        .await;
    }
    let (status, _, _) = app
        .post_fhir(
            "/$verify-linkage",
            &idp,
            &linkage("A81001", "NOSUCHACCOUNT2", &key, "Evans", "1988-08-14"),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn verify_linkage_reports_disabled_accounts_expired_keys_and_closed_practices() {
    let app = TestApp::spawn().await;
    let (account, key) = lucy_with_letter(&app).await;
    let idp = app.token("system-idp");
    let staff = app.token("staff-emis");
    let good = linkage("A81001", &account, &key, "Evans", "1988-08-14");

    // Only identity-provider clients with the scope may ask.
    let (status, _, _) = app.post_fhir("/$verify-linkage", &staff, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unscoped = app.token_with(
        IssuerKind::System,
        json!({"sub": "other-client", "client_id": "other-client", "scope": "something-else"}),
    );
    let (status, _, _) = app.post_fhir("/$verify-linkage", &unscoped, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Disabled.
    let (status, _, _) = app
        .post_fhir(
            "/Patient/patient-lucy-evans/$disable-online-account",
            &staff,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "shared device"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, outcome) = app.post_fhir("/$verify-linkage", &idp, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&outcome), "ONLINE_ACCOUNT_DISABLED");
    let (status, _, enabled) = app
        .post_fhir("/Patient/patient-lucy-evans/$enable-online-account", &staff, &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let task = part(&enabled, "task")["valueReference"]["reference"]
        .as_str()
        .unwrap()
        .trim_start_matches("Task/")
        .to_owned();
    wait_for_task(&app, &staff, &task, "completed", Duration::from_secs(10)).await;

    // Expired: the letter was printed more than 14 days ago.
    let past = chrono::Utc::now().naive_utc() - chrono::Duration::days(1);
    execute_sql(
        &app,
        format!(
            "UPDATE online_accounts SET letter_expires_at = '{}' WHERE patient_id = 'patient-lucy-evans'",
            past.format("%Y-%m-%d %H:%M:%S")
        ),
    )
    .await;
    let (status, _, outcome) = app.post_fhir("/$verify-linkage", &idp, &good).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(outcome_code(&outcome), "LINKAGE_KEY_EXPIRED");
    let (status, _, outcome) = app
        .get("/Patient/patient-lucy-evans/$registration-letter", &staff)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{outcome}");
    assert_eq!(outcome_code(&outcome), "LINKAGE_KEY_EXPIRED");

    // The practice switches online services off.
    let (_, headers, mut org) = app.get("/Organization/practice-a81001", &staff).await;
    org["extension"][1]["extension"][0]["valueBoolean"] = json!(false);
    let (status, _, _) = send(
        app.request(Method::PUT, "/Organization/practice-a81001", Some(&staff))
            .header("content-type", "application/fhir+json")
            .header("if-match", headers["etag"].to_str().unwrap())
            .body(org.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, outcome) = app.post_fhir("/$verify-linkage", &idp, &good).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outcome_code(&outcome), "PRACTICE_NOT_ENABLED");
}

#[tokio::test]
async fn patients_without_an_active_account_are_refused_their_record() {
    let app = TestApp::spawn().await;
    let token = app.token("patient-p9");
    my_access_when_active(&app, &token).await;
    let staff = app.token("staff-emis");
    let (status, _, _) = app
        .post_fhir(
            "/Patient/patient-jane-smith/$disable-online-account",
            &staff,
            &json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "misuse"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, body) = app.get("/Patient/patient-jane-smith", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "ONLINE_ACCOUNT_DISABLED");
    let (status, _, body) = app.get("/Patient", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // $my-access still tells the app why.
    let (_, _, access) = app.get("/$my-access", &token).await;
    let me = &access_entries(&access)[0];
    assert_eq!(entry_part(me, "accountStatus")["valueCode"], "disabled");
    assert_eq!(entry_part(me, "reason")["valueString"], "misuse");
    assert!(!service(me, "appointments"));
    assert!(audit_rows(&app, "code = 'ONLINE_ACCOUNT_DISABLED' AND actor_kind = 'patient'").await >= 2);

    // Lucy is registered at the practice but has no online account.
    let lucy = app.token_with(
        IssuerKind::Patient,
        json!({
            "sub": "nhslogin-sub-lucy", "nhs_number": "9990000158", "identity_proofing_level": "P9", "vot": "P9.Cp.Cd"
        }),
    );
    let (status, _, body) = app.get("/Patient/patient-lucy-evans", &lucy).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outcome_code(&body), "NO_ACTIVE_ONLINE_ACCOUNT");
}

#[tokio::test]
async fn the_audit_trail_is_searchable_by_date_and_detects_tampering() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    for _ in 0..3 {
        app.get("/Patient/patient-amir-khan", &staff).await;
    }
    let today = chrono::Utc::now().date_naive();
    let (status, _, found) = app
        .get(&format!("/AuditEvent?patient=patient-amir-khan&date=ge{today}"), &staff)
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(found["total"].as_i64().unwrap() >= 3);
    let (_, _, none) = app
        .get(&format!("/AuditEvent?patient=patient-amir-khan&date=lt{today}"), &staff)
        .await;
    assert_eq!(none["total"], 0);
    // Staff of another practice cannot read this patient's trail, or learn that they exist.
    let (status, _, _) = app
        .get("/AuditEvent?patient=patient-amir-khan", &app.token("staff-tpp"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, _, verified) = app.get("/AuditEvent/$verify", &staff).await;
    assert_eq!(part(&verified, "valid")["valueBoolean"], true, "{verified}");
    assert!(part(&verified, "events")["valueInteger"].as_i64().unwrap() >= 4);

    // Someone edits a row directly in the database.
    execute_sql(
        &app,
        "UPDATE audit_events SET reason = 'nothing to see here' WHERE seq = 2",
    )
    .await;
    // The edit is before the checkpoint the first check left: the full check recomputes it.
    let (_, _, verified) = app.get("/AuditEvent/$verify?mode=full", &staff).await;
    assert_eq!(part(&verified, "valid")["valueBoolean"], false);
    let broken = part(&verified, "firstBroken");
    assert_eq!(entry_part(broken, "seq")["valueInteger"], 2);
}

#[tokio::test]
async fn concurrent_patient_reads_each_see_only_their_own_binding() {
    // Patient reads waiting at the same moment are loaded together: each token must still be
    // decided on its own binding, a mismatched token refused, a proxy answered as a proxy.
    let app = TestApp::spawn().await;
    // The seeded patients with online accounts (made at the supplier after start).
    let people = [
        ("nhslogin-sub-jane-smith", "9990000018", "patient-jane-smith"),
        ("nhslogin-sub-amir-khan", "9990000034", "patient-amir-khan"),
    ];
    for (_, _, id) in people {
        crate::access::wait_for_active_account(&app, id).await;
    }
    let tokens: Vec<(String, &str)> = people
        .iter()
        .map(|(sub, nhs, id)| {
            (
                app.token_with(IssuerKind::Patient, patient_claims(sub, nhs, "P9", "P9.Cp.Cd")),
                *id,
            )
        })
        .collect();
    let proxy = app.token("proxy-p9");
    // First calls bind each token to its record.
    for (token, id) in &tokens {
        let (status, _, body) = app.get(&format!("/Patient/{id}"), token).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }
    let mismatched = app.token_with(
        IssuerKind::Patient,
        patient_claims("nhslogin-sub-jane-smith", "9990000034", "P9", "P9.Cp.Cd"),
    );
    let mut calls = vec![];
    for k in 0..48 {
        let (token, path, expect): (&str, String, StatusCode) = match k % 8 {
            6 => (&mismatched, "/Patient/patient-jane-smith".into(), StatusCode::FORBIDDEN),
            7 => (&proxy, "/Patient/patient-lily-jones".into(), StatusCode::OK),
            i => {
                let (token, id) = &tokens[i % tokens.len()];
                // Someone else's record, read with one's own token, is not there for them.
                if k % 16 == 5 {
                    (token, "/Patient/patient-lucy-evans".into(), StatusCode::NOT_FOUND)
                } else {
                    (token, format!("/Patient/{id}"), StatusCode::OK)
                }
            }
        };
        calls.push((path.clone(), expect, send(app.request(Method::GET, &path, Some(token)))));
    }
    let (expected, requests): (Vec<_>, Vec<_>) = calls.into_iter().map(|(p, e, r)| ((p, e), r)).unzip();
    let results = futures_util::future::join_all(requests).await;
    for ((path, expect), (status, _, body)) in expected.iter().zip(&results) {
        assert_eq!(status, expect, "{path}: {body}");
        if *expect == StatusCode::OK {
            assert_eq!(format!("/Patient/{}", body["id"].as_str().unwrap()), *path);
        }
    }
    assert_trail_verifies(&app).await;
}
