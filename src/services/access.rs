//! Access policy: who may do what to which practice's data. One place, called explicitly.

use crate::domain::{OdsCode, PatientRecord};
use crate::error::{ApiError, ErrorCode};
use crate::identity::Principal;

/// Staff act only within their own practice.
pub fn require_staff_at<'a>(
    principal: &'a Principal,
    practice: &OdsCode,
) -> Result<&'a crate::identity::StaffPrincipal, ApiError> {
    match principal {
        Principal::Staff(staff) if staff.organisations.contains(practice) => Ok(staff),
        Principal::Staff(_) => Err(ApiError::new(
            ErrorCode::OutsideOwnPractice,
            "staff may act only within their own practice",
        )),
        _ => Err(ApiError::forbidden("only practice staff may do this")),
    }
}

/// Reading a patient record by id: staff of its practice. (Patients reach their own record
/// through their identity binding, checked in `services::identity`.) Anyone else gets the same
/// answer as for a record that does not exist.
pub fn can_read_patient(principal: &Principal, record: &PatientRecord) -> Result<(), ApiError> {
    match principal {
        Principal::Staff(_) => require_staff_at(principal, &record.practice_ods).map(|_| ()),
        Principal::Patient(_) => Err(ApiError::not_found("Patient")),
        Principal::System(_) => Err(ApiError::forbidden("system clients may not read patient records")),
    }
}

/// Patient search scope: which practice a staff search is confined to, or the patient's own
/// NHS number for a patient caller.
pub enum SearchScope {
    Practice(OdsCode),
    OwnRecord(crate::domain::NhsNumber),
}

pub fn patient_search_scope(principal: &Principal, requested: Option<&OdsCode>) -> Result<SearchScope, ApiError> {
    match principal {
        Principal::Staff(staff) => match (requested, staff.organisations.as_slice()) {
            (Some(ods), _) => require_staff_at(principal, ods).map(|_| SearchScope::Practice(ods.clone())),
            (None, [only]) => Ok(SearchScope::Practice(only.clone())),
            (None, _) => Err(ApiError::new(
                ErrorCode::InvalidSearchParameter,
                "staff with roles at several practices must give the organization parameter",
            )),
        },
        // The assurance gate for patients runs before this, in `services::patients::search`.
        Principal::Patient(p) => Ok(SearchScope::OwnRecord(p.nhs_number.clone())),
        Principal::System(_) => Err(ApiError::forbidden("system clients may not search patient records")),
    }
}
