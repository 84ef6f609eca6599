//! The development profile's proxy roles: the personas' own (a parent, a carer, a care home),
//! and the world the Validated Relationships Service examples describe, at their practice
//! G8101234, with valid NHS numbers standing in for the examples' invalid ones.

use chrono::{NaiveDate, NaiveDateTime};

use crate::config::SupplierSettings;
use crate::db::{self, DbConnection, DbError};
use crate::domain::proxy::{
    AccessRequest, Assessment, LegalBasis, ProxyGrants, ProxyReview, ProxyRole, RELATIONSHIP_SYSTEMS, ReasonRecord,
    RelationshipCode, RoleRequest, RoleStatus, StatusReason,
};
use crate::domain::{NhsNumber, RecordAccessLevel, Services};

/// A calendar date as year, month, day.
type Ymd = (i32, u32, u32);

/// A seeded role. Roles are made through the same rules as any other (`ProxyRole::create`);
/// the inactive and invalidated ones are then given the history their example shows.
pub struct SeedRole {
    pub id: &'static str,
    pub proxy: &'static str,
    pub patient: &'static str,
    pub status: RoleStatus,
    pub reason: StatusReason,
    pub reason_text: Option<&'static str>,
    pub basis: LegalBasis,
    /// (system index in `RELATIONSHIP_SYSTEMS`, code, display)
    pub relationship: (usize, &'static str, &'static str),
    pub services: Services,
    pub period: Option<(Ymd, Option<Ymd>)>,
}

const APPOINTMENTS_AND_PRESCRIPTIONS: Services = Services {
    appointments: crate::domain::ServiceLevel::Manage,
    prescriptions: crate::domain::ServiceLevel::Manage,
    messaging: false,
};

const ALL_SERVICES: Services = Services {
    appointments: crate::domain::ServiceLevel::Manage,
    prescriptions: crate::domain::ServiceLevel::Manage,
    messaging: true,
};

const PRESCRIPTIONS_ONLY: Services = Services {
    appointments: crate::domain::ServiceLevel::None,
    prescriptions: crate::domain::ServiceLevel::Manage,
    messaging: false,
};

const MOTHER: (usize, &str, &str) = (0, "MTH", "mother");
const PARENT: (usize, &str, &str) = (0, "PRN", "parent");
const CHILD: (usize, &str, &str) = (0, "CHILD", "child");
const PERSONAL: (usize, &str, &str) = (2, "Personal", "Personal relationship with the patient");
const CARER: (usize, &str, &str) = (0, "CAREGIVER", "caregiver");

const fn role(
    id: &'static str,
    proxy: &'static str,
    patient: &'static str,
    status: RoleStatus,
    reason: StatusReason,
    basis: LegalBasis,
    relationship: (usize, &'static str, &'static str),
) -> SeedRole {
    SeedRole {
        id,
        proxy,
        patient,
        status,
        reason,
        reason_text: None,
        basis,
        relationship,
        services: APPOINTMENTS_AND_PRESCRIPTIONS,
        period: None,
    }
}

use LegalBasis::{BestInterest, Consent, CourtAppointedDeputy, LastingPowerOfAttorney, ParentalResponsibility};
use RoleStatus::{Active, EnteredInError, Inactive, Proposed};
use StatusReason::{ApplicationSubmitted, DeactivatedEndDateReached, Other, RoleCreated as Created};

