//! First start: when no management key exists, create the bootstrap admin key, show it once
//! on stdout and write it to `<data-dir>/bootstrap-admin.key` (mode 0600).

use crate::context::RequestContext;
use crate::ids::KeyId;
use crate::store::{DynStore, NewManagementKey, StoreError};
use keygate_contracts::token::{MANAGEMENT_KEY_PREFIX, NewToken};
use std::path::{Path, PathBuf};

/// File name of the bootstrap key inside the data directory.
pub const KEY_FILE: &str = "bootstrap-admin.key";

/// What bootstrap did.
#[derive(Debug)]
pub enum Bootstrap {
    /// Keys already existed; nothing was created.
    Existing,
    /// A key was created; the plaintext is in the file (and returned once, here).
    Created { key: NewToken, file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Creates the bootstrap admin key if there is no management key yet.
pub async fn ensure_admin_key(
    store: &DynStore,
    data_dir: &Path,
) -> Result<Bootstrap, BootstrapError> {
    if store.count_management_keys().await? > 0 {
        return Ok(Bootstrap::Existing);
    }
    let key = NewToken::generate(MANAGEMENT_KEY_PREFIX);
    let file = data_dir.join(KEY_FILE);
    // Write the file first: if that fails, no unusable key is left in the database.
    if file.exists() {
        std::fs::remove_file(&file).map_err(|source| BootstrapError::File {
            path: file.display().to_string(),
            source,
        })?;
    }
    crate::config::write_private_file(&file, &format!("{}\n", key.expose())).map_err(|source| {
        BootstrapError::File {
            path: file.display().to_string(),
            source,
        }
    })?;
    store
        .create_management_key(
            &RequestContext::system("bootstrap"),
            NewManagementKey {
                id: KeyId::generate(),
                name: "bootstrap-admin".into(),
                key_hash: key.hash(),
                preview: key.preview(),
                is_bootstrap: true,
                expires_at: None,
            },
        )
        .await?;
    Ok(Bootstrap::Created { key, file })
}
