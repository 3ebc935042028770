//! The typed configuration of one invocation, resolved once from flags, environment and the
//! credentials file.
//!
//! Owns: the `Environment` snapshot (read from the process once, or given by tests), address
//! checks, and the credential precedence: `--key`, `--key-file`, `KEYGATE_KEY`,
//! `KEYGATE_KEY_FILE`, then the stored session when it belongs to the effective `--addr`.
//! Must not: touch the network or print a credential (not in errors, not in `Debug`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::args::GlobalArgs;
use crate::client::{CliError, Credential};
use crate::credentials;

/// The environment variables `keygate` reads, captured once. `Debug` tells which are set,
/// never their values.
#[derive(Clone, Default)]
pub struct Environment {
    /// `KEYGATE_KEY`.
    pub key: Option<OsString>,
    /// `KEYGATE_KEY_FILE`.
    pub key_file: Option<OsString>,
    /// `KEYGATE_CONFIG_DIR`.
    pub config_dir: Option<OsString>,
    /// `XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<OsString>,
    /// `HOME`.
    pub home: Option<OsString>,
    /// `KEYGATE_PASSWORD`: the password to sign in with, or the current one.
    pub password: Option<OsString>,
    /// `KEYGATE_NEW_PASSWORD`: the new password of `password change`.
    pub new_password: Option<OsString>,
}

impl Environment {
    /// Reads the variables from the process environment.
    pub fn from_process() -> Self {
        let var = std::env::var_os;
        Environment {
            key: var("KEYGATE_KEY"),
            key_file: var("KEYGATE_KEY_FILE"),
            config_dir: var("KEYGATE_CONFIG_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            password: var("KEYGATE_PASSWORD"),
            new_password: var("KEYGATE_NEW_PASSWORD"),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<OsString>| if v.is_some() { "set" } else { "unset" };
        f.debug_struct("Environment")
            .field("key", &set(&self.key))
            .field("key_file", &self.key_file)
            .field("config_dir", &self.config_dir)
            .field("xdg_config_home", &self.xdg_config_home)
            .field("home", &self.home)
            .field("password", &set(&self.password))
            .field("new_password", &set(&self.new_password))
            .finish()
    }
}

/// Where the credential of an invocation came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    KeyFlag,
    KeyFileFlag(PathBuf),
    KeyEnv,
    KeyFileEnv(PathBuf),
    /// The session in this credentials file.
    StoredSession(PathBuf),
    /// No credential was found.
    None,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::KeyFlag => f.write_str("the management key from --key"),
            CredentialSource::KeyFileFlag(path) => {
                write!(f, "the management key in --key-file {}", path.display())
            }
            CredentialSource::KeyEnv => f.write_str("the management key from KEYGATE_KEY"),
            CredentialSource::KeyFileEnv(path) => {
                write!(
                    f,
                    "the management key in KEYGATE_KEY_FILE {}",
                    path.display()
                )
            }
            CredentialSource::StoredSession(path) => {
                write!(f, "the session token stored in {}", path.display())
            }
            CredentialSource::None => f.write_str("no credential"),
        }
    }
}

/// The typed configuration of one invocation.
#[derive(Debug, Clone)]
pub struct Config {
    /// The control plane address, without a trailing `/`.
    pub addr: String,
    /// The bearer credential every authenticated call carries; `None` when none was found
    /// (fine for `login`, `setup` and `invite accept`).
    pub credential: Option<Credential>,
    pub source: CredentialSource,
    pub timeout: Duration,
    /// Where sessions are stored; `None` when no configuration directory can be found.
    pub credentials_file: Option<PathBuf>,
    /// Why a stored session was not used, for the "no credentials" message.
    pub stored_session_note: Option<String>,
}

impl Config {
    /// Resolves the configuration from the global flags and the process environment.
    pub fn from_args(global: &GlobalArgs) -> Result<Self, CliError> {
        Self::resolve(global, &Environment::from_process())
    }

