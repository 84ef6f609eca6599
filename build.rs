//! Rebuilds when a migration is added: the migrations are embedded in the binary, and a new
//! directory is not otherwise noticed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
