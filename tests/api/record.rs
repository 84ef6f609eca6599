//! The GP record from outside: what each person sees at each level, what is never shown, that a
//! withheld entry leaves no trace, strangers, proxies, searches and documents, the audit trail,
//! and a supplier that is slow, failing or malformed.

use std::time::Duration;

use gp_online_gateway::config::IssuerKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{FREE_NHS_NUMBERS, TestApp, outcome_code};

const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn person(app: &TestApp, nhs: &str) -> String {
    app.token_with(
        IssuerKind::Patient,
        gp_online_gateway::dev::person_claims(&format!("nhslogin-sub-{nhs}"), nhs, "P9.Cp.Cd"),
    )
}

/// Every area, all of it.
fn everything(nhs: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [
        {"name": "patientNHSNumber", "valueIdentifier": {"system": NHS, "value": nhs}},
        {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": true}]},
        {"name": "includeMedication"},
        {"name": "includeConsultations"},
        {"name": "includeProblems"},
        {"name": "includeImmunisations"},
        {"name": "includeInvestigations"},
        {"name": "includeReferrals"},
        {"name": "includeDocuments"}
    ]})
}

async fn structured(app: &TestApp, token: &str, body: &Value) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    app.post_fhir("/Patient/$gpc.getstructuredrecord", token, body).await
}

/// Waits until the person's own account is active (seeded accounts go through the outbox).
pub(crate) async fn active(app: &TestApp, token: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, mine) = app.get("/$my-access", token).await;
        let own = mine["parameter"].as_array().into_iter().flatten().find(|p| {
            p["part"].as_array().is_some_and(|parts| {
                parts
                    .iter()
                    .any(|x| x["name"] == "relationship" && x["valueCode"] == "self")
            })
        });
        if own.is_some_and(|p| {
            p["part"].as_array().is_some_and(|parts| {
                parts
                    .iter()
                    .any(|x| x["name"] == "accountStatus" && x["valueCode"] == "active")
            })
        }) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never active: {mine}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn resources(bundle: &Value) -> Vec<&Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| &x["resource"]).collect())
        .unwrap_or_default()
}

fn of_type<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    resources(bundle)
        .into_iter()
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

