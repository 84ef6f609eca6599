//! The supplier adapters against the supplier simulators, over real HTTP on 127.0.0.1. Each test
//! starts its own simulator; the shared scenarios run once per supplier.

use std::time::Duration;

use chrono::{Months, NaiveDate, Utc};
use gp_online_gateway::domain::{AccessSettings, RecordAccessLevel, Services, Supplier};
use gp_online_gateway::suppliers::emis::EmisAdapter;
use gp_online_gateway::suppliers::simulator::{self, SimulatorHandle};
use gp_online_gateway::suppliers::tpp::TppAdapter;
use gp_online_gateway::suppliers::{AccountCredentials, CreateAccount, SupplierAdapter, SupplierError};
use serde_json::{Value, json};

const ODS: &str = "A12345";
const NHS_NUMBER: &str = "9434765919";
const SURNAME: &str = "Smith";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a scenario once per supplier, as `scenario::emis` and `scenario::tpp`.
macro_rules! for_each_supplier {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test]
                async fn emis() {
                    super::$scenario(gp_online_gateway::domain::Supplier::Emis).await;
                }

                #[tokio::test]
                async fn tpp() {
                    super::$scenario(gp_online_gateway::domain::Supplier::Tpp).await;
                }
            }
        )*
    };
}

for_each_supplier!(
    create_account_round_trip,
    set_access_changes_are_visible,
    reset_linkage_key_replaces_the_old_key,
    disable_and_enable,
    a_repeated_request_is_replayed_not_repeated,
    duplicate_account_is_a_conflict,
    practice_not_enabled,
    unknown_patient_is_not_found,
    archived_record,
    under_minimum_age,
    supplier_down_is_unavailable,
    injected_errors_are_unavailable_and_create_nothing,
    latency_beyond_the_timeout_is_a_retryable_timeout,
    a_lost_response_is_recovered_by_retrying_with_the_same_key,
    admin_faults_are_partial_updates,
    admin_reset_clears_everything,
);

/// A simulator plus an adapter pointed at it.
struct Harness {
    simulator: SimulatorHandle,
    adapter: Adapter,
    admin: reqwest::Client,
}

enum Adapter {
    Emis(EmisAdapter),
    Tpp(TppAdapter),
}

impl Harness {
    async fn start(flavour: Supplier) -> Self {
        Self::start_with_timeout(flavour, TIMEOUT).await
    }

