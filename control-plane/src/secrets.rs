//! Secrets at rest: backend credential values sealed with AES-256-GCM under the master key.
//!
//! Sealed form: `v1.<key_id>.<base64url(nonce || ciphertext+tag)>`. The associated data is
//! `<route_id>/<slot>`, so a sealed value only opens for the route and slot it was written for.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::path::Path;

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

/// Errors from loading keys or sealing. Messages never include secret material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("master key must be 32 bytes encoded as base64 ({0})")]
    BadKey(&'static str),
    #[error("master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("sealed value is malformed or was sealed for another route or key")]
    Open,
}

/// The AES-256-GCM key that seals route secrets.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish()
    }
}

impl MasterKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..4]);
        Self {
            cipher: Aes256Gcm::new(bytes.into()),
            id,
        }
    }

    /// From base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SecretError> {
        let s = s.trim();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| SecretError::BadKey("not base64"))?;
        let arr: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey("wrong length"))?;
        Ok(Self::from_bytes(&arr))
    }

    /// Loads `<dir>/master.key`, creating it (mode 0600) with a random key on first start.
    /// Returns the key and whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), SecretError> {
        Self::load_or_create_file(&dir.join("master.key"))
    }

    /// Loads a key file, creating it (mode 0600) with a random key if missing.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), SecretError> {
        let path = path.to_path_buf();
        let err = |source| SecretError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok((Self::from_base64(&s)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                crate::config::write_private_file(&path, &format!("{encoded}\n")).map_err(err)?;
                Ok((Self::from_bytes(&bytes), true))
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Short, non-secret identifier of this key (first 4 bytes of its SHA-256, hex).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` bound to `aad`.
    pub fn seal(&self, aad: &str, plaintext: &SecretString) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{}.{}", self.id, URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<SecretString, SecretError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SecretError::Open);
        };
        if kid != self.id {
            return Err(SecretError::Open);
        }
        let blob = URL_SAFE_NO_PAD.decode(b64).map_err(|_| SecretError::Open)?;
        if blob.len() < 12 + 16 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = blob.split_at(12);
        let pt = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(pt)
            .map(SecretString)
            .map_err(|_| SecretError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_bound_to_aad_and_key() {
        let k = MasterKey::from_bytes(&[7; 32]);
        let s = k.seal("rte_1/bearer_token", &SecretString::new("hunter2"));
        assert!(!s.contains("hunter2"));
        assert_eq!(
            k.open("rte_1/bearer_token", &s).unwrap().expose(),
            "hunter2"
        );
        assert!(k.open("rte_2/bearer_token", &s).is_err());
        assert!(
            MasterKey::from_bytes(&[8; 32])
                .open("rte_1/bearer_token", &s)
                .is_err()
        );
        assert!(k.open("rte_1/bearer_token", "v1.x.y").is_err());
        assert_eq!(
            format!("{:?}", SecretString::new("hunter2")),
            "SecretString(<redacted>)"
        );
    }

    #[test]
    fn key_file_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (b, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
