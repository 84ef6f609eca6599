//! The audit trail at volume: incremental verification from signed checkpoints.

use chrono::Datelike;
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
    // The two reads and this check (on record before it runs): what was written since.
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

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Runs `audit export` for `[from, to)` as it would run on `today`.
async fn export(
    app: &TestApp,
    (from, to, on): (chrono::NaiveDate, chrono::NaiveDate, chrono::NaiveDate),
    out: &std::path::Path,
) -> anyhow::Result<gp_online_gateway::audit::archive::ExportReport> {
    let (settings, out) = (app.command_settings(), out.to_owned());
    tokio::task::spawn_blocking(move || gp_online_gateway::cli::audit_export(&settings, from, to, &out, on))
        .await
        .unwrap()
}

/// Exports today's events as if the day had ended.
async fn export_today(
    app: &TestApp,
    out: &std::path::Path,
) -> anyhow::Result<gp_online_gateway::audit::archive::ExportReport> {
    let day = chrono::Duration::days(1);
    export(app, (today(), today() + day, today() + day), out).await
}

async fn event_count(app: &TestApp) -> i64 {
    audit_rows(app, "1 = 1").await
}

#[tokio::test]
async fn a_closed_period_is_archived_and_verified_offline_and_edits_to_it_are_found() {
    let app = TestApp::spawn().await;
    some_reads(&app, 4).await;
    let stored = event_count(&app).await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("2026-12");
    let settings = app.command_settings();
    let report = export_today(&app, &out).await.unwrap();
    assert_eq!(report.manifest.segments.len(), 1);
    let segment = &report.manifest.segments[0];
    assert_eq!((segment.first_seq, segment.events), (1, stored));
    assert_eq!(segment.anchor, "0".repeat(64));

    // Offline: a copy of the archive and the key, no database.
    let mut offline = settings.clone();
    offline.database.url = "postgres://nowhere.invalid/none".into();
    let checked = gp_online_gateway::cli::audit_verify_archives(&offline, std::slice::from_ref(&out)).unwrap();
    assert_eq!(usize::try_from(stored).unwrap(), checked.events);

    // Each line is a FHIR AuditEvent.
    let file = out.join(&segment.file);
    let text = gunzip(&std::fs::read(&file).unwrap());
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["resourceType"], "AuditEvent");

    // Someone edits an event in the archive (and compresses it again).
    let edited = text.replacen("\"outcome\":\"0\"", "\"outcome\":\"4\"", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, gzip(&edited)).unwrap();
    let err = gp_online_gateway::cli::audit_verify_archives(&offline, std::slice::from_ref(&out)).unwrap_err();
    assert!(err.to_string().contains("line"), "{err}");

    // The same period again into the same directory is refused; into another it is a copy.
    let err = export_today(&app, &out).await.unwrap_err();
    assert!(err.to_string().contains("already holds an archive"), "{err}");
}

#[tokio::test]
async fn an_export_of_a_period_the_wrong_way_round_or_not_yet_ended_is_refused() {
    let app = TestApp::spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let day = chrono::Duration::days(1);
    let err = export(&app, (today(), today() - day, today()), tmp.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong way round"), "{err}");
    let err = export(&app, (today(), today() + day, today()), tmp.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has not ended"), "{err}");
    assert!(!tmp.path().join("manifest.json").exists());
}

#[tokio::test]
async fn a_broken_chain_is_never_archived() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    execute_sql(&app, "UPDATE audit_events SET reason = 'edited' WHERE seq = 2").await;
    let tmp = tempfile::tempdir().unwrap();
    let err = export_today(&app, tmp.path()).await.unwrap_err();
    assert!(err.to_string().contains("broken at seq 2"), "{err}");
    assert!(!tmp.path().join("manifest.json").exists());
}

#[tokio::test]
async fn a_forged_archive_record_fails_the_check() {
    let app = TestApp::spawn().await;
    some_reads(&app, 2).await;
    let tmp = tempfile::tempdir().unwrap();
    export_today(&app, tmp.path()).await.unwrap();
    assert!(valid(&verify(&app, "").await));
    execute_sql(&app, "UPDATE audit_archives SET last_seq = last_seq + 100").await;
    let verified = verify(&app, "").await;
    assert!(!valid(&verified), "{verified}");
    assert!(
        broken_part(&verified, "reason")["valueString"]
            .as_str()
            .unwrap()
            .contains("archived range"),
        "{verified}"
    );
}

fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text).unwrap();
    text
}

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// Runs `audit retain` as it would run on `today`.
async fn retain(
    app: &TestApp,
    settings: gp_online_gateway::config::Settings,
    months: Option<u32>,
    on: chrono::NaiveDate,
) -> anyhow::Result<gp_online_gateway::audit::retention::RetentionReport> {
    let _ = app;
    tokio::task::spawn_blocking(move || gp_online_gateway::cli::audit_retain(&settings, months, on))
        .await
        .unwrap()
}