    async fn start_with_timeout(flavour: Supplier, timeout: Duration) -> Self {
        let simulator = simulator::spawn(flavour, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        let base = simulator.base_url();
        let adapter = match flavour {
            Supplier::Emis => Adapter::Emis(EmisAdapter::new(base, timeout).unwrap()),
            Supplier::Tpp => Adapter::Tpp(TppAdapter::new(base, timeout).unwrap()),
        };
        Self {
            simulator,
            adapter,
            admin: reqwest::Client::new(),
        }
    }

    fn adapter(&self) -> &dyn SupplierAdapter {
        match &self.adapter {
            Adapter::Emis(adapter) => adapter,
            Adapter::Tpp(adapter) => adapter,
        }
    }

    async fn create(&self, request: &CreateAccount) -> Result<AccountCredentials, SupplierError> {
        self.adapter().create_account(&new_key(), request).await
    }

    /// What a patient does with their letter.
    async fn verify(&self, credentials: &AccountCredentials) -> Result<String, SupplierError> {
        let (key, birth_date) = (new_key(), adult_birth_date());
        let (account, linkage_key) = (&credentials.account_id, &credentials.linkage_key);
        match &self.adapter {
            Adapter::Emis(adapter) => {
                adapter
                    .verify_linkage(&key, account, linkage_key, ODS, SURNAME, birth_date)
                    .await
            }
            Adapter::Tpp(adapter) => {
                adapter
                    .verify_linkage(&key, account, linkage_key, ODS, SURNAME, birth_date)
                    .await
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.simulator.base_url())
    }

    async fn admin_put(&self, path: &str, body: Value) -> reqwest::Response {
        self.admin.put(self.url(path)).json(&body).send().await.unwrap()
    }

    async fn admin_get(&self, path: &str) -> Value {
        let response = self.admin.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn admin_post(&self, path: &str) {
        let response = self.admin.post(self.url(path)).send().await.unwrap();
        assert!(response.status().is_success(), "POST {path}: {}", response.status());
    }

    async fn set_faults(&self, faults: Value) {
        let response = self.admin_put("/admin/faults", faults).await;
        assert_eq!(response.status(), 200);
    }

    async fn accounts(&self) -> Vec<Value> {
        self.admin_get("/admin/accounts").await.as_array().unwrap().clone()
    }

    async fn only_account(&self) -> Value {
        let accounts = self.accounts().await;
        assert_eq!(accounts.len(), 1, "{accounts:?}");
        accounts.into_iter().next().unwrap()
    }

    async fn stat(&self, name: &str) -> u64 {
        self.admin_get("/admin/stats").await[name].as_u64().unwrap()
    }
}

fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn adult_birth_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1980, 5, 17).unwrap()
}

fn aged(years: u32) -> NaiveDate {
    // A day short of the next birthday keeps the age clear of any boundary.
    let today = Utc::now().date_naive();
    today
        .checked_sub_months(Months::new(12 * (years + 1)))
        .unwrap()
        .succ_opt()
        .unwrap()
}

fn access(services: Services, record_level: RecordAccessLevel, record_from: Option<NaiveDate>) -> AccessSettings {
    AccessSettings {
        services,
        record_level,
        record_from,
    }
}

fn request_for(patient: &str) -> CreateAccount {
    CreateAccount {
        patient_identifier: patient.to_owned(),
        ods_code: ODS.to_owned(),
        email: Some("patient@example.org".to_owned()),
        family_name: SURNAME.to_owned(),
        birth_date: adult_birth_date(),
        access: access(
            Services {
                appointments: gp_online_gateway::domain::ServiceLevel::Manage,
                prescriptions: gp_online_gateway::domain::ServiceLevel::Manage,
                messaging: false,
            },
            RecordAccessLevel::Summary,
            None,
        ),
    }
}

fn request() -> CreateAccount {
    request_for(NHS_NUMBER)
}

async fn create_account_round_trip(flavour: Supplier) {
    let harness = Harness::start(flavour).await;

    let credentials = harness.create(&request()).await.expect("account created");

    assert!(!credentials.supplier_ref.is_empty());
    assert!(!credentials.account_id.is_empty());
    assert_eq!(credentials.linkage_key.len(), 15);
    assert!(
        credentials
            .linkage_key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() && !"O0I1".contains(c))
    );
    let account = harness.only_account().await;
    assert_eq!(account["supplier_ref"], credentials.supplier_ref.as_str());
    assert_eq!(account["account_id"], credentials.account_id.as_str());
    assert_eq!(account["patient_identifier"], NHS_NUMBER);
    assert_eq!(account["ods_code"], ODS);
    assert_eq!(account["enabled"], true);
    assert_eq!(
        account["services"],
        json!({"appointments": true, "prescriptions": true, "messaging": false, "appointments_level": "manage", "prescriptions_level": "manage"})
    );
    assert_eq!(account["record_level"], "summary");
    assert_eq!(account["record_from"], Value::Null);
    assert_eq!(account["linkage_key_resets"], 0);
    let listing = harness.admin.get(harness.url("/admin/accounts")).send().await.unwrap();
    assert!(!listing.text().await.unwrap().contains(&credentials.linkage_key));
    assert_eq!(harness.verify(&credentials).await.as_deref(), Ok(NHS_NUMBER));
    assert_eq!(harness.stat("accounts_created").await, 1);
}

