//! The facts a decision is made from, loaded in one trip to the database (or gathered with
//! other requests' reads), and how they become the engine's facts.

use crate::db::bindings::Binding;
use crate::db::reads::PatientContext;
use crate::db::{self, DbConnection, DbError};
use crate::domain::audit::AuditExport;
use crate::domain::entitlements::{self, Entitlements, PatientState};
use crate::domain::policy::{
    ActorFacts, IdentityLink, PatientFacts, PracticeFacts, ProxyFacts, Relationship, RoleFacts, RolePart, TargetFacts,
};
use crate::domain::proxy::{AccessRequest, ProxyRole, RoleStatus};
use crate::domain::{
    NhsNumber, OdsCode, OnlineAccount, PatientIdentifierSystem, PatientRecord, PracticeRecord, PracticeRef,
    ProofingLevel,
};
use crate::identity::Principal;
use crate::services::binding::{Resolved, resolve_binding};
use crate::services::{Core, Result};

use super::target::{AnyTask, Target};

/// How the loader finds a person's own record.
#[derive(Debug, Clone)]
pub(super) enum Who {
    Staff,
    System,
    /// A token's subject: bound to their record on first use (and followed when they move).
    Person {
        issuer: String,
        subject: String,
        nhs_number: NhsNumber,
        level: ProofingLevel,
    },
    /// A person named by NHS number (for `$explain-access`): looked up, never bound.
    Named {
        nhs_number: NhsNumber,
    },
}

impl Who {
    pub(super) fn of(principal: &Principal) -> Self {
        match principal {
            Principal::Staff(_) => Self::Staff,
            Principal::System(_) => Self::System,
            Principal::Patient(p) => Self::Person {
                issuer: p.issuer.clone(),
                subject: p.subject.clone(),
                nhs_number: p.nhs_number.clone(),
                level: p.proofing_level,
            },
        }
    }
}

/// Everything one decision needed, loaded in one trip to the database.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub(super) identity: Option<IdentityLink>,
    pub(super) own: Option<PatientRecord>,
    pub(super) patient: Option<PatientRecord>,
    pub(super) practice: Option<PracticeRecord>,
    pub(super) account: Option<OnlineAccount>,
    pub(super) task: Option<AnyTask>,
    pub(super) binding: Option<Binding>,
    /// The role a target names, or the one a proxy acts through.
    pub(super) role: Option<ProxyRole>,
    pub(super) request: Option<AccessRequest>,
    pub(super) export: Option<AuditExport>,
    /// The record-access codes on the target patient's record.
    pub(super) codes: crate::domain::record_access::CodeSet,
    /// How the person asking takes part in `role` (when the target is a role).
    pub(super) part: Option<RolePart>,
    /// The acting person's NHS number.
    pub(super) person: Option<NhsNumber>,
    pub(super) audit_patient: Option<String>,
    pub(super) audit_practice: Option<String>,
}

