//! Everything a caller can ask the gateway to do, and who may ever ask for it.

use crate::domain::{AssurancePolicy, ServiceLevel};

/// What staff roles can be allowed to do. Which CIS2-like role codes grant which permission is
/// configuration (`Policy::staff_roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Read patient records, online accounts and Tasks of the practice.
    Read,
    /// Create and update patient records, register patients for online services, print letters.
    Register,
    /// Change services and record access, reset linkage keys, disable and re-enable accounts.
    ChangeAccess,
    /// Complete record reviews.
    CompleteReviews,
    /// Requeue failed provisioning Tasks.
    RetryTasks,
    /// Change the practice's online-services settings.
    EditPractice,
    /// Read and verify the audit trail, and explain access decisions.
    ReadAudit,
    /// Create, change and end proxy roles, and set what they grant.
    ManageProxies,
}

impl Permission {
    pub const ALL: [Self; 8] = [
        Self::Read,
        Self::Register,
        Self::ChangeAccess,
        Self::CompleteReviews,
        Self::RetryTasks,
        Self::EditPractice,
        Self::ReadAudit,
        Self::ManageProxies,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Register => "register",
            Self::ChangeAccess => "change-access",
            Self::CompleteReviews => "complete-reviews",
            Self::RetryTasks => "retry-tasks",
            Self::EditPractice => "edit-practice",
            Self::ReadAudit => "read-audit",
            Self::ManageProxies => "manage-proxies",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// How an action changes things; decides the FHIR `AuditEvent.action` and whether the decision
/// must be on record before the action runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Read,
    Update,
    Execute,
}

/// Who may ever ask for an action, before anything about the target is known.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// Staff need one of these permissions (from a role at the target's practice when there is
    /// a target). `None`: staff may not do this at all. An empty slice: any staff member.
    pub staff: Option<&'static [Permission]>,
    /// Patients (NHS login-like tokens) may do this at this assurance. `Open`: any accepted
    /// vector of trust, for directory information.
    pub patient: Option<PatientRequirement>,
    /// System clients need this scope. `Some("")`: any system client.
    pub system: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientRequirement {
    /// Non-identifiable directory information.
    Open,
    /// At least the policy's proofing level; `account` says whether an active online account at
    /// the patient's current practice is needed as well.
    Assured { policy: AssurancePolicy, account: bool },
}

const ANY_STAFF: &[Permission] = &[];
const READ: &[Permission] = &[Permission::Read];
const REGISTER: &[Permission] = &[Permission::Register];
const CHANGE_ACCESS: &[Permission] = &[Permission::ChangeAccess];
const COMPLETE_REVIEWS: &[Permission] = &[Permission::CompleteReviews];
const RETRY_TASKS: &[Permission] = &[Permission::RetryTasks];
const EDIT_PRACTICE: &[Permission] = &[Permission::EditPractice];
const READ_AUDIT: &[Permission] = &[Permission::ReadAudit];
const READ_OR_AUDIT: &[Permission] = &[Permission::Read, Permission::ReadAudit];
const READ_OR_PROXIES: &[Permission] = &[Permission::Read, Permission::ManageProxies];
const PROXIES: &[Permission] = &[Permission::ManageProxies];

const RECORD: PatientRequirement = PatientRequirement::Assured {
    policy: AssurancePolicy::PatientRecord,
    account: true,
};

macro_rules! actions {
    ($( $variant:ident => $name:literal, $verb:ident, $description:literal, staff: $staff:expr, patient: $patient:expr, system: $system:expr; )*) => {
        /// Every operation the gateway decides access for. The name is the stable code used in
        /// the audit trail (`AuditEvent.subtype`) and by `$explain-access`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $( $variant, )* }

        impl Action {
            pub const ALL: &'static [Action] = &[ $( Action::$variant, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Action::$variant => $name, )* }
            }

            pub fn verb(self) -> Verb {
                match self { $( Action::$variant => Verb::$verb, )* }
            }

            pub fn description(self) -> &'static str {
                match self { $( Action::$variant => $description, )* }
            }

            pub fn requirement(self) -> Requirement {
                match self {
                    $( Action::$variant => Requirement { staff: $staff, patient: $patient, system: $system }, )*
                }
            }
        }
    };
}

