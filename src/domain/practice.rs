use serde::{Deserialize, Serialize};

/// Which clinical system a practice runs; decides the adapter and its wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supplier {
    Emis,
    Tpp,
}

impl Supplier {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "emis" => Some(Self::Emis),
            "tpp" => Some(Self::Tpp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emis => "emis",
            Self::Tpp => "tpp",
        }
    }
}

/// How a request names a practice: by the gateway's id or by ODS code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PracticeRef {
    Id(String),
    Ods(super::OdsCode),
}

/// How record access is switched on at a practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessModel {
    /// Automatic prospective record access from 16 unless a code says otherwise.
    OptOut,
    /// Access only once the patient has been counselled and has asked for it.
    OptIn,
}

/// A practice's online-services policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineServicesSettings {
    /// Whether patient-facing services are switched on at the practice at all.
    pub enabled: bool,
    pub access_model: AccessModel,
    /// Age at which proxy roles for a child are suspended for review.
    pub proxy_review_age: u8,
    /// Opt-out: automatic prospective access for accounts made before this day starts on it.
    #[serde(default)]
    pub prospective_go_live: Option<chrono::NaiveDate>,
}

impl Default for OnlineServicesSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            access_model: AccessModel::OptOut,
            proxy_review_age: 13,
            prospective_go_live: None,
        }
    }
}

impl OnlineServicesSettings {
    pub fn validate(&self) -> Result<(), &'static str> {
        // Guidance: review a child's proxies when the child may begin to want confidentiality,
        // at 13 at the latest.
        if !(11..=13).contains(&self.proxy_review_age) {
            return Err("proxyReviewAge must be between 11 and 13");
        }
        Ok(())
    }
}