async fn set_access_changes_are_visible(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let credentials = harness.create(&request()).await.unwrap();
    let from = NaiveDate::from_ymd_opt(2024, 4, 1);
    let messaging_only = Services {
        appointments: gp_online_gateway::domain::ServiceLevel::None,
        prescriptions: gp_online_gateway::domain::ServiceLevel::None,
        messaging: true,
    };

    let full = access(messaging_only, RecordAccessLevel::Full, from);
    harness
        .adapter()
        .set_access(&new_key(), &credentials.supplier_ref, &full)
        .await
        .unwrap();

    let account = harness.only_account().await;
    assert_eq!(
        account["services"],
        json!({"appointments": false, "prescriptions": false, "messaging": true, "appointments_level": "none", "prescriptions_level": "none"})
    );
    assert_eq!(account["record_level"], "full");
    assert_eq!(account["record_from"], "2024-04-01");

    let coded = access(Services::default(), RecordAccessLevel::DetailedCoded, None);
    harness
        .adapter()
        .set_access(&new_key(), &credentials.supplier_ref, &coded)
        .await
        .unwrap();

    let account = harness.only_account().await;
    assert_eq!(account["record_level"], "detailed-coded");
    assert_eq!(account["record_from"], Value::Null);
    assert_eq!(
        account["services"],
        json!({"appointments": false, "prescriptions": false, "messaging": false, "appointments_level": "none", "prescriptions_level": "none"})
    );
}

async fn reset_linkage_key_replaces_the_old_key(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let old = harness.create(&request()).await.unwrap();

    let new = harness
        .adapter()
        .reset_linkage_key(&new_key(), &old.supplier_ref)
        .await
        .unwrap();

    assert_eq!(new.supplier_ref, old.supplier_ref);
    assert_eq!(new.account_id, old.account_id);
    assert_ne!(new.linkage_key, old.linkage_key);
    assert_eq!(harness.verify(&old).await, Err(SupplierError::InvalidDetails));
    assert_eq!(harness.verify(&new).await.as_deref(), Ok(NHS_NUMBER));
    assert_eq!(harness.only_account().await["linkage_key_resets"], 1);
}

async fn disable_and_enable(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let credentials = harness.create(&request()).await.unwrap();
    let adapter = harness.adapter();

    adapter
        .set_account_enabled(
            &new_key(),
            &credentials.supplier_ref,
            false,
            Some("Requested by the patient"),
        )
        .await
        .unwrap();

    let account = harness.only_account().await;
    assert_eq!(account["enabled"], false);
    assert_eq!(account["reason"], "Requested by the patient");
    assert!(matches!(
        harness.verify(&credentials).await,
        Err(SupplierError::Rejected { .. })
    ));

    adapter
        .set_account_enabled(&new_key(), &credentials.supplier_ref, true, None)
        .await
        .unwrap();

    let account = harness.only_account().await;
    assert_eq!(account["enabled"], true);
    assert_eq!(account["reason"], Value::Null);
    assert_eq!(harness.verify(&credentials).await.as_deref(), Ok(NHS_NUMBER));
}

async fn a_repeated_request_is_replayed_not_repeated(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let credentials = harness.create(&request()).await.unwrap();
    let key = new_key();

    let first = harness
        .adapter()
        .reset_linkage_key(&key, &credentials.supplier_ref)
        .await
        .unwrap();
    let second = harness
        .adapter()
        .reset_linkage_key(&key, &credentials.supplier_ref)
        .await
        .unwrap();

    assert_eq!(second.linkage_key, first.linkage_key);
    assert_eq!(harness.only_account().await["linkage_key_resets"], 1);
    assert!(harness.stat("replays").await >= 1);
}

async fn duplicate_account_is_a_conflict(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness.create(&request()).await.unwrap();

    assert_eq!(harness.create(&request()).await.unwrap_err(), SupplierError::Conflict);
    assert_eq!(harness.accounts().await.len(), 1);
}

async fn practice_not_enabled(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let response = harness
        .admin_put(&format!("/admin/practices/{ODS}"), json!({"enabled": false}))
        .await;
    assert_eq!(response.status(), 204);

    assert_eq!(
        harness.create(&request()).await.unwrap_err(),
        SupplierError::PracticeNotEnabled
    );

    harness
        .admin_put(&format!("/admin/practices/{ODS}"), json!({"enabled": true}))
        .await;
    assert!(harness.create(&request()).await.is_ok());
}

