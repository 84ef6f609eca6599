//! The audit trail: search, chain verification, and explaining access decisions.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};

use super::body::{Paging, resource, resource_id};
use super::error::{ApiError, ErrorCode};
use super::search::{DatePrefix, parse_date_param, parse_pairs, searchset};
use crate::audit::{AuditQuery, Outcome, VerifyMode};
use crate::domain::NhsNumber;
use crate::domain::policy::{Action, Verb};
use crate::fhir::{AuditEvent, Bundle, OperationOutcome, Parameter, Parameters, operations};
use crate::services::access::{self, Subject, Target};
use crate::services::{Caller, audit};
use crate::state::AppState;

const AUDIT_PARAMS: [&str; 10] = [
    "patient",
    "date",
    "outcome",
    "action",
    "subtype",
    "agent",
    "agent:identifier",
    "request-id",
    "_count",
    "_offset",
];

/// The `action` of `$explain-access` as the OpenAPI document shows it: a string enum of every
/// action code, taken from [`Action::ALL`] so it cannot fall behind the engine.
pub struct ActionCode;

impl utoipa::PartialSchema for ActionCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Action::ALL.iter().map(|a| a.name())))
            .into()
    }
}

impl utoipa::ToSchema for ActionCode {}

fn bad(name: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidSearchParameter, message.to_owned()).at(name.to_owned())
}

/// Actions by FHIR code (C, R, U, E) or by the gateway's own action code.
fn actions(name: &str, raw: &str) -> Result<Vec<String>, ApiError> {
    let verb = match raw {
        "C" => Some(Verb::Create),
        "R" => Some(Verb::Read),
        "U" => Some(Verb::Update),
        "E" => Some(Verb::Execute),
        "D" => return Ok(vec![]),
        _ => None,
    };
    Ok(match verb {
        Some(v) => Action::ALL
            .iter()
            .filter(|a| a.verb() == v)
            .map(|a| a.name().to_owned())
            .collect(),
        None if raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => vec![raw.to_owned()],
        None => {
            return Err(bad(
                name,
                "action is C, R, U, D, E or a gateway action code such as read-patient",
            ));
        }
    })
}

