//! The GP record, served under the patient's permissions: read from the patient's clinical
//! system on each request, filtered in one place (`domain::clinical::visible`) by what is in
//! effect for the person asking, and audited against the patient. Nothing of it is stored or
//! kept by the gateway.

use std::time::Duration;

use super::access::{self, Target};
use super::{Caller, Core, Error, Result};
use crate::crypto::Namer;
use crate::domain::clinical::{self, Query, Visible};
use crate::domain::entitlements::Via;
use crate::domain::policy::Action;
use crate::domain::{AccessSettings, PatientRecord, PracticeRecord};
use crate::suppliers::Reads;

/// Whose record: by the gateway's patient id, or by NHS number (GP Connect names the patient
/// so).
#[derive(Debug, Clone)]
pub enum Whose {
    Id(String),
    Nhs(crate::domain::NhsNumber),
}

/// What may be shown of a patient's record to the person who asked, and what they may see.
#[derive(Debug)]
pub struct Disclosed {
    pub patient: PatientRecord,
    pub practice: PracticeRecord,
    pub visible: Visible,
    /// The record access in effect that decided it.
    pub access: AccessSettings,
    /// Names the record's entries: the same name for an entry in every answer, and nothing of
    /// the supplier's id in it.
    namer: Namer,
}

impl Disclosed {
    /// The opaque name of one of the record's entries (by the supplier's id) or of a part of
    /// the answer.
    pub fn name(&self, value: &str) -> String {
        self.namer.name(value)
    }
}

/// Reads the patient's record for the caller: the engine decides (P9, the patient themself or
/// an active proxy role, record access in effect), the supplier is asked, the one filter
/// applies what is in effect, and the disclosure goes on the patient's trail. A patient the
/// caller may not see is refused like one that does not exist, before the supplier is asked.
pub async fn read(core: &Core, caller: &Caller, whose: Whose, query: Query) -> Result<Disclosed> {
    let target = match whose {
        Whose::Id(id) => Target::Patient(id),
        Whose::Nhs(nhs) => Target::PatientNhs(nhs),
    };
    let permit = access::authorize(core, caller, Action::ReadRecord, target).await?;
    let patient = permit.patient()?.clone();
    let practice = permit.practice()?.clone();
    let entitlements = permit
        .entitlements
        .clone()
        .ok_or_else(|| Error::internal("a record decision without entitlements"))?;
    let adapter = core
        .suppliers
        .get(practice.supplier)
        .ok_or_else(|| Error::internal("no adapter for the practice's clinical system"))?;
    let reads = Reads {
        timeout: Duration::from_millis(core.settings.suppliers.read_timeout_ms),
        max_bytes: core.settings.suppliers.max_reply_bytes,
    };
    let request_id = caller.supplier_request_id(core);
    let record = adapter
        .record(
            &request_id,
            patient.details.identifier.value(),
            practice.ods_code.as_str(),
            reads,
        )
        .await
        .map_err(|e| Error::from_supplier(&e))?;
    let visible = clinical::visible(&record, &entitlements.access, &query);
    access::disclosure(
        caller,
        Action::ReadRecord,
        &patient,
        describe(&visible, &entitlements.via),
    );
    let namer = core.secrets.namer(&format!("record:{}", patient.id));
    Ok(Disclosed {
        namer,
        patient,
        practice,
        visible,
        access: entitlements.access,
    })
}

/// What the trail says was disclosed: how many entries of which areas, and through which proxy
/// role; never what they say.
fn describe(visible: &Visible, via: &Via) -> String {
    let counts: Vec<String> = visible
        .areas
        .iter()
        .map(|a| format!("{} {}", a.name(), visible.count(*a)))
        .collect();
    let through = match via {
        Via::Role(id) => format!(" through proxy role {id}"),
        Via::Account(_) => String::new(),
    };
    format!(
        "record disclosed{through}: {} ({} entries)",
        if counts.is_empty() {
            "no areas".to_owned()
        } else {
            counts.join(", ")
        },
        visible.entries.len()
    )
}
