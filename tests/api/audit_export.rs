//! Bulk export of a practice's audit trail for auditors (FHIR Bulk Data `$export` of
//! AuditEvent): kick-off, status polling, NDJSON files, cancellation, and who may do each.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// Events per file in these tests, so that a handful of reads fills several files.
const FILE_EVENTS: u32 = 3;

async fn spawn() -> TestApp {
    TestApp::spawn_with(|s| s.audit.export_file_events = FILE_EVENTS).await
}

/// A kick-off as a Bulk Data client sends it.
async fn kick_off(app: &TestApp, query: &str, token: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    send(
        app.request(Method::GET, &format!("/AuditEvent/$export{query}"), Some(token))
            .header("accept", "application/fhir+json")
            .header("prefer", "respond-async"),
    )
    .await
}

/// Polls the status URL until the export is complete, within a bounded number of polls.
async fn poll_until_done(app: &TestApp, status_url: &str, token: &str) -> Value {
    for _ in 0..300 {
        let (status, headers, body) = send(app.client.get(status_url).bearer_auth(token)).await;
        match status {
            StatusCode::ACCEPTED => {
                assert!(headers.contains_key("retry-after"), "{headers:?}");
                assert!(headers.contains_key("x-progress"), "{headers:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            StatusCode::OK => {
                assert_eq!(headers["content-type"], "application/json");
                return body;
            }
            other => panic!("status poll answered {other}: {body}"),
        }
    }
    panic!("the export did not complete in time")
}

fn detail<'a>(event: &'a Value, kind: &str) -> Option<&'a str> {
    event["entity"][0]["detail"]
        .as_array()?
        .iter()
        .find(|d| d["type"] == kind)?["valueString"]
        .as_str()
}

fn instant(raw: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw}: {e}"))
        .to_utc()
}

