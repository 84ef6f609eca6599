//! Why a supplier says no, whatever its wire format: each flavour spells these in its own
//! error codes.

/// Why the supplier says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PracticeNotEnabled,
    PatientNotFound,
    Archived,
    UnderMinimumAge,
    AccountExists,
    InvalidDetails,
    AccountDisabled,
    NoSuchAccount,
    /// An unrevoked link for this proxy and patient already exists.
    ProxyLinkExists,
    /// A patient cannot be their own proxy.
    ProxyIsPatient,
    /// A proxy may not see more of the record than the patient can.
    ProxyBeyondPatient,
    NoSuchProxyLink,
    /// No slot, appointment or request of the patient has this id.
    NoSuchItem,
    SlotTaken,
    ReasonRequired,
    TooLateToCancel,
    /// Not a repeat of the patient's that may be requested online today.
    NotRequestable,
}