pub const ROLES: &[SeedRole] = &[
    // The personas: Megan Jones for her daughter Lily; Daniel Jones, holding lasting power of
    // attorney, for his father William; Rosa Martins, manager of Elmwood care home, for two
    // residents.
    SeedRole {
        services: ALL_SERVICES,
        ..role(
            "1a7e0000-0000-4000-8000-000000000001",
            "9990000069",
            "9990000174",
            Active,
            Created,
            ParentalResponsibility,
            MOTHER,
        )
    },
    role(
        "1a7e0000-0000-4000-8000-000000000002",
        "9990000182",
        "9990000050",
        Active,
        Created,
        LastingPowerOfAttorney,
        CHILD,
    ),
    SeedRole {
        services: PRESCRIPTIONS_ONLY,
        ..role(
            "1a7e0000-0000-4000-8000-000000000003",
            "9990000190",
            "9990000204",
            Active,
            Created,
            Consent,
            CARER,
        )
    },
    role(
        "1a7e0000-0000-4000-8000-000000000004",
        "9990000190",
        "9990000212",
        Active,
        Created,
        BestInterest,
        CARER,
    ),
    // The VRS examples. Performer 9000000017 (Lisa Thompson): the status-filter examples.
    role(
        "bbcc67e9-0000-4000-8000-000000000017",
        "9000000017",
        "9000000009",
        Active,
        Created,
        ParentalResponsibility,
        MOTHER,
    ),
    SeedRole {
        period: Some(((2025, 2, 11), None)),
        ..role(
            "6b71ac92-baa3-4b76-b0f5-a601257e2722",
            "9000000017",
            "9000000025",
            Active,
            Created,
            ParentalResponsibility,
            MOTHER,
        )
    },
    role(
        "dcc067f1-0000-4000-8000-000000000017",
        "9000000017",
        "9000010055",
        Active,
        Created,
        Consent,
        PERSONAL,
    ),
    SeedRole {
        period: Some(((2024, 2, 11), Some((2025, 2, 11)))),
        ..role(
            "aa0d11a1-0000-4000-8000-000000000017",
            "9000000017",
            "9000010063",
            Inactive,
            DeactivatedEndDateReached,
            Consent,
            PERSONAL,
        )
    },
    SeedRole {
        reason_text: Some("Patient would not respond to phone calls"),
        ..role(
            "abcd12b3-0000-4000-8000-000000000017",
            "9000000017",
            "9000010071",
            Inactive,
            Other,
            Consent,
            PERSONAL,
        )
    },
    role(
        "43003db8-ffcd-4bd6-ab2f-b49b9656f9e5",
        "9000000017",
        "9000010209",
        Proposed,
        ApplicationSubmitted,
        Consent,
        PERSONAL,
    ),
    role(
        "ef0012c5-0000-4000-8000-000000000017",
        "9000000017",
        "9000010217",
        Proposed,
        ApplicationSubmitted,
        Consent,
        PERSONAL,
    ),
    // Performer 9000000019 (Sarah Jones), mother of 9000000009.
    SeedRole {
        period: Some(((2025, 2, 11), Some((2029, 2, 11)))),
        ..role(
            "39df03a2-1b14-4d19-b1dc-d5d8cbf96948",
            "9000010195",
            "9000000009",
            Active,
            Created,
            ParentalResponsibility,
            PARENT,
        )
    },
    // Performer 9000000010 (John Smith), court-appointed deputy for 9000000005.
    SeedRole {
        period: Some(((2025, 2, 11), Some((2029, 2, 11)))),
        ..role(
            "74eed847-ca25-4e76-8cf2-f2c2d7842a7a",
            "9000010101",
            "9000010055",
            Active,
            Created,
            CourtAppointedDeputy,
            PERSONAL,
        )
    },
    // Performer 9000000022 (David Brown): several relationships.
    role(
        "bbcc67e9-0000-4000-8000-000000000022",
        "9000010225",
        "9000000009",
        Active,
        Created,
        ParentalResponsibility,
        PARENT,
    ),
    role(
        "dcc067f1-0000-4000-8000-000000000022",
        "9000010225",
        "9000010055",
        Active,
        Created,
        BestInterest,
        PERSONAL,
    ),
    role(
        "aa0d11a1-0000-4000-8000-000000000022",
        "9000010225",
        "9000010063",
        Inactive,
        StatusReason::DeactivatedPatientRequest,
        BestInterest,
        PERSONAL,
    ),
    role(
        "a0922245-1072-40c3-8f4e-a7490c10d365",
        "9000010225",
        "9000010071",
        EnteredInError,
        Other,
        Consent,
        PERSONAL,
    ),
    // Patient 9000000100 (Samantha Adams): several proxies.
    role(
        "bbcc67e9-0000-4000-8000-000000000100",
        "9000010209",
        "9000011000",
        Active,
        Created,
        Consent,
        PERSONAL,
    ),
    role(
        "dcc067f1-0000-4000-8000-000000000100",
        "9000010217",
        "9000011000",
        Active,
        Created,
        CourtAppointedDeputy,
        PERSONAL,
    ),
    role(
        "aa0d11a1-0000-4000-8000-000000000100",
        "9000010225",
        "9000011000",
        Inactive,
        StatusReason::DeactivatedChangeInRelationship,
        CourtAppointedDeputy,
        PERSONAL,
    ),
    // 9000000042 has one proxy, their adult child 9000000009 in the RelatedPerson example.
    role(
        "be974742-0000-4000-8000-000000000042",
        "9000000009",
        "9000020425",
        Proposed,
        ApplicationSubmitted,
        Consent,
        CHILD,
    ),
    // 9000000111 for 9000000119, legal basis not yet known.
    role(
        "af974742-0000-4000-8000-000000000111",
        "9000011116",
        "9000011191",
        Proposed,
        ApplicationSubmitted,
        LegalBasis::Unknown,
        PERSONAL,
    ),
    // 9000000049 already has a proposed role for 9000000006: asking again is a duplicate.
    role(
        "bb0055e2-0000-4000-8000-000000000049",
        "9000010497",
        "9000010063",
        Proposed,
        ApplicationSubmitted,
        Consent,
        PERSONAL,
    ),
];

