//! NHS login identity assurance: proofing levels, vectors of trust, and the lowest level each
//! kind of use may ever accept.

/// NHS login identity proofing levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProofingLevel {
    P0,
    P5,
    P9,
}

impl ProofingLevel {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "P0" => Some(Self::P0),
            "P5" => Some(Self::P5),
            "P9" => Some(Self::P9),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::P0 => "P0",
            Self::P5 => "P5",
            Self::P9 => "P9",
        }
    }
}

/// Uses of the gateway with the lowest identity proofing level each may ever accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssurancePolicy {
    /// Anything clinical, transactional or provisioning: the patient record itself.
    PatientRecord,
    /// Which patients the caller may act for and with which services: identifiable, not clinical.
    MyAccess,
}

impl AssurancePolicy {
    pub const ALL: [Self; 2] = [Self::PatientRecord, Self::MyAccess];

    pub fn name(self) -> &'static str {
        match self {
            Self::PatientRecord => "patient-record",
            Self::MyAccess => "my-access",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn floor(self) -> ProofingLevel {
        match self {
            Self::PatientRecord => ProofingLevel::P9,
            Self::MyAccess => ProofingLevel::P5,
        }
    }

    pub fn why(self) -> &'static str {
        match self {
            Self::PatientRecord => "clinical, transactional and provisioning use needs P9",
            Self::MyAccess => "patient-identifiable information is never shown at P0",
        }
    }
}

/// `P9.Cp.Cd`: a proofing level followed by one or more credential components.
pub fn vot_is_well_formed(vot: &str) -> bool {
    let mut parts = vot.split('.');
    matches!(parts.next(), Some("P0" | "P5" | "P9"))
        && parts.clone().count() >= 1
        && parts.all(|c| {
            let mut chars = c.chars();
            matches!((chars.next(), chars.next(), chars.next()), (Some('C'), Some(x), None) if x.is_ascii_lowercase())
        })
}

/// The proofing level a vector of trust carries, if it is well formed.
pub fn vot_level(vot: &str) -> Option<ProofingLevel> {
    if !vot_is_well_formed(vot) {
        return None;
    }
    vot.split('.').next().and_then(ProofingLevel::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_of_trust() {
        assert!(vot_is_well_formed("P9.Cp.Cd"));
        assert!(vot_is_well_formed("P0.Cp"));
        assert!(!vot_is_well_formed("P9"));
        assert!(!vot_is_well_formed("P7.Cp"));
        assert!(!vot_is_well_formed("P9.CP"));
        assert!(!vot_is_well_formed("P9.Cpp"));
        assert!(!vot_is_well_formed("P9.é"));
        assert_eq!(vot_level("P5.Cp.Ck"), Some(ProofingLevel::P5));
        assert_eq!(vot_level("P5"), None);
    }
}