/// Search the audit trail (roles allowed to audit).
///
/// With `patient`, the events about that patient (a role allowed to audit at their practice).
/// Without it, events about the practices where the caller may audit. Events about no
/// practice (refused authentications, a person's own searches) are read by the service
/// operator's system client (scope `audit:read`). Combine `date` (repeatable, with prefixes), `outcome`, `action`,
/// `agent` and `request-id`.
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("patient" = Option<String>, Query, description = "Patient/{id} or {id}"),
        ("date" = Option<String>, Query, description = "Repeatable: [eq|ne|gt|lt|ge|le|sa|eb] followed by YYYY, YYYY-MM, YYYY-MM-DD or a dateTime"),
        ("outcome" = Option<String>, Query, description = "0 (success), 4 (refused), 8 (failed); or success, denied, error"),
        ("action" = Option<String>, Query, description = "C, R, U, E, or a gateway action code (read-patient, register-online-services, ...)"),
        ("subtype" = Option<String>, Query, description = "A gateway action code"),
        ("agent" = Option<String>, Query, description = "The caller as the trail names it (staff|issuer|subject, unknown, ...)"),
        ("request-id" = Option<String>, Query, description = "The X-Request-ID of the request"),
        ("_count" = Option<i64>, Query, description = "Page size, default 20; above 100 is taken as 100 (the self link says so) unless Prefer: handling=strict, which makes it 400"),
        ("_offset" = Option<i64>, Query),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of AuditEvents, newest first", body = Bundle, content_type = "application/fhir+json"),
        (status = 400, description = "Bad parameter", body = OperationOutcome),
        (status = 403, description = "The caller's role may not read the audit trail", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent")]
#[tracing::instrument(skip_all)]
pub async fn search_audit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Whether the caller may read the trail at all is decided before the query is read.
    access::authorize(&state.core, &caller, Action::SearchAudit, Target::Pending).await?;
    let pairs = parse_pairs(req.query_string(), &AUDIT_PARAMS)?;
    let mut q = AuditQuery::default();
    let mut params = std::collections::BTreeMap::new();
    let mut once = std::collections::BTreeSet::new();
    for (name, value) in &pairs {
        if name != "date" && !once.insert(name.clone()) {
            return Err(bad(name, &format!("{name} may be given only once")));
        }
        match name.as_str() {
            "patient" => {
                let id = value.strip_prefix("Patient/").unwrap_or(value);
                q.patient_id = Some(resource_id(id).map_err(|_| bad(name, "patient is Patient/{id} or {id}"))?);
            }
            "date" => {
                let d = parse_date_param(name, value)?;
                match (d.prefix, d.bounds()) {
                    (DatePrefix::Ne, _) => q.excluded.push((d.from, d.to)),
                    (_, (lower, upper)) => {
                        if let Some(l) = lower {
                            q.from = Some(q.from.map_or(l, |f| f.max(l)));
                        }
                        if let Some(u) = upper {
                            q.to = Some(q.to.map_or(u, |t| t.min(u)));
                        }
                    }
                }
            }
            "outcome" => {
                q.outcome = Some(match value.as_str() {
                    "0" | "success" => Outcome::Success,
                    "4" | "denied" => Outcome::Denied,
                    "8" | "12" | "error" => Outcome::Error,
                    _ => return Err(bad(name, "outcome is 0, 4, 8, success, denied or error")),
                });
            }
            "action" | "subtype" => {
                let list = actions(name, value)?;
                q.actions = Some(match q.actions.take() {
                    Some(existing) => existing.into_iter().filter(|a| list.contains(a)).collect(),
                    None => list,
                });
            }
            "agent" | "agent:identifier" => {
                let key = value.rsplit_once("/Id/caller|").map_or(value.as_str(), |(_, k)| k);
                q.actor = Some(key.to_owned());
            }
            // The trail keeps request ids in one spelling; an id quoted as its caller sent it
            // (in capitals, say) finds the same events.
            "request-id" => {
                q.request_id =
                    Some(uuid::Uuid::parse_str(value).map_or_else(|_| value.clone(), |u| u.hyphenated().to_string()));
            }
            _ => {}
        }
        params.insert(name.clone(), value.clone());
    }
    let paging = Paging::parse(
        params.get("_count").map(String::as_str),
        params.get("_offset").map(String::as_str),
        super::search::strict_handling(&req),
    )?;
    let (total, events) = audit::search(&state.core, &caller, q, paging.offset, paging.count).await?;
    let entries = events
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                serde_json::to_value(AuditEvent::from_entry(e)).unwrap_or_default(),
            )
        })
        .collect();
    Ok(resource(
        StatusCode::OK,
        &searchset(&state.base_url, "AuditEvent", &params, &paging, total, entries),
        None,
        None,
    ))
}

