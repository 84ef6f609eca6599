//! Rebuilds when a migration is added: the migrations are embedded in the binary, and a new
//! directory is not otherwise noticed.
//!
//! Also tells the tests which database they will run on: tests that only PostgreSQL can run are
//! marked ignored ("needs PostgreSQL") when `TEST_DATABASE_URL` is not set, so a SQLite run
//! shows them as not run rather than as passed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(test_postgres)");
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        println!("cargo::rustc-cfg=test_postgres");
    }
}
