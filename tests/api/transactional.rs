//! Appointments and repeat prescriptions from outside: patients and proxies at each service
//! level on both suppliers, two clients racing for one slot, retries, refusals that book or
//! request nothing, and a supplier that is slow, failing or malformed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, audit_rows, outcome_code, send};
use crate::record::active;

fn entries(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
        .collect()
}

fn week() -> String {
    let today = chrono::Utc::now().date_naive();
    format!(
        "start=ge{}&start=le{}&_count=100",
        today + chrono::Duration::days(1),
        today + chrono::Duration::days(10)
    )
}

fn booking(slot: &str, patient: Option<&str>, reason: Option<&str>) -> Value {
    let mut b = json!({"resourceType": "Appointment", "status": "booked",
        "slot": [{"reference": format!("Slot/{slot}")}],
        "participant": [{"status": "accepted"}]});
    if let Some(p) = patient {
        b["participant"][0]["actor"] = json!({"reference": format!("Patient/{p}")});
    }
    if let Some(r) = reason {
        b["reasonCode"] = json!([{"text": r}]);
    }
    b
}

async fn book_with_id(app: &TestApp, token: &str, body: &Value, request_id: &str) -> (StatusCode, Value) {
    let (s, _, b) = send(
        app.request(Method::POST, "/Appointment", Some(token))
            .header("content-type", "application/fhir+json")
            .header("X-Request-ID", request_id)
            .json(body),
    )
    .await;
    (s, b)
}

async fn cancel(app: &TestApp, token: &str, id: &str, reason: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"resourceType": "Appointment", "id": id, "status": "cancelled"});
    if let Some(r) = reason {
        body["cancelationReason"] = json!({"text": r});
    }
    let (s, _, b) = send(
        app.request(Method::PUT, &format!("/Appointment/{id}"), Some(token))
            .header("content-type", "application/fhir+json")
            .json(&body),
    )
    .await;
    (s, b)
}

