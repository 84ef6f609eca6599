//! The audit trail at volume: incremental verification from signed checkpoints.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::registration::part;

fn broken_part<'a>(verified: &'a Value, name: &str) -> &'a Value {
    part(verified, "firstBroken")["part"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

async fn verify(app: &TestApp, query: &str) -> Value {
    let (status, _, verified) = app
        .get(&format!("/AuditEvent/$verify{query}"), &app.token("clinician-emis"))
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    verified
}

fn valid(verified: &Value) -> bool {
    part(verified, "valid")["valueBoolean"] == true
}

fn integer(verified: &Value, name: &str) -> i64 {
    part(verified, name)["valueInteger"].as_i64().unwrap()
}

async fn some_reads(app: &TestApp, n: usize) {
    let staff = app.token("staff-emis");
    for _ in 0..n {
        let (status, _, _) = app.get("/Patient/patient-amir-khan", &staff).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn verify_goes_on_from_the_last_checkpoint_and_the_full_check_from_the_start() {
    let app = TestApp::spawn().await;
    some_reads(&app, 5).await;
    let first = verify(&app, "").await;
    assert!(valid(&first), "{first}");
    assert_eq!(part(&first, "mode")["valueString"], "incremental");
    assert_eq!(integer(&first, "fromCheckpoint"), 0, "{first}");
    let everything = integer(&first, "events");
    assert!(everything >= 5, "{first}");

    some_reads(&app, 2).await;
    let next = verify(&app, "").await;
    assert!(valid(&next), "{next}");
    assert_eq!(integer(&next, "fromCheckpoint"), 1, "{next}");
    // The two reads and the check before them: what was written since the checkpoint.
    assert_eq!(integer(&next, "events"), 3, "{next}");

    let full = verify(&app, "?mode=full").await;
    assert!(valid(&full), "{full}");
    assert_eq!(part(&full, "mode")["valueString"], "full");
    assert_eq!(integer(&full, "fromCheckpoint"), 0);
    assert_eq!(integer(&full, "events"), everything + 4, "{full}");

    let (status, _, body) = app
        .get("/AuditEvent/$verify?mode=quick", &app.token("clinician-emis"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn an_edit_after_the_checkpoint_is_caught_and_one_before_it_by_the_full_check() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    assert!(valid(&verify(&app, "").await));
    some_reads(&app, 3).await;
    let (seq,) = head(&app).await;

    execute_sql(
        &app,
        format!("UPDATE audit_events SET reason = 'edited' WHERE seq = {seq}"),
    )
    .await;
    let verified = verify(&app, "").await;
    assert!(!valid(&verified), "{verified}");
    assert_eq!(broken_part(&verified, "seq")["valueInteger"], seq);

    execute_sql(
        &app,
        format!("UPDATE audit_events SET reason = 'edited' WHERE seq = {seq} - 5"),
    )
    .await;
    let verified = verify(&app, "?mode=full").await;
    assert!(!valid(&verified), "{verified}");
    assert_eq!(broken_part(&verified, "seq")["valueInteger"], seq - 5);
}

/// The highest sequence number written so far (one chain in these tests).
async fn head(app: &TestApp) -> (i64,) {
    let url = app.database_url().to_owned();
    tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use gp_online_gateway::db::schema::audit_events;
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        let seq: Option<i64> = audit_events::table
            .select(diesel::dsl::max(audit_events::seq))
            .first(&mut conn)
            .unwrap();
        (seq.unwrap(),)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_checkpoint_moved_by_hand_or_pointing_at_an_altered_event_fails_the_check() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    assert!(valid(&verify(&app, "").await));

    // Someone edits an early event and moves the checkpoint past their edit.
    execute_sql(&app, "UPDATE audit_events SET reason = 'edited' WHERE seq = 1").await;
    some_reads(&app, 1).await;
    let (seq,) = head(&app).await;
    execute_sql(
        &app,
        format!("UPDATE audit_checkpoints SET seq = {seq}, hash = (SELECT hash FROM audit_events WHERE seq = {seq})"),
    )
    .await;
    let verified = verify(&app, "").await;
    assert!(!valid(&verified), "{verified}");
    assert!(
        broken_part(&verified, "reason")["valueString"]
            .as_str()
            .unwrap()
            .contains("checkpoint is not signed"),
        "{verified}"
    );
    let verified = verify(&app, "?mode=full").await;
    assert_eq!(broken_part(&verified, "seq")["valueInteger"], 1, "{verified}");
}

#[tokio::test]
async fn the_event_a_checkpoint_names_cannot_be_changed_or_deleted_unnoticed() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    assert!(valid(&verify(&app, "").await));
    execute_sql(
        &app,
        "UPDATE audit_events SET hash = prev_hash WHERE seq = (SELECT seq FROM audit_checkpoints)",
    )
    .await;
    let verified = verify(&app, "").await;
    assert!(!valid(&verified), "{verified}");
    assert!(
        broken_part(&verified, "reason")["valueString"]
            .as_str()
            .unwrap()
            .contains("checkpoint names"),
        "{verified}"
    );
}
