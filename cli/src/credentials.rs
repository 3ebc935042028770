//! The credentials file: the session that `keygate login`, `setup` and `invite accept` store
//! for later commands.
//!
//! Owns: where the file lives (`$KEYGATE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/keygate`, else
//! `~/.config/keygate`; file `credentials.json`), its JSON format, and reading, writing
//! (atomically, mode 0600 in a 0700 directory) and deleting it. Must not: decide when the
//! stored session is used (`config` does) or print the session token.

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use prost_types::Timestamp;
use serde_json::{Value, json};

use crate::client::CliError;
use crate::config::Environment;
use crate::output;
use crate::secret::Secret;

/// The file's name inside the configuration directory.
pub const FILE_NAME: &str = "credentials.json";

/// Format version written into the file; other versions are refused when read.
const VERSION: u64 = 1;

/// A signed-in session, as stored on disk. `Debug` does not show the token.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// The control plane address the session belongs to, normalised like `--addr`.
    pub addr: String,
    pub session_token: Secret,
    /// `ses_...`, to recognise the stored session in `session list` / `session revoke`.
    pub session_id: String,
    /// The signed-in user's email, for messages.
    pub email: String,
    pub expires_at: Option<Timestamp>,
}

impl StoredSession {
    fn to_json(&self) -> Value {
        json!({
            "version": VERSION,
            "addr": self.addr,
            "email": self.email,
            "session_id": self.session_id,
            "session_token": self.session_token.expose(),
            "expires_at": output::time_json(self.expires_at.as_ref()),
        })
    }

    /// Reads the stored JSON. Error messages name fields, never values.
    fn from_json(value: &Value) -> Result<Self, String> {
        let text = |field: &str| -> Result<String, String> {
            value
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no string `{field}`"))
        };
        match value.get("version").and_then(Value::as_u64) {
            Some(VERSION) => {}
            Some(other) => return Err(format!("unsupported version {other}")),
            None => return Err("no `version`".to_owned()),
        }
        let expires_at = match value.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(
                crate::args::parse_rfc3339(raw)
                    .map_err(|_| "`expires_at` is not an RFC 3339 time".to_owned())?,
            ),
            Some(_) => return Err("`expires_at` is not a string".to_owned()),
        };
        let session_token = text("session_token")?;
        if session_token.is_empty() {
            return Err("`session_token` is empty".to_owned());
        }
        Ok(StoredSession {
            addr: text("addr")?,
            session_token: Secret::new(session_token),
            session_id: text("session_id").unwrap_or_default(),
            email: text("email").unwrap_or_default(),
            expires_at,
        })
    }
}

fn non_empty(value: &Option<OsString>) -> Option<&OsString> {
    value.as_ref().filter(|v| !v.is_empty())
}

/// The configuration directory: `$KEYGATE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/keygate` (an
/// absolute path only, as the XDG spec says), else `$HOME/.config/keygate`. `None` when none
/// of these is set.
pub fn config_dir(env: &Environment) -> Option<PathBuf> {
    if let Some(dir) = non_empty(&env.config_dir) {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = non_empty(&env.xdg_config_home).map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Some(xdg.join("keygate"));
    }
    non_empty(&env.home).map(|home| PathBuf::from(home).join(".config").join("keygate"))
}

/// The credentials file's path, when a configuration directory can be found.
pub fn default_path(env: &Environment) -> Option<PathBuf> {
    config_dir(env).map(|dir| dir.join(FILE_NAME))
}

/// Reads the stored session; `None` when there is no file.
pub fn load(path: &Path) -> Result<Option<StoredSession>, CliError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::io(format!("cannot read {}", path.display()), e)),
    };
    let invalid = |why: String| {
        CliError::Failed(format!(
            "credentials file {} is not usable ({why}); run `keygate login` again",
            path.display()
        ))
    };
    // A syntax error names a line and column, never the text.
    let value: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    StoredSession::from_json(&value).map(Some).map_err(invalid)
}