/// `now` is the gateway's clock: an export that has expired by it is loaded as gone.
pub(super) fn load(
    c: &mut DbConnection,
    who: &Who,
    target: &Target,
    now: chrono::NaiveDateTime,
) -> std::result::Result<Loaded, DbError> {
    let mut l = Loaded::default();
    // The caller's own record with its context, when the binding's query brought it.
    let mut own_context = None;
    if let Who::Person { nhs_number, .. } = who {
        l.person = Some(nhs_number.clone());
    }
    match who {
        Who::Staff | Who::System => {}
        Who::Person {
            issuer,
            subject,
            nhs_number,
            level,
        } => match resolve_binding(c, issuer, subject, nhs_number, *level)? {
            Resolved::Mismatch => l.identity = Some(IdentityLink::Mismatch),
            Resolved::Unknown => l.identity = Some(IdentityLink::NoRecord),
            Resolved::Found(patient, binding, context) => {
                l.identity = Some(IdentityLink::Bound {
                    patient_id: patient.id.clone(),
                });
                l.own = Some(*patient);
                l.binding = Some(*binding);
                own_context = context.map(|c| *c);
            }
        },
        Who::Named { nhs_number } => {
            l.person = Some(nhs_number.clone());
            // Only a record that is the target itself counts: whether the person is registered
            // anywhere else is not the explaining practice's business, and is not told.
            let about = match target {
                Target::Patient(id) => Some(id.as_str()),
                _ => None,
            };
            match db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs_number.as_str())?
                .filter(|p| about == Some(p.id.as_str()))
            {
                Some(p) => {
                    l.identity = Some(IdentityLink::Bound {
                        patient_id: p.id.clone(),
                    });
                    l.own = Some(p);
                }
                None => l.identity = Some(IdentityLink::NoRecord),
            }
        }
    }
    let patient = match target {
        Target::None | Target::Pending => None,
        Target::Patient(id) => {
            l.audit_patient = Some(id.clone());
            Some(Fetch::Id(id.clone()))
        }
        Target::Task(id) => {
            l.task = match db::outbox::find(c, id)? {
                Some(j) => Some(AnyTask::Job(j)),
                None => match db::reviews::find(c, id)? {
                    Some(r) => Some(AnyTask::Review(r)),
                    None => match db::proxy_roles::find_review(c, id)? {
                        Some(r) => Some(AnyTask::ProxyReview(r)),
                        None => db::bulk_jobs::find(c, id)?.map(AnyTask::Bulk),
                    },
                },
            };
            match &l.task {
                Some(AnyTask::Bulk(j)) => {
                    l.practice = db::practices::find(c, &j.practice_id)?;
                    l.audit_practice = l.practice.as_ref().map(|p| p.ods_code.as_str().to_owned());
                    None
                }
                Some(t) => {
                    let patient_id = t.patient_id().unwrap_or_default().to_owned();
                    l.audit_patient = Some(patient_id.clone());
                    Some(Fetch::Id(patient_id))
                }
                None => None,
            }
        }
        Target::OwnRecord => {
            l.audit_patient = l.own.as_ref().map(|p| p.id.clone());
            l.own.as_ref().map(|p| Fetch::Id(p.id.clone()))
        }
        Target::PatientNhs(nhs) => Some(Fetch::Nhs(nhs.as_str().to_owned())),
        Target::AccessRequest(id) => {
            l.request = db::proxy_roles::find_request(c, id)?;
            match &l.request {
                Some(r) => {
                    l.part = Some(match &l.person {
                        Some(p) if p.as_str() == r.patient_nhs_number => RolePart::Patient,
                        Some(p) if p.as_str() == r.proxy_nhs_number => RolePart::Proxy,
                        _ => RolePart::None,
                    });
                    l.audit_patient = r.patient_id.clone();
                    r.patient_id.clone().map(Fetch::Id)
                }
                None => None,
            }
        }
        Target::ProxyRole(id) => {
            l.role = db::proxy_roles::find(c, id)?;
            match &l.role {
                Some(role) => {
                    l.part = Some(match &l.person {
                        Some(p) if *p == role.patient_nhs_number => RolePart::Patient,
                        Some(p) if *p == role.proxy_nhs_number => RolePart::Proxy,
                        _ => RolePart::None,
                    });
                    l.audit_patient = Some(role.patient_id.clone());
                    Some(Fetch::Id(role.patient_id.clone()))
                }
                None => None,
            }
        }
        Target::Practice(reference) => {
            l.place_practice(match reference {
                PracticeRef::Id(id) => db::practices::find(c, id)?,
                PracticeRef::Ods(ods) => db::practices::find_by_ods(c, ods)?,
            });
            None
        }
        Target::AuditExport(id) => {
            l.export = db::audit_exports::find(c, id)?.filter(|e| e.expires_at > now);
            if let Some(ods) = l.export.as_ref().and_then(|e| OdsCode::parse(&e.practice).ok()) {
                l.place_practice(db::practices::find_by_ods(c, &ods)?);
            }
            None
        }
    };
    // The patient with their practice, account and codes, in one round trip.
    let patient = match patient {
        Some(Fetch::Id(id))
            if own_context
                .as_ref()
                .is_some_and(|o: &PatientContext| o.patient.id == id) =>
        {
            own_context
        }
        Some(Fetch::Id(id)) => db::reads::patient_context(c, &id)?,
        Some(Fetch::Nhs(nhs)) => db::reads::patient_context_by_nhs(c, &nhs)?,
        None => None,
    };
    l.place(patient);
    if let Some(p) = &l.patient {
        // A person asking about someone else's record may be their proxy: the role that counts
        // is an active one if there is one, else the most recent.
        if l.role.is_none()
            && let Some(person) = &l.person
            && l.own.as_ref().is_none_or(|own| own.id != p.id)
        {
            let mut roles = db::proxy_roles::for_pair(c, person, &p.id)?;
            roles.sort_by_key(|r| (r.status != RoleStatus::Active, std::cmp::Reverse(r.updated_at)));
            l.role = roles.into_iter().find(|r| r.status != RoleStatus::EnteredInError);
        }
    }
    Ok(l)
}

