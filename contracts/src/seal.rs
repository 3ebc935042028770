//! Sealed secrets, version 1: the one algorithm that seals route credentials at rest (under
//! the control plane's master key) and for the edge (under the gateways' edge key).
//!
//! Sealed form: `v1.<key_id>.<base64url nopad(nonce[12] || ciphertext || tag[16])>`, with
//! AES-256-GCM and `<route_id>/<slot>` as associated data, so a sealed value opens only for
//! the route and slot it was written for. `key_id` is the hex of the first 4 bytes of the
//! key's SHA-256: it names the key without revealing it.
//!
//! Opening is pure and always available (the gateways need it, also on wasm32). Sealing with
//! a random nonce needs an RNG and is behind the `generate` feature; [`SealKey::seal_with_nonce`]
//! is pure and meant for fixed test vectors (never reuse a nonce under one key in production).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Bytes of the AES-GCM nonce at the front of a sealed blob.
pub const NONCE_LEN: usize = 12;
/// Bytes of the AES-GCM tag at the end of a sealed blob.
pub const TAG_LEN: usize = 16;

/// Slot names: the second half of the associated data `<route_id>/<slot>`.
pub const SLOT_BEARER: &str = "bearer_token";
pub const SLOT_API_KEY: &str = "api_key";
pub const SLOT_BASIC: &str = "basic_password";

/// A secret string: `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Why a key could not be loaded or a value not opened. Never includes secret material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("key must be 32 bytes encoded as base64 ({0})")]
    BadKey(&'static str),
    #[error("sealed value is malformed or was sealed for another route or key")]
    Open,
}

/// An AES-256-GCM key that seals and opens route secrets. `Debug` shows only its id.
#[derive(Clone)]
pub struct SealKey {
    cipher: Aes256Gcm,
    id: String,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("id", &self.id).finish()
    }
}

impl SealKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(bytes.into()),
            id: hex::encode(&Sha256::digest(bytes)[..4]),
        }
    }

    /// From base64 (standard or URL-safe, padded or not) of 32 bytes; surrounding whitespace
    /// is ignored.
    pub fn from_base64(s: &str) -> Result<Self, SealError> {
        let s = s.trim();
        let raw = STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| SealError::BadKey("not base64"))?;
        let arr: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SealError::BadKey("wrong length"))?;
        Ok(Self::from_bytes(&arr))
    }

    /// Short, non-secret identifier of this key (first 4 bytes of its SHA-256, hex).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` bound to `aad` with a fresh random nonce.
    #[cfg(feature = "generate")]
    pub fn seal(&self, aad: &str, plaintext: &str) -> String {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with_nonce(aad, plaintext, &nonce)
    }

    /// Seals with a caller-chosen nonce: deterministic, for test vectors. A nonce must never
    /// be used twice under one key for different plaintexts.
    pub fn seal_with_nonce(&self, aad: &str, plaintext: &str, nonce: &[u8; NONCE_LEN]) -> String {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(nonce);
        blob.extend_from_slice(&ct);
        format!("v1.{}.{}", self.id, URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a value sealed under this key with the same `aad`. Every failure (wrong form,
    /// other key, other route or slot, tampering, not UTF-8) is the same [`SealError::Open`].
    pub fn open(&self, aad: &str, sealed: &str) -> Result<SecretString, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Open);
        };
        if kid != self.id {
            return Err(SealError::Open);
        }
        let blob = URL_SAFE_NO_PAD.decode(b64).map_err(|_| SealError::Open)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        String::from_utf8(pt)
            .map(SecretString)
            .map_err(|_| SealError::Open)
    }
}

/// The associated data of a route secret: `<route_id>/<slot>`.
pub fn aad(route_id: &str, slot: &str) -> String {
    format!("{route_id}/{slot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_nonce_is_deterministic_and_bound_to_aad_and_key() {
        let k = SealKey::from_bytes(&[7; 32]);
        let nonce = [1u8; NONCE_LEN];
        let a = k.seal_with_nonce("rte_1/bearer_token", "hunter2", &nonce);
        assert_eq!(
            a,
            k.seal_with_nonce("rte_1/bearer_token", "hunter2", &nonce)
        );
        assert!(a.starts_with(&format!("v1.{}.", k.id())));
        assert!(!a.contains("hunter2"));
        assert_eq!(
            k.open("rte_1/bearer_token", &a).unwrap().expose(),
            "hunter2"
        );
        assert_eq!(k.open("rte_2/bearer_token", &a), Err(SealError::Open));
        assert_eq!(k.open("rte_1/api_key", &a), Err(SealError::Open));
        let other = SealKey::from_bytes(&[8; 32]);
        assert_eq!(other.open("rte_1/bearer_token", &a), Err(SealError::Open));
        // Same key id forged onto another key's blob still fails authentication.
        let forged = a.replacen(k.id(), other.id(), 1);
        assert_eq!(
            other.open("rte_1/bearer_token", &forged),
            Err(SealError::Open)
        );
    }

    #[test]
    fn malformed_values_do_not_open() {
        let k = SealKey::from_bytes(&[7; 32]);
        let good = k.seal_with_nonce("r/s", "x", &[0; NONCE_LEN]);
        let mut tampered = good.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        for bad in [
            "",
            "v1",
            "v1.x.y",
            "v2.abc.def",
            &format!("v1.{}.", k.id()),
            &format!("v1.{}.!!!", k.id()),
            &format!("v1.{}.AAAA", k.id()),
            &tampered,
        ] {
            assert_eq!(k.open("r/s", bad), Err(SealError::Open), "{bad:?}");
        }
    }

    #[test]
    fn keys_from_base64() {
        let bytes = [9u8; 32];
        let std = STANDARD.encode(bytes);
        let url = URL_SAFE_NO_PAD.encode(bytes);
        let a = SealKey::from_base64(&format!(" {std}\n")).unwrap();
        let b = SealKey::from_base64(&url).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 8);
        assert_eq!(
            SealKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadKey("wrong length")
        );
        assert_eq!(
            SealKey::from_base64("not base64!").unwrap_err(),
            SealError::BadKey("not base64")
        );
        assert!(!format!("{a:?}").contains(&std));
        assert_eq!(
            format!("{:?}", SecretString::new("hunter2")),
            "SecretString(<redacted>)"
        );
    }

    #[cfg(feature = "generate")]
    #[test]
    fn random_nonces_differ() {
        let k = SealKey::from_bytes(&[7; 32]);
        let a = k.seal("r/s", "x");
        let b = k.seal("r/s", "x");
        assert_ne!(a, b);
        assert_eq!(k.open("r/s", &a).unwrap().expose(), "x");
    }
}
