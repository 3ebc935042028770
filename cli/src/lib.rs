//! The `keygate` command-line client, as a library so that tests can drive it in-process.
//!
//! Owns: dispatching a parsed [`Cli`] to the resource modules (`tokens`, `routes`, `teams`,
//! `audit`) with a [`Context`] holding the configuration and the output streams.
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

pub mod args;
pub mod audit;
pub mod client;
pub mod output;
pub mod routes;
pub mod teams;
pub mod tokens;

use std::io::{IsTerminal, Write};

use serde_json::Value;

pub use args::Cli;
pub use client::{CliError, exit_code};

use args::Command;
use client::{Config, Connection};

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
    let config = Config::from_args(&cli.global)?;
    let mut ctx = Context {
        config,
        json: cli.global.json,
        out,
        err,
    };
    let result = match cli.command {
        Command::Token(command) => tokens::run(command, &mut ctx).await,
        Command::Route(command) => routes::run(command, &mut ctx).await,
        Command::Team(command) => teams::run(command, &mut ctx).await,
        Command::Audit(command) => audit::run(command, &mut ctx).await,
    };
    // The command's own error matters more than a failed flush after it.
    let flushed = ctx.out.flush();
    result?;
    Ok(flushed?)
}

/// What every command needs: the configuration and where to write.
pub(crate) struct Context<'a> {
    pub config: Config,
    /// `--json`: print response messages as JSON.
    pub json: bool,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl Context<'_> {
    /// Connects to the control plane. Commands call this after validating their arguments,
    /// so that usage errors never wait on the network.
    pub async fn connect(&self) -> Result<Connection, CliError> {
        Connection::connect(&self.config).await
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