async fn unknown_patient_is_not_found(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let response = harness
        .admin_put(&format!("/admin/patients/{NHS_NUMBER}"), json!({"status": "unknown"}))
        .await;
    assert_eq!(response.status(), 204);

    assert_eq!(
        harness.create(&request()).await.unwrap_err(),
        SupplierError::PatientNotFound
    );
    assert!(harness.accounts().await.is_empty());
}

async fn archived_record(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness
        .admin_put(&format!("/admin/patients/{NHS_NUMBER}"), json!({"status": "archived"}))
        .await;

    assert_eq!(harness.create(&request()).await.unwrap_err(), SupplierError::Archived);
    assert!(harness.accounts().await.is_empty());
}

async fn under_minimum_age(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    let child = CreateAccount {
        birth_date: aged(10),
        ..request()
    };

    assert_eq!(
        harness.create(&child).await.unwrap_err(),
        SupplierError::UnderMinimumAge
    );
    assert!(harness.accounts().await.is_empty());
}

#[tokio::test]
async fn the_minimum_age_is_the_suppliers_own() {
    let twelve = CreateAccount {
        birth_date: aged(12),
        ..request()
    };
    let emis = Harness::start(Supplier::Emis).await;
    let tpp = Harness::start(Supplier::Tpp).await;

    assert_eq!(emis.create(&twelve).await.unwrap_err(), SupplierError::UnderMinimumAge);
    assert!(tpp.create(&twelve).await.is_ok());

    let sixteen = CreateAccount {
        birth_date: aged(16),
        ..request()
    };
    assert!(emis.create(&sixteen).await.is_ok());
}

