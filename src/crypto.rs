//! Encryption at rest for secrets the gateway must keep (linkage keys): AES-256-GCM with a
//! random nonce, the row id as associated data so a ciphertext cannot be moved to another row.
//!
//! Keys rotate: a sealed value names the key that sealed it (`v2:<key id>:<nonce>:<ciphertext>`),
//! the current key seals, and previous keys are kept only to open what they sealed until
//! `reencrypt-secrets` has sealed it again with the current key. Values sealed before keys had
//! ids (`v1:<nonce>:<ciphertext>`) are opened with whichever configured key fits.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};

const LEGACY: &str = "v1";
const VERSION: &str = "v2";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored secret could not be decrypted (wrong key or tampered data)")]
    Decrypt,
}

struct SealingKey {
    /// The first eight bytes of the key's SHA-256, in hex: names the key without revealing it.
    id: String,
    cipher: Aes256Gcm,
    /// A second key derived from it, for opaque identifiers (never for sealing).
    naming: [u8; 32],
}

impl SealingKey {
    fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let digest = Sha256::digest(&bytes);
        let mut naming = Sha256::new();
        naming.update(b"gp-online-gateway opaque identifiers\0");
        naming.update(&bytes);
        Ok(Self {
            id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            naming: naming.finalize().into(),
        })
    }

    fn open(&self, nonce: &str, ciphertext: &str, bound_to: &str) -> Result<String, CryptoError> {
        let nonce = STANDARD.decode(nonce).map_err(|_| CryptoError::Decrypt)?;
        let ciphertext = STANDARD.decode(ciphertext).map_err(|_| CryptoError::Decrypt)?;
        if nonce.len() != 12 {
            return Err(CryptoError::Decrypt);
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

/// The current sealing key and the previous ones still accepted for opening.
pub struct SecretBox {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl SecretBox {
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        Self::with_previous(key, &[])
    }

    /// A box that seals with `current` and also opens what `previous` keys sealed.
    pub fn with_previous(current: &str, previous: &[String]) -> Result<Self, CryptoError> {
        Ok(Self {
            current: SealingKey::from_base64(current)?,
            previous: previous
                .iter()
                .map(|k| SealingKey::from_base64(k))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// An identifier for `value` that says nothing about it: the same for the same `context` and
    /// value while the key stands, and no one without the key can tell from it what it stands
    /// for, or which values lie between two of them.
    pub fn opaque(&self, context: &str, value: &str) -> String {
        self.namer(context).name(value)
    }

    /// Names many values of one context: the key and the context are hashed once, and each
    /// name costs only its own value (a record names every entry it shows).
    pub fn namer(&self, context: &str) -> Namer {
        use hmac::Mac;
        #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
        let mut mac =
            <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.current.naming).expect("HMAC takes any key length");
        mac.update(context.as_bytes());
        mac.update(b"\0");
        Namer(mac)
    }

    /// The id of the key that seals, as sealed values name it.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    pub fn seal(&self, plaintext: &str, bound_to: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        #[allow(clippy::expect_used, reason = "AES-GCM fails only for inputs of gigabytes")]
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        format!(
            "{VERSION}:{}:{}:{}",
            self.current.id,
            STANDARD.encode(nonce),
            STANDARD.encode(ciphertext)
        )
    }

    pub fn open(&self, sealed: &str, bound_to: &str) -> Result<String, CryptoError> {
        let parts: Vec<&str> = sealed.split(':').collect();
        match parts.as_slice() {
            [VERSION, id, nonce, ciphertext] => self
                .keys()
                .find(|k| k.id == *id)
                .ok_or(CryptoError::Decrypt)?
                .open(nonce, ciphertext, bound_to),
            [LEGACY, nonce, ciphertext] => self
                .keys()
                .find_map(|k| k.open(nonce, ciphertext, bound_to).ok())
                .ok_or(CryptoError::Decrypt),
            _ => Err(CryptoError::Decrypt),
        }
    }

    /// Whether a sealed value should be sealed again with the current key.
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        !sealed
            .strip_prefix(VERSION)
            .and_then(|rest| rest.strip_prefix(':'))
            .is_some_and(|rest| rest.starts_with(&format!("{}:", self.current.id)))
    }

    fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// [`SecretBox::opaque`] for one context, with the context already hashed in.
#[derive(Clone)]
pub struct Namer(hmac::Hmac<Sha256>);

impl std::fmt::Debug for Namer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its state is keyed: nothing of it is shown.
        f.write_str("Namer")
    }
}

impl Namer {
    /// The same name [`SecretBox::opaque`] gives `value` in this context.
    pub fn name(&self, value: &str) -> String {
        use hmac::Mac;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.0.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut name = String::with_capacity(32);
        for b in &digest[..16] {
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        name
    }
}

/// 32 random bytes from the operating system, URL-safe base64: a session id, a CSRF token, an
/// authorization code.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether two secrets are equal, compared in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_the_first_half_of_the_keyed_hash_of_context_and_value_in_hex() {
        use hmac::Mac;
        let b = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&b.current.naming).unwrap();
        mac.update(b"record:p1\0entry-7");
        let expected: String = mac.finalize().into_bytes()[..16]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(b.opaque("record:p1", "entry-7"), expected);
        let namer = b.namer("record:p1");
        assert_eq!(namer.name("entry-7"), expected);
        assert_ne!(namer.name("entry-8"), expected);
        assert_ne!(b.opaque("record:p2", "entry-7"), expected, "the context counts");
    }

    #[test]
    fn round_trip_and_binding() {
        let b = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let sealed = b.seal("ABCD3FGH7JKL9MN", "account-1");
        assert!(!sealed.contains("ABCD3FGH7JKL9MN"));
        assert_eq!(b.open(&sealed, "account-1").unwrap(), "ABCD3FGH7JKL9MN");
        assert!(b.open(&sealed, "account-2").is_err(), "bound to its row");
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert!(other.open(&sealed, "account-1").is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
    }

    #[test]
    fn a_rotated_key_still_opens_what_it_sealed_until_it_is_resealed() {
        let (old, new) = (SecretBox::generate_key(), SecretBox::generate_key());
        let before = SecretBox::from_base64(&old).unwrap();
        let sealed = before.seal("ABCD3FGH7JKL9MN", "account-1");
        assert!(!before.needs_resealing(&sealed));

        let after = SecretBox::with_previous(&new, std::slice::from_ref(&old)).unwrap();
        assert_ne!(after.current_key_id(), before.current_key_id());
        assert!(after.needs_resealing(&sealed));
        assert_eq!(after.open(&sealed, "account-1").unwrap(), "ABCD3FGH7JKL9MN");
        let resealed = after.seal(&after.open(&sealed, "account-1").unwrap(), "account-1");
        assert!(!after.needs_resealing(&resealed));

        // Once the old key is dropped, only what was resealed can be opened.
        let only_new = SecretBox::from_base64(&new).unwrap();
        assert!(only_new.open(&sealed, "account-1").is_err());
        assert_eq!(only_new.open(&resealed, "account-1").unwrap(), "ABCD3FGH7JKL9MN");
    }

    #[test]
    fn tokens_are_random_and_secrets_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &b));
        assert!(!same_secret(&a, &a[..42]));
    }

    #[test]
    fn values_sealed_before_keys_had_ids_are_opened_and_resealed() {
        let key = SecretBox::generate_key();
        let b = SecretBox::from_base64(&key).unwrap();
        // The earlier format: v1:<nonce>:<ciphertext>.
        let v2 = b.seal("ABCD3FGH7JKL9MN", "account-1");
        let parts: Vec<&str> = v2.split(':').collect();
        let v1 = format!("v1:{}:{}", parts[2], parts[3]);
        assert_eq!(b.open(&v1, "account-1").unwrap(), "ABCD3FGH7JKL9MN");
        assert!(b.needs_resealing(&v1));
        assert!(b.open("v3:x:y:z", "account-1").is_err());
    }
}