/// Check the audit hash chains and report the first break, if any (roles allowed to audit).
///
/// Each chain's signed anchor and head are checked, and its events recomputed from the last
/// signed checkpoint, so the cost follows what was written since the last check. With
/// `mode=full`, every event still in the database is recomputed from the start of its chain
/// (or from where its archived and dropped part ends). A check that finds the trail whole moves
/// each chain's checkpoint to its head.
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("mode" = Option<String>, Query, description = "incremental (the default: from each chain's last checkpoint) or full (every event)"),
    ),
    responses(
        (status = 200, description = "valid, mode, chains, events (recomputed by this check), fromCheckpoint (chains checked on from a checkpoint), and firstBroken when the trail was altered", body = Parameters),
        (status = 400, description = "Bad parameter", body = OperationOutcome),
        (status = 403, description = "The caller's role may not read the audit trail", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/AuditEvent/$verify")]
#[tracing::instrument(skip_all)]
pub async fn verify_audit(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Whether the caller may verify at all is decided before the query is read.
    access::authorize(&state.core, &caller, Action::VerifyAudit, Target::Pending).await?;
    let params = super::search::parse_query(req.query_string(), &["mode"])?;
    let mode = match params.get("mode") {
        None => VerifyMode::Incremental,
        Some(m) => VerifyMode::parse(m).ok_or_else(|| bad("mode", "mode is incremental or full"))?,
    };
    let v = audit::verify(&state.core, &caller, mode).await?;
    let integer = |name: &str, n: usize| Parameter {
        name: name.into(),
        value_integer: Some(i64::try_from(n).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    let mut parameter = vec![
        Parameter::boolean("valid", v.first_broken.is_none()),
        Parameter::string("mode", v.mode.as_str()),
        integer("chains", v.chains),
        integer("events", v.events),
        integer("fromCheckpoint", v.from_checkpoint),
    ];
    if let Some(b) = v.first_broken {
        let mut parts = vec![];
        if let Some(id) = b.event {
            parts.push(Parameter::reference("event", format!("AuditEvent/{id}")));
        }
        parts.push(Parameter::string("chain", b.chain));
        parts.push(Parameter {
            name: "seq".into(),
            value_integer: Some(b.seq),
            ..Default::default()
        });
        parts.push(Parameter::string("reason", b.reason));
        parameter.push(Parameter::group("firstBroken", parts));
    }
    Ok(resource(StatusCode::OK, &Parameters::new(parameter), None, None))
}

/// Why can (or can't) this person do this to this patient?
///
/// Replays the access-decision engine for `actor` doing `action` to `patient` and returns its
/// decision with every rule it consulted. For staff of the patient's practice, or a role
/// allowed to audit there. `actor` is a person by NHS number (`9000000009` or
/// `https://fhir.nhs.uk/Id/nhs-number|9000000009`, with the `vot` their token would carry,
/// P9.Cp.Cd by default), a caller as the audit trail names them (`staff|issuer|subject`,
/// `system|issuer|client`, `patient|issuer|subject`: the facts last seen for them), or left out
/// for the caller themself.
#[utoipa::path(
    tag = "AuditEvent",
    params(
        ("patient" = String, Query, description = "Patient/{id} or {id}"),
        ("action" = inline(ActionCode), Query, description = "The gateway action code to explain, as the audit trail names it (`AuditEvent.subtype`)"),
        ("actor" = Option<String>, Query, description = "Who: an NHS number, an audit-trail caller key, or left out for the caller"),
        ("vot" = Option<String>, Query, description = "For a person named by NHS number: the vector of trust of their token"),
    ),
    responses(
        (status = 200, description = "allowed, outcome, code, decidingRule, reason and one `rule` group per rule consulted", body = Parameters, content_type = "application/fhir+json"),
        (status = 400, description = "Missing or bad parameter", body = OperationOutcome),
        (status = 403, description = "The caller's role may not explain access", body = OperationOutcome),
        (status = 404, description = "No patient the caller can see has this id", body = OperationOutcome),
    ),
    security(("bearer" = []))
)]
#[get("/$explain-access")]
#[tracing::instrument(skip_all)]
pub async fn explain_access(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    access::authorize(&state.core, &caller, Action::ExplainAccess, Target::Pending).await?;
    let params = super::search::parse_query(req.query_string(), &["patient", "action", "actor", "vot"])?;
    let patient = params
        .get("patient")
        .map(|p| p.strip_prefix("Patient/").unwrap_or(p))
        .ok_or_else(|| bad("patient", "patient is required"))
        .and_then(|p| resource_id(p).map_err(|_| bad("patient", "patient is Patient/{id} or {id}")))?;
    let action = params
        .get("action")
        .ok_or_else(|| bad("action", "action is required"))
        .and_then(|a| {
            Action::parse(a).ok_or_else(|| {
                bad(
                    "action",
                    &format!(
                        "unknown action (known: {})",
                        Action::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        })?;
    let subject = match params.get("actor").map(String::as_str) {
        None | Some("") => Subject::Caller,
        Some(key) if key.contains('|') && ["staff|", "system|", "patient|"].iter().any(|p| key.starts_with(p)) => {
            Subject::CallerKey(key.to_owned())
        }
        Some(person) => {
            let number = person
                .strip_prefix(crate::fhir::NHS_NUMBER_SYSTEM)
                .and_then(|r| r.strip_prefix('|'))
                .unwrap_or(person);
            Subject::Person {
                nhs_number: NhsNumber::parse(number).map_err(|_| {
                    bad(
                        "actor",
                        "actor is an NHS number, a caller key from the audit trail, or left out",
                    )
                })?,
                vot: params.get("vot").cloned(),
            }
        }
    };
    let decision = access::explain(&state.core, &caller, &patient, subject, action).await?;
    Ok(resource(
        StatusCode::OK,
        &operations::explanation(&decision),
        None,
        None,
    ))
}
