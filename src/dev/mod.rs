//! The development profile's fixed world: two practices (EMIS-like and TPP-like) with a handful
//! of patients each, the practice the Validated Relationships Service examples name, the proxy
//! roles between them, and the personas the dev identity provider signs tokens for.

pub mod clock;
pub mod login;
pub mod proxies;
pub mod records;

use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};

use crate::config::{IssuerKind, SupplierSettings};
use crate::db::accounts::OnlineAccount;
use crate::db::{self, DbConnection, DbError};
use crate::domain::{
    AccessModel, AccessSettings, Attestation, Gender, IdentityVerification, NhsNumber, OdsCode, OnlineServicesSettings,
    PatientDetails, PatientIdentifier, PracticeAddress, PracticeRecord, RecordAccessLevel, Services, Supplier,
    Telephone, VerificationMethod,
};
use crate::services::accounts::create_payload;
use crate::services::jobs;

pub struct SeedPractice {
    pub id: &'static str,
    pub ods: &'static str,
    pub name: &'static str,
    pub supplier: Supplier,
    pub access_model: AccessModel,
    /// Street lines, town and postcode.
    pub address: (&'static [&'static str], &'static str, &'static str),
    /// From the ranges Ofcom keeps for drama, so no real line is ever rung.
    pub telephone: &'static str,
}

pub const PRACTICES: [SeedPractice; 3] = [
    SeedPractice {
        id: "practice-a81001",
        ods: "A81001",
        name: "Riverside Medical Centre",
        supplier: Supplier::Emis,
        access_model: AccessModel::OptOut,
        address: (&["1 Riverside Walk"], "Leeds", "LS1 4AP"),
        telephone: "0113 496 0000",
    },
    SeedPractice {
        id: "practice-b82005",
        ods: "B82005",
        name: "Moorland Surgery",
        supplier: Supplier::Tpp,
        access_model: AccessModel::OptIn,
        address: (&["Moorland House", "22 Station Road"], "Newcastle upon Tyne", "NE1 5DL"),
        telephone: "0191 498 0001",
    },
    SeedPractice {
        id: "practice-g8101234",
        ods: "G8101234",
        name: "Validated Relationships Example Practice",
        supplier: Supplier::Emis,
        access_model: AccessModel::OptOut,
        address: (&["3 Example Lane"], "Bristol", "BS1 6QH"),
        telephone: "0117 496 0002",
    },
];

pub struct SeedPatient {
    pub id: &'static str,
    pub practice_ods: &'static str,
    pub nhs_number: &'static str,
    pub family: &'static str,
    pub given: &'static str,
    pub birth_date: (i32, u32, u32),
    pub gender: Gender,
    pub email: Option<&'static str>,
}

/// A patient of the VRS example practice, standing for the person an example names.
const fn vrs(
    id: &'static str,
    nhs_number: &'static str,
    given: &'static str,
    family: &'static str,
    birth_date: (i32, u32, u32),
    gender: Gender,
) -> SeedPatient {
    SeedPatient {
        id,
        practice_ods: "G8101234",
        nhs_number,
        family,
        given,
        birth_date,
        gender,
        email: None,
    }
}

