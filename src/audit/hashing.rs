//! The chain's hashing: the genesis value, the key that signs anchors and heads, and how an
//! event's hash and timestamps are written. Shared by the writer, verification and archives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::NaiveDateTime;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuditEntry;

pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key that signs chain anchors and heads. It lives outside the database (configuration or
/// the data directory), so someone who can change the database cannot re-sign what they cut.
pub struct ChainKey(Vec<u8>);

#[derive(Debug, thiserror::Error)]
#[error("the audit chain key must be base64 of at least 32 bytes")]
pub struct BadKey;

impl ChainKey {
    pub fn from_base64(raw: &str) -> Result<Self, BadKey> {
        let bytes = STANDARD.decode(raw.trim()).map_err(|_| BadKey)?;
        if bytes.len() < 32 {
            return Err(BadKey);
        }
        Ok(Self(bytes))
    }

    pub(super) fn mac(&self, parts: &[&str]) -> String {
        #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        hex(&mac.finalize().into_bytes())
    }

    pub(super) fn verify(&self, parts: &[&str], expected: &str) -> bool {
        let actual = self.mac(parts);
        actual.len() == expected.len()
            && actual
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `%Y-%m-%dT%H:%M:%S%.6f`, as every stored hash was made with. Written out by hand for the
/// years a clock gives (chrono parses the format string on every call); anything else goes
/// through chrono.
pub(super) fn timestamp(t: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    if !(1000..=9999).contains(&t.year()) || t.nanosecond() >= 1_000_000_000 {
        return t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    }
    let mut out = String::with_capacity(26);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 1000
    );
    out
}

/// `sha256` over the event's fields, each length-prefixed so that moving characters between
/// fields changes the hash. Fields added later are hashed only when present, so events written
/// before they existed keep their hash.
pub(super) fn event_hash(e: &AuditEntry) -> String {
    fn opt(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or_default()
    }
    let mut h = Sha256::new();
    let mut field = |f: &str| {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    };
    let (seq, recorded_at) = (e.seq.to_string(), timestamp(e.recorded_at));
    for f in [
        e.chain.as_str(),
        &seq,
        &recorded_at,
        &e.actor_kind,
        &e.actor,
        opt(&e.patient_id),
        &e.action,
        &e.outcome,
        opt(&e.assurance),
        opt(&e.reason),
        opt(&e.request_id),
        &e.prev_hash,
    ] {
        field(f);
    }
    for (name, value) in [("practice", &e.practice), ("rule", &e.rule), ("code", &e.code)] {
        if let Some(v) = value {
            field(name);
            field(v);
        }
    }
    hex(&h.finalize())
}
