//! The engine as a table: each row is one caller, target and action with the expected verdict,
//! refusal code and deciding rule.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::*;
use crate::domain::entitlements::{Entitlements, Standing, Via};
use crate::domain::{AccessSettings, AccountStatus, AssurancePolicy, NhsNumber, OdsCode, ProofingLevel};

fn ods(code: &str) -> OdsCode {
    OdsCode::parse(code).unwrap()
}

fn policy() -> Policy {
    let role = |code: &str, permissions: &[Permission]| (code.to_owned(), permissions.iter().copied().collect());
    Policy {
        staff_roles: BTreeMap::from([
            role("R8000", &Permission::ALL),
            role("R8010", &[Permission::Read]),
            role(
                "R8008",
                &[Permission::Read, Permission::Register, Permission::ChangeAccess],
            ),
        ]),
        accepted_vot: ["P9.Cp.Cd", "P5.Cp.Cd", "P0.Cp"].map(String::from).into(),
        minimum_assurance: BTreeMap::new(),
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn staff(roles: &[(&str, &str)]) -> ActorFacts {
    ActorFacts::Staff(StaffFacts {
        roles: roles
            .iter()
            .map(|(org, role)| RoleAssignment {
                organisation: ods(org),
                role: Some((*role).to_owned()),
            })
            .collect(),
    })
}

fn person(vot: &str, identity: IdentityLink) -> ActorFacts {
    ActorFacts::Person(PersonFacts {
        nhs_number: NhsNumber::parse("9000000009").unwrap(),
        proofing_level: crate::domain::vot_level(vot).unwrap_or(ProofingLevel::P0),
        vot: Some(vot.to_owned()),
        identity,
        delegated_for: None,
    })
}

fn system(scopes: &[&str]) -> ActorFacts {
    ActorFacts::System(SystemFacts {
        client_id: "idp".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    })
}

fn patient_at(practice: &str, account: Option<AccountStatus>, relationship: Relationship) -> TargetFacts {
    TargetFacts::Patient(Some(Box::new(facts_at(practice, account, relationship))))
}

/// The patient themself; the account's standing is filled in by [`facts_at`].
fn own() -> Relationship {
    Relationship::Own(Box::new(own_entitlements(None)))
}

fn own_entitlements(account: Option<AccountStatus>) -> Entitlements {
    Entitlements {
        via: Via::Account(account.map(|_| "a1".to_owned())),
        standing: match account {
            None => Standing::NoAccount,
            Some(AccountStatus::Active) => Standing::Active,
            Some(s) => Standing::Account(s),
        },
        access: AccessSettings::none(),
        reasons: vec!["the account as given".into()],
    }
}

fn facts_at(practice: &str, account: Option<AccountStatus>, relationship: Relationship) -> PatientFacts {
    let relationship = match relationship {
        Relationship::Own(_) => Relationship::Own(Box::new(own_entitlements(account))),
        other => other,
    };
    PatientFacts {
        nhs_number: Some(NhsNumber::parse("9000000017").unwrap()),
        practice: PracticeFacts {
            ods: ods(practice),
            online_services_enabled: true,
        },
        birth_date: NaiveDate::from_ymd_opt(1980, 5, 1).unwrap(),
        relationship,
    }
}

fn practice(code: &str) -> TargetFacts {
    TargetFacts::Practice(Some(PracticeFacts {
        ods: ods(code),
        online_services_enabled: true,
    }))
}

fn bound() -> IdentityLink {
    IdentityLink::Bound {
        patient_id: "p1".into(),
    }
}

struct Case {
    name: &'static str,
    action: Action,
    actor: ActorFacts,
    target: TargetFacts,
    /// None: allowed.
    refused: Option<&'static str>,
    rule: Rule,
}

fn cases() -> Vec<Case> {
    use Action::*;
    use Relationship::*;
    let active = Some(AccountStatus::Active);
    vec![
        // Staff
        Case {
            name: "staff of the practice read its patient",
            action: ReadPatient,
            actor: staff(&[("A81001", "R8010")]),
            target: patient_at("A81001", active, NotApplicable),
            refused: None,
            rule: Rule::StaffPracticeRole,
        },
        Case {
            name: "staff of another practice see nothing, as for a missing record",
            action: ReadPatient,
            actor: staff(&[("B82005", "R8000")]),
            target: patient_at("A81001", active, NotApplicable),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::StaffPractice,
        },
        Case {
            name: "a missing record",
            action: ReadPatient,
            actor: staff(&[("A81001", "R8000")]),
            target: TargetFacts::Patient(None),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::StaffPractice,
        },
        Case {
            name: "a read-only role may not register, before the target is looked at",
            action: RegisterOnlineServices,
            actor: staff(&[("A81001", "R8010")]),
            target: TargetFacts::Pending,
            refused: Some("ROLE_NOT_PERMITTED"),
            rule: Rule::StaffRole,
        },
        Case {
            name: "a role that registers at one practice does not register at another",
            action: RegisterOnlineServices,
            actor: staff(&[("A81001", "R8008"), ("B82005", "R8010")]),
            target: patient_at("B82005", None, NotApplicable),
            refused: Some("ROLE_NOT_PERMITTED"),
            rule: Rule::StaffPracticeRole,
        },
        Case {
            name: "an unknown role code grants nothing",
            action: ReadPatient,
            actor: staff(&[("A81001", "R9999")]),
            target: patient_at("A81001", active, NotApplicable),
            refused: Some("ROLE_NOT_PERMITTED"),
            rule: Rule::StaffRole,
        },
        Case {
            name: "full CIS2 role codes match on their role part",
            action: CompleteTask,
            actor: staff(&[("A81001", "S8000:G8000:R8000")]),
            target: patient_at("A81001", active, NotApplicable),
            refused: None,
            rule: Rule::StaffPracticeRole,
        },
        Case {
            name: "practice settings of another practice",
            action: UpdatePractice,
            actor: staff(&[("A81001", "R8000")]),
            target: practice("B82005"),
            refused: Some("OUTSIDE_OWN_PRACTICE"),
            rule: Rule::StaffPractice,
        },
        Case {
            name: "any staff member reads the practice directory",
            action: ReadPractice,
            actor: staff(&[("A81001", "R9999")]),
            target: practice("B82005"),
            refused: None,
            rule: Rule::TargetExists,
        },
        Case {
            name: "staff have no $my-access",
            action: MyAccess,
            actor: staff(&[("A81001", "R8000")]),
            target: TargetFacts::None,
            refused: Some("ACCESS_DENIED"),
            rule: Rule::ActorKind,
        },
        Case {
            name: "staff may not verify linkage",
            action: VerifyLinkage,
            actor: staff(&[("A81001", "R8000")]),
            target: TargetFacts::None,
            refused: Some("ACCESS_DENIED"),
            rule: Rule::ActorKind,
        },
        // Systems
        Case {
            name: "an identity provider with the scope verifies linkage",
            action: VerifyLinkage,
            actor: system(&["identity:verify-linkage"]),
            target: TargetFacts::None,
            refused: None,
            rule: Rule::SystemScope,
        },
        Case {
            name: "without the scope",
            action: LinkIdentity,
            actor: system(&["identity:verify-linkage"]),
            target: TargetFacts::None,
            refused: Some("INSUFFICIENT_SCOPE"),
            rule: Rule::SystemScope,
        },
        Case {
            name: "systems never read patient records",
            action: ReadPatient,
            actor: system(&["identity:link"]),
            target: patient_at("A81001", active, NotApplicable),
            refused: Some("ACCESS_DENIED"),
            rule: Rule::ActorKind,
        },
        // Patients
        Case {
            name: "a P9 patient reads their own record",
            action: ReadPatient,
            actor: person("P9.Cp.Cd", bound()),
            target: patient_at("A81001", active, own()),
            refused: None,
            rule: Rule::PatientAccount,
        },
        Case {
            name: "another patient's record is not there",
            action: ReadPatient,
            actor: person("P9.Cp.Cd", bound()),
            target: patient_at("A81001", active, Unrelated),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::PatientRelationship,
        },
        Case {
            name: "a missing record looks the same",
            action: ReadPatient,
            actor: person("P9.Cp.Cd", bound()),
            target: TargetFacts::Patient(None),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::PatientRelationship,
        },
        Case {
            name: "P5 is not enough for the record",
            action: ReadPatient,
            actor: person("P5.Cp.Cd", bound()),
            target: patient_at("A81001", active, own()),
            refused: Some("INSUFFICIENT_IDENTITY_ASSURANCE"),
            rule: Rule::PatientAssurance,
        },
        Case {
            name: "P5 lists access",
            action: MyAccess,
            actor: person("P5.Cp.Cd", bound()),
            target: TargetFacts::OwnRecord(Some(Box::new(facts_at("A81001", None, own())))),
            refused: None,
            rule: Rule::PatientRelationship,
        },
        Case {
            name: "P0 lists nothing",
            action: MyAccess,
            actor: person("P0.Cp", IdentityLink::Unknown),
            target: TargetFacts::Pending,
            refused: Some("INSUFFICIENT_IDENTITY_ASSURANCE"),
            rule: Rule::PatientAssurance,
        },
        Case {
            name: "a vector of trust outside the accepted profiles, whatever its level",
            action: MyAccess,
            actor: person("P9.Cm", bound()),
            target: TargetFacts::OwnRecord(None),
            refused: Some("INSUFFICIENT_IDENTITY_ASSURANCE"),
            rule: Rule::PatientVot,
        },
        Case {
            name: "a subject bound to another NHS number",
            action: MyAccess,
            actor: person("P9.Cp.Cd", IdentityLink::Mismatch),
            target: TargetFacts::OwnRecord(None),
            refused: Some("IDENTITY_MISMATCH"),
            rule: Rule::PatientIdentity,
        },
        Case {
            name: "a disabled account",
            action: ReadPatient,
            actor: person("P9.Cp.Cd", bound()),
            target: patient_at("A81001", Some(AccountStatus::Disabled), own()),
            refused: Some("ONLINE_ACCOUNT_DISABLED"),
            rule: Rule::PatientAccount,
        },
        Case {
            name: "a pending account",
            action: ReadPatient,
            actor: person("P9.Cp.Cd", bound()),
            target: patient_at("A81001", Some(AccountStatus::Pending), own()),
            refused: Some("NO_ACTIVE_ONLINE_ACCOUNT"),
            rule: Rule::PatientAccount,
        },
        Case {
            name: "no account",
            action: SearchPatients,
            actor: person("P9.Cp.Cd", bound()),
            target: TargetFacts::OwnRecord(Some(Box::new(facts_at("A81001", None, own())))),
            refused: Some("NO_ACTIVE_ONLINE_ACCOUNT"),
            rule: Rule::PatientAccount,
        },
        Case {
            name: "a search with no record of one's own finds nothing, and is allowed",
            action: SearchPatients,
            actor: person("P9.Cp.Cd", IdentityLink::NoRecord),
            target: TargetFacts::OwnRecord(None),
            refused: None,
            rule: Rule::PatientRelationship,
        },
        Case {
            name: "patients may not register themselves through the staff operation",
            action: RegisterOnlineServices,
            actor: person("P9.Cp.Cd", bound()),
            target: TargetFacts::Pending,
            refused: Some("ACCESS_DENIED"),
            rule: Rule::ActorKind,
        },
        Case {
            name: "patients read the practice directory at any level",
            action: ReadPractice,
            actor: person("P0.Cp", IdentityLink::Unknown),
            target: practice("A81001"),
            refused: None,
            rule: Rule::TargetExists,
        },
        Case {
            name: "a practice that does not exist is not found by a patient",
            action: ReadPractice,
            actor: person("P0.Cp", IdentityLink::Unknown),
            target: TargetFacts::Practice(None),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::TargetExists,
        },
        Case {
            name: "a proxy role that does not exist is not found by a system client",
            action: ReadProxyRole,
            actor: system(&["proxy:read"]),
            target: TargetFacts::ProxyRole(None),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::TargetExists,
        },
        Case {
            name: "a practice's job is not found by staff of another practice",
            action: ReadTask,
            actor: staff(&[("B82005", "R8000")]),
            target: TargetFacts::PracticeJob(Some(PracticeFacts {
                ods: ods("A81001"),
                online_services_enabled: true,
            })),
            refused: Some("RESOURCE_NOT_FOUND"),
            rule: Rule::StaffPractice,
        },
    ]
}

#[test]
fn every_case_in_the_table() {
    let policy = policy();
    for case in cases() {
        let decision = decide(
            &policy,
            &Facts {
                action: case.action,
                actor: case.actor.clone(),
                target: case.target.clone(),
                today: today(),
            },
        );
        assert_eq!(
            decision.refusal().map(Refusal::code),
            case.refused,
            "{}: {:#?}",
            case.name,
            decision.trace
        );
        assert_eq!(decision.rule, case.rule, "{}: {:#?}", case.name, decision.trace);
        let deciding = decision
            .trace
            .iter()
            .rfind(|s| s.rule == decision.rule && s.result != StepResult::NotApplicable)
            .unwrap_or_else(|| panic!("{}: the deciding rule is in the trace", case.name));
        let expected = if case.refused.is_some() {
            StepResult::Failed
        } else {
            StepResult::Passed
        };
        assert_eq!(deciding.result, expected, "{}", case.name);
        // A refusal ends the trace: nothing after the deciding rule was consulted.
        if case.refused.is_some() {
            assert_eq!(decision.trace.last(), Some(deciding), "{}", case.name);
        }
    }
}

#[test]
fn refusals_for_a_hidden_and_a_missing_target_are_the_same() {
    let policy = policy();
    let decide_for = |actor: ActorFacts, target: TargetFacts| {
        decide(
            &policy,
            &Facts {
                action: Action::ReadOnlineAccount,
                actor,
                target,
                today: today(),
            },
        )
    };
    let hidden = decide_for(
        staff(&[("B82005", "R8000")]),
        patient_at("A81001", None, Relationship::NotApplicable),
    );
    let missing = decide_for(staff(&[("B82005", "R8000")]), TargetFacts::Patient(None));
    assert_eq!(hidden.verdict, missing.verdict);
    assert_eq!(hidden.rule, missing.rule);
}

#[test]
fn configured_minimums_raise_but_never_lower_the_floor() {
    let mut p = policy();
    p.minimum_assurance.insert(AssurancePolicy::MyAccess, ProofingLevel::P9);
    p.minimum_assurance
        .insert(AssurancePolicy::PatientRecord, ProofingLevel::P0);
    assert_eq!(p.minimum(AssurancePolicy::MyAccess), ProofingLevel::P9);
    assert_eq!(p.minimum(AssurancePolicy::PatientRecord), ProofingLevel::P9);
    let decision = decide(
        &p,
        &Facts {
            action: Action::MyAccess,
            actor: person("P5.Cp.Cd", bound()),
            target: TargetFacts::OwnRecord(None),
            today: today(),
        },
    );
    assert_eq!(decision.refusal(), Some(&Refusal::InsufficientAssurance));
}

#[test]
fn a_pending_target_is_decided_on_the_caller_alone() {
    let decision = decide(
        &policy(),
        &Facts {
            action: Action::CreatePatient,
            actor: staff(&[("A81001", "R8008")]),
            target: TargetFacts::Pending,
            today: today(),
        },
    );
    assert!(decision.is_allowed());
    assert!(decision.provisional);
}

#[test]
fn every_action_has_a_unique_name_and_someone_who_may_ask() {
    let names: BTreeSet<&str> = Action::ALL.iter().map(|a| a.name()).collect();
    assert_eq!(names.len(), Action::ALL.len());
    for a in Action::ALL {
        let r = a.requirement();
        assert!(r.staff.is_some() || r.patient.is_some() || r.system.is_some(), "{a:?}");
        assert_eq!(Action::parse(a.name()), Some(*a));
    }
}

mod agrees_with_entitlements {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::RecordAccessLevel;

    fn any_standing() -> impl Strategy<Value = Standing> {
        prop_oneof![
            Just(Standing::Active),
            Just(Standing::NoAccount),
            Just(Standing::Account(AccountStatus::Disabled)),
            Just(Standing::Account(AccountStatus::Pending)),
            Just(Standing::Moved),
            Just(Standing::Deceased),
            Just(Standing::PracticeNotEnabled),
        ]
    }

    fn any_entitlements(via_role: bool) -> impl Strategy<Value = Entitlements> {
        (any_standing(), any::<[bool; 4]>()).prop_map(move |(standing, on)| {
            let active = standing.is_active();
            Entitlements {
                via: if via_role {
                    Via::Role("r1".into())
                } else {
                    Via::Account(Some("a1".into()))
                },
                standing,
                access: AccessSettings {
                    services: crate::domain::Services {
                        appointments: crate::domain::ServiceLevel::from_bool(active && on[0]),
                        prescriptions: crate::domain::ServiceLevel::from_bool(active && on[1]),
                        messaging: active && on[2],
                    },
                    record_level: if active && on[3] {
                        RecordAccessLevel::Summary
                    } else {
                        RecordAccessLevel::None
                    },
                    record_from: None,
                },
                reasons: vec!["given".into()],
            }
        })
    }

    proptest! {
        /// The engine allows a service exactly when the entitlements say it is in effect, for
        /// the patient themself and for a proxy alike: `$service-access`, the decision and
        /// `$my-access` cannot disagree.
        #[test]
        fn a_service_is_allowed_exactly_when_it_is_in_effect(
            own in any_entitlements(false),
            theirs in any_entitlements(true),
            which in 0usize..4,
        ) {
            let service = [Service::Appointments, Service::Prescriptions, Service::Messaging, Service::Record][which];
            for (relationship, e) in [
                (Relationship::Own(Box::new(own.clone())), &own),
                (
                    Relationship::Proxy(Box::new(ProxyFacts {
                        role_id: "r1".into(),
                        relationship: "Personal".into(),
                        entitlements: theirs.clone(),
                    })),
                    &theirs,
                ),
            ] {
                let facts = Facts {
                    action: service.action(),
                    actor: person("P9.Cp.Cd", bound()),
                    target: TargetFacts::Patient(Some(Box::new(PatientFacts {
                        relationship,
                        ..facts_at("A81001", None, Relationship::Unrelated)
                    }))),
                    today: today(),
                };
                let decision = decide(&policy(), &facts);
                prop_assert_eq!(
                    decision.is_allowed(),
                    e.standing.is_active() && service.granted_by(&e.access),
                    "{:?} for {:?}", decision.refusal(), e
                );
            }
        }
    }
}