actions! {
    ReadPatient => "read-patient", Read, "read a patient record",
        staff: Some(READ), patient: Some(RECORD), system: None;
    SearchPatients => "search-patients", Read, "search patient records",
        staff: Some(READ), patient: Some(RECORD), system: None;
    CreatePatient => "create-patient", Create, "create a patient record",
        staff: Some(REGISTER), patient: None, system: None;
    UpdatePatient => "update-patient", Update, "update a patient record",
        staff: Some(REGISTER), patient: None, system: None;
    ReadPractice => "read-practice", Read, "read a practice",
        staff: Some(ANY_STAFF), patient: Some(PatientRequirement::Open), system: Some("");
    SearchPractices => "search-practices", Read, "search practices",
        staff: Some(ANY_STAFF), patient: Some(PatientRequirement::Open), system: Some("");
    UpdatePractice => "update-practice", Update, "change a practice's online-services settings",
        staff: Some(EDIT_PRACTICE), patient: None, system: None;
    RegisterOnlineServices => "register-online-services", Create, "register a patient for online services",
        staff: Some(REGISTER), patient: None, system: None;
    SetOnlineAccess => "set-online-access", Update, "change a patient's online services and record access",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    ResetOnlineAccount => "reset-online-account", Update, "issue a new linkage key",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    DisableOnlineAccount => "disable-online-account", Update, "disable an online account",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    EnableOnlineAccount => "enable-online-account", Update, "re-enable an online account",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    ReadOnlineAccount => "read-online-account", Read, "read a patient's online account",
        staff: Some(READ), patient: None, system: None;
    PrintRegistrationLetter => "print-registration-letter", Update, "print the registration letter",
        staff: Some(REGISTER), patient: None, system: None;
    ReadTask => "read-task", Read, "read a provisioning or review Task",
        staff: Some(READ), patient: None, system: None;
    SearchTasks => "search-tasks", Read, "search a patient's Tasks",
        staff: Some(READ), patient: None, system: None;
    CompleteTask => "complete-task", Update, "complete a record review",
        staff: Some(COMPLETE_REVIEWS), patient: None, system: None;
    RetryTask => "retry-task", Update, "requeue a failed provisioning Task",
        staff: Some(RETRY_TASKS), patient: None, system: None;
    MyAccess => "my-access", Read, "list the patients the caller may act for",
        staff: None,
        patient: Some(PatientRequirement::Assured { policy: AssurancePolicy::MyAccess, account: false }),
        system: None;
    VerifyLinkage => "verify-linkage", Execute, "check registration letter details",
        staff: None, patient: None, system: Some("identity:verify-linkage");
    LinkIdentity => "link-identity", Execute, "bind an identity-provider subject to a patient record",
        staff: None, patient: None, system: Some("identity:link");
    SearchAudit => "search-audit", Read, "search the audit trail",
        staff: Some(READ_AUDIT), patient: None, system: Some("audit:read");
    VerifyAudit => "verify-audit", Execute, "verify the audit trail's hash chains",
        staff: Some(READ_AUDIT), patient: None, system: None;
    ExplainAccess => "explain-access", Read, "explain an access decision",
        staff: Some(READ_OR_AUDIT), patient: None, system: None;
    ExportAudit => "export-audit", Execute, "export a practice's audit trail in bulk",
        staff: Some(READ_AUDIT), patient: None, system: None;
    ReadAuditExport => "read-audit-export", Read, "follow or download a bulk export of the audit trail",
        staff: Some(READ_AUDIT), patient: None, system: None;
    CancelAuditExport => "cancel-audit-export", Update, "cancel a bulk export of the audit trail",
        staff: Some(READ_AUDIT), patient: None, system: None;
    UseAppointments => "use-appointments", Read, "book and manage appointments",
        staff: None, patient: Some(RECORD), system: None;
    UsePrescriptions => "use-prescriptions", Read, "order repeat prescriptions",
        staff: None, patient: Some(RECORD), system: None;
    ReadAppointments => "read-appointments", Read, "see free slots and appointments",
        staff: None, patient: Some(RECORD), system: None;
    BookAppointment => "book-appointment", Create, "book an appointment",
        staff: None, patient: Some(RECORD), system: None;
    CancelAppointment => "cancel-appointment", Update, "cancel an appointment",
        staff: None, patient: Some(RECORD), system: None;
    ReadPrescriptions => "read-prescriptions", Read, "see repeat medications and requests",
        staff: None, patient: Some(RECORD), system: None;
    RequestPrescription => "request-prescription", Create, "request repeat medication",
        staff: None, patient: Some(RECORD), system: None;
    UseMessaging => "use-messaging", Read, "message the practice",
        staff: None, patient: Some(RECORD), system: None;
    ReadRecord => "read-record", Read, "see the GP record",
        staff: None, patient: Some(RECORD), system: None;
    CreateAccessRequest => "create-access-request", Create, "ask for proxy access",
        staff: None, patient: Some(PatientRequirement::Assured { policy: AssurancePolicy::PatientRecord, account: false }), system: None;
    ReadAccessRequest => "read-access-request", Read, "read a proxy access request",
        staff: Some(READ_OR_PROXIES), patient: Some(PARTY), system: Some("proxy:read");
    SearchRelatedPersons => "search-related-persons", Read, "search proxy relationships",
        staff: Some(READ_OR_PROXIES), patient: Some(PARTY), system: None;
    SearchProxyRoles => "search-proxy-roles", Read, "search proxy roles",
        staff: Some(READ_OR_PROXIES), patient: Some(PARTY), system: Some("proxy:read");
    ReadProxyRole => "read-proxy-role", Read, "read a proxy role",
        staff: Some(READ_OR_PROXIES), patient: None, system: Some("proxy:read");
    CreateProxyRole => "create-proxy-role", Create, "create a proxy role",
        staff: Some(PROXIES), patient: None, system: Some("proxy:write");
    UpdateProxyRole => "update-proxy-role", Update, "change or end a proxy role",
        staff: Some(PROXIES), patient: Some(PARTY), system: Some("proxy:write");
    SetProxyAccess => "set-proxy-access", Update, "set what a proxy role grants",
        staff: Some(PROXIES), patient: None, system: Some("proxy:write");
    AddAccessCode => "add-access-code", Update, "add a record-access code to a patient's record",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    RemoveAccessCode => "remove-access-code", Update, "remove a record-access code from a patient's record",
        staff: Some(CHANGE_ACCESS), patient: None, system: None;
    RegisterSelf => "register-self", Create, "register oneself for online services with NHS login",
        staff: None, patient: Some(PARTY), system: Some("identity:register");
    RequestRecordAccess => "request-record-access", Create, "ask the practice for record access",
        staff: None, patient: Some(RECORD), system: None;
    ApplyOptInModel => "apply-opt-in-model", Execute, "move a practice to the opt-in model",
        staff: Some(EDIT_PRACTICE), patient: None, system: None;
    RunTransitions => "run-transitions", Execute, "run the daily transitions now",
        staff: None, patient: None, system: Some("operations:transitions");
    RecordRegistrationEvent => "record-registration-event", Update, "record a practice move or a death",
        staff: None, patient: None, system: Some("supplier:events");
}