#[tokio::test]
async fn an_auditor_exports_a_practice_period_and_downloads_every_event_of_it() {
    let app = spawn().await;
    let auditor = app.token("staff-emis");
    // Seconds only: the period starts at or before the reads below.
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let since_param = since.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let since = instant(&since_param);

    let mut read_ids = BTreeSet::new();
    for _ in 0..7 {
        let (status, headers, _) = app.get("/Patient/patient-amir-khan", &auditor).await;
        assert_eq!(status, StatusCode::OK);
        read_ids.insert(headers["x-request-id"].to_str().unwrap().to_owned());
    }
    // Another practice's events are not in the export.
    let (status, _, _) = app.get("/Patient/patient-priya-patel", &app.token("staff-tpp")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, body) = kick_off(
        &app,
        &format!("?_since={since_param}&practice=A81001&_type=AuditEvent"),
        &auditor,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let status_url = headers["content-location"].to_str().unwrap().to_owned();
    assert!(status_url.starts_with(&app.url("/AuditEvent/$export/")), "{status_url}");

    let manifest = poll_until_done(&app, &status_url, &auditor).await;
    assert_eq!(manifest["requiresAccessToken"], true, "{manifest}");
    assert_eq!(manifest["error"], Value::Array(vec![]), "{manifest}");
    assert!(
        manifest["request"]
            .as_str()
            .unwrap()
            .contains("/AuditEvent/$export?_since="),
        "{manifest}"
    );
    let until = instant(manifest["transactionTime"].as_str().unwrap());
    let output = manifest["output"].as_array().unwrap();
    assert!(output.len() >= 3, "seven reads and more fill three files: {manifest}");

    let mut exported_ids = BTreeSet::new();
    let mut total = 0;
    for (i, file) in output.iter().enumerate() {
        assert_eq!(file["type"], "AuditEvent");
        let count = file["count"].as_i64().unwrap();
        if i + 1 < output.len() {
            assert_eq!(
                count,
                i64::from(FILE_EVENTS),
                "every file but the last is full: {manifest}"
            );
        }
        let response = app
            .client
            .get(file["url"].as_str().unwrap())
            .bearer_auth(&auditor)
            .header("accept", "application/fhir+ndjson")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/fhir+ndjson");
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(i64::try_from(lines.len()).unwrap(), count, "{text}");
        for line in lines {
            let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(event["resourceType"], "AuditEvent", "{line}");
            assert_eq!(detail(&event, "practice"), Some("A81001"), "{line}");
            let recorded = instant(event["recorded"].as_str().unwrap());
            assert!(
                recorded >= since && recorded < until,
                "{line} outside [{since}, {until})"
            );
            if let Some(id) = detail(&event, "requestId") {
                exported_ids.insert(id.to_owned());
            }
            total += 1;
        }
    }
    assert!(total >= 7, "{manifest}");
    assert!(
        read_ids.is_subset(&exported_ids),
        "every read of the period is exported"
    );

    // The kick-off, the polls and the downloads are on record like any other request.
    for (action, at_least) in [("export-audit", 1), ("read-audit-export", 1 + output.len())] {
        let (status, _, bundle) = app
            .get(&format!("/AuditEvent?action={action}&outcome=0"), &auditor)
            .await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        let n = bundle["total"].as_u64().unwrap();
        assert!(n >= at_least as u64, "{action}: {bundle}");
    }

    // Cancelled (here, after it completed): its status and files are gone.
    let (status, _, body) = send(app.client.delete(&status_url).bearer_auth(&auditor)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _, body) = send(app.client.get(&status_url).bearer_auth(&auditor)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = send(app.client.get(output[0]["url"].as_str().unwrap()).bearer_auth(&auditor)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_kick_off_needs_respond_async_a_forward_period_known_parameters_and_an_auditor_of_the_practice() {
    let app = spawn().await;
    let auditor = app.token("staff-emis");

    let (status, _, body) = send(
        app.request(Method::GET, "/AuditEvent/$export", Some(&auditor))
            .header("accept", "application/fhir+json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(outcome_code(&body), "INVALID_REQUEST");

    for query in [
        "?_since=2026-12-02T00:00:00Z&_until=2026-12-01T00:00:00Z",
        "?_since=2026-12-01&_until=2026-12-01",
        "?_typeFilter=AuditEvent%3Foutcome%3D4",
        "?_type=Patient",
        "?_since=yesterday",
        "?_outputFormat=text/csv",
    ] {
        let (status, _, body) = kick_off(&app, query, &auditor).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(outcome_code(&body), "INVALID_SEARCH_PARAMETER", "{query}");
    }

    // Patients, and staff whose role may not read the audit trail, may not export it.
    for token in [app.token("patient-p9"), app.token("reception-emis")] {
        let (status, _, body) = kick_off(&app, "", &token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    // An auditor of one practice may not export another's.
    let (status, _, body) = kick_off(&app, "?practice=B82005", &auditor).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(outcome_code(&body), "OUTSIDE_OWN_PRACTICE");

    // The OperationOutcome of a kick-off is FHIR JSON: nothing else is offered.
    let (status, _, body) = send(
        app.request(Method::GET, "/AuditEvent/$export", Some(&auditor))
            .header("accept", "text/html")
            .header("prefer", "respond-async"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE, "{body}");

    // Someone who audits at two practices names the one to export.
    let both = app.staff_at(&["A81001", "B82005"]);
    let (status, _, body) = kick_off(&app, "", &both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(outcome_code(&body), "INVALID_SEARCH_PARAMETER");
    let (status, _, body) = kick_off(&app, "?practice=B82005", &both).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn only_auditors_of_the_practice_follow_cancel_or_download_its_export() {
    let app = spawn().await;
    let auditor = app.token("staff-emis");
    let (status, headers, body) = kick_off(&app, "", &auditor).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let status_url = headers["content-location"].to_str().unwrap().to_owned();
    let manifest = poll_until_done(&app, &status_url, &auditor).await;
    let file_url = manifest["output"][0]["url"].as_str().unwrap().to_owned();

    // Another practice's auditor, and a patient, are answered as for an export that does not
    // exist, or refused outright.
    let other = app.token("staff-tpp");
    for url in [&status_url, &file_url] {
        let (status, _, body) = send(app.client.get(url).bearer_auth(&other)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
        let (status, _, body) = send(app.client.get(url).bearer_auth(app.token("patient-p9"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{url}: {body}");
    }
    let (status, _, body) = send(app.client.delete(&status_url).bearer_auth(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let unknown = app.url(&format!("/AuditEvent/$export/{}", uuid::Uuid::new_v4()));
    let (status, _, body) = send(app.client.get(&unknown).bearer_auth(&auditor)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Another auditor of the same practice may follow it.
    let colleague = app.token("clinician-emis");
    let (status, _, body) = send(app.client.get(&status_url).bearer_auth(&colleague)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = send(app.client.get(&file_url).bearer_auth(&colleague)).await;
    assert_eq!(status, StatusCode::OK);
    // Without a token, nothing.
    let (status, _, _) = send(app.client.get(&file_url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The NDJSON of every file a manifest lists, in order.
async fn download_all(app: &TestApp, manifest: &Value, token: &str) -> Vec<String> {
    let mut files = vec![];
    for file in manifest["output"].as_array().unwrap() {
        let response = app
            .client
            .get(file["url"].as_str().unwrap())
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        files.push(response.text().await.unwrap());
    }
    files
}

#[tokio::test]
async fn an_export_whose_instance_stopped_midway_is_taken_up_from_its_last_file() {
    let app = spawn().await;
    let auditor = app.token("staff-emis");
    for _ in 0..7 {
        let (status, _, _) = app.get("/Patient/patient-amir-khan", &auditor).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = kick_off(&app, "?practice=A81001", &auditor).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let status_url = headers["content-location"].to_str().unwrap().to_owned();
    let id = status_url.rsplit('/').next().unwrap().to_owned();
    let manifest = poll_until_done(&app, &status_url, &auditor).await;
    let whole = download_all(&app, &manifest, &auditor).await;
    assert!(whole.len() >= 3, "{manifest}");

    // As an instance that wrote the first file and stopped would leave it: in progress, its
    // cursor at the first file's last event, claimed by an instance whose lease has lapsed.
    let last: Value = serde_json::from_str(whole[0].lines().last().unwrap()).unwrap();
    let (chain, seq) = detail(&last, "chain").unwrap().rsplit_once('#').unwrap();
    let recorded_at = detail(&last, "recordedAt").unwrap().replace('T', " ");
    execute_sql(
        &app,
        format!("DELETE FROM audit_export_files WHERE export_id = '{id}' AND part > 1"),
    )
    .await;
    execute_sql(
        &app,
        format!(
            "UPDATE audit_exports SET status = 'in-progress', files = 1, exported = {FILE_EVENTS}, \
             cursor_recorded_at = '{recorded_at}', cursor_chain = '{chain}', cursor_seq = {seq}, \
             finished_at = NULL, claimed_by = 'a-stopped-instance', claimed_until = created_at \
             WHERE id = '{id}'"
        ),
    )
    .await;

    let resumed = poll_until_done(&app, &status_url, &auditor).await;
    assert_eq!(resumed["output"], manifest["output"], "{resumed}");
    assert_eq!(
        download_all(&app, &resumed, &auditor).await,
        whole,
        "nothing skipped, nothing written twice"
    );
}

#[tokio::test]
async fn a_practice_holds_a_bounded_number_of_exports_at_once() {
    let app = spawn().await;
    let auditor = app.token("staff-emis");
    let mut status_urls = vec![];
    for _ in 0..5 {
        let (status, headers, body) = kick_off(&app, "", &auditor).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        status_urls.push(headers["content-location"].to_str().unwrap().to_owned());
    }
    let (status, headers, body) = kick_off(&app, "", &auditor).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(outcome_code(&body), "TOO_MANY_REQUESTS");
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // Cancelling one makes room.
    let (status, _, body) = send(app.client.delete(&status_urls[0]).bearer_auth(&auditor)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _, body) = kick_off(&app, "", &auditor).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