#[tokio::test]
async fn patients_and_proxies_book_list_and_cancel_on_both_suppliers() {
    let app = TestApp::spawn().await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;

    // EMIS-like: Jane for herself.
    let (s, _, slots) = app.get(&format!("/Slot?{}", week()), &jane).await;
    assert_eq!(s, StatusCode::OK, "{slots}");
    let free = entries(&slots);
    assert!(!free.is_empty(), "{slots}");
    assert!(
        free.iter()
            .all(|s| s["status"] == "free" && s["contained"][0]["actor"][0]["display"].is_string())
    );
    let slot = free[0]["id"].as_str().unwrap().to_owned();
    let (s, booked) = book_with_id(
        &app,
        &jane,
        &booking(&slot, None, Some("Asthma review")),
        "0b6e5a3c-1d2f-4c55-9a77-000000000001",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{booked}");
    assert_eq!(booked["status"], "booked");
    assert_eq!(booked["slot"][0]["reference"], format!("Slot/{slot}"));
    let id = booked["id"].as_str().unwrap().to_owned();
    let (_, _, after) = app.get(&format!("/Slot?{}", week()), &jane).await;
    assert!(
        entries(&after).iter().all(|s| s["id"] != slot.as_str()),
        "a booked slot is not offered"
    );
    let (_, _, mine) = app.get("/Appointment", &jane).await;
    assert!(
        entries(&mine)
            .iter()
            .any(|a| a["id"] == id.as_str() && a["status"] == "booked"),
        "{mine}"
    );
    assert!(
        audit_rows(
            &app,
            "action = 'book-appointment' AND patient_id = 'patient-jane-smith' AND outcome = 'success'"
        )
        .await
            >= 1
    );

    // Cancelling needs a reason; then the slot is free again.
    let (s, b) = cancel(&app, &jane, &id, None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = cancel(&app, &jane, &id, Some("Feeling better")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "cancelled");
    assert_eq!(b["cancelationReason"]["text"], "Feeling better");
    let (_, _, again) = app.get(&format!("/Slot?{}", week()), &jane).await;
    assert!(
        entries(&again).iter().any(|s| s["id"] == slot.as_str()),
        "a cancelled slot is offered again"
    );

    // A stranger naming Jane's appointment, or one that does not exist: the same 404.
    let megan = app.token("proxy-p9");
    let (s1, b1) = cancel(&app, &megan, &id, Some("x")).await;
    let (s2, b2) = cancel(&app, &megan, "patient-jane-smith.0000000000000000", Some("x")).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{b1} {b2}");
    assert_eq!(outcome_code(&b1), outcome_code(&b2));

    // TPP-like: Megan books for Lily, whose practice asks for a reason.
    active(&app, &megan).await;
    let (s, _, lily_slots) = app
        .get(&format!("/Slot?patient=Patient/patient-lily-jones&{}", week()), &megan)
        .await;
    assert_eq!(s, StatusCode::OK, "{lily_slots}");
    let slot = entries(&lily_slots)[0]["id"].as_str().unwrap().to_owned();
    let (s, b) = book_with_id(
        &app,
        &megan,
        &booking(&slot, Some("patient-lily-jones"), None),
        "0b6e5a3c-1d2f-4c55-9a77-000000000002",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(outcome_code(&b), "REASON_REQUIRED");
    let (s, b) = book_with_id(
        &app,
        &megan,
        &booking(&slot, Some("patient-lily-jones"), Some("Ear ache")),
        "0b6e5a3c-1d2f-4c55-9a77-000000000003",
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let lily_appointment = b["id"].as_str().unwrap().to_owned();
    assert!(lily_appointment.starts_with("patient-lily-jones."));
    // Jane naming Lily's appointment under her own record (the supplier is asked, as Jane may
    // cancel her own) is refused like an appointment that does not exist.
    let (_, suffix) = lily_appointment.split_once('.').unwrap();
    let (s1, b1) = cancel(&app, &jane, &format!("patient-jane-smith.{suffix}"), Some("x")).await;
    let (s2, b2) = cancel(&app, &jane, "patient-jane-smith.0000000000000000", Some("x")).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{b1} {b2}");
    assert_eq!(outcome_code(&b1), outcome_code(&b2));
    assert_eq!(
        b1["issue"][0]["diagnostics"], b2["issue"][0]["diagnostics"],
        "{b1} {b2}"
    );
    let (_, _, lilys) = app.get("/Appointment?patient=Patient/patient-lily-jones", &megan).await;
    assert_eq!(entries(&lilys).len(), 1, "{lilys}");
    assert!(
        audit_rows(
            &app,
            "action = 'book-appointment' AND patient_id = 'patient-lily-jones' AND outcome = 'success'"
        )
        .await
            >= 1
    );
    // Jane cannot see Lily's: like a patient that does not exist.
    let (s, _, b) = app.get("/Appointment?patient=Patient/patient-lily-jones", &jane).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _, _) = app.get("/Appointment?patient=Patient/no-such-patient", &jane).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Bad ranges.
    for q in [
        "start=ge2026-02-10&start=le2026-02-01",
        "start=ge2026-01-01&start=le2026-03-01",
        "start=le2026-01-01",
        "start=ge2026-02-01junk&start=le2026-02-07",
        "start=sa2026-02-01&start=le2026-02-07",
    ] {
        let (s, _, b) = app.get(&format!("/Slot?{q}"), &jane).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
    }
}

#[tokio::test]
async fn one_slot_is_booked_once_whoever_races_or_retries() {
    let app = TestApp::spawn().await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    let (_, _, slots) = app.get(&format!("/Slot?{}", week()), &jane).await;
    let slot = entries(&slots)[0]["id"].as_str().unwrap().to_owned();
    let body = booking(&slot, None, None);
    let (a, b) = tokio::join!(
        book_with_id(&app, &jane, &body, "1b6e5a3c-1d2f-4c55-9a77-00000000000a"),
        book_with_id(&app, &jane, &body, "1b6e5a3c-1d2f-4c55-9a77-00000000000b"),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{a:?} {b:?}");
    let refused = if a.0 == StatusCode::CONFLICT { &a.1 } else { &b.1 };
    assert_eq!(outcome_code(refused), "SLOT_UNAVAILABLE");
    let won = if a.0 == StatusCode::CREATED { &a } else { &b };
    let won_id = if a.0 == StatusCode::CREATED {
        "1b6e5a3c-1d2f-4c55-9a77-00000000000a"
    } else {
        "1b6e5a3c-1d2f-4c55-9a77-00000000000b"
    };
    // The winner's retry answers the same booking.
    let (s, again) = book_with_id(&app, &jane, &body, won_id).await;
    assert_eq!(s, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], won.1["id"]);
    let (_, _, mine) = app.get("/Appointment", &jane).await;
    let of_slot = entries(&mine)
        .into_iter()
        .filter(|a| a["slot"][0]["reference"] == format!("Slot/{slot}"))
        .count();
    assert_eq!(of_slot, 1, "{mine}");

    // A slot that does not exist is refused like a taken one; nothing is booked.
    let (s, b) = book_with_id(
        &app,
        &jane,
        &booking("no-such-slot", None, None),
        "1b6e5a3c-1d2f-4c55-9a77-00000000000c",
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");

    // A booking whose answer was lost at the supplier is found again, not booked twice.
    let (_, _, slots) = app.get(&format!("/Slot?{}", week()), &jane).await;
    let slot = entries(&slots)[0]["id"].as_str().unwrap().to_owned();
    app.faults("emis", json!({"drop_response_rate": 0.5})).await;
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        let (s, b) = book_with_id(
            &app,
            &jane,
            &booking(&slot, None, None),
            "1b6e5a3c-1d2f-4c55-9a77-00000000000d",
        )
        .await;
        outcomes.push((s, b));
        if s == StatusCode::CREATED {
            break;
        }
    }
    app.faults("emis", json!({"drop_response_rate": 0.0})).await;
    assert!(outcomes.iter().any(|(s, _)| *s == StatusCode::CREATED), "{outcomes:?}");
    assert!(outcomes.iter().all(|(s, _)| *s != StatusCode::CONFLICT), "{outcomes:?}");
    let (_, _, mine) = app.get("/Appointment", &jane).await;
    let of_slot = entries(&mine)
        .into_iter()
        .filter(|a| a["slot"][0]["reference"] == format!("Slot/{slot}") && a["status"] == "booked")
        .count();
    assert_eq!(of_slot, 1, "{mine}");
}

#[tokio::test]
async fn repeats_are_requested_only_as_the_supplier_and_the_level_allow() {
    let app = TestApp::spawn().await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    let (s, _, plans) = app.get("/MedicationRequest?intent=plan", &jane).await;
    assert_eq!(s, StatusCode::OK, "{plans}");
    let ids: Vec<&str> = entries(&plans).iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["rpt-jane-salbutamol"],
        "past review and not issuable online are left out"
    );
    assert_eq!(entries(&plans)[0]["intent"], "plan");

    let order = |ids: &[&str], note: Option<&str>| {
        let mut b = json!({"resourceType": "MedicationRequest", "intent": "order", "status": "active",
            "basedOn": ids.iter().map(|i| json!({"reference": format!("MedicationRequest/{i}")})).collect::<Vec<_>>()});
        if let Some(n) = note {
            b["note"] = json!([{"text": n}]);
        }
        b
    };
    let (s, _, made) = app
        .post_fhir(
            "/MedicationRequest",
            &jane,
            &order(&["rpt-jane-salbutamol"], Some("Running low")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    assert_eq!(entries(&made).len(), 1);
    let group = made["identifier"]["value"].as_str().unwrap().to_owned();

    // Not a current repeat, another patient's, or none at all: refused, nothing requested.
    for (ids, code, status) in [
        (
            vec!["rpt-jane-sertraline"],
            "MEDICATION_NOT_REQUESTABLE",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            vec!["rpt-amir-ramipril"],
            "MEDICATION_NOT_REQUESTABLE",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            vec!["rpt-jane-salbutamol", "rpt-jane-diazepam"],
            "MEDICATION_NOT_REQUESTABLE",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (vec![], "INVALID_RESOURCE", StatusCode::BAD_REQUEST),
    ] {
        let (s, _, b) = app.post_fhir("/MedicationRequest", &jane, &order(&ids, None)).await;
        assert_eq!(s, status, "{ids:?}: {b}");
        assert_eq!(outcome_code(&b), code, "{ids:?}");
    }
    let (_, _, orders) = app.get("/MedicationRequest?intent=order", &jane).await;
    assert_eq!(entries(&orders).len(), 1, "only the one request was made: {orders}");
    assert_eq!(orders["total"], 1, "the total counts the resources: {orders}");
    let status_of = |orders: &Value| {
        entries(orders)[0]["extension"][0]["valueCode"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status_of(&orders), "requested");
    assert_eq!(entries(&orders)[0]["note"][0]["text"], "Running low");

    // The practice approves it: the list says so.
    let r = app
        .client
        .put(format!("{}/admin/prescription-requests/{group}", app.simulator("emis")))
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (_, _, orders) = app.get("/MedicationRequest?intent=order", &jane).await;
    assert_eq!(status_of(&orders), "approved");

    // View lists but cannot request or book.
    let staff = app.token("staff-emis");
    let (s, _, b) = app
        .post_fhir(
            "/Patient/patient-jane-smith/$set-online-access",
            &staff,
            &json!({"resourceType": "Parameters", "parameter": [
                {"name": "services", "part": [
                    {"name": "appointments", "valueCode": "view"},
                    {"name": "prescriptions", "valueCode": "view"}
                ]},
                {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}
            ]}),
        )
        .await;
    assert!(s.is_success(), "{b}");
    let (s, _, _) = app.get("/MedicationRequest?intent=plan", &jane).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, b) = app
        .post_fhir("/MedicationRequest", &jane, &order(&["rpt-jane-salbutamol"], None))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(outcome_code(&b), "SERVICE_NOT_GRANTED");
    let (_, _, slots) = app.get(&format!("/Slot?{}", week()), &jane).await;
    let slot = entries(&slots)[0]["id"].as_str().unwrap().to_owned();
    let (s, b) = book_with_id(
        &app,
        &jane,
        &booking(&slot, None, None),
        "2b6e5a3c-1d2f-4c55-9a77-000000000001",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");

    // A care home acting for a resident with prescriptions only: requests, but sees no slots.
    let home = app.token("carehome-p9");
    let (s, _, b) = app
        .get(&format!("/Slot?patient=Patient/patient-edith-clarke&{}", week()), &home)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(outcome_code(&b), "SERVICE_NOT_GRANTED");
    let mut for_edith = order(&["rpt-edith-donepezil"], None);
    for_edith["subject"] = json!({"reference": "Patient/patient-edith-clarke"});
    let (s, _, b) = app.post_fhir("/MedicationRequest", &home, &for_edith).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

#[tokio::test]
async fn a_supplier_that_fails_is_a_clear_error() {
    let app = TestApp::spawn_with(|s| s.suppliers.read_timeout_ms = 300).await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    app.faults("emis", json!({"down": true})).await;
    let (s, _, b) = app.get(&format!("/Slot?{}", week()), &jane).await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::BAD_GATEWAY, "SUPPLIER_ERROR"),
        "{b}"
    );
    app.faults("emis", json!({"down": false, "latency_ms": 800})).await;
    let (s, _, b) = app.get("/MedicationRequest?intent=plan", &jane).await;
    assert_eq!(
        (s, outcome_code(&b)),
        (StatusCode::GATEWAY_TIMEOUT, "SUPPLIER_TIMEOUT"),
        "{b}"
    );
    app.faults("emis", json!({"latency_ms": 0, "malformed_rate": 1.0}))
        .await;
    let (s, _, b) = app.get("/Appointment", &jane).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
}

#[tokio::test]
async fn a_proxy_whose_role_ends_between_listing_and_booking_books_nothing() {
    let app = TestApp::spawn().await;
    let megan = app.token("proxy-p9");
    active(&app, &megan).await;
    let (s, _, slots) = app
        .get(&format!("/Slot?patient=Patient/patient-lily-jones&{}", week()), &megan)
        .await;
    assert_eq!(s, StatusCode::OK, "{slots}");
    let slot = entries(&slots)[0]["id"].as_str().unwrap().to_owned();
    // The practice ends the role (a safeguarding concern) while Megan chooses.
    let (s, _, b) = send(
        app.vrs(
            Method::PATCH,
            "/Consent/1a7e0000-0000-4000-8000-000000000001",
            Some(&app.token("staff-tpp")),
        )
        .header("content-type", "application/json-patch+json")
        .body(
            json!([
                {"op": "replace", "path": "/status", "value": "inactive"},
                {"op": "add", "path": "/extension/-", "value": {
                    "url": "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason",
                    "valueCodeableConcept": {"coding": [{
                        "system": "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason",
                        "code": "ROLE_DEACTIVATED_SAFEGUARDING"}]}}}
            ])
            .to_string(),
        ),
    )
    .await;
    assert!(s.is_success(), "{s} {b}");
    let (s, b) = book_with_id(
        &app,
        &megan,
        &booking(&slot, Some("patient-lily-jones"), Some("Ear ache")),
        "3b6e5a3c-1d2f-4c55-9a77-000000000001",
    )
    .await;
    assert!(s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND, "{s} {b}");
    // Nothing was booked: the slot is still offered to Lily's practice.
    let (_, _, again) = app.get(&format!("/Slot?{}", week()), &megan).await;
    assert!(
        entries(&again).iter().any(|s| s["id"] == slot.as_str()),
        "the slot was not booked: {again}"
    );
}
