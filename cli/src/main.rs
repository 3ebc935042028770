//! The `keygate` binary: parse the command line, run it, turn the outcome into an exit code.
//!
//! Owns: the async runtime and the process's stdout/stderr. Must not: hold any command
//! logic (that lives in the `keygate_cli` library, where tests can drive it).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use keygate_cli::Cli;

fn main() -> ExitCode {
    // Usage errors print clap's message and exit with 2 here.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = runtime.block_on(keygate_cli::run(cli, &mut out));
    let flushed = out.flush().map_err(keygate_cli::CliError::from);
    Ok(match result.and(flushed) {
        Ok(()) => ExitCode::SUCCESS,
        // `keygate ... | head`: the reader has all it wanted.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    })
}