    /// Credential precedence: `--key`, `--key-file`, `KEYGATE_KEY`, `KEYGATE_KEY_FILE`, then
    /// the stored session if its address is the effective `--addr`.
    pub fn resolve(global: &GlobalArgs, env: &Environment) -> Result<Self, CliError> {
        let addr = check_addr(&global.addr)?;
        let credentials_file = credentials::default_path(env);
        let non_empty = |v: &Option<OsString>| v.clone().filter(|v| !v.is_empty());
        let mut stored_session_note = None;

        let (credential, source) = if let Some(key) = &global.key {
            (Some(key.clone()), CredentialSource::KeyFlag)
        } else if let Some(path) = &global.key_file {
            (
                Some(read_key_file(path)?),
                CredentialSource::KeyFileFlag(path.clone()),
            )
        } else if let Some(key) = non_empty(&env.key) {
            let key = key
                .into_string()
                .map_err(|_| CliError::usage("KEYGATE_KEY is not valid UTF-8"))?;
            (Some(Credential::new(&key)), CredentialSource::KeyEnv)
        } else if let Some(path) = non_empty(&env.key_file) {
            let path = PathBuf::from(path);
            (
                Some(read_key_file(&path)?),
                CredentialSource::KeyFileEnv(path),
            )
        } else {
            match credentials_file.as_deref().map(credentials::load) {
                Some(Ok(Some(session))) if session.addr == addr => (
                    Some(Credential::new(session.session_token.expose())),
                    CredentialSource::StoredSession(credentials_file.clone().unwrap_or_default()),
                ),
                Some(Ok(Some(session))) => {
                    stored_session_note = Some(format!(
                        "the stored session is for {}, not {addr}",
                        session.addr
                    ));
                    (None, CredentialSource::None)
                }
                Some(Err(e)) => {
                    stored_session_note = Some(e.to_string());
                    (None, CredentialSource::None)
                }
                Some(Ok(None)) | None => (None, CredentialSource::None),
            }
        };
        // Fail early, before any network traffic, on a credential that cannot be sent.
        if let Some(credential) = &credential {
            credential.check(&source.to_string())?;
        }

        Ok(Config {
            addr,
            credential,
            source,
            timeout: Duration::from_secs(global.timeout),
            credentials_file,
            stored_session_note,
        })
    }

    /// The credential, or the usage error that says how to get one.
    pub fn require_credential(&self) -> Result<&Credential, CliError> {
        self.credential.as_ref().ok_or_else(|| {
            let mut message = String::from(
                "no credentials: run `keygate login`, pass --key-file PATH or --key KEY, or set \
                 KEYGATE_KEY_FILE or KEYGATE_KEY",
            );
            if let Some(note) = &self.stored_session_note {
                message.push_str(&format!(" ({note})"));
            }
            CliError::usage(message)
        })
    }

    /// The credentials file's path, or the usage error saying why there is none.
    pub fn credentials_path(&self) -> Result<&Path, CliError> {
        self.credentials_file.as_deref().ok_or_else(|| {
            CliError::usage(
                "cannot find a configuration directory for the credentials file: set \
                 KEYGATE_CONFIG_DIR or HOME",
            )
        })
    }
}

/// An address normalised for comparison with a stored session's: trimmed, without a
/// trailing `/`.
pub fn normalize_addr(raw: &str) -> String {
    raw.trim().trim_end_matches('/').to_owned()
}

/// Checks `--addr` and returns it normalised.
fn check_addr(raw: &str) -> Result<String, CliError> {
    let addr = normalize_addr(raw);
    match addr.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => Ok(addr),
        Some(("https", _)) => Err(CliError::usage(format!(
            "--addr {addr}: this build of keygate speaks plain HTTP/2 only; use an http:// \
             address"
        ))),
        _ => Err(CliError::usage(format!(
            "--addr {addr}: expected an address such as {}",
            crate::args::DEFAULT_ADDR
        ))),
    }
}

