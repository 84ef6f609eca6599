//! The development profile's fixed world: two practices (EMIS-like and TPP-like), a handful of
//! patients each, and the personas the dev identity provider signs tokens for.

use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};

use crate::config::{IssuerKind, SupplierSettings};
use crate::db::accounts::OnlineAccount;
use crate::db::{self, DbConnection, DbError};
use crate::domain::{
    AccessModel, AccessSettings, Attestation, Gender, IdentityVerification, NhsNumber, OdsCode, OnlineServicesSettings,
    PatientDetails, PatientIdentifier, PracticeRecord, RecordAccessLevel, Services, Supplier, VerificationMethod,
};
use crate::services::accounts::create_payload;
use crate::services::provisioning;

pub struct SeedPractice {
    pub id: &'static str,
    pub ods: &'static str,
    pub name: &'static str,
    pub supplier: Supplier,
    pub access_model: AccessModel,
}

pub const PRACTICES: [SeedPractice; 2] = [
    SeedPractice {
        id: "practice-a81001",
        ods: "A81001",
        name: "Riverside Medical Centre",
        supplier: Supplier::Emis,
        access_model: AccessModel::OptOut,
    },
    SeedPractice {
        id: "practice-b82005",
        ods: "B82005",
        name: "Moorland Surgery",
        supplier: Supplier::Tpp,
        access_model: AccessModel::OptIn,
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

pub const PATIENTS: [SeedPatient; 10] = [
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
            appointments: true,
            prescriptions: true,
            messaging: true,
        },
        record_level: RecordAccessLevel::Full,
        record_from: Some((2024, 1, 1)),
    },
    SeedAccount {
        patient_id: "patient-amir-khan",
        services: Services {
            appointments: true,
            prescriptions: true,
            messaging: false,
        },
        record_level: RecordAccessLevel::Summary,
        record_from: None,
    },
    SeedAccount {
        patient_id: "patient-priya-patel",
        services: Services {
            appointments: true,
            prescriptions: false,
            messaging: false,
        },
        record_level: RecordAccessLevel::None,
        record_from: None,
    },
    SeedAccount {
        patient_id: "patient-megan-jones",
        services: Services {
            appointments: true,
            prescriptions: true,
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
                    version: 1,
                    last_updated: now.and_utc(),
                },
            )?;
        }
        for p in &PATIENTS {
            let practice = PRACTICES
                .iter()
                .find(|x| x.ods == p.practice_ods)
                .expect("seed practice exists");
            let (y, m, d) = p.birth_date;
            let details = PatientDetails::new(
                PatientIdentifier::nhs(&NhsNumber::parse(p.nhs_number).expect("seed NHS number is valid")),
                p.family,
                vec![p.given.into()],
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
    db::accounts::insert(conn, &account)?;
    let payload = create_payload(&patient, &practice, &account.email, &access);
    db::outbox::enqueue(
        conn,
        &provisioning::job(suppliers, &account.id, &patient.id, practice.supplier, &payload),
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

fn patient_claims(sub: &str, seed_index: usize, level: &str, vot: &str) -> Value {
    let p = &PATIENTS[seed_index];
    let (y, m, d) = p.birth_date;
    json!({
        "sub": sub,
        "nhs_number": p.nhs_number,
        "identity_proofing_level": level,
        "vot": vot,
        "birthdate": format!("{y:04}-{m:02}-{d:02}"),
        "family_name": p.family,
        "email": p.email,
        "gp_registration_details": {"gp_ods_code": p.practice_ods}
    })
}

fn staff_claims(sub: &str, name: &str, ods: &str, role_code: &str, role_name: &str) -> Value {
    json!({
        "sub": sub,
        "name": name,
        "nhsid_nrbac_roles": [{"org_code": ods, "role_code": role_code, "role_name": role_name}]
    })
}

pub const PERSONAS: [Persona; 10] = [
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
        claims: || json!({"sub": "nhs-login-idp", "client_id": "nhs-login-idp", "scope": "identity:verify-linkage identity:link"}),
    },
    Persona {
        name: "patient-p9",
        realm: IssuerKind::Patient,
        description: "Jane Smith, P9 (high assurance), registered at A81001",
        claims: || patient_claims("nhslogin-sub-jane-smith", 0, "P9", "P9.Cp.Cd"),
    },
    Persona {
        name: "patient-p5",
        realm: IssuerKind::Patient,
        description: "Amir Khan, P5 (medium assurance), registered at A81001",
        claims: || patient_claims("nhslogin-sub-amir-khan", 2, "P5", "P5.Cp.Cd"),
    },
    Persona {
        name: "patient-p0",
        realm: IssuerKind::Patient,
        description: "Priya Patel, P0 (low assurance), registered at B82005",
        claims: || patient_claims("nhslogin-sub-priya-patel", 6, "P0", "P0.Cp"),
    },
    Persona {
        name: "proxy-p9",
        realm: IssuerKind::Patient,
        description: "Megan Jones, P9, registered at B82005 (a parent and carer)",
        claims: || patient_claims("nhslogin-sub-megan-jones", 5, "P9", "P9.Cp.Cd"),
    },
];

pub fn persona(name: &str) -> Option<&'static Persona> {
    PERSONAS.iter().find(|p| p.name == name)
}