fn displays(bundle: &Value) -> String {
    resources(bundle)
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_patient_sees_what_their_access_shows_and_never_what_may_not_be_shown() {
    let app = TestApp::spawn().await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    let (s, headers, bundle) = structured(&app, &jane, &everything("9990000018")).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(bundle["type"], "collection");
    let text = displays(&bundle);
    // Full access from 2024-01-01: the summary whatever its date, the rest from that day, with
    // free text.
    for shown in [
        "Allergy to penicillin",
        "Allergy to adhesive plaster",
        "Amlodipine 5mg tablets",
        "Amoxicillin 500mg capsules",
        "Seasonal influenza vaccination",
        "Referral to cardiology service",
        "HbA1c level",
        "Cardiology clinic letter",
        "Palpitations on exertion",
    ] {
        assert!(text.contains(shown), "{shown} is shown: {text}");
    }
    for withheld in [
        "Hypertensive disorder",
        "Blood pressure reviewed",
        "sister",
        "Draft note",
        "Serum cholesterol",
        "Discharge summary",
        "Chlamydial",
    ] {
        assert!(!text.contains(withheld), "{withheld} is never shown: {text}");
    }
    for supplier_id in [
        "jane-allergy",
        "jane-med",
        "jane-cons",
        "jane-note",
        "jane-doc",
        "jane-result",
        "jane-referral",
    ] {
        assert!(!text.contains(supplier_id), "the supplier's ids are not shown: {text}");
    }
    assert_eq!(of_type(&bundle, "Patient").len(), 1);
    assert_eq!(of_type(&bundle, "Organization").len(), 1);
    // The referral was about a problem recorded before the access date: nothing points at it.
    let referral = &of_type(&bundle, "ServiceRequest")[0];
    assert!(referral.get("reasonReference").is_none(), "{referral}");
    // Every reference in the bundle resolves inside it.
    let ids: Vec<String> = resources(&bundle)
        .iter()
        .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    let mut references = vec![];
    collect_references(&bundle, &mut references);
    for r in references {
        if r.starts_with("Binary/") {
            continue;
        }
        assert!(ids.contains(&r), "{r} is not in the bundle");
    }
    // Each list names exactly what follows it.
    for list in of_type(&bundle, "List") {
        for e in list["entry"].as_array().into_iter().flatten() {
            let target = e["item"]["reference"].as_str().unwrap();
            assert!(ids.contains(&target.to_owned()), "{target}");
        }
    }
    // The disclosure is on Jane's trail: areas and counts, never content.
    let (_, _, trail) = app
        .get(
            "/AuditEvent?patient=patient-jane-smith&action=read-record",
            &app.token("clinician-emis"),
        )
        .await;
    let trail_text = trail.to_string();
    assert!(trail_text.contains("record disclosed"), "{trail}");
    assert!(!trail_text.contains("penicillin"), "no content on the trail: {trail}");
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference"
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_owned());
                }
                collect_references(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn levels_and_the_models_decide_what_each_patient_sees() {
    let app = TestApp::spawn().await;
    // Megan: detailed coded access, no date: coded entries of any date, no free text.
    let megan = app.token("proxy-p9");
    active(&app, &megan).await;
    let (s, _, bundle) = structured(&app, &megan, &everything("9990000069")).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    let text = displays(&bundle);
    assert!(
        text.contains("Hypothyroidism") && text.contains("Serum TSH level"),
        "{text}"
    );
    assert!(!text.contains("Thyroid function normal"), "no free text: {text}");
    assert_eq!(of_type(&bundle, "Encounter").len(), 1);
    // Amir: granted summary, full prospective access from his account's day by the opt-out
    // model: the summary, and nothing older above it.
    let amir = person(&app, "9990000034");
    active(&app, &amir).await;
    let (_, _, bundle) = structured(&app, &amir, &everything("9990000034")).await;
    let text = displays(&bundle);
    assert!(
        text.contains("Allergy to aspirin") && text.contains("Metformin"),
        "{text}"
    );
    assert!(!text.contains("Type 2 diabetes"), "older than his access: {text}");
}

#[tokio::test]
async fn strangers_and_proxies_without_record_access_are_refused_alike() {
    let app = TestApp::spawn().await;
    let stranger = person(&app, FREE_NHS_NUMBERS[0]);
    let (s1, _, b1) = structured(&app, &stranger, &everything("9990000018")).await;
    let (s2, _, b2) = structured(&app, &stranger, &everything(FREE_NHS_NUMBERS[1])).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{b1} {b2}");
    assert_eq!(outcome_code(&b1), outcome_code(&b2));
    assert_eq!(b1["issue"][0]["diagnostics"], b2["issue"][0]["diagnostics"]);
    // Megan acts for Lily, but her role gives no record access.
    let (s, _, b) = structured(&app, &app.token("proxy-p9"), &everything("9990000174")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert_eq!(outcome_code(&b), "SERVICE_NOT_GRANTED");
    // P5 is not enough for the record.
    let (s, _, _) = structured(&app, &app.token("patient-p5"), &everything("9990000034")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Bad parameters are refused with what is wrong.
    let jane = app.token("patient-p9");
    let mut unknown = everything("9990000018");
    unknown["parameter"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "includeDiary"}));
    let (s, _, b) = structured(&app, &jane, &unknown).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(outcome_code(&b), "INVALID_PARAMETER");
    let reversed = json!({"resourceType": "Parameters", "parameter": [
        {"name": "patientNHSNumber", "valueIdentifier": {"system": NHS, "value": "9990000018"}},
        {"name": "includeConsultations", "part": [{"name": "consultationSearchPeriod", "valuePeriod": {"start": "2025-01-01", "end": "2024-01-01"}}]}]});
    let (s, _, b) = structured(&app, &jane, &reversed).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
}

#[tokio::test]
async fn searches_page_the_same_content_and_documents_open_through_binary() {
    let app = TestApp::spawn().await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    let (s, headers, page) = app
        .get("/AllergyIntolerance?patient=Patient/patient-jane-smith&_count=1", &jane)
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(page["total"], 2);
    assert_eq!(page["entry"].as_array().unwrap().len(), 1);
    assert!(page["link"].to_string().contains("next"), "{page}");
    for (kind, total) in [
        ("Condition", 0),
        ("MedicationStatement", 2),
        ("MedicationRequest", 2),
        ("Immunization", 1),
        ("Encounter", 1),
        ("Observation", 2),
        ("ServiceRequest", 1),
        ("DocumentReference", 1),
    ] {
        let (s, _, b) = app.get(&format!("/{kind}?patient=patient-jane-smith"), &jane).await;
        assert_eq!(s, StatusCode::OK, "{kind}: {b}");
        assert_eq!(b["total"], total, "{kind}: {b}");
    }
    let (_, _, docs) = app.get("/DocumentReference?patient=patient-jane-smith", &jane).await;
    let url = docs["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, _, binary) = app.get(&format!("/{url}"), &jane).await;
    assert_eq!(s, StatusCode::OK, "{binary}");
    assert_eq!(binary["resourceType"], "Binary");
    // A document id that is not shown is not found, like one that never was.
    let made_up = format!("Binary/patient-jane-smith.{}", "0".repeat(32));
    let (s, _, _) = app.get(&format!("/{made_up}"), &jane).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = app.get(&format!("/{url}"), &person(&app, FREE_NHS_NUMBERS[0])).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a stranger cannot open it");
}

#[tokio::test]
async fn a_supplier_that_fails_is_a_clear_error_and_discloses_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.suppliers.read_timeout_ms = 300;
        s.suppliers.max_reply_bytes = 64 * 1024;
    })
    .await;
    let jane = app.token("patient-p9");
    active(&app, &jane).await;
    app.faults("emis", json!({"down": true})).await;
    let (s, _, b) = structured(&app, &jane, &everything("9990000018")).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert_eq!(outcome_code(&b), "SUPPLIER_ERROR");
    app.faults("emis", json!({"down": false, "latency_ms": 800})).await;
    let (s, _, b) = structured(&app, &jane, &everything("9990000018")).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{b}");
    assert_eq!(outcome_code(&b), "SUPPLIER_TIMEOUT");
    app.faults("emis", json!({"latency_ms": 0, "malformed_rate": 1.0}))
        .await;
    let (s, _, b) = structured(&app, &jane, &everything("9990000018")).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    app.faults("emis", json!({"malformed_rate": 0.0})).await;
    // An answer larger than the gateway takes.
    let big = json!({"entries": (0..400).map(|i| json!({
        "id": format!("n{i}"), "recorded": "2024-06-01", "text": "x".repeat(400), "detail": {"kind": "note"}
    })).collect::<Vec<_>>()});
    let r = app
        .client
        .put(format!("{}/admin/records/9990000018", app.simulator("emis")))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (s, _, b) = structured(&app, &jane, &everything("9990000018")).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(!b.to_string().contains("xxxx"), "{b}");
}

