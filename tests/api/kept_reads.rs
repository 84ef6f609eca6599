//! Reads kept between requests (PostgreSQL): a write is seen by the next read on the instance
//! that made it, and within moments on every other instance and after a statement made outside
//! the gateway. On SQLite nothing is kept, and the same tests hold trivially.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use gp_online_gateway::identity::dev_idp::DevIdentityProvider;

use crate::helpers::{TestApp, health_check, send, stranger_key_pem, test_settings};

/// Longer than the listener takes to hear another writer (a few milliseconds), far shorter
/// than a kept answer's lifetime (seconds): a read after this must see the write.
const HEARD_WITHIN: Duration = Duration::from_millis(250);

/// This schema's listener in `pg_stat_activity`: its last statement names the schema's channel.
const THIS_LISTENER: &str = "application_name = 'gateway-facts-listener' \
     AND position('gateway_facts_' || left(md5(current_schema()), 16) IN query) > 0";

fn postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty())
}

/// Two gateways on one database.
async fn two_instances() -> (TestApp, TestApp) {
    let (settings, db, data) = test_settings();
    let first = TestApp::spawn_on(settings.clone(), db, data).await;
    let second = first.spawn_beside(&settings).await;
    (first, second)
}

/// A refusal that says nothing about whether the record exists.
fn assert_refused(status: StatusCode, body: &Value) {
    assert!(
        matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{status} {body}"
    );
}