pub const PATIENTS: &[SeedPatient] = &[
    SeedPatient {
        id: "patient-jane-smith",
        practice_ods: "A81001",
        nhs_number: "9990000018",
        family: "Smith",
        given: "Jane",
        birth_date: (1980, 5, 1),
        gender: Gender::Female,
        email: Some("jane.smith@example.org"),
    },
    SeedPatient {
        id: "patient-oliver-smith",
        practice_ods: "A81001",
        nhs_number: "9990000026",
        family: "Smith",
        given: "Oliver",
        birth_date: (2014, 9, 12),
        gender: Gender::Male,
        email: None,
    },
    SeedPatient {
        id: "patient-amir-khan",
        practice_ods: "A81001",
        nhs_number: "9990000034",
        family: "Khan",
        given: "Amir",
        birth_date: (1956, 2, 28),
        gender: Gender::Male,
        email: Some("amir.khan@example.org"),
    },
    SeedPatient {
        id: "patient-grace-okafor",
        practice_ods: "A81001",
        nhs_number: "9990000042",
        family: "Okafor",
        given: "Grace",
        birth_date: (1992, 11, 3),
        gender: Gender::Female,
        email: Some("grace.okafor@example.org"),
    },
    SeedPatient {
        id: "patient-william-jones",
        practice_ods: "B82005",
        nhs_number: "9990000050",
        family: "Jones",
        given: "William",
        birth_date: (1948, 7, 19),
        gender: Gender::Male,
        email: Some("bill.jones@example.org"),
    },
    SeedPatient {
        id: "patient-megan-jones",
        practice_ods: "B82005",
        nhs_number: "9990000069",
        family: "Jones",
        given: "Megan",
        birth_date: (1975, 3, 8),
        gender: Gender::Female,
        email: Some("megan.jones@example.org"),
    },
    SeedPatient {
        id: "patient-priya-patel",
        practice_ods: "B82005",
        nhs_number: "9990000077",
        family: "Patel",
        given: "Priya",
        birth_date: (2001, 1, 23),
        gender: Gender::Female,
        email: Some("priya.patel@example.org"),
    },
    SeedPatient {
        id: "patient-tom-brown",
        practice_ods: "B82005",
        nhs_number: "9990000085",
        family: "Brown",
        given: "Tom",
        birth_date: (2010, 6, 30),
        gender: Gender::Male,
        email: None,
    },
    SeedPatient {
        id: "patient-lucy-evans",
        practice_ods: "A81001",
        nhs_number: "9990000158",
        family: "Evans",
        given: "Lucy",
        birth_date: (1988, 8, 14),
        gender: Gender::Female,
        email: Some("lucy.evans@example.org"),
    },
    SeedPatient {
        id: "patient-ravi-shah",
        practice_ods: "B82005",
        nhs_number: "9990000166",
        family: "Shah",
        given: "Ravi",
        birth_date: (1969, 12, 2),
        gender: Gender::Male,
        email: Some("ravi.shah@example.org"),
    },
    // Proxies' patients: Megan Jones's daughter; William Jones's son, his attorney; two
    // residents of Elmwood care home.
    SeedPatient {
        id: "patient-lily-jones",
        practice_ods: "B82005",
        nhs_number: "9990000174",
        family: "Jones",
        given: "Lily",
        birth_date: (2019, 4, 10),
        gender: Gender::Female,
        email: None,
    },
    SeedPatient {
        id: "patient-daniel-jones",
        practice_ods: "A81001",
        nhs_number: "9990000182",
        family: "Jones",
        given: "Daniel",
        birth_date: (1972, 2, 20),
        gender: Gender::Male,
        email: Some("daniel.jones@example.org"),
    },
    SeedPatient {
        id: "patient-edith-clarke",
        practice_ods: "A81001",
        nhs_number: "9990000204",
        family: "Clarke",
        given: "Edith",
        birth_date: (1931, 3, 14),
        gender: Gender::Female,
        email: None,
    },
    SeedPatient {
        id: "patient-harold-baker",
        practice_ods: "A81001",
        nhs_number: "9990000212",
        family: "Baker",
        given: "Harold",
        birth_date: (1936, 11, 2),
        gender: Gender::Male,
        email: None,
    },
    // The people of the VRS examples, under the example's number where it is valid and a
    // stand-in where it is not (the README lists them).
    vrs(
        "vrs-9000000009",
        "9000000009",
        "Jane Marie Anne",
        "Smith",
        (2022, 10, 22),
        Gender::Female,
    ),
    vrs(
        "vrs-9000000017",
        "9000000017",
        "Lisa",
        "Thompson",
        (1988, 6, 1),
        Gender::Female,
    ),
    vrs(
        "vrs-9000000025",
        "9000000025",
        "Daren",
        "Fearon",
        (2018, 4, 27),
        Gender::Male,
    ),
    vrs(
        "vrs-9000000033",
        "9000000033",
        "Priya",
        "Nair",
        (1979, 3, 3),
        Gender::Female,
    ),
    vrs(
        "vrs-9730675929",
        "9730675929",
        "Tom",
        "Okoro",
        (1972, 8, 8),
        Gender::Male,
    ),
    vrs(
        "vrs-9876543210",
        "9876543210",
        "Danny",
        "Smith",
        (1960, 5, 5),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010020",
        "9000010020",
        "Timothy",
        "Tenenbaum",
        (2020, 10, 22),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010055",
        "9000010055",
        "Sally",
        "Evans",
        (1975, 4, 4),
        Gender::Female,
    ),
    vrs(
        "vrs-9000010063",
        "9000010063",
        "Jill",
        "Jones",
        (1965, 1, 1),
        Gender::Female,
    ),
    vrs(
        "vrs-9000010071",
        "9000010071",
        "Michael",
        "Percy",
        (1991, 1, 13),
        Gender::Male,
    ),
    vrs(
        "vrs-9000020085",
        "9000020085",
        "Florence",
        "Smith",
        (1935, 1, 2),
        Gender::Female,
    ),
    vrs(
        "vrs-9000010101",
        "9000010101",
        "John",
        "Smith",
        (1980, 1, 15),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010128",
        "9000010128",
        "Noah",
        "Clarke",
        (2019, 6, 1),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010195",
        "9000010195",
        "Sarah",
        "Jones",
        (1985, 3, 22),
        Gender::Female,
    ),
    vrs(
        "vrs-9000010209",
        "9000010209",
        "Emma",
        "Wilson",
        (1982, 2, 2),
        Gender::Female,
    ),
    vrs(
        "vrs-9000010217",
        "9000010217",
        "Mark",
        "Taylor",
        (1979, 9, 9),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010225",
        "9000010225",
        "David",
        "Brown",
        (1970, 10, 10),
        Gender::Male,
    ),
    vrs(
        "vrs-9000020425",
        "9000020425",
        "Arthur",
        "Mogaji",
        (1950, 12, 12),
        Gender::Male,
    ),
    vrs(
        "vrs-9000010497",
        "9000010497",
        "Kate",
        "Morris",
        (1984, 4, 14),
        Gender::Female,
    ),
    vrs(
        "vrs-9000011000",
        "9000011000",
        "Samantha",
        "Adams",
        (1963, 11, 2),
        Gender::Female,
    ),
    vrs(
        "vrs-9000011116",
        "9000011116",
        "Paul",
        "Green",
        (1977, 7, 7),
        Gender::Male,
    ),
    vrs(
        "vrs-9000011191",
        "9000011191",
        "Rose",
        "Green",
        (2015, 5, 5),
        Gender::Female,
    ),
];