async fn drop_before(
    app: &TestApp,
    cutoff: chrono::NaiveDateTime,
) -> anyhow::Result<gp_online_gateway::audit::retention::RetentionReport> {
    let settings = app.command_settings();
    tokio::task::spawn_blocking(move || gp_online_gateway::cli::audit_drop_before(&settings, cutoff))
        .await
        .unwrap()
}

#[tokio::test]
async fn retention_drops_only_what_is_archived_and_what_remains_still_verifies() {
    let app = TestApp::spawn().await;
    some_reads(&app, 4).await;
    let before = event_count(&app).await;

    // Nothing is archived yet: retention is refused, and nothing is dropped.
    let err = drop_before(&app, chrono::Utc::now().naive_utc()).await.unwrap_err();
    assert!(err.to_string().contains("export the period first"), "{err}");
    assert_eq!(event_count(&app).await, before);

    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    let archived = export_today(&app, &first).await.unwrap();
    let through = archived.manifest.segments[0].last_seq;
    let cutoff = chrono::Utc::now().naive_utc();
    let report = drop_before(&app, cutoff).await.unwrap();
    assert_eq!(report.events(), usize::try_from(through).unwrap());
    assert_eq!(event_count(&app).await, 0);

    // The chain goes on from the archived part, and both checks start where it ends.
    some_reads(&app, 3).await;
    assert_eq!(audit_rows(&app, format!("seq = {}", through + 1)).await, 1);
    assert_trail_verifies(&app).await;
    let full = verify(&app, "?mode=full").await;
    // Every retained event, this check's own included (a check is on record before it runs).
    assert_eq!(integer(&full, "events"), event_count(&app).await, "{full}");

    // The rest archived later joins the first archive with nothing missing between.
    let later = export_today(&app, &second).await.unwrap();
    assert_eq!(later.manifest.segments[0].first_seq, through + 1);
    assert_eq!(
        later.manifest.segments[0].anchor,
        archived.manifest.segments[0].last_hash
    );
    let checked =
        gp_online_gateway::cli::audit_verify_archives(&app.command_settings(), &[first.clone(), second.clone()])
            .unwrap();
    assert_eq!(checked.segments, 2);

    // Someone removes the record of what was dropped: the retained events no longer explain
    // themselves.
    execute_sql(&app, "DELETE FROM audit_archives WHERE dropped_at IS NOT NULL").await;
    let verified = verify(&app, "?mode=full").await;
    assert!(!valid(&verified), "{verified}");
    assert_eq!(broken_part(&verified, "seq")["valueInteger"], through + 1, "{verified}");
}