#[tokio::test]
async fn a_proxy_sees_what_the_role_grants_never_more_than_the_patient() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-tpp");
    active(&app, &app.token("proxy-p9")).await;
    // Ravi becomes Megan's proxy, with summary record access.
    let role = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
        "patient": {"type": "Patient", "identifier": {"system": NHS, "value": "9990000069"}},
        "dateTime": "2026-11-30T10:00:00Z",
        "performer": [{"identifier": {"system": NHS, "value": "9990000166"}}],
        "policyRule": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis", "code": "consent"}]},
        "provision": {"type": "permit", "actor": [{"reference": {"type": "RelatedPerson", "identifier": {"system": NHS, "value": "9990000166"}}}]},
        "extension": [
            {"url": "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason",
             "valueCodeableConcept": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason", "code": "ROLE_CREATED"}]}},
            {"url": "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor",
             "valueReference": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B82005"}}}
        ]
    });
    let (s, headers, b) = app.post_fhir("/Consent", &staff, &role).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let ravi = person(&app, "9990000166");
    let (s, _, b) = structured(&app, &ravi, &everything("9990000069")).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no record access by default: {b}");
    let summary = json!({"resourceType": "Parameters", "parameter": [
        {"name": "services", "part": [{"name": "appointments", "valueBoolean": true}]},
        {"name": "recordAccess", "part": [{"name": "level", "valueCode": "summary"}]}]});
    let (s, _, b) = app
        .post_fhir(&format!("/Consent/{id}/$set-proxy-access"), &staff, &summary)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _, bundle) = structured(&app, &ravi, &everything("9990000069")).await;
    assert_eq!(s, StatusCode::OK, "{bundle}");
    let text = displays(&bundle);
    assert!(
        text.contains("Allergy to peanut") && text.contains("Levothyroxine"),
        "{text}"
    );
    assert!(
        !text.contains("Hypothyroidism") && !text.contains("TSH"),
        "summary only: {text}"
    );
    // The disclosure names the role it went through.
    let (_, _, trail) = app
        .get(
            "/AuditEvent?patient=patient-megan-jones&action=read-record",
            &app.token("clinician-tpp"),
        )
        .await;
    assert!(
        trail.to_string().contains(&format!("through proxy role {id}")),
        "{trail}"
    );
}