/// The stored access request of the `GET /QuestionnaireResponse/{id}` example: Jack Jones
/// (9000000005) asked for access to Jill Jones (9000000006). It was withdrawn, so the pair is
/// free for the `POST /QuestionnaireResponse` examples.
pub const ACCESS_REQUEST_ID: &str = "156e1560-e532-4e2a-85ad-5aeff03dc43e";
pub const ACCESS_REQUEST_REFERENCE: &str = "19318ZGLAB";
const ACCESS_REQUEST_BODY: &str = include_str!("access-request-19318ZGLAB.json");

fn date(d: Ymd) -> Result<NaiveDateTime, DbError> {
    NaiveDate::from_ymd_opt(d.0, d.1, d.2)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .ok_or_else(|| DbError::Query("seed date is invalid".into()))
}

fn nhs(n: &str) -> Result<NhsNumber, DbError> {
    NhsNumber::parse(n).map_err(|_| DbError::Query(format!("seed NHS number {n} is invalid")))
}

/// Inserts the seeded roles, links the active ones at the patient's supplier through the
/// outbox, and opens a review Task for each proposed one.
pub fn seed(conn: &mut DbConnection, suppliers: &SupplierSettings, now: NaiveDateTime) -> Result<(), DbError> {
    let seed_error = |what: String| DbError::Query(what);
    for s in ROLES {
        let patient =
            db::patients::find_by_identifier(conn, crate::domain::PatientIdentifierSystem::NhsNumber, s.patient)?
                .ok_or_else(|| seed_error(format!("seed patient {} missing", s.patient)))?;
        let practice = db::practices::find(conn, &patient.practice_id)?
            .ok_or_else(|| seed_error("seed practice missing".into()))?;
        let (start, end) = match s.period {
            Some((start, end)) => (Some(date(start)?), end.map(date).transpose()?),
            None => (None, None),
        };
        let created_as = if s.status == Proposed { Proposed } else { Active };
        let (system, code, display) = s.relationship;
        let request = RoleRequest {
            status: created_as,
            reason: ReasonRecord {
                reason: if created_as == Proposed {
                    ApplicationSubmitted
                } else {
                    Created
                },
                text: None,
            },
            patient_nhs_number: nhs(s.patient)?,
            proxy_nhs_number: nhs(s.proxy)?,
            legal_basis: s.basis,
            relationships: vec![RelationshipCode {
                system: RELATIONSHIP_SYSTEMS[system].to_owned(),
                code: code.to_owned(),
                display: Some(display.to_owned()),
            }],
            grantor: Some(practice.ods_code.clone()),
            date_time: date((2024, 7, 21))?,
            period_start: start,
            period_end: None,
            grants: Some(ProxyGrants {
                services: s.services,
                record_level: RecordAccessLevel::None,
                record_from: None,
            }),
            assessment: Some(Assessment {
                coercion_considered: created_as == Active,
                safeguarding_considered: created_as == Active,
                attested_by: (created_as == Active).then(|| "seed".to_owned()),
                attested_at: (created_as == Active).then_some(now),
                ..Default::default()
            }),
        };
        let mut role = ProxyRole::create(
            s.id.to_owned(),
            request,
            &patient.id,
            &patient.practice_id,
            patient.details.birth_date,
            now,
        )
        .map_err(|p| seed_error(format!("seed role {} breaks a rule: {}", s.id, p.code())))?;
        // The history the example shows: ended on its end date, or ended since.
        role.period_end = end;
        if matches!(s.status, Inactive | EnteredInError) {
            role.status = s.status;
        }
        role.reason = ReasonRecord {
            reason: s.reason,
            text: s.reason_text.map(str::to_owned),
        };
        role.reviewed_at = (role.status == Active).then_some(now);
        db::proxy_roles::insert(conn, &role)?;
        match role.status {
            Active => crate::services::proxy::enqueue_link(conn, suppliers, &mut role, now.date())?,
            Proposed => {
                db::proxy_roles::insert_review(conn, &ProxyReview::requested(format!("review-{}", s.id), &role, now))?
            }
            _ => {}
        }
    }
    seed_access_request(conn, now)
}