/// A person who is a party to a proxy role (its patient or its proxy), at P9.
const PARTY: PatientRequirement = PatientRequirement::Assured {
    policy: AssurancePolicy::PatientRecord,
    account: false,
};

/// The online service an action uses, which the account or proxy role must grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Appointments,
    Prescriptions,
    Messaging,
    Record,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Self::Appointments => "appointments",
            Self::Prescriptions => "prescriptions",
            Self::Messaging => "messaging",
            Self::Record => "record",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Appointments, Self::Prescriptions, Self::Messaging, Self::Record]
            .into_iter()
            .find(|s| s.name() == raw)
    }

    pub fn action(self) -> Action {
        match self {
            Self::Appointments => Action::UseAppointments,
            Self::Prescriptions => Action::UsePrescriptions,
            Self::Messaging => Action::UseMessaging,
            Self::Record => Action::ReadRecord,
        }
    }

    /// How far these settings switch the service on (messaging and the record are on or off:
    /// their levels are the record's own).
    pub fn level_in(self, access: &crate::domain::AccessSettings) -> ServiceLevel {
        match self {
            Self::Appointments => access.services.appointments,
            Self::Prescriptions => access.services.prescriptions,
            Self::Messaging => ServiceLevel::from_bool(access.services.messaging),
            Self::Record => ServiceLevel::from_bool(access.record_level != crate::domain::RecordAccessLevel::None),
        }
    }

    /// Whether these settings switch the service on at all.
    pub fn granted_by(self, access: &crate::domain::AccessSettings) -> bool {
        self.level_in(access).is_on()
    }
}

impl Action {
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Changes are on record before they are made; reads are on record before their answer leaves.
    pub fn changes_state(self) -> bool {
        self.verb() != Verb::Read
    }

    /// What a person may only do signed in as themself, never through a delegated token that
    /// acts for someone else.
    pub fn acts_as_the_person(self) -> bool {
        matches!(
            self,
            Self::CreateAccessRequest | Self::UpdateProxyRole | Self::RegisterSelf | Self::RequestRecordAccess
        )
    }

    /// What only the patient may do about their own record, never a proxy for them.
    pub fn patient_only(self) -> bool {
        matches!(self, Self::RegisterSelf | Self::RequestRecordAccess)
    }

    /// How far the service the action uses must be switched on: seeing is `view`; booking,
    /// cancelling and requesting are `manage`.
    pub fn service_level(self) -> ServiceLevel {
        match self {
            Self::BookAppointment | Self::CancelAppointment | Self::RequestPrescription => ServiceLevel::Manage,
            _ => ServiceLevel::View,
        }
    }

    /// The online service the action uses, if any.
    pub fn service(self) -> Option<Service> {
        match self {
            Self::UseAppointments | Self::ReadAppointments | Self::BookAppointment | Self::CancelAppointment => {
                Some(Service::Appointments)
            }
            Self::UsePrescriptions | Self::ReadPrescriptions | Self::RequestPrescription => {
                Some(Service::Prescriptions)
            }
            Self::UseMessaging => Some(Service::Messaging),
            Self::ReadRecord => Some(Service::Record),
            _ => None,
        }
    }
}
