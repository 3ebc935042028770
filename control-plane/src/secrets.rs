//! Secrets at rest: backend credential values sealed with AES-256-GCM under the master key.
//!
//! Sealed form: `v1.<key_id>.<base64url(nonce || ciphertext+tag)>`. The associated data is
//! `<route_id>/<slot>`, so a sealed value only opens for the route and slot it was written for.
//! The algorithm itself is `keygate_contracts::seal` (the gateways open with it); this module
//! adds the key file and the control plane's error type.

use base64::Engine;
use keygate_contracts::seal::{SealError, SealKey};
use rand::RngCore;
use std::path::Path;

pub use keygate_contracts::seal::SecretString;

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

impl From<SealError> for SecretError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::BadKey(why) => Self::BadKey(why),
            SealError::Open => Self::Open,
        }
    }
}

/// The AES-256-GCM key that seals route secrets (a [`SealKey`] plus key-file handling).
#[derive(Clone)]
pub struct MasterKey(SealKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.0.id())
            .finish()
    }
}

impl MasterKey {
    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(SealKey::from_bytes(bytes))
    }

    /// From base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self, SecretError> {
        Ok(Self(SealKey::from_base64(s)?))
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
        self.0.id()
    }

    /// Seals `plaintext` bound to `aad`.
    pub fn seal(&self, aad: &str, plaintext: &SecretString) -> String {
        self.0.seal(aad, plaintext.expose())
    }

    /// Opens a value sealed by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<SecretString, SecretError> {
        Ok(self.0.open(aad, sealed)?)
    }

    /// The underlying key, for code that speaks [`SealKey`].
    pub fn seal_key(&self) -> &SealKey {
        &self.0
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