fn seed_access_request(conn: &mut DbConnection, now: NaiveDateTime) -> Result<(), DbError> {
    let patient =
        db::patients::find_by_identifier(conn, crate::domain::PatientIdentifierSystem::NhsNumber, "9000010063")?;
    let role = ProxyRole::create(
        "1a7e0000-0000-4000-8000-000000000005".to_owned(),
        RoleRequest {
            status: Proposed,
            reason: ReasonRecord {
                reason: ApplicationSubmitted,
                text: None,
            },
            patient_nhs_number: nhs("9000010063")?,
            proxy_nhs_number: nhs("9000010055")?,
            legal_basis: Consent,
            relationships: vec![RelationshipCode {
                system: RELATIONSHIP_SYSTEMS[0].to_owned(),
                code: "PRN".to_owned(),
                display: Some("Parent".to_owned()),
            }],
            grantor: None,
            date_time: date((2024, 7, 15))?,
            period_start: None,
            period_end: None,
            grants: None,
            assessment: None,
        },
        patient.as_ref().map_or("", |p| p.id.as_str()),
        patient.as_ref().map_or("", |p| p.practice_id.as_str()),
        patient
            .as_ref()
            .map_or_else(|| NaiveDate::MIN, |p| p.details.birth_date),
        now,
    )
    .map_err(|p| DbError::Query(format!("seed access request breaks a rule: {}", p.code())))?;
    let mut role = role;
    role.status = RoleStatus::Rejected;
    role.reason = ReasonRecord {
        reason: StatusReason::Withdrawn,
        text: None,
    };
    role.access_request_id = Some(ACCESS_REQUEST_ID.to_owned());
    db::proxy_roles::insert(conn, &role)?;
    db::proxy_roles::insert_request(
        conn,
        &AccessRequest {
            id: ACCESS_REQUEST_ID.to_owned(),
            reference: ACCESS_REQUEST_REFERENCE.to_owned(),
            proxy_nhs_number: "9000010055".to_owned(),
            patient_nhs_number: "9000010063".to_owned(),
            patient_id: patient.map(|p| p.id),
            role_id: Some(role.id.clone()),
            body: ACCESS_REQUEST_BODY.to_owned(),
            submitted_by: "patient:9000010055".to_owned(),
            // Made (and withdrawn) when the example says, long before today: a new request for
            // the pair is not a repeat.
            created_at: role.date_time,
        },
    )
}