#[tokio::test]
async fn emis_requires_an_email_address() {
    let harness = Harness::start(Supplier::Emis).await;
    let no_email = CreateAccount {
        email: None,
        ..request()
    };

    let error = harness.create(&no_email).await.unwrap_err();

    assert!(
        matches!(&error, SupplierError::Rejected { code, .. } if code == "4001101"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(harness.accounts().await.is_empty());
}

#[tokio::test]
async fn tpp_does_not_require_an_email_address() {
    let harness = Harness::start(Supplier::Tpp).await;
    let no_email = CreateAccount {
        email: None,
        ..request()
    };

    assert!(harness.create(&no_email).await.is_ok());
}

async fn supplier_down_is_unavailable(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness.set_faults(json!({"down": true})).await;

    let error = harness.create(&request()).await.unwrap_err();

    assert!(matches!(error, SupplierError::Unavailable(_)), "{error:?}");
    assert!(error.is_retryable());
    // The admin API stays up so the outage can be ended.
    assert!(harness.accounts().await.is_empty());
    harness.set_faults(json!({"down": false})).await;
    assert!(harness.create(&request()).await.is_ok());
}

async fn injected_errors_are_unavailable_and_create_nothing(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness.set_faults(json!({"error_rate": 1.0})).await;

    let error = harness.create(&request()).await.unwrap_err();

    assert!(matches!(error, SupplierError::Unavailable(_)), "{error:?}");
    assert!(harness.accounts().await.is_empty());
    assert_eq!(harness.stat("accounts_created").await, 0);
    assert!(harness.stat("faults_injected").await >= 1);
}

async fn latency_beyond_the_timeout_is_a_retryable_timeout(flavour: Supplier) {
    let harness = Harness::start_with_timeout(flavour, Duration::from_millis(200)).await;
    harness.set_faults(json!({"latency_ms": 1_000})).await;

    let started = std::time::Instant::now();
    let error = harness.create(&request()).await.unwrap_err();

    assert!(matches!(error, SupplierError::TimedOut), "{error:?}");
    assert!(error.is_retryable(), "a timeout is tried again");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

async fn a_lost_response_is_recovered_by_retrying_with_the_same_key(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    if let Adapter::Tpp(_) = harness.adapter {
        // Open the session first: with every reply dropped, CreateSession's would be lost too.
        let nobody = AccountCredentials {
            supplier_ref: String::new(),
            account_id: "NOSUCHACCT".into(),
            linkage_key: "NOSUCHKEY234567".into(),
        };
        assert_eq!(harness.verify(&nobody).await, Err(SupplierError::InvalidDetails));
    }
    let key = new_key();
    harness.set_faults(json!({"drop_response_rate": 1.0})).await;

    let error = harness.adapter().create_account(&key, &request()).await.unwrap_err();

    assert!(matches!(error, SupplierError::Unavailable(_)), "{error:?}");
    let account = harness.only_account().await;

    harness.set_faults(json!({"drop_response_rate": 0.0})).await;
    let credentials = harness.adapter().create_account(&key, &request()).await.unwrap();
    let again = harness.adapter().create_account(&key, &request()).await.unwrap();

    assert_eq!(account["supplier_ref"], credentials.supplier_ref.as_str());
    assert_eq!(account["account_id"], credentials.account_id.as_str());
    assert_eq!(
        (&again.supplier_ref, &again.account_id, &again.linkage_key),
        (
            &credentials.supplier_ref,
            &credentials.account_id,
            &credentials.linkage_key
        )
    );
    assert_eq!(harness.only_account().await["record_level"], "summary");
    assert_eq!(harness.stat("accounts_created").await, 1);
    assert!(harness.stat("replays").await >= 2);
    assert_eq!(harness.verify(&credentials).await.as_deref(), Ok(NHS_NUMBER));
}

async fn admin_faults_are_partial_updates(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness.set_faults(json!({"latency_ms": 5, "error_rate": 0.25})).await;
    harness.set_faults(json!({"down": false})).await;

    assert_eq!(
        harness.admin_get("/admin/faults").await,
        json!({"latency_ms": 5, "error_rate": 0.25, "drop_response_rate": 0.0, "down": false, "malformed_rate": 0.0})
    );
    let out_of_range = harness.admin_put("/admin/faults", json!({"error_rate": 1.5})).await;
    assert_eq!(out_of_range.status(), 400);
    let unknown_field = harness.admin_put("/admin/faults", json!({"eror_rate": 1.0})).await;
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(harness.admin_get("/admin/faults").await["error_rate"], 0.25);
}

async fn admin_reset_clears_everything(flavour: Supplier) {
    let harness = Harness::start(flavour).await;
    harness.create(&request()).await.unwrap();
    harness
        .admin_put(&format!("/admin/practices/{ODS}"), json!({"enabled": false}))
        .await;
    harness.set_faults(json!({"latency_ms": 5})).await;

    harness.admin_post("/admin/reset").await;

    assert!(harness.accounts().await.is_empty());
    assert_eq!(harness.admin_get("/admin/faults").await["latency_ms"], 0);
    assert_eq!(
        harness.admin_get("/admin/stats").await,
        json!({"accounts_created": 0, "requests": 0, "replays": 0, "faults_injected": 0})
    );
    assert!(harness.create(&request()).await.is_ok());
}

#[tokio::test]
async fn tpp_renews_an_expired_session_and_retries_once() {
    let harness = Harness::start(Supplier::Tpp).await;
    let credentials = harness.create(&request()).await.unwrap();
    harness.admin_post("/admin/expire-sessions").await;
    let requests_before = harness.stat("requests").await;

    let full = access(Services::default(), RecordAccessLevel::Full, None);
    harness
        .adapter()
        .set_access(&new_key(), &credentials.supplier_ref, &full)
        .await
        .expect("the session is renewed and the message resent");

    assert_eq!(harness.only_account().await["record_level"], "full");
    // Refused for the expired session, CreateSession, then the resent message.
    assert_eq!(harness.stat("requests").await - requests_before, 3);
    assert_eq!(harness.stat("replays").await, 0);
}

#[tokio::test]
async fn simulators_are_independent() {
    let first = Harness::start(Supplier::Emis).await;
    let second = Harness::start(Supplier::Emis).await;
    assert_ne!(first.simulator.base_url(), second.simulator.base_url());
    assert!(first.simulator.base_url().starts_with("http://127.0.0.1:"));
    assert!(!first.simulator.base_url().ends_with('/'));

    first.create(&request()).await.unwrap();

    assert!(second.accounts().await.is_empty());
    assert!(second.create(&request()).await.is_ok());
}