/// The NHS numbers the VRS examples use that fail the Modulus 11 check, and the valid number
/// the dev profile seeds in place of each.
pub const VRS_STAND_INS: &[(&str, &str)] = &[
    ("9000000002", "9000010020"),
    ("9000000005", "9000010055"),
    ("9000000006", "9000010063"),
    ("9000000007", "9000010071"),
    ("9000000008", "9000020085"),
    ("9000000010", "9000010101"),
    ("9000000012", "9000010128"),
    ("9000000019", "9000010195"),
    ("9000000020", "9000010209"),
    ("9000000021", "9000010217"),
    ("9000000022", "9000010225"),
    ("9000000042", "9000020425"),
    ("9000000049", "9000010497"),
    ("9000000050", "9000010500"),
    ("9000000051", "9000010519"),
    ("9000000052", "9000010527"),
    ("9000000053", "9000010535"),
    ("9000000054", "9000010543"),
    ("9000000055", "9000010551"),
    ("9000000056", "9000020565"),
    ("9000000057", "9000010578"),
    ("9000000058", "9000010586"),
    ("9000000100", "9000011000"),
    ("9000000111", "9000011116"),
    ("9000000119", "9000011191"),
    ("9000000999", "9000019990"),
];

/// Seeded online accounts: the patients the patient personas stand for. They are created at the
/// supplier through the outbox like any other registration.
pub struct SeedAccount {
    pub patient_id: &'static str,
    pub services: Services,
    pub record_level: RecordAccessLevel,
    pub record_from: Option<(i32, u32, u32)>,
}