/// The commonest decisions' facts, read with the others waiting at the moment
/// (`ContextReader`): staff about one patient or their practice (a search), a person about
/// their own record through their token's binding. `None` for anything else, and for a person
/// whose binding is not in place yet: those are loaded on their own by [`load`].
pub(super) async fn gathered(core: &Core, who: &Who, target: &Target) -> Result<Option<Loaded>> {
    Ok(match (who, target) {
        (Who::Staff | Who::System, Target::Patient(id)) => {
            Some(staff_patient(id, core.reader.patient_context(id).await?))
        }
        (Who::Staff | Who::System, Target::Practice(PracticeRef::Ods(ods))) => {
            let practice = core.reader.practice_by_ods(ods.as_str()).await?;
            let mut l = Loaded::default();
            l.place_practice(practice);
            Some(l)
        }
        (
            Who::Person {
                issuer,
                subject,
                nhs_number,
                ..
            },
            Target::OwnRecord | Target::Patient(_),
        ) => {
            let key = db::reads::BindingKey {
                issuer: issuer.clone(),
                subject: subject.clone(),
                nhs: nhs_number.as_str().to_owned(),
            };
            match core.reader.current_binding(key).await? {
                Some((binding, context))
                    if matches!(target, Target::Patient(id) if *id == context.patient.id)
                        || matches!(target, Target::OwnRecord) =>
                {
                    Some(own_record(nhs_number, binding, context))
                }
                _ => None,
            }
        }
        _ => None,
    })
}

/// What a person's decision about their own record needs when their token's binding is in
/// place: the same as [`load`] gives, from the binding and context read with others'.
pub(super) fn own_record(person: &NhsNumber, binding: Binding, context: PatientContext) -> Loaded {
    let mut l = Loaded {
        person: Some(person.clone()),
        identity: Some(IdentityLink::Bound {
            patient_id: context.patient.id.clone(),
        }),
        own: Some(context.patient.clone()),
        binding: Some(binding),
        audit_patient: Some(context.patient.id.clone()),
        ..Loaded::default()
    };
    l.place(Some(context));
    l
}

/// What a staff or system decision about the patient with this id needs: the same as [`load`]
/// gives for them, from a context read with other requests' (`ContextReader`).
pub(super) fn staff_patient(id: &str, context: Option<PatientContext>) -> Loaded {
    let mut l = Loaded {
        audit_patient: Some(id.to_owned()),
        ..Loaded::default()
    };
    l.place(context);
    l
}

/// How the target patient is to be looked up.
enum Fetch {
    Id(String),
    Nhs(String),
}

impl Loaded {
    /// The target practice.
    pub(super) fn place_practice(&mut self, practice: Option<PracticeRecord>) {
        self.audit_practice = practice.as_ref().map(|p| p.ods_code.as_str().to_owned());
        self.practice = practice;
    }

    /// The target patient with their practice, account and codes.
    pub(super) fn place(&mut self, context: Option<PatientContext>) {
        if let Some(ctx) = context {
            self.practice = Some(ctx.practice);
            self.account = ctx.account;
            self.codes = ctx.codes;
            self.audit_practice = Some(ctx.patient.practice_ods.as_str().to_owned());
            if self.audit_patient.is_none() {
                self.audit_patient = Some(ctx.patient.id.clone());
            }
            self.patient = Some(ctx.patient);
        }
    }

    /// The role a proxy acts through for this request, if that is how they reach the patient.
    pub(super) fn acting_role(&self) -> Option<&ProxyRole> {
        match (&self.role, &self.patient, &self.person) {
            (Some(role), Some(_), Some(person)) if role.proxy_nhs_number == *person && self.part.is_none() => {
                Some(role)
            }
            _ => None,
        }
    }

    /// What the gateway holds about the target patient, for the entitlements model.
    fn state<'a>(&'a self, patient: &'a PatientRecord) -> Option<PatientState<'a>> {
        Some(PatientState {
            patient,
            practice: self.practice.as_ref()?,
            account: self.account.as_ref(),
            codes: &self.codes,
        })
    }

