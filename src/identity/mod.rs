//! Caller identity: OIDC token verification against configured issuers, the principals it
//! yields, and the in-process development identity provider.

pub mod dev_idp;
mod principal;
mod verifier;

pub use principal::{Delegation, PatientPrincipal, Principal, StaffPrincipal, SystemPrincipal};
pub use verifier::{AuthError, IssuerStatus, TokenVerifier, send as send_oidc_request};
