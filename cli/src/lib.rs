//! The `keygate` command-line client, as a library so that tests can drive it in-process.
//!
//! Owns: dispatching a parsed [`Cli`] to the resource modules (`tokens`, `routes`, `teams`,
//! `audit`, `auth`, `users`, `members`, `invitations`, `service_accounts`, `sync`, `usage`,
//! `alerts`, `dashboard`, `system`)
//! with a [`Context`] holding the configuration, the environment and the output streams.
//! Must not: call `std::process::exit` or print errors itself; `main.rs` maps the returned
//! [`CliError`] to a message and an exit code.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keygate_cli::CliError> {
//! use clap::Parser;
//! let cli = keygate_cli::Cli::parse_from(["keygate", "--key", "mk_...", "team", "list"]);
//! let mut out = Vec::new();
//! keygate_cli::run(cli, &mut out).await?;
//! # Ok(()) }
//! ```

pub mod alerts;
pub mod args;
pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod credentials;
pub mod dashboard;
pub mod export;
pub mod invitations;
pub mod members;
pub mod output;
pub mod prompt;
pub mod roles;
pub mod routes;
pub mod secret;
pub mod service_accounts;
pub mod sync;
pub mod system;
pub mod teams;
pub mod tokens;
pub mod usage;
pub mod users;

use std::io::{IsTerminal, Write};

use serde_json::Value;

pub use args::Cli;
pub use client::{CliError, exit_code};
pub use config::Environment;

use args::Command;
use client::Connection;
use config::{Config, CredentialSource};
use prompt::{PasswordRequest, ProcessTerminal};
use secret::Secret;

/// Runs one invocation, writing results to `out` and notices to the process's stderr.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let mut stderr = std::io::stderr();
    run_with_stderr(cli, out, &mut stderr).await
}

/// Runs one invocation, writing results to `out` and notices (shown-once warnings, page
/// hints, prompts) to `err`. Errors are returned, not printed.
pub async fn run_with_stderr(
    cli: Cli,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    run_with_env(cli, Environment::from_process(), out, err).await
}

/// `run_with_stderr` with the environment given instead of read from the process (tests
/// point `config_dir` at a temporary directory this way).
pub async fn run_with_env(
    cli: Cli,
    env: Environment,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    // Completions need no configuration, credential or network.
    if let Command::Completions(args) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(args.shell, &mut command, "keygate", out);
        return Ok(());
    }
    // The importer writes to the control plane's database directly: no credential.
    if let Command::Import(args::ImportCommand::OldSystem(args)) = &cli.command {
        use keygate_control_plane::import::run::{Outcome, run};
        let outcome = run(args, out)
            .await
            .map_err(|e| CliError::Failed(format!("{e:#}")))?;
        out.flush()?;
        return match outcome {
            Outcome::Refused => Err(CliError::Refused(
                "import refused: problems are unresolved (listed above); nothing was written"
                    .into(),
            )),
            Outcome::Applied | Outcome::Planned => Ok(()),
        };
    }
    let config = Config::resolve(&cli.global, &env)?;
    let needs_credentials = cli.command.needs_credentials();
    if needs_credentials {
        // Before reading any input or touching the network.
        config.require_credential()?;
    }
    let mut ctx = Context {
        config,
        env,
        json: cli.global.json,
        out,
        err,
    };
    let result = match cli.command {
        Command::Token(command) => tokens::run(command, &mut ctx).await,
        Command::Route(command) => routes::run(command, &mut ctx).await,
        Command::Team(command) => teams::run(command, &mut ctx).await,
        Command::Audit(command) => audit::run(command, &mut ctx).await,
        Command::Login(args) => auth::login(args, &mut ctx).await,
        Command::Logout => auth::logout(&mut ctx).await,
        Command::Whoami => auth::whoami(&mut ctx).await,
        Command::Setup(args) => auth::setup(args, &mut ctx).await,
        Command::Session(command) => auth::session(command, &mut ctx).await,
        Command::Password(command) => auth::password(command, &mut ctx).await,
        Command::User(command) => users::run(command, &mut ctx).await,
        Command::Member(command) => members::run(command, &mut ctx).await,
        Command::Invite(command) => invitations::run(command, &mut ctx).await,
        Command::ServiceAccount(command) => service_accounts::run(command, &mut ctx).await,
        Command::Sync(command) => sync::run(command, &mut ctx).await,
        Command::Usage(command) => usage::run(command, &mut ctx).await,
        Command::Alert(command) => alerts::run(command, &mut ctx).await,
        Command::Dashboard(args) => dashboard::run(args, &mut ctx).await,
        Command::System(command) => system::run(command, &mut ctx).await,
        // Answered above, before the configuration is read.
        Command::Completions(_) | Command::Import(_) => Ok(()),
    };
    // The command's own error matters more than a failed flush after it.
    let flushed = ctx.out.flush();
    if let Err(CliError::Rpc {
        code: tonic::Code::Unauthenticated,
        ..
    }) = &result
        && needs_credentials
        && let CredentialSource::StoredSession(path) = &ctx.config.source
    {
        let hint = format!(
            "hint: the session stored in {} was refused (expired, revoked or signed out); \
             run `keygate login`",
            path.display()
        );
        // Best effort: the error itself is what matters.
        let _ = ctx.note(hint);
    }
    result?;
    Ok(flushed?)
}

