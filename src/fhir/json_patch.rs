//! JSON Patch (RFC 6902) on a `Consent`, on the paths VRS allows, read into role changes.

// Parses what callers send: no indexing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use serde_json::Value;

use super::consent::{date_time, extensions, legal_basis};
use super::vrs::VrsError;
use crate::domain::proxy::{RoleChange, RoleStatus};

/// The paths a Consent patch may touch.
pub const PATHS: [&str; 4] = ["/status", "/extension/-", "/provision/period/end", "/policyRule"];

/// The spec lists it among the patchable paths, but the actor is the proxy: a role for
/// someone else is a new relationship, with its own checks and its own link at the supplier.
const ACTOR: &str = "/provision/actor";

fn format_error(why: &str) -> VrsError {
    VrsError::invalid(
        400,
        "INVALID_PATCH_FORMAT",
        "Request format is invalid.",
        format!("Malformed JSON patch document: {why}."),
    )
}

/// Reads a patch document, reporting the first problem with the VRS code for it: the format,
/// then the paths, then repeated paths, then each value.
pub fn role_changes(body: &[u8]) -> Result<Vec<RoleChange>, VrsError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| format_error("the body is not JSON"))?;
    super::vrs::checked_text(&doc, "patch")?;
    let ops = doc
        .as_array()
        .ok_or_else(|| format_error("a patch is a list of operations"))?;
    if ops.is_empty() {
        return Err(format_error("the patch has no operations"));
    }
    let mut parsed = Vec::with_capacity(ops.len());
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str);
        let path = op.get("path").and_then(Value::as_str);
        let (Some(kind), Some(path)) = (kind, path) else {
            return Err(format_error("every operation needs op and path"));
        };
        if !matches!(kind, "add" | "replace" | "remove") {
            return Err(format_error("op is add, replace or remove"));
        }
        parsed.push((kind, path, op.get("value")));
    }
    if let Some((_, path, _)) = parsed.iter().find(|(_, p, _)| !PATHS.contains(p)) {
        if *path == ACTOR {
            return Err(VrsError::invalid(
                400,
                "INVALID_PATCH_PATH",
                "Patch target is invalid.",
                "provision.actor cannot be changed: the proxy of a role is fixed. End this role and create one for the new proxy.",
            ));
        }
        let shown = crate::domain::text::shown(path, 60);
        return Err(VrsError::invalid(
            400,
            "INVALID_PATCH_PATH",
            "Patch target is invalid.",
            format!(
                "Patch targeting non-existent element: {shown}. The paths are {}.",
                PATHS.join(", ")
            ),
        ));
    }
    for (i, (_, path, _)) in parsed.iter().enumerate() {
        if *path != "/extension/-" && parsed.iter().take(i).any(|(_, p, _)| p == path) {
            return Err(VrsError::invalid(
                409,
                "DUPLICATE_PATCHES",
                "Two or more patches use same path.",
                format!("Duplicate patch operations for path {path}."),
            ));
        }
    }
    let mut changes = vec![];
    for (kind, path, value) in parsed {
        let needs_value = || value.ok_or_else(|| format_error("add and replace need a value"));
        match path {
            "/status" => {
                if kind == "remove" {
                    return Err(VrsError::invalid(
                        400,
                        "INVALID_PATCH",
                        "Invalid patch.",
                        "The status cannot be removed.",
                    ));
                }
                let status = needs_value()?.as_str().and_then(RoleStatus::parse).ok_or_else(|| {
                    VrsError::invalid(
                        422,
                        "INVALID_STATUS_CODE",
                        "Status code is invalid.",
                        "Invalid status code.",
                    )
                    .at("status")
                })?;
                changes.push(RoleChange::Status(status));
            }
            "/extension/-" => {
                if kind != "add" {
                    return Err(VrsError::invalid(
                        400,
                        "INVALID_PATCH",
                        "Invalid patch.",
                        "Extensions are added with add.",
                    ));
                }
                // RFC 6902 adds one element; the VRS examples add a list as one value: each of
                // its elements is added.
                let list = match needs_value()? {
                    Value::Array(list) => list.clone(),
                    one @ Value::Object(_) => vec![one.clone()],
                    _ => return Err(format_error("an extension is an object")),
                };
                let ext = extensions(&list)?;
                if let Some(r) = ext.reason {
                    changes.push(RoleChange::Reason(r));
                }
                if let Some(g) = ext.grantor {
                    changes.push(RoleChange::Grantor(g));
                }
                if let Some(a) = ext.assessment {
                    changes.push(RoleChange::Assessment(a));
                }
                if let Some(g) = ext.grants {
                    changes.push(RoleChange::Grants(g));
                }
            }
            "/provision/period/end" => {
                let end = if kind == "remove" {
                    None
                } else {
                    Some(needs_value()?.as_str().and_then(date_time).ok_or_else(|| {
                        VrsError::invalid(
                            422,
                            "INVALID_END_DATE",
                            "End date is invalid.",
                            "End date is not a date.",
                        )
                        .at("provision.period.end")
                    })?)
                };
                changes.push(RoleChange::EndDate(end));
            }
            "/policyRule" => {
                if kind == "remove" {
                    return Err(VrsError::invalid(
                        400,
                        "INVALID_PATCH",
                        "Invalid patch.",
                        "The legal basis cannot be removed.",
                    ));
                }
                changes.push(RoleChange::LegalBasis(legal_basis(needs_value()?)?));
            }
            _ => unreachable!("paths were checked above"),
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fhir::vrs::{STATUS_REASON_SYSTEM, STATUS_REASON_URL};

    fn code(v: Value) -> &'static str {
        match role_changes(v.to_string().as_bytes()) {
            Ok(_) => "OK",
            Err(e) => e.code,
        }
    }

    fn reason(code: &str) -> Value {
        json!([{"url": STATUS_REASON_URL, "valueCodeableConcept": {"coding": [{"system": STATUS_REASON_SYSTEM, "code": code}]}}])
    }

    #[test]
    fn the_vrs_patch_errors() {
        assert_eq!(code(json!({"op": "replace"})), "INVALID_PATCH_FORMAT");
        assert_eq!(code(json!([{"op": "move", "path": "/status"}])), "INVALID_PATCH_FORMAT");
        assert_eq!(
            code(json!([{"op": "replace", "path": "/someotherpath", "value": "active"}])),
            "INVALID_PATCH_PATH"
        );
        assert_eq!(
            code(
                json!([{"op": "replace", "path": "/status", "value": "active"}, {"op": "replace", "path": "/status", "value": "inactive"}])
            ),
            "DUPLICATE_PATCHES"
        );
        assert_eq!(
            code(json!([{"op": "replace", "path": "/status", "value": "paused"}])),
            "INVALID_STATUS_CODE"
        );
        assert_eq!(
            code(json!([{"op": "add", "path": "/extension/-", "value": reason("NOT_A_REASON")}])),
            "INVALID_STATUS_REASON"
        );
        assert_eq!(
            code(json!([{"op": "add", "path": "/provision/period/end", "value": "soon"}])),
            "INVALID_END_DATE"
        );
        // The proxy of a role is never patched, whatever the operation or value.
        let actor = json!([{"reference": {"type": "RelatedPerson", "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}}}]);
        for op in ["add", "replace", "remove"] {
            let refused = role_changes(
                json!([{"op": op, "path": "/provision/actor", "value": actor}])
                    .to_string()
                    .as_bytes(),
            );
            assert!(
                refused.is_err_and(|e| e.code == "INVALID_PATCH_PATH" && e.status == 400),
                "{op}"
            );
        }
        assert_eq!(
            code(json!([
                {"op": "add", "path": "/provision/period/end", "value": "2030-01-01"},
                {"op": "replace", "path": "/provision/actor", "value": actor}
            ])),
            "INVALID_PATCH_PATH",
            "nothing of a patch that touches the actor is applied"
        );
        // Two additions to /extension/- are not duplicates; a list value adds each element.
        assert_eq!(
            code(json!([
                {"op": "replace", "path": "/status", "value": "inactive"},
                {"op": "add", "path": "/extension/-", "value": reason("ROLE_DEACTIVATED_PATIENT_REQUEST")},
                {"op": "add", "path": "/extension/-", "value": reason("ROLE_DEACTIVATED_PATIENT_REQUEST")[0]}
            ])),
            "OK"
        );
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            proptest::sample::select(vec![
                "add",
                "replace",
                "remove",
                "/status",
                "/extension/-",
                "/provision/period/end",
                "/provision/actor"
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    proptest::sample::select(vec![
                        "op",
                        "path",
                        "value",
                        "url",
                        "valueCodeableConcept",
                        "coding",
                        "code",
                        "system",
                        "start",
                        "end"
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_answered_without_panicking(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = role_changes(&body);
        }

        #[test]
        fn any_json_patch_shape_is_answered_without_panicking(patch in any_json()) {
            let _ = role_changes(patch.to_string().as_bytes());
            let _ = role_changes(json!([patch]).to_string().as_bytes());
        }
    }
}
