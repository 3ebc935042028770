//! First start. When no user exists yet, either create the first system admin from
//! configuration (`KEYGATE_ADMIN_EMAIL` + `KEYGATE_ADMIN_PASSWORD`), or issue a one-time
//! setup code: printed once on stdout and written to `<data-dir>/setup-code` (mode 0600),
//! stored only as its hash, valid for 24 hours, consumed by `AuthService.CompleteSetup`
//! (`keygate setup`). There is never a default password.

use crate::context::RequestContext;
use crate::ids::UserId;
use crate::passwords;
use crate::sessions::SETUP_PREFIX;
use crate::store::{DynStore, StoreError};
use crate::time::now_ms;
use crate::users::{NewUser, User, validate_display_name, validate_email};
use keygate_contracts::token::NewToken;
use std::path::{Path, PathBuf};

/// File name of the setup code inside the data directory.
pub const SETUP_FILE: &str = "setup-code";
/// How long a setup code is valid.
pub const SETUP_TTL_MS: i64 = 24 * 3_600_000;

/// The first admin from configuration.
#[derive(Clone)]
pub struct FirstAdmin {
    pub email: String,
    pub display_name: String,
    pub password: String,
}

impl std::fmt::Debug for FirstAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstAdmin")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// What bootstrap did.
#[derive(Debug)]
pub enum Bootstrap {
    /// Users already exist; nothing was created.
    Existing,
    /// The first system admin was created from configuration.
    AdminCreated(User),
    /// A setup code was issued (shown once, here, and in the file).
    SetupCode { code: NewToken, file: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Ensures someone can become the first system admin.
pub async fn ensure_first_admin(
    store: &DynStore,
    data_dir: &Path,
    admin: Option<&FirstAdmin>,
) -> Result<Bootstrap, BootstrapError> {
    let file = data_dir.join(SETUP_FILE);
    if store.count_users().await? > 0 {
        // A code left from before setup completed is useless now.
        let _ = std::fs::remove_file(&file);
        return Ok(Bootstrap::Existing);
    }
    if let Some(a) = admin {
        let email = validate_email("KEYGATE_ADMIN_EMAIL", &a.email)
            .map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        passwords::validate("KEYGATE_ADMIN_PASSWORD", &a.password)
            .map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        let name = validate_display_name("KEYGATE_ADMIN_NAME", &a.display_name)
            .map_err(|e| BootstrapError::Invalid(e.to_string()))?;
        let user = store
            .create_user(
                &RequestContext::system("bootstrap"),
                NewUser {
                    id: UserId::generate(),
                    email,
                    display_name: name,
                    password_hash: passwords::hash(&a.password),
                    system_admin: true,
                },
                &[],
            )
            .await?;
        let _ = std::fs::remove_file(&file);
        return Ok(Bootstrap::AdminCreated(user));
    }
    let code = NewToken::generate(SETUP_PREFIX);
    let _ = std::fs::remove_file(&file);
    crate::config::write_private_file(&file, &format!("{}\n", code.expose())).map_err(
        |source| BootstrapError::File {
            path: file.display().to_string(),
            source,
        },
    )?;
    store
        .set_setup_code(&code.hash(), now_ms() + SETUP_TTL_MS)
        .await?;
    Ok(Bootstrap::SetupCode { code, file })
}

/// Team that holds the embedded stack's own service accounts.
pub const SYSTEM_TEAM: &str = "keygate-system";

/// Files (in the data directory) holding the embedded stack's service-account keys.
pub const EMBEDDED_KEY_FILES: &[(crate::service_accounts::Capability, &str)] = &[
    (crate::service_accounts::Capability::Sync, "kv-sync.key"),
    (crate::service_accounts::Capability::Gateway, "gateway.key"),
];

/// For the one-command embedded stack: makes sure `<data_dir>/kv-sync.key` (SYNC) and
/// `<data_dir>/gateway.key` (GATEWAY) hold live management keys of service accounts in team
/// [`SYSTEM_TEAM`], creating accounts, keys and files (mode 0600) as needed. A file whose key
/// no longer works (revoked, expired, another database) is replaced. Returns the files written.
pub async fn ensure_embedded_service_keys(
    store: &DynStore,
    data_dir: &Path,
) -> Result<Vec<PathBuf>, BootstrapError> {
    let team = crate::ids::TeamId(SYSTEM_TEAM.into());
    ensure_team(
        store,
        &team,
        "Keygate system",
        "Service accounts of Keygate's own kv-sync and gateways",
    )
    .await?;
    let mut written = Vec::new();
    for (capability, name) in EMBEDDED_KEY_FILES {
        let file = data_dir.join(name);
        if let Ok(text) = std::fs::read_to_string(&file) {
            let hash = keygate_contracts::token::sha256_hex(text.trim());
            if let Some(k) = store.find_management_key(&hash).await?
                && k.revoked_at.is_none()
                && k.expires_at.is_none_or(|e| e > now_ms())
            {
                continue;
            }
        }
        let key = create_capability_key(
            store,
            &team,
            format!(
                "embedded-{}-{:08x}",
                capability.as_str(),
                rand::random::<u32>()
            ),
            format!("Created for the embedded stack; key in {name}"),
            *capability,
        )
        .await?;
        let _ = std::fs::remove_file(&file);
        crate::config::write_private_file(&file, &format!("{key}\n")).map_err(|source| {
            BootstrapError::File {
                path: file.display().to_string(),
                source,
            }
        })?;
        written.push(file);
    }
    Ok(written)
}

/// Creates team `id` unless it exists.
pub async fn ensure_team(
    store: &DynStore,
    id: &crate::ids::TeamId,
    name: &str,
    description: &str,
) -> Result<(), StoreError> {
    if store.get_team(id).await.is_ok() {
        return Ok(());
    }
    store
        .create_team(
            &RequestContext::system("bootstrap"),
            crate::teams::NewTeam {
                id: id.clone(),
                name: name.into(),
                description: description.into(),
                color: String::new(),
                icon: String::new(),
            },
            None,
        )
        .await?;
    Ok(())
}

/// Creates a VIEWER service account in `team` with `capability` and one non-expiring
/// management key; returns the key's plaintext (the only time it exists).
pub async fn create_capability_key(
    store: &DynStore,
    team: &crate::ids::TeamId,
    name: String,
    description: String,
    capability: crate::service_accounts::Capability,
) -> Result<String, StoreError> {
    use crate::ids::{KeyId, ServiceAccountId};
    use crate::service_accounts::{NewManagementKey, NewServiceAccount};
    let ctx = RequestContext::system("bootstrap");
    let sa = store
        .create_service_account(
            &ctx,
            NewServiceAccount {
                id: ServiceAccountId::generate(),
                team_id: team.clone(),
                name,
                description,
                role: crate::policy::Role::Viewer,
                capability,
            },
        )
        .await?;
    let key = NewToken::generate(keygate_contracts::token::MANAGEMENT_KEY_PREFIX);
    store
        .create_management_key(
            &ctx,
            NewManagementKey {
                id: KeyId::generate(),
                service_account_id: Some(sa.id),
                name: "key".into(),
                key_hash: key.hash(),
                preview: key.preview(),
                is_bootstrap: false,
                expires_at: None,
            },
        )
        .await?;
    Ok(key.expose().to_owned())
}
