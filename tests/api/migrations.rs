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
