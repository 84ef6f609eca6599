//! Console sessions: kept on the server, named by a random cookie, each with its own CSRF
//! token, ending after an idle time, at the staff token's expiry, or at sign-out.
//!
//! Sessions live in this instance's memory: a restart signs everyone out, and behind a load
//! balancer the console needs sticky sessions (the API itself needs none).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::identity::StaffPrincipal;

/// The session cookie. `__Host-` (Secure, path `/`, no domain) where the console is reached
/// over TLS; browsers refuse that prefix on plain HTTP, so there the plain name is used.
pub const COOKIE: &str = "gp-console";
pub const SECURE_COOKIE: &str = "__Host-gp-console";
/// The cookie that ties a sign-in's return to the browser that started it.
pub const SIGN_IN_COOKIE: &str = "gp-console-sign-in";
pub const SECURE_SIGN_IN_COOKIE: &str = "__Host-gp-console-sign-in";

/// More sessions than any deployment's staff hold at once; beyond it the least recently used go.
const MAX_SESSIONS: usize = 10_000;
/// Sign-ins started and not finished; beyond it the oldest go.
const MAX_PENDING: usize = 1_000;
/// How long a sign-in may take at the identity provider.
const SIGN_IN_LIFETIME: Duration = Duration::from_secs(600);

/// A member of staff signed in to the console.
#[derive(Debug, Clone)]
pub struct Session {
    /// The staff token the console calls the API with, on this person's behalf.
    pub token: String,
    pub csrf: String,
    /// As the token names them.
    pub name: String,
    /// Who the token proved them to be, as the API's verifier read it.
    pub staff: StaffPrincipal,
    pub token_expires: Instant,
    last_seen: Instant,
}

impl Session {
    /// The practice they act at: the first organisation their roles name.
    pub fn practice(&self) -> &str {
        self.staff.roles.first().map_or("", |r| r.organisation.as_str())
    }

    /// Their roles as the header shows them (`R8000 at A81001`).
    pub fn roles(&self) -> String {
        self.staff
            .roles
            .iter()
            .map(|r| {
                let code = r.role.as_deref().unwrap_or("no role");
                let code = code.rsplit(':').next().unwrap_or(code);
                format!("{code} at {}", r.organisation.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn usable(&self, now: Instant, idle: Duration) -> bool {
        now.duration_since(self.last_seen) < idle && now < self.token_expires
    }
}

/// A sign-in on its way through the identity provider.
pub struct PendingSignIn {
    pub verifier: String,
    pub nonce: String,
    started: Instant,
}

/// Why a request carries no usable session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No cookie, or one this instance never issued.
    None,
    /// It was real but idle too long or its token expired.
    Ended,
}

pub struct Sessions {
    idle: Duration,
    live: Mutex<HashMap<String, Session>>,
    pending: Mutex<HashMap<String, PendingSignIn>>,
}

/// The value of the cookie `name` the request carries.
pub fn cookie(req: &actix_web::HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            live: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingSignIn>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a sign-in under its `state` until the identity provider sends the browser back.
    pub fn start_sign_in(&self, state: &str, verifier: String, nonce: String) {
        let mut pending = self.pending();
        let now = Instant::now();
        pending.retain(|_, p| now.duration_since(p.started) < SIGN_IN_LIFETIME);
        if pending.len() >= MAX_PENDING
            && let Some(oldest) = pending.iter().min_by_key(|(_, p)| p.started).map(|(k, _)| k.clone())
        {
            pending.remove(&oldest);
        }
        pending.insert(
            state.to_owned(),
            PendingSignIn {
                verifier,
                nonce,
                started: now,
            },
        );
    }

    /// The sign-in started with `state`, once: a second return with it finds nothing.
    pub fn finish_sign_in(&self, state: &str) -> Option<PendingSignIn> {
        let p = self.pending().remove(state)?;
        (p.started.elapsed() < SIGN_IN_LIFETIME).then_some(p)
    }

    /// Starts a session and answers its id, the cookie's value.
    pub fn open(&self, token: String, name: String, staff: StaffPrincipal, token_lifetime: Duration) -> String {
        let id = crate::crypto::random_token();
        let now = Instant::now();
        let session = Session {
            token,
            csrf: crate::crypto::random_token(),
            name,
            staff,
            token_expires: now + token_lifetime,
            last_seen: now,
        };
        let mut live = self.live();
        let idle = self.idle;
        live.retain(|_, s| s.usable(now, idle));
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), session);
        id
    }

    /// The session `id` names, its idle time restarted; why there is none otherwise.
    pub fn touch(&self, id: &str) -> Result<Session, Missing> {
        let mut live = self.live();
        let now = Instant::now();
        let Some(session) = live.get_mut(id) else {
            return Err(Missing::None);
        };
        if !session.usable(now, self.idle) {
            live.remove(id);
            return Err(Missing::Ended);
        }
        session.last_seen = now;
        Ok(session.clone())
    }

    /// Ends the session `id` (sign-out); its cookie is worth nothing from now on.
    pub fn end(&self, id: &str) -> Option<Session> {
        self.live().remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(sessions: &Sessions, lifetime: Duration) -> String {
        let staff = StaffPrincipal {
            issuer: "https://issuer.example".into(),
            subject: "s".into(),
            roles: vec![],
        };
        sessions.open("t".into(), "n".into(), staff, lifetime)
    }

    #[test]
    fn a_session_ends_when_idle_when_its_token_expires_and_at_sign_out() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let id = open(&sessions, Duration::from_secs(60));
        assert!(sessions.touch(&id).is_ok());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(sessions.touch(&id).unwrap_err(), Missing::Ended);
        assert_eq!(sessions.touch(&id).unwrap_err(), Missing::None);

        let sessions = Sessions::new(Duration::from_secs(60));
        let id = open(&sessions, Duration::ZERO);
        assert_eq!(sessions.touch(&id).unwrap_err(), Missing::Ended);

        let id = open(&sessions, Duration::from_secs(60));
        assert!(sessions.end(&id).is_some());
        assert_eq!(sessions.touch(&id).unwrap_err(), Missing::None);
    }

    #[test]
    fn a_sign_in_returns_once() {
        let sessions = Sessions::new(Duration::from_secs(60));
        sessions.start_sign_in("s", "v".into(), "n".into());
        assert_eq!(sessions.finish_sign_in("s").map(|p| p.verifier), Some("v".into()));
        assert!(sessions.finish_sign_in("s").is_none());
        assert!(sessions.finish_sign_in("other").is_none());
    }
}