#[tokio::test]
async fn a_retention_beyond_what_is_archived_is_refused_and_drops_nothing() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    let tmp = tempfile::tempdir().unwrap();
    export_today(&app, tmp.path()).await.unwrap();
    some_reads(&app, 2).await;
    let before = event_count(&app).await;

    let mut settings = app.command_settings();
    let err = retain(&app, settings.clone(), None, today()).await.unwrap_err();
    assert!(err.to_string().contains("no retention is configured"), "{err}");

    // Two months on, keeping one month would drop today's events, only some of them archived.
    settings.audit.retention_months = Some(1);
    let later = today() + chrono::Duration::days(62);
    let err = retain(&app, settings.clone(), None, later).await.unwrap_err();
    assert!(err.to_string().contains("archives reach only seq"), "{err}");
    assert_eq!(event_count(&app).await, before);

    // Keeping more than has passed drops nothing and is not an error.
    let report = retain(&app, settings, Some(12), later).await.unwrap();
    assert_eq!(report.events(), 0);
    assert_eq!(event_count(&app).await, before);
    assert_trail_verifies(&app).await;
}

#[tokio::test]
async fn nothing_is_dropped_when_its_archive_no_longer_verifies() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    let tmp = tempfile::tempdir().unwrap();
    let report = export_today(&app, tmp.path()).await.unwrap();
    let cutoff = chrono::Utc::now().naive_utc();
    let before = event_count(&app).await;
    std::fs::remove_file(tmp.path().join(&report.manifest.segments[0].file)).unwrap();
    let err = drop_before(&app, cutoff).await.unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert_eq!(event_count(&app).await, before);
}

#[tokio::test]
async fn a_chain_anchored_to_a_dropped_chain_still_verifies_after_a_restart() {
    let (settings, db, data) = test_settings();
    let app = TestApp::spawn_on(settings.clone(), db, data).await;
    some_reads(&app, 3).await;
    let tmp = tempfile::tempdir().unwrap();
    export_today(&app, tmp.path()).await.unwrap();
    let cutoff = chrono::Utc::now().naive_utc();
    assert!(drop_before(&app, cutoff).await.unwrap().events() > 0);
    let (db, data) = app.kill().await;

    // The next instance's chain is anchored to the head of the one whose events were dropped.
    let app = TestApp::spawn_on(settings, db, data).await;
    some_reads(&app, 2).await;
    assert_trail_verifies(&app).await;
    let full = verify(&app, "?mode=full").await;
    assert_eq!(integer(&full, "chains"), 2, "{full}");
}

/// Events written through the gateway's own writer, then checked: the incremental check
/// recomputes what was written since the last one, whatever the size of the trail. The volume
/// is `AUDIT_VOLUME` events (a few thousand by default); each check's time is printed.
#[tokio::test]
async fn the_incremental_check_recomputes_only_what_was_written_since_the_last() {
    use gp_online_gateway::audit::{AuditLog, AuditRecord, ChainKey, Outcome, VerifyMode};
    use gp_online_gateway::db;
    let volume: usize = std::env::var("AUDIT_VOLUME")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let (_guard, url) = TestDatabase::create();
    let pool = db::build_pool(&url, 3, std::time::Duration::from_secs(10), 0).unwrap();
    db::run(&pool, |c| db::run_migrations(c).map(|_| ())).await.unwrap();
    let key = || ChainKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap();
    let log = AuditLog::start(pool.clone(), key(), 20_000, std::time::Duration::from_secs(60)).unwrap();
    let write = async |n: usize| {
        for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
            let receipts: Vec<_> = chunk
                .iter()
                .map(|i| {
                    log.submit(AuditRecord {
                        actor_kind: "staff".into(),
                        actor: format!("staff|https://idp.example|{}", i % 97),
                        assurance: None,
                        patient_id: Some(format!("patient-{}", i % 1000)),
                        practice: Some("A81001".into()),
                        action: "read-patient".into(),
                        outcome: Outcome::Success,
                        rule: Some("staff-practice-role".into()),
                        code: None,
                        reason: Some("a role grants read".into()),
                        request_id: None,
                        snapshot: None,
                    })
                })
                .collect();
            for r in receipts {
                log.confirm(r).await.unwrap();
            }
        }
    };
    let check = async |mode: VerifyMode| {
        let log = log.clone();
        let started = std::time::Instant::now();
        let v = db::run(&pool, move |c| log.verify(c, mode)).await.unwrap();
        assert!(v.first_broken.is_none(), "{:?}", v.first_broken);
        eprintln!(
            "{} check: {} events in {:?}",
            mode.as_str(),
            v.events,
            started.elapsed()
        );
        v
    };
    write(volume).await;
    assert_eq!(check(VerifyMode::Full).await.events, volume);
    write(100).await;
    let incremental = check(VerifyMode::Incremental).await;
    assert_eq!((incremental.events, incremental.from_checkpoint), (100, 1));
    assert_eq!(check(VerifyMode::Incremental).await.events, 0);
    assert_eq!(check(VerifyMode::Full).await.events, volume + 100);
}