/// How many reads this gateway has answered from what it kept.
async fn answered_from_kept(app: &TestApp) -> u64 {
    let text = app.text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("gateway_context_reads_total{from=\"kept\"} "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// On PostgreSQL reads are kept once the listener hears changes and the instance's own start-up
/// writes (the dev profile's accounts going to the simulators) are over: a read asked again is
/// then answered from what was kept. On SQLite nothing is.
async fn assert_keeping(app: &TestApp, postgres: bool, read_again: impl AsyncFn()) {
    let started = std::time::Instant::now();
    loop {
        let before = answered_from_kept(app).await;
        read_again().await;
        read_again().await;
        let after = answered_from_kept(app).await;
        let (_, _, health) = send(app.request(Method::GET, "/health/ready", None)).await;
        let check = health_check(&health, "kept_reads").clone();
        if !postgres {
            assert_eq!(check["detail"], "off: every read goes to the database", "{check}");
            assert_eq!(after, 0);
            return;
        }
        if after > before {
            assert_eq!(check["status"], "pass", "{check}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "repeated reads were never kept: {check}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn family(app: &TestApp, token: &str, id: &str) -> String {
    let (status, _, patient) = app.get(&format!("/Patient/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{patient}");
    patient["name"][0]["family"].as_str().unwrap().to_owned()
}

async fn rename(app: &TestApp, token: &str, id: &str, to: &str) {
    let (_, _, mut patient) = app.get(&format!("/Patient/{id}"), token).await;
    patient["name"][0]["family"] = json!(to);
    let (status, _, body) = send(
        app.request(Method::PUT, &format!("/Patient/{id}"), Some(token))
            .header("content-type", "application/fhir+json")
            .header("if-match", "*")
            .body(patient.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// What a `$my-access` answer says of this patient (`roleStatus`, the role's status, for a
/// proxy's entry), if it lists them.
async fn listed_as(app: &TestApp, token: &str, patient: &str) -> Option<String> {
    let (status, _, access) = app.get("/$my-access", token).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    let part = |entry: &Value, name: &str| {
        entry["part"]
            .as_array()
            .and_then(|parts| parts.iter().find(|p| p["name"] == name).cloned())
    };
    access["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "access")
        .find(|e| part(e, "patient").is_some_and(|p| p["valueReference"]["reference"] == patient))
        .and_then(|e| part(e, "roleStatus")?["valueCode"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_change_is_seen_by_the_next_read_here_and_within_moments_on_another_instance() {
    let (first, second) = two_instances().await;
    let (staff_a, staff_b) = (first.token("staff-emis"), second.token("staff-emis"));
    let id = "patient-amir-khan";
    let postgres = postgres();
    // Both keep what they read (on PostgreSQL).
    assert_keeping(&first, postgres, async || {
        assert_eq!(family(&first, &staff_a, id).await, "Khan")
    })
    .await;
    assert_keeping(&second, postgres, async || {
        assert_eq!(family(&second, &staff_b, id).await, "Khan")
    })
    .await;

    rename(&second, &staff_b, id, "Khan-Ahmed").await;
    assert_eq!(
        family(&second, &staff_b, id).await,
        "Khan-Ahmed",
        "the writer's own next read"
    );
    tokio::time::sleep(HEARD_WITHIN).await;
    assert_eq!(family(&first, &staff_a, id).await, "Khan-Ahmed", "the other instance");

    // A proxy's roles: ended on one instance, gone from the other's `$my-access`.
    let (megan_a, megan_b) = (first.token("proxy-p9"), second.token("proxy-p9"));
    let lily = "Patient/patient-lily-jones";
    assert_keeping(&first, postgres, async || {
        assert_eq!(listed_as(&first, &megan_a, lily).await.as_deref(), Some("active"));
    })
    .await;
    let end = json!([
        {"op": "replace", "path": "/status", "value": "inactive"},
        {"op": "add", "path": "/extension/-", "value": [{
            "url": "https://fhir.nhs.uk/England/StructureDefinition/Extension-England-Consent-Status-Reason",
            "valueCodeableConcept": {"coding": [{
                "system": "https://fhir.nhs.uk/England/CodeSystem/England-ConsentStatusReason",
                "code": "ROLE_DEACTIVATED_PATIENT_REQUEST"
            }]}
        }]}
    ]);
    let (status, _, body) = send(
        second
            .vrs(
                Method::PATCH,
                "/Consent/1a7e0000-0000-4000-8000-000000000001",
                Some(&megan_b),
            )
            .header("content-type", "application/json-patch+json")
            .body(end.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(HEARD_WITHIN).await;
    assert_eq!(listed_as(&first, &megan_a, lily).await.as_deref(), Some("inactive"));
    // And the patient can no longer be reached through it.
    let (status, _, body) = first.get("/Patient/patient-lily-jones", &megan_a).await;
    assert_refused(status, &body);
}

#[tokio::test]
async fn a_statement_made_outside_the_gateway_is_seen_within_moments() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let id = "patient-amir-khan";
    assert_keeping(&app, postgres(), async || {
        assert_eq!(family(&app, &staff, id).await, "Khan")
    })
    .await;
    // An administrator's statement: the record is no longer this practice's to read.
    let url = app.database_url().to_owned();
    tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = gp_online_gateway::db::connect(&url).unwrap();
        diesel::sql_query(
            "UPDATE patients SET practice_id = (SELECT id FROM practices WHERE ods_code = 'B82005') \
             WHERE id = 'patient-amir-khan'",
        )
        .execute(&mut conn)
        .unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(HEARD_WITHIN).await;
    let (status, _, body) = app.get(&format!("/Patient/{id}"), &staff).await;
    assert_refused(status, &body);
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused_however_often_a_read_is_kept() {
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    let elsewhere = app.token("staff-tpp");
    let id = "patient-amir-khan";
    assert_keeping(&app, postgres(), async || {
        assert_eq!(family(&app, &staff, id).await, "Khan")
    })
    .await;
    let forged = {
        let stranger = DevIdentityProvider::from_pem(stranger_key_pem(), &app.base).unwrap();
        let persona = gp_online_gateway::dev::persona("staff-emis").unwrap();
        stranger
            .mint(persona.realm, "gp-online-gateway", 300, &persona.claims())
            .unwrap()
    };
    let (status, _, _) = app.get(&format!("/Patient/{id}"), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = app.get(&format!("/Patient/{id}"), &elsewhere).await;
    assert_refused(status, &body);
    assert_eq!(family(&app, &staff, id).await, "Khan");
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn nothing_is_kept_while_the_listener_is_lost_and_keeping_resumes_when_it_is_back() {
    let Some((app, staff)) = keeping_on_postgres().await else {
        return;
    };
    let id = KEPT;

    // The listener's connection ends (a restarted server, a dropped route).
    let url = app.database_url().to_owned();
    let ended = tokio::task::spawn_blocking(move || {
        number(
            &mut pg(&url),
            &format!("SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE {THIS_LISTENER}"),
        )
    })
    .await
    .unwrap();
    assert_eq!(ended, 1, "this gateway's listener");

    // It is noticed within moments: reported, and nothing is kept meanwhile.
    let started = std::time::Instant::now();
    let mut seen_down = false;
    while started.elapsed() < Duration::from_secs(10) {
        let (_, _, health) = send(app.request(Method::GET, "/health/ready", None)).await;
        let check = health_check(&health, "kept_reads");
        if check["status"] == "warn" {
            seen_down = true;
            let before = answered_from_kept(&app).await;
            assert_eq!(family(&app, &staff, id).await, "Khan");
            let (_, _, health) = send(app.request(Method::GET, "/health/ready", None)).await;
            if health_check(&health, "kept_reads")["status"] == "warn" {
                assert_eq!(
                    answered_from_kept(&app).await,
                    before,
                    "a read was kept while not listening"
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen_down, "the lost listener was never reported");
    // And it listens again by itself.
    assert_keeping(&app, true, async || assert_eq!(family(&app, &staff, id).await, "Khan")).await;
}

/// The record the tests below keep reads of.
const KEPT: &str = "patient-amir-khan";

/// A gateway on PostgreSQL once it keeps reads of [`KEPT`], with a staff token; `None` on
/// SQLite, where the listener and notifications do not exist (the test is then skipped).
async fn keeping_on_postgres() -> Option<(TestApp, String)> {
    if !postgres() {
        eprintln!("TEST_DATABASE_URL not set: the listener is PostgreSQL's");
        return None;
    }
    let app = TestApp::spawn().await;
    let staff = app.token("staff-emis");
    assert_keeping(&app, true, async || {
        assert_eq!(family(&app, &staff, KEPT).await, "Khan")
    })
    .await;
    Some((app, staff))
}

/// A connection of the test's own to the gateway's schema.
fn pg(url: &str) -> diesel::PgConnection {
    match gp_online_gateway::db::connect(url).unwrap() {
        gp_online_gateway::db::DbConnection::Postgres(c) => c,
        _ => unreachable!("a PostgreSQL URL"),
    }
}

/// The number a statement selects as `n`.
fn number(conn: &mut diesel::PgConnection, sql: &str) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Number {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<Number>(conn).unwrap().n
}

/// The notifications on the schema's channel within `window`, by the server process that sent
/// each, heard on a connection of the test's own.
fn notifiers(conn: &mut diesel::PgConnection, window: Duration) -> Vec<i32> {
    std::thread::sleep(window);
    conn.notifications_iter().map(|n| n.unwrap().process_id).collect()
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn the_gateway_announces_its_own_writes_after_they_commit_and_the_triggers_tell_of_the_rest() {
    let Some((app, staff)) = keeping_on_postgres().await else {
        return;
    };
    let id = KEPT;
    let url = app.database_url().to_owned();
    let listening = tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        use diesel::connection::SimpleConnection;
        #[derive(diesel::QueryableByName)]
        struct Channel {
            #[diesel(sql_type = diesel::sql_types::Text)]
            channel: String,
        }
        let mut conn = pg(&url);
        let Channel { channel } =
            diesel::sql_query("SELECT 'gateway_facts_' || left(md5(current_schema()), 16) AS channel")
                .get_result(&mut conn)
                .unwrap();
        conn.batch_execute(&format!("LISTEN {channel}")).unwrap();
        conn
    });
    let mut conn = listening.await.unwrap();

    // A write through the gateway is announced by its listener alone, not by the transaction
    // that made it.
    rename(&app, &staff, id, "Khan-Announced").await;
    let (mut conn, heard) = tokio::task::spawn_blocking(move || {
        let heard = notifiers(&mut conn, HEARD_WITHIN);
        (conn, heard)
    })
    .await
    .unwrap();
    assert!(!heard.is_empty(), "the write was not announced");
    let (mut conn, listener) = tokio::task::spawn_blocking(move || {
        let listener = number(
            &mut conn,
            &format!("SELECT pid::bigint AS n FROM pg_stat_activity WHERE {THIS_LISTENER}"),
        );
        (conn, listener)
    })
    .await
    .unwrap();
    assert!(
        heard.iter().all(|p| i64::from(*p) == listener),
        "notified by {heard:?}, the listener is {listener}"
    );

    // A statement from anyone else is notified by the trigger, in its own transaction; one that
    // carries the gateway's setting is left to the gateway. (The test's connection hears its
    // own notifications.)
    let heard = tokio::task::spawn_blocking(move || {
        use diesel::connection::SimpleConnection;
        let me = i32::try_from(number(&mut conn, "SELECT pg_backend_pid()::bigint AS n")).unwrap();
        let update = "UPDATE patients SET family = family WHERE id = 'patient-amir-khan'";
        conn.batch_execute(&format!("SET gateway.facts_announced = on; {update}"))
            .unwrap();
        let left_to_the_gateway = notifiers(&mut conn, Duration::from_millis(50));
        conn.batch_execute(&format!("SET gateway.facts_announced = off; {update}"))
            .unwrap();
        let by_the_trigger = notifiers(&mut conn, Duration::from_millis(50));
        (me, left_to_the_gateway, by_the_trigger)
    })
    .await
    .unwrap();
    let (me, left_to_the_gateway, by_the_trigger) = heard;
    assert!(!left_to_the_gateway.contains(&me), "{left_to_the_gateway:?}");
    assert!(by_the_trigger.contains(&me), "{by_the_trigger:?}");
}
