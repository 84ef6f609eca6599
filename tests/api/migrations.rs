use gp_online_gateway::db;

use crate::helpers::*;

/// Every migration runs down and up again on the backend under test.
#[tokio::test]
async fn migrations_revert_and_reapply() {
    let (db_guard, url) = TestDatabase::create();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::connect(&url).unwrap();
        let applied = db::run_migrations(&mut conn).unwrap();
        assert!(!applied.is_empty());
        let tables = db::describe_tables(&mut conn).unwrap();
        let reverted = db::revert_all_migrations(&mut conn).unwrap();
        assert_eq!(reverted.len(), applied.len());
        assert!(
            db::describe_tables(&mut conn).unwrap().is_empty(),
            "down migrations leave nothing behind"
        );
        db::run_migrations(&mut conn).unwrap();
        assert_eq!(db::describe_tables(&mut conn).unwrap(), tables);
    })
    .await
    .unwrap();
    drop(db_guard);
}

/// Both migration trees produce the same tables and columns. Needs PostgreSQL
/// (TEST_DATABASE_URL); `.ci/run` always provides it.
#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn postgres_and_sqlite_trees_define_the_same_schema() {
    let Ok(pg_admin) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL not set: the cross-backend schema comparison runs in the PostgreSQL pass");
        return;
    };
    let (pg_guard, pg_url) = TestDatabase::create();
    assert!(pg_guard.is_postgres(), "{pg_admin}");
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", sqlite_dir.path().join("compare.db").display());
    let (pg, sqlite) = tokio::task::spawn_blocking(move || {
        let mut pg = db::connect(&pg_url).unwrap();
        db::run_migrations(&mut pg).unwrap();
        let mut lite = db::connect(&sqlite_url).unwrap();
        db::run_migrations(&mut lite).unwrap();
        (
            db::describe_tables(&mut pg).unwrap(),
            db::describe_tables(&mut lite).unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(!pg.is_empty());
    assert_eq!(pg, sqlite);
    drop(pg_guard);
}

#[derive(diesel::QueryableByName)]
struct FlushSetting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    backend_flush_after: String,
}

fn show_backend_flush_after(c: &mut db::DbConnection) -> Result<String, db::DbError> {
    use diesel::RunQueryDsl;
    let db::DbConnection::Postgres(pg) = c else {
        unreachable!("PostgreSQL only")
    };
    let s: FlushSetting = diesel::sql_query("SHOW backend_flush_after").get_result(pg)?;
    Ok(s.backend_flush_after)
}

/// `backend_flush_after` as a session of a pool built with `flush_after_kb` sees it.
async fn pooled_backend_flush_after(url: &str, flush_after_kb: u32) -> String {
    let pool = db::build_pool(url, 1, std::time::Duration::from_secs(5), flush_after_kb).unwrap();
    db::run(&pool, show_backend_flush_after).await.unwrap()
}

#[tokio::test]
#[cfg_attr(not(test_postgres), ignore = "needs PostgreSQL: run with TEST_DATABASE_URL set")]
async fn postgres_sessions_write_out_their_writes_as_configured() {
    let app = TestApp::spawn().await;
    if app.on_sqlite() {
        return;
    }
    let url = app.database_url().to_owned();
    assert_eq!(pooled_backend_flush_after(&url, 256).await, "256kB");
    assert_eq!(pooled_backend_flush_after(&url, 2048).await, "2MB");
    // 0 leaves the server's own setting (PostgreSQL's default is 0, "off").
    let server = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || show_backend_flush_after(&mut db::connect(&url).unwrap()).unwrap())
            .await
            .unwrap()
    };
    assert_eq!(pooled_backend_flush_after(&url, 0).await, server);
}

#[tokio::test]
async fn a_flush_setting_beyond_postgres_limit_is_refused_at_start() {
    let (mut settings, _db, _data) = test_settings();
    settings.database.backend_flush_after_kb = 4096;
    let err = gp_online_gateway::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("backend_flush_after_kb"), "{err:#}");
}