pub const ACCOUNTS: [SeedAccount; 4] = [
    SeedAccount {
        patient_id: "patient-jane-smith",
        services: Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::Manage,
            messaging: true,
        },
        record_level: RecordAccessLevel::Full,
        record_from: Some((2024, 1, 1)),
    },
    SeedAccount {
        patient_id: "patient-amir-khan",
        services: Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::Manage,
            messaging: false,
        },
        record_level: RecordAccessLevel::Summary,
        record_from: None,
    },
    SeedAccount {
        patient_id: "patient-priya-patel",
        services: Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::None,
            messaging: false,
        },
        record_level: RecordAccessLevel::None,
        record_from: None,
    },
    SeedAccount {
        patient_id: "patient-megan-jones",
        services: Services {
            appointments: crate::domain::ServiceLevel::Manage,
            prescriptions: crate::domain::ServiceLevel::Manage,
            messaging: true,
        },
        record_level: RecordAccessLevel::DetailedCoded,
        record_from: None,
    },
];

/// Inserts the seed world if the database has no practices yet. Returns whether it seeded.
pub fn seed(conn: &mut DbConnection, suppliers: &SupplierSettings) -> Result<bool, DbError> {
    let (existing, _) = db::practices::search(conn, None, 0, 1)?;
    if existing > 0 {
        return Ok(false);
    }
    db::write_transaction(conn, |conn| {
        let now = db::now();
        let today = Utc::now().date_naive();
        for p in &PRACTICES {
            db::practices::insert(
                conn,
                &PracticeRecord {
                    id: p.id.into(),
                    ods_code: OdsCode::parse(p.ods).expect("seed ODS code is valid"),
                    name: p.name.into(),
                    supplier: p.supplier,
                    settings: OnlineServicesSettings {
                        access_model: p.access_model,
                        ..Default::default()
                    },
                    address: Some(
                        PracticeAddress::parse(
                            &p.address.0.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
                            Some(p.address.1),
                            Some(p.address.2),
                        )
                        .expect("seed address is valid"),
                    ),
                    telephone: Some(Telephone::parse(p.telephone).expect("seed telephone is valid")),
                    version: 1,
                    last_updated: now.and_utc(),
                },
            )?;
        }
        for p in PATIENTS {
            let practice = PRACTICES
                .iter()
                .find(|x| x.ods == p.practice_ods)
                .expect("seed practice exists");
            let (y, m, d) = p.birth_date;
            let details = PatientDetails::new(
                PatientIdentifier::nhs(&NhsNumber::parse(p.nhs_number).expect("seed NHS number is valid")),
                p.family,
                p.given.split(' ').map(str::to_owned).collect(),
                NaiveDate::from_ymd_opt(y, m, d).expect("seed date is valid"),
                p.gender,
                p.email,
                today,
            )
            .expect("seed patient is valid");
            db::patients::insert(conn, p.id, practice.id, &details, now)?;
        }
        for a in &ACCOUNTS {
            seed_account(conn, a, suppliers, now)?;
        }
        proxies::seed(conn, suppliers, now)?;
        Ok(true)
    })
}

fn seed_account(
    conn: &mut DbConnection,
    a: &SeedAccount,
    suppliers: &SupplierSettings,
    now: chrono::NaiveDateTime,
) -> Result<(), DbError> {
    let patient =
        db::patients::find(conn, a.patient_id)?.ok_or_else(|| DbError::Query("seed patient missing".into()))?;
    let practice = db::practices::find(conn, &patient.practice_id)?
        .ok_or_else(|| DbError::Query("seed practice missing".into()))?;
    let access = AccessSettings {
        services: a.services,
        record_level: a.record_level,
        record_from: a.record_from.and_then(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d)),
    };
    let at = now.and_utc();
    let account = OnlineAccount::pending(
        format!("account-{}", a.patient_id.trim_start_matches("patient-")),
        &patient.id,
        &practice.id,
        patient.details.email.clone().unwrap_or_default(),
        access.clone(),
        IdentityVerification {
            method: VerificationMethod::NhsLoginP9,
            documents: vec![],
            verified_by: "seed".into(),
            verified_at: at,
        },
        Attestation {
            responsibilities_acknowledged: true,
            coercion_considered: true,
            capacity_considered: true,
            attested_by: "seed".into(),
            attested_at: at,
        },
        now,
    );
    // The supplier is told the access with the practice's model applied, as for any account.
    let mut account = account;
    let codes = Default::default();
    let state = crate::domain::entitlements::PatientState {
        patient: &patient,
        practice: &practice,
        account: Some(&account),
        codes: &codes,
    };
    let sent = crate::domain::entitlements::for_supplier(&state, &account, &account.access, now.date());
    account.sent_access = Some(sent.clone());
    db::accounts::insert(conn, &account)?;
    let payload = create_payload(&patient, &practice, &account.email, &sent);
    db::outbox::enqueue(
        conn,
        &jobs::job(
            suppliers,
            crate::domain::JobSubject::Account(&account.id),
            &patient.id,
            practice.supplier,
            &payload,
        ),
    )
}

