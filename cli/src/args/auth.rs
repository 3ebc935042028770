//! Grammar of signing in and out, first-start setup, sessions and passwords.

use std::convert::Infallible;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::secret::Secret;

/// Where a password comes from when it is not typed at a hidden prompt.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from stdin (a trailing newline is removed). Without it the
    /// password comes from KEYGATE_PASSWORD, else from a hidden prompt on a terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Email to sign in with; asked for (one line on stdin) when left out.
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from stdin (a trailing newline is removed); needs --email.
    /// Without it the password comes from KEYGATE_PASSWORD, else from a hidden prompt.
    #[arg(long, requires = "email")]
    pub password_stdin: bool,
}

/// A one-time code (setup or invitation): on the command line or in a file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CodeSource {
    /// The code itself. Prefer --code-file: a flag lands in shell history.
    #[arg(long, value_name = "CODE", value_parser = parse_secret)]
    pub code: Option<Secret>,
    /// File holding the code (surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH")]
    pub code_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub code: CodeSource,
    /// Email of the first system admin.
    #[arg(long)]
    pub email: String,
    /// Display name of the first system admin.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub password: PasswordArgs,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List your sessions; `*` marks the one making the call.
    List,
    /// End one of your sessions.
    Revoke(SessionIdArg),
}

#[derive(Debug, Args)]
pub struct SessionIdArg {
    /// Session id (`ses_...`), as `session list` shows it.
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum PasswordCommand {
    /// Change your password; your other sessions are signed out. The current password
    /// comes from KEYGATE_PASSWORD and the new one from KEYGATE_NEW_PASSWORD, else from
    /// hidden prompts.
    Change,
}

/// Wraps a code at once so that neither `Debug` nor a clap error can show it.
fn parse_secret(raw: &str) -> Result<Secret, Infallible> {
    Ok(Secret::new(raw.trim()))
}