    /// The engine's view of what was loaded.
    pub(super) fn facts(
        &self,
        actor: ActorFacts,
        target: &Target,
        today: chrono::NaiveDate,
    ) -> (ActorFacts, TargetFacts) {
        let actor = match actor {
            ActorFacts::Person(mut p) => {
                p.identity = self.identity.clone().unwrap_or(IdentityLink::Unknown);
                ActorFacts::Person(p)
            }
            other => other,
        };
        let person = matches!(actor, ActorFacts::Person(_));
        let practice_facts = |ods: &OdsCode| PracticeFacts {
            ods: ods.clone(),
            online_services_enabled: self.practice.as_ref().is_some_and(|pr| pr.settings.enabled),
        };
        let patient_facts = |p: &PatientRecord| -> Box<PatientFacts> {
            let relationship = match (&self.own, person, self.acting_role(), self.state(p)) {
                (_, false, _, _) => Relationship::NotApplicable,
                (Some(own), true, _, Some(state)) if own.id == p.id => {
                    Relationship::Own(Box::new(entitlements::own(&state, today)))
                }
                (_, true, Some(role), Some(state)) => Relationship::Proxy(Box::new(ProxyFacts {
                    role_id: role.id.clone(),
                    relationship: role
                        .relationships
                        .first()
                        .map_or_else(|| role.legal_basis.code().to_owned(), |r| r.code.clone()),
                    entitlements: entitlements::proxy(&state, role, today),
                })),
                _ => Relationship::Unrelated,
            };
            Box::new(PatientFacts {
                nhs_number: p.details.identifier.nhs_number(),
                practice: practice_facts(&p.practice_ods),
                birth_date: p.details.birth_date,
                relationship,
            })
        };
        let facts = match target {
            Target::None => TargetFacts::None,
            Target::Pending => TargetFacts::Pending,
            Target::Practice(_) => TargetFacts::Practice(self.practice.as_ref().map(|p| practice_facts(&p.ods_code))),
            Target::OwnRecord => TargetFacts::OwnRecord(self.patient.as_ref().map(patient_facts)),
            // An export of another practice is answered exactly like one that does not exist.
            Target::AuditExport(_) => {
                TargetFacts::PracticeJob(self.practice.as_ref().map(|p| practice_facts(&p.ods_code)))
            }
            Target::Task(_) if matches!(self.task, Some(AnyTask::Bulk(_))) => {
                TargetFacts::PracticeJob(self.practice.as_ref().map(|p| practice_facts(&p.ods_code)))
            }
            Target::Patient(_) | Target::Task(_) | Target::PatientNhs(_) => {
                TargetFacts::Patient(self.patient.as_ref().map(patient_facts))
            }
            Target::ProxyRole(_) => TargetFacts::ProxyRole(match (&self.part, &self.role, &self.patient) {
                (Some(part), Some(role), Some(p)) => Some(Box::new(RoleFacts {
                    practice: Some(practice_facts(&p.practice_ods)),
                    patient_nhs_number: role.patient_nhs_number.clone(),
                    established: matches!(role.status, RoleStatus::Active | RoleStatus::Inactive),
                    part: *part,
                })),
                _ => None,
            }),
            // An access request is its submitter's own, whether or not it names a patient the
            // gateway knows: they see it the same way in both cases.
            Target::AccessRequest(_) => TargetFacts::ProxyRole(match (&self.part, &self.request) {
                (Some(part), Some(request)) => NhsNumber::parse(&request.patient_nhs_number).ok().map(|nhs| {
                    Box::new(RoleFacts {
                        practice: self.patient.as_ref().map(|p| practice_facts(&p.practice_ods)),
                        patient_nhs_number: nhs,
                        established: *part == RolePart::Proxy,
                        part: *part,
                    })
                }),
                _ => None,
            }),
        };
        (actor, facts)
    }

    /// What is in effect for the person acting, as the decision saw it.
    pub(super) fn entitlements(&self, facts: &TargetFacts) -> Option<Entitlements> {
        let patient = match facts {
            TargetFacts::Patient(Some(p)) | TargetFacts::OwnRecord(Some(p)) => p,
            _ => return None,
        };
        match &patient.relationship {
            Relationship::Own(e) => Some((**e).clone()),
            Relationship::Proxy(p) => Some(p.entitlements.clone()),
            Relationship::Unrelated | Relationship::NotApplicable => None,
        }
    }
}