pub struct Persona {
    pub name: &'static str,
    pub realm: IssuerKind,
    pub description: &'static str,
    claims: fn() -> Value,
}

impl Persona {
    pub fn claims(&self) -> Value {
        (self.claims)()
    }
}

/// NHS login-like claims for the person with this NHS number, with the demographics the seed
/// holds for them if any. `vot` starts with the proofing level (`P9.Cp.Cd`).
pub fn person_claims(sub: &str, nhs_number: &str, vot: &str) -> Value {
    let level = vot.split('.').next().unwrap_or("P9");
    let mut claims = json!({
        "sub": sub,
        "nhs_number": nhs_number,
        "identity_proofing_level": level,
        "vot": vot,
    });
    if let Some(p) = PATIENTS.iter().find(|p| p.nhs_number == nhs_number) {
        let (y, m, d) = p.birth_date;
        claims["birthdate"] = json!(format!("{y:04}-{m:02}-{d:02}"));
        claims["family_name"] = json!(p.family);
        claims["email"] = json!(p.email);
        claims["gp_registration_details"] = json!({"gp_ods_code": p.practice_ods});
    }
    claims
}

/// A delegated token: issued for the patient (`sub`, `nhs_number`), used by the proxy named in
/// `act`.
pub fn delegated_claims(patient_nhs_number: &str, proxy_sub: &str, proxy_nhs_number: &str, vot: &str) -> Value {
    let mut claims = person_claims(&format!("nhslogin-sub-{patient_nhs_number}"), patient_nhs_number, vot);
    claims["act"] = json!({"sub": proxy_sub, "nhs_number": proxy_nhs_number});
    claims
}

fn patient_claims(sub: &str, nhs_number: &str, vot: &str) -> Value {
    person_claims(sub, nhs_number, vot)
}

fn staff_claims(sub: &str, name: &str, ods: &str, role_code: &str, role_name: &str) -> Value {
    json!({
        "sub": sub,
        "name": name,
        "nhsid_nrbac_roles": [{"org_code": ods, "role_code": role_code, "role_name": role_name}]
    })
}