/// Writes the session: to a temporary file (mode 0600) in the same directory, synced, then
/// renamed over the old file, so that a reader sees the old or the new file, never half of
/// one. Creates the directory with mode 0700 when it does not exist.
pub fn save(path: &Path, session: &StoredSession) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir)?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or(FILE_NAME.as_ref()));
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);

    let written = write_private(&tmp, session).and_then(|()| {
        fs::rename(&tmp, path).map_err(|e| {
            CliError::io(
                format!("cannot move {} to {}", tmp.display(), path.display()),
                e,
            )
        })
    });
    if written.is_err() {
        // Best effort: the write already failed, and that error is the one to report.
        let _ = fs::remove_file(&tmp);
        return written;
    }
    // Make the rename itself durable; not every file system supports syncing a directory.
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn write_private(tmp: &Path, session: &StoredSession) -> Result<(), CliError> {
    let context = || format!("cannot write {}", tmp.display());
    // A leftover from a crashed run of a process with the same id.
    let _ = fs::remove_file(tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(tmp).map_err(|e| CliError::io(context(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The umask can only take bits away from 0600, but say it explicitly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| CliError::io(context(), e))?;
    }
    let mut text = serde_json::to_string_pretty(&session.to_json())
        .map_err(|e| CliError::Failed(e.to_string()))?;
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io(context(), e))
}

/// Creates `dir` (mode 0700) and its parents (default mode) unless it exists.
fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.is_dir() {
        return Ok(());
    }
    let context = || format!("cannot create {}", dir.display());
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| CliError::io(context(), e))?;
    }
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(CliError::io(context(), e)),
    }
}

/// Deletes the credentials file; `false` when there was none.
pub fn remove(path: &Path) -> Result<bool, CliError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(CliError::io(format!("cannot delete {}", path.display()), e)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(addr: &str) -> StoredSession {
        StoredSession {
            addr: addr.to_owned(),
            session_token: Secret::new("kgs_topsecret"),
            session_id: "ses_1".into(),
            email: "ada@example.com".into(),
            expires_at: Some(Timestamp {
                seconds: 1_738_324_800,
                nanos: 0,
            }),
        }
    }

    fn env(config_dir: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> Environment {
        Environment {
            config_dir: config_dir.map(Into::into),
            xdg_config_home: xdg.map(Into::into),
            home: home.map(Into::into),
            ..Environment::default()
        }
    }

    #[test]
    fn config_dir_precedence() {
        let cases = [
            (env(Some("/k"), Some("/x"), Some("/h")), Some("/k")),
            (env(Some(""), Some("/x"), Some("/h")), Some("/x/keygate")),
            (
                env(None, Some("relative"), Some("/h")),
                Some("/h/.config/keygate"),
            ),
            (env(None, None, Some("/h")), Some("/h/.config/keygate")),
            (env(None, None, None), None),
        ];
        for (env, want) in cases {
            assert_eq!(config_dir(&env), want.map(PathBuf::from), "{env:?}");
        }
        assert_eq!(
            default_path(&env(Some("/k"), None, None)),
            Some(PathBuf::from("/k/credentials.json"))
        );
    }

    #[test]
    fn save_is_private_and_loads_back() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("conf").join("keygate").join(FILE_NAME);
        assert_eq!(load(&path).unwrap(), None);

        save(&path, &sample("http://cp:7000")).unwrap();
        assert_eq!(load(&path).unwrap(), Some(sample("http://cp:7000")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }

        // Replacing leaves no temporary file behind.
        let mut other = sample("http://other:7000");
        other.expires_at = None;
        save(&path, &other).unwrap();
        assert_eq!(load(&path).unwrap(), Some(other));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);

        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }

    #[test]
    fn unusable_files_are_reported_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let cases = [
            "{\"version\": 1, \"session_token\": \"kgs_topsecret\"",
            "{\"version\": 2, \"addr\": \"a\", \"session_token\": \"kgs_topsecret\"}",
            "{\"version\": 1, \"addr\": 5, \"session_token\": \"kgs_topsecret\"}",
            "{\"version\": 1, \"addr\": \"a\", \"session_token\": \"kgs_topsecret\", \"expires_at\": \"kgs_topsecret\"}",
            "{\"version\": 1, \"addr\": \"a\", \"session_token\": \"\"}",
        ];
        for text in cases {
            fs::write(&path, text).unwrap();
            let err = load(&path).unwrap_err().to_string();
            assert!(err.contains("keygate login"), "{err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
    }
}
