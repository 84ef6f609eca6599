//! The console's way to the gateway: its own API, over loopback, with the signed-in member of
//! staff's token. Every action a page takes is the API call a client would make, decided by
//! the same engine under the same roles and put on the audit trail the same way; the console
//! adds no rule of its own and cannot drift from the API's.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::session::Session;

use crate::fhir::FHIR_JSON;
use crate::state::CONSOLE_HEADER;
/// The largest answer the console reads (a registration letter's PDF is the largest).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

pub struct Api {
    http: reqwest::Client,
    base: String,
    /// Marks this instance's console calls: the browser's request to the console was counted
    /// by the rate limit already, so the calls it makes are not counted again.
    key: String,
}

/// What the API said, when it did not say yes.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    /// The gateway's (or VRS's) stable code.
    pub code: String,
    /// The API's own words.
    pub text: String,
    /// The request element it concerns (`expression`), when it names one.
    pub field: Option<String>,
}

impl Refusal {
    fn unavailable(text: &str) -> Self {
        Self {
            status: 503,
            code: "UNAVAILABLE".into(),
            text: text.into(),
            field: None,
        }
    }

    /// The status the console answers with: the API's own.
    pub fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.status).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY)
    }

    /// The refusal in plain words for the person at the screen.
    pub fn plain(&self) -> String {
        let text = self.text.trim_end_matches('.');
        match self.status {
            401 => "Your sign-in is no longer accepted. Sign out and sign in again.".to_owned(),
            403 => format!("Your role does not allow this ({text})."),
            404 => "Not found, or not at a practice where you work.".to_owned(),
            409 => format!("This changed while you were working on it: {text}."),
            429 => "Too many requests just now. Wait a moment and try again.".to_owned(),
            500..=599 => format!("The service could not do this just now ({text}). Nothing was changed; try again."),
            _ => format!(
                "{}{}.",
                text.get(..1).unwrap_or_default().to_uppercase(),
                text.get(1..).unwrap_or_default()
            ),
        }
    }
}

/// An answer the API gave: the status and the body (JSON, or raw bytes for a PDF).
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub bytes: Vec<u8>,
    pub content_type: String,
}

impl Api {
    pub fn new(base: String, key: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http, base, key })
    }

    async fn call(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        request_id: Option<&str>,
        accept: &str,
    ) -> Result<Answer, Refusal> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&session.token)
            .header(CONSOLE_HEADER, &self.key)
            .header("accept", accept);
        if let Some(id) = request_id {
            request = request.header("x-request-id", id);
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "the console could not reach the API");
            Refusal::unavailable("the gateway did not answer")
        })?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|_| Refusal::unavailable("the answer was cut short"))?;
        if bytes.len() > MAX_ANSWER_BYTES {
            return Err(Refusal::unavailable("the answer was too large"));
        }
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Answer {
                status: status.as_u16(),
                json,
                bytes: bytes.to_vec(),
                content_type,
            });
        }
        Err(refusal(status, &json))
    }

    pub async fn get(&self, session: &Session, path: &str) -> Result<Value, Refusal> {
        Ok(self
            .call(session, Method::GET, path, None, Some(&fresh_id()), FHIR_JSON)
            .await?
            .json)
    }

    /// A PDF (or other non-JSON) answer.
    pub async fn get_as(&self, session: &Session, path: &str, accept: &str) -> Result<Answer, Refusal> {
        self.call(session, Method::GET, path, None, Some(&fresh_id()), accept)
            .await
    }

    /// A FHIR write (`Parameters` to an operation), as `send`.
    pub async fn post(&self, session: &Session, path: &str, body: &Value, request_id: &str) -> Result<Answer, Refusal> {
        self.send(session, Method::POST, path, FHIR_JSON, body, request_id)
            .await
    }

    /// A write, sent with the form's request id so that a form sent twice acts once.
    pub async fn send(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        content_type: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<Answer, Refusal> {
        self.call(
            session,
            method,
            path,
            Some((content_type, body.to_string())),
            Some(request_id),
            FHIR_JSON,
        )
        .await
    }
}

/// A request id for a read (the proxy API requires one on every call).
fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An `OperationOutcome` (the gateway's or VRS's) as a refusal.
fn refusal(status: StatusCode, body: &Value) -> Refusal {
    let issue = &body["issue"][0];
    let coding = &issue["details"]["coding"][0];
    let text = issue["details"]["text"]
        .as_str()
        .or_else(|| issue["diagnostics"].as_str())
        .or_else(|| coding["display"].as_str())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("refused"));
    Refusal {
        status: status.as_u16(),
        code: coding["code"].as_str().unwrap_or_default().to_owned(),
        text: text.to_owned(),
        field: issue["expression"][0].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_operation_outcome_becomes_plain_words_and_a_field() {
        let body = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid",
            "details": {"coding": [{"code": "MISSING_REASON"}], "text": "a reason is required"},
            "expression": ["Parameters.parameter.where(name='reason')"]}]});
        let r = refusal(StatusCode::UNPROCESSABLE_ENTITY, &body);
        assert_eq!(r.code, "MISSING_REASON");
        assert_eq!(r.plain(), "A reason is required.");
        assert!(r.field.is_some());
        let r = refusal(
            StatusCode::FORBIDDEN,
            &json!({"issue": [{"diagnostics": "missing permission register"}]}),
        );
        assert_eq!(
            r.plain(),
            "Your role does not allow this (missing permission register)."
        );
        let r = refusal(StatusCode::BAD_GATEWAY, &Value::Null);
        assert!(r.plain().contains("Nothing was changed"), "{}", r.plain());
    }
}