#[tokio::test]
async fn events_of_a_chain_the_gateway_never_started_are_found() {
    let app = TestApp::spawn().await;
    some_reads(&app, 2).await;
    assert!(valid(&verify(&app, "").await));
    execute_sql(
        &app,
        format!(
            "INSERT INTO audit_events (id, chain, seq, recorded_at, actor_kind, actor, action, outcome, prev_hash, hash) \
             VALUES ('forged-1', 'forged-chain', 1, '2100-01-01 00:00:00', 'staff', 'staff|x', 'read-patient', 'success', '{0}', '{0}')",
            "0".repeat(64)
        ),
    )
    .await;
    for query in ["", "?mode=full"] {
        let verified = verify(&app, query).await;
        assert!(!valid(&verified), "{verified}");
        assert_eq!(
            broken_part(&verified, "chain")["valueString"],
            "forged-chain",
            "{verified}"
        );
    }
}

/// PostgreSQL: the trail is partitioned by month, the gateway makes the coming months'
/// partitions, and events land in the current month's.
#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn on_postgres_the_trail_is_partitioned_by_month_ahead_of_time() {
    let app = TestApp::spawn().await;
    if app.on_sqlite() {
        return;
    }
    some_reads(&app, 2).await;
    let url = app.database_url().to_owned();
    let (created, partitions, in_default) = tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        let later = today() + chrono::Duration::days(200);
        let created = gp_online_gateway::db::audit_partitions::create_ahead(&mut conn, later, 1).unwrap();
        let partitions: Vec<String> = diesel::sql_query(
            "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' \
             AND p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY 1",
        )
        .load::<Name>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
        let in_default: Vec<Name> = diesel::sql_query("SELECT id AS name FROM audit_events_default")
            .load(&mut conn)
            .unwrap();
        (created, partitions, in_default.len())
    })
    .await
    .unwrap();
    let month = |d: chrono::NaiveDate| d.format("audit_events_%Y_%m").to_string();
    let next = today().with_day(1).unwrap() + chrono::Months::new(2);
    for p in [month(today()), month(next)] {
        assert!(partitions.contains(&p), "{p} in {partitions:?}");
    }
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(in_default, 0);
    assert_trail_verifies(&app).await;
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn an_event_written_twice_under_one_sequence_number_is_found() {
    let app = TestApp::spawn().await;
    some_reads(&app, 3).await;
    if app.on_sqlite() {
        // SQLite's unique (chain, seq) refuses the copy outright.
        return;
    }
    // A copy of an event with another time: PostgreSQL's partitioned trail takes it.
    execute_sql(
        &app,
        "INSERT INTO audit_events (id, chain, seq, recorded_at, actor_kind, actor, patient_id, action, outcome, \
         assurance, reason, request_id, prev_hash, hash, practice, rule, code) \
         SELECT id || '-copy', chain, seq, recorded_at + interval '1 second', actor_kind, actor, patient_id, action, \
         outcome, assurance, reason, request_id, prev_hash, hash, practice, rule, code FROM audit_events WHERE seq = 2",
    )
    .await;
    let verified = verify(&app, "?mode=full").await;
    assert!(!valid(&verified), "{verified}");
}
