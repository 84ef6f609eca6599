//! A verified subject's binding to the practice record that holds its NHS number: made on the
//! first call, followed when the patient moves practice, refused when the subject is bound to
//! another NHS number. Read by every decision about a person's own record.

use crate::db::bindings::Binding;
use crate::db::reads::PatientContext;
use crate::db::{self, DbConnection, DbError};
use crate::domain::{NhsNumber, PatientIdentifierSystem, PatientRecord, ProofingLevel};

/// How a token's subject relates to practice records.
pub(super) enum Resolved {
    /// The subject is bound to another NHS number.
    Mismatch,
    /// No practice record holds the NHS number.
    Unknown,
    /// The record and binding, and the record's context when the one query found it.
    Found(Box<PatientRecord>, Box<Binding>, Option<Box<PatientContext>>),
}

/// Binds a verified subject to the practice record on first use and follows the patient's
/// registration afterwards. Nearly every call finds its binding in place: it is read first, and
/// the write lock taken only to create or move one.
pub(super) fn resolve_binding(
    c: &mut DbConnection,
    iss: &str,
    sub: &str,
    nhs: &NhsNumber,
    level: ProofingLevel,
) -> std::result::Result<Resolved, DbError> {
    // The common case in one query: the binding still points at the record holding the NHS
    // number, at its practice.
    if let Some((binding, context)) = db::reads::current_binding(c, iss, sub, nhs.as_str())? {
        return Ok(Resolved::Found(
            Box::new(context.patient.clone()),
            Box::new(binding),
            Some(Box::new(context)),
        ));
    }
    let binding = db::bindings::find(c, iss, sub)?;
    if binding.as_ref().is_some_and(|b| b.nhs_number != nhs.as_str()) {
        return Ok(Resolved::Mismatch);
    }
    let Some(patient) = db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs.as_str())? else {
        return Ok(Resolved::Unknown);
    };
    if let Some(b) = binding
        && b.practice_id == patient.practice_id
        && b.patient_id == patient.id
    {
        return Ok(Resolved::Found(Box::new(patient), Box::new(b), None));
    }
    let created = db::write_transaction(c, |c| {
        let binding = db::bindings::find(c, iss, sub)?;
        if binding.as_ref().is_some_and(|b| b.nhs_number != nhs.as_str()) {
            return Ok::<_, DbError>(Resolved::Mismatch);
        }
        let Some(patient) = db::patients::find_by_identifier(c, PatientIdentifierSystem::NhsNumber, nhs.as_str())?
        else {
            return Ok(Resolved::Unknown);
        };
        let now = db::now();
        let binding = match binding {
            Some(b) if b.practice_id == patient.practice_id && b.patient_id == patient.id => b,
            // The patient moved practice: the binding follows the registration.
            Some(b) => {
                db::bindings::repoint(c, iss, sub, &patient.id, &patient.practice_id, level.as_str(), now)?;
                Binding {
                    patient_id: patient.id.clone(),
                    practice_id: patient.practice_id.clone(),
                    updated_at: now,
                    ..b
                }
            }
            None => {
                let b = Binding {
                    issuer: iss.to_owned(),
                    subject: sub.to_owned(),
                    nhs_number: nhs.as_str().to_owned(),
                    patient_id: patient.id.clone(),
                    practice_id: patient.practice_id.clone(),
                    proofing_level: level.as_str().to_owned(),
                    source: "token".into(),
                    created_at: now,
                    updated_at: now,
                };
                db::bindings::insert(c, &b)?;
                b
            }
        };
        Ok(Resolved::Found(Box::new(patient), Box::new(binding), None))
    });
    match created {
        // A concurrent first request of the same token made the binding in between: it is in
        // place now, and found the usual way.
        Err(DbError::UniqueViolation) => match db::reads::current_binding(c, iss, sub, nhs.as_str())? {
            Some((binding, context)) => Ok(Resolved::Found(
                Box::new(context.patient.clone()),
                Box::new(binding),
                Some(Box::new(context)),
            )),
            None => Err(DbError::UniqueViolation),
        },
        other => other,
    }
}