pub const PERSONAS: [Persona; 16] = [
    Persona {
        name: "staff-emis",
        realm: IssuerKind::Staff,
        description: "Sam Patel, practice administrator at Riverside Medical Centre (A81001, EMIS-like): registers, changes access, edits settings",
        claims: || {
            staff_claims(
                "staff-0001-riverside",
                "Sam Patel",
                "A81001",
                "S8000:G8000:R8008",
                "Admin/Clinical Support Access Role",
            )
        },
    },
    Persona {
        name: "staff-tpp",
        realm: IssuerKind::Staff,
        description: "Alex Morgan, practice administrator at Moorland Surgery (B82005, TPP-like)",
        claims: || {
            staff_claims(
                "staff-0002-moorland",
                "Alex Morgan",
                "B82005",
                "S8000:G8000:R8008",
                "Admin/Clinical Support Access Role",
            )
        },
    },
    Persona {
        name: "clinician-emis",
        realm: IssuerKind::Staff,
        description: "Dr Ada Osei, GP at Riverside Medical Centre (A81001): completes record reviews, reads the audit trail",
        claims: || {
            staff_claims(
                "staff-0003-riverside",
                "Dr Ada Osei",
                "A81001",
                "S8000:G8000:R8000",
                "Clinical Practitioner Access Role",
            )
        },
    },
    Persona {
        name: "clinician-tpp",
        realm: IssuerKind::Staff,
        description: "Dr Ben Hughes, GP at Moorland Surgery (B82005)",
        claims: || {
            staff_claims(
                "staff-0004-moorland",
                "Dr Ben Hughes",
                "B82005",
                "S8000:G8000:R8000",
                "Clinical Practitioner Access Role",
            )
        },
    },
    Persona {
        name: "reception-emis",
        realm: IssuerKind::Staff,
        description: "Chris Lee, receptionist at Riverside Medical Centre (A81001): may only look things up",
        claims: || {
            staff_claims(
                "staff-0005-riverside",
                "Chris Lee",
                "A81001",
                "S8000:G8001:R8010",
                "Clerical Access Role",
            )
        },
    },
    Persona {
        name: "system-idp",
        realm: IssuerKind::System,
        description: "an NHS login-like identity provider (client credentials)",
        claims: || json!({"sub": "nhs-login-idp", "client_id": "nhs-login-idp", "scope": "identity:verify-linkage identity:link identity:register"}),
    },
    Persona {
        name: "patient-p9",
        realm: IssuerKind::Patient,
        description: "Jane Smith, P9 (high assurance), registered at A81001",
        claims: || patient_claims("nhslogin-sub-jane-smith", "9990000018", "P9.Cp.Cd"),
    },
    Persona {
        name: "patient-p5",
        realm: IssuerKind::Patient,
        description: "Amir Khan, P5 (medium assurance), registered at A81001",
        claims: || patient_claims("nhslogin-sub-amir-khan", "9990000034", "P5.Cp.Cd"),
    },
    Persona {
        name: "patient-p0",
        realm: IssuerKind::Patient,
        description: "Priya Patel, P0 (low assurance), registered at B82005",
        claims: || patient_claims("nhslogin-sub-priya-patel", "9990000077", "P0.Cp"),
    },
    Persona {
        name: "proxy-p9",
        realm: IssuerKind::Patient,
        description: "Megan Jones, P9, registered at B82005: parent of Lily Jones (7), an active proxy role",
        claims: || patient_claims("nhslogin-sub-megan-jones", "9990000069", "P9.Cp.Cd"),
    },
    Persona {
        name: "proxy-p9-for-lily",
        realm: IssuerKind::Patient,
        description: "Megan Jones acting for Lily Jones: a delegated token (sub Lily, act Megan)",
        claims: || delegated_claims("9990000174", "nhslogin-sub-megan-jones", "9990000069", "P9.Cp.Cd"),
    },
    Persona {
        name: "carer-p9",
        realm: IssuerKind::Patient,
        description: "Daniel Jones, P9: lasting power of attorney for his father William Jones (B82005), who lacks capacity",
        claims: || patient_claims("nhslogin-sub-daniel-jones", "9990000182", "P9.Cp.Cd"),
    },
    Persona {
        name: "carehome-p9",
        realm: IssuerKind::Patient,
        description: "Rosa Martins, P9, manager of Elmwood care home: proxy for residents Edith Clarke and Harold Baker (A81001)",
        claims: || patient_claims("nhslogin-sub-rosa-martins", "9990000190", "P9.Cp.Cd"),
    },
    Persona {
        name: "staff-vrs",
        realm: IssuerKind::Staff,
        description: "Kim Ashworth, practice manager at G8101234, the practice the VRS examples name: manages proxy roles",
        claims: || {
            staff_claims(
                "staff-0006-g8101234",
                "Kim Ashworth",
                "G8101234",
                "S8000:G8000:R8008",
                "Admin/Clinical Support Access Role",
            )
        },
    },
    Persona {
        name: "system-supplier",
        realm: IssuerKind::System,
        description: "a GP supplier system reporting registration events, and the operations scheduler (supplier:events operations:transitions)",
        claims: || json!({"sub": "supplier-events", "client_id": "supplier-events", "scope": "supplier:events operations:transitions"}),
    },
    Persona {
        name: "system-app",
        realm: IssuerKind::System,
        description: "a proxy-management application (client credentials, proxy:read proxy:write)",
        claims: || json!({"sub": "proxy-app", "client_id": "proxy-app", "scope": "proxy:read proxy:write"}),
    },
];

pub fn persona(name: &str) -> Option<&'static Persona> {
    PERSONAS.iter().find(|p| p.name == name)
}