fn read_key_file(path: &Path) -> Result<Credential, CliError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read key file {}: {e}", path.display())))?;
    Ok(Credential::new(&raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use crate::credentials::tests::sample;
    use clap::Parser;

    fn global(args: &[&str]) -> GlobalArgs {
        let mut argv = vec!["keygate"];
        argv.extend_from_slice(args);
        argv.extend(["team", "list"]);
        Cli::try_parse_from(argv).unwrap().global
    }

    fn env(key: Option<&str>, key_file: Option<&Path>, config_dir: Option<&Path>) -> Environment {
        Environment {
            key: key.map(Into::into),
            key_file: key_file.map(Into::into),
            config_dir: config_dir.map(Into::into),
            // Never the real home directory of whoever runs the tests.
            home: Some("/nonexistent-home".into()),
            ..Environment::default()
        }
    }

    fn exposed(config: &Config) -> Option<&str> {
        config.credential.as_ref().map(Credential::expose)
    }

    #[test]
    fn key_precedence_and_file_trimming() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "  mk_from_file\n").unwrap();
        let file_arg = file.to_str().unwrap();

        let c = Config::resolve(
            &global(&["--key", "mk_flag"]),
            &env(Some("mk_env"), None, None),
        )
        .unwrap();
        assert_eq!(exposed(&c), Some("mk_flag"));
        assert_eq!(c.source, CredentialSource::KeyFlag);

        let c = Config::resolve(
            &global(&["--key-file", file_arg]),
            &env(Some("mk_env"), None, None),
        )
        .unwrap();
        assert_eq!(exposed(&c), Some("mk_from_file"));

        let c = Config::resolve(&global(&[]), &env(Some("mk_env"), Some(&file), None)).unwrap();
        assert_eq!(exposed(&c), Some("mk_env"));

        let c = Config::resolve(&global(&[]), &env(None, Some(&file), None)).unwrap();
        assert_eq!(exposed(&c), Some("mk_from_file"));
        assert_eq!(c.source, CredentialSource::KeyFileEnv(file.clone()));
        assert_eq!(c.addr, crate::args::DEFAULT_ADDR);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("mk_from_file"));

        // An empty variable counts as unset.
        let c = Config::resolve(&global(&[]), &env(Some(""), Some(&file), None)).unwrap();
        assert_eq!(exposed(&c), Some("mk_from_file"));

        let c = Config::resolve(&global(&[]), &env(None, None, None)).unwrap();
        assert!(c.credential.is_none());
        assert_eq!(c.require_credential().unwrap_err().exit_code(), 2);

        let err = Config::resolve(&global(&["--key", "  "]), &env(None, None, None)).unwrap_err();
        assert_eq!(err.to_string(), "the management key from --key is empty");
        let missing = dir.path().join("absent");
        let err = Config::resolve(
            &global(&["--key-file", missing.to_str().unwrap()]),
            &env(None, None, None),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn stored_session_comes_last_and_only_for_its_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(credentials::FILE_NAME);
        credentials::save(&path, &sample("http://cp:7000")).unwrap();
        let with_dir = |key: Option<&str>| env(key, None, Some(dir.path()));

        // Same address (a trailing slash does not matter): the stored session is used.
        let c = Config::resolve(&global(&["--addr", "http://cp:7000/"]), &with_dir(None)).unwrap();
        assert_eq!(exposed(&c), Some("kgs_topsecret"));
        assert_eq!(c.source, CredentialSource::StoredSession(path.clone()));
        assert!(!format!("{c:?}").contains("topsecret"));

        // Any key wins over the stored session.
        let c = Config::resolve(
            &global(&["--addr", "http://cp:7000"]),
            &with_dir(Some("mk_env")),
        )
        .unwrap();
        assert_eq!(exposed(&c), Some("mk_env"));
        let c = Config::resolve(
            &global(&["--addr", "http://cp:7000", "--key", "mk_flag"]),
            &with_dir(None),
        )
        .unwrap();
        assert_eq!(exposed(&c), Some("mk_flag"));

        // Another address: ignored, and the error says why.
        let c = Config::resolve(
            &global(&["--addr", "http://elsewhere:7000"]),
            &with_dir(None),
        )
        .unwrap();
        assert!(c.credential.is_none());
        assert_eq!(c.source, CredentialSource::None);
        let err = c.require_credential().unwrap_err().to_string();
        assert!(err.contains("keygate login"), "{err}");
        assert!(
            err.contains("the stored session is for http://cp:7000, not http://elsewhere:7000"),
            "{err}"
        );
        // The default address is not the stored one either.
        let c = Config::resolve(&global(&[]), &with_dir(None)).unwrap();
        assert!(c.credential.is_none());
    }

    #[test]
    fn unusable_stored_session_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(credentials::FILE_NAME), "{not json").unwrap();
        let c = Config::resolve(&global(&[]), &env(None, None, Some(dir.path()))).unwrap();
        let err = c.require_credential().unwrap_err().to_string();
        assert!(err.contains("is not usable"), "{err}");
    }

    #[test]
    fn bad_keys_are_rejected_without_echoing_them() {
        let err = Config::resolve(
            &global(&["--key", "mk_\u{7f}secret"]),
            &env(None, None, None),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn addresses() {
        let ok = |addr: &str| {
            Config::resolve(
                &global(&["--addr", addr, "--key", "k"]),
                &env(None, None, None),
            )
        };
        assert_eq!(ok("http://cp:7000/").unwrap().addr, "http://cp:7000");
        assert_eq!(ok("https://cp").unwrap_err().exit_code(), 2);
        assert_eq!(ok("cp:7000").unwrap_err().exit_code(), 2);
    }

    #[test]
    fn environment_debug_hides_secrets() {
        let env = Environment {
            key: Some("mk_hidden".into()),
            password: Some("pw_hidden".into()),
            new_password: Some("pw2_hidden".into()),
            ..Environment::default()
        };
        let shown = format!("{env:?}");
        assert!(!shown.contains("hidden"), "{shown}");
    }
}