/// What every command needs: the configuration, the environment and where to write.
pub(crate) struct Context<'a> {
    pub config: Config,
    /// Passwords for non-interactive use (`KEYGATE_PASSWORD`, `KEYGATE_NEW_PASSWORD`).
    pub env: Environment,
    /// `--json`: print response messages as JSON.
    pub json: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Context<'_> {
    /// Connects to the control plane with the configured credential. Commands call this
    /// after validating their arguments, so that usage errors never wait on the network.
    pub async fn connect(&self) -> Result<Connection, CliError> {
        Connection::connect(&self.config).await
    }

    /// Connects without a credential (SignIn, CompleteSetup, AcceptInvitation).
    pub async fn connect_anonymous(&self) -> Result<Connection, CliError> {
        Connection::connect_anonymous(&self.config).await
    }

    /// Reads a password as [`prompt::password`] does, from the process's stdin and terminal.
    pub fn read_password(&mut self, request: &PasswordRequest<'_>) -> Result<Secret, CliError> {
        self.out.flush()?;
        self.err.flush()?;
        prompt::password(request, &mut ProcessTerminal, &mut std::io::stdin().lock())
    }

    /// The email from `--email`, else a line from stdin, as [`prompt::email`] does.
    pub fn read_email(&mut self, flag: Option<String>) -> Result<String, CliError> {
        if flag.is_some() {
            return prompt::email(flag, false, &mut std::io::empty(), self.err);
        }
        let stdin = std::io::stdin();
        let is_terminal = stdin.is_terminal();
        self.out.flush()?;
        prompt::email(None, is_terminal, &mut stdin.lock(), self.err)
    }

    pub fn print_json(&mut self, value: &Value) -> Result<(), CliError> {
        output::write_json(self.out, value)?;
        Ok(())
    }

    /// Writes a line to stderr, after flushing stdout so that the two stay in order on a
    /// terminal.
    pub fn note(&mut self, text: impl std::fmt::Display) -> Result<(), CliError> {
        self.out.flush()?;
        writeln!(self.err, "{text}")?;
        self.err.flush()?;
        Ok(())
    }

    /// Tells on stderr how to get the next page, if there is one.
    pub fn next_page_hint(&mut self, next_page_token: &str) -> Result<(), CliError> {
        if next_page_token.is_empty() {
            return Ok(());
        }
        self.note(format_args!(
            "more results: repeat with --page-token {next_page_token} (or use --all)"
        ))
    }

    /// Asks before a destructive change such as `delete route billing`; see
    /// [`output::confirm`].
    pub fn confirm(&mut self, action: &str, yes: bool) -> Result<(), CliError> {
        let stdin = std::io::stdin();
        let is_terminal = stdin.is_terminal();
        self.out.flush()?;
        output::confirm(action, yes, is_terminal, &mut stdin.lock(), self.err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn env(config_dir: &std::path::Path) -> Environment {
        Environment {
            config_dir: Some(config_dir.into()),
            ..Environment::default()
        }
    }

    async fn run_in(
        config_dir: &std::path::Path,
        args: &[&str],
    ) -> (Result<(), CliError>, String, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("keygate").chain(args.iter().copied())).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run_with_env(cli, env(config_dir), &mut out, &mut err).await;
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[tokio::test]
    async fn commands_without_credentials_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        for args in [
            &["whoami"][..],
            &["user", "list"],
            &["service-account", "key", "list", "sa_1"],
            &["member", "list", "core"],
        ] {
            let (result, _, _) = run_in(dir.path(), args).await;
            let err = result.unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains("keygate login"), "{err}");
        }
    }

    #[tokio::test]
    async fn logout_without_a_stored_session_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (result, out, err) = run_in(dir.path(), &["logout"]).await;
        result.unwrap();
        assert_eq!(out, "");
        assert!(err.starts_with("Not signed in"), "{err}");

        // An unusable file is deleted without asking the server anything.
        let path = dir.path().join(credentials::FILE_NAME);
        std::fs::write(&path, "{broken").unwrap();
        let (result, _, err) = run_in(dir.path(), &["logout", "--json"]).await;
        result.unwrap();
        assert!(err.contains("held no usable session"), "{err}");
        assert!(!path.exists());
    }
}
