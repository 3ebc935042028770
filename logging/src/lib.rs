//! How every Keygate binary sets up its logs, in one place: the `KEYGATE_LOG` filter (with a
//! per-binary default), text or JSON lines on stdout, and ANSI colour only when stdout is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), so log files written by
//! `scripts/run.sh`, systemd or a container runtime hold plain text.
//!
//! Owns: the subscriber set-up. Must not: decide what is logged (each binary does).

use std::io::IsTerminal;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines (colour on a terminal only).
    Text,
    /// One JSON object per line (never coloured).
    Json,
}

impl Format {
    /// `"json"` is JSON; anything else (the binaries' config only allows `"text"`) is text.
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("json") {
            Self::Json
        } else {
            Self::Text
        }
    }
}

/// Whether text logs are coloured: only on a terminal, and not when `NO_COLOR` holds a
/// non-empty value.
pub fn colour_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber: `KEYGATE_LOG` (an `EnvFilter` directive such as
/// `info,sqlx=warn`), else `default_filter`; lines on stdout in `format`.
pub fn init(default_filter: &str, format: Format) {
    let terminal = std::io::stdout().is_terminal();
    init_with(default_filter, format, terminal, std::io::stdout)
}

/// [`init`], writing to stderr (for tools whose stdout is their output).
pub fn init_stderr(default_filter: &str, format: Format) {
    let terminal = std::io::stderr().is_terminal();
    init_with(default_filter, format, terminal, std::io::stderr)
}

fn init_with<W>(default_filter: &str, format: Format, terminal: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let ansi =
        format == Format::Text && colour_wanted(terminal, std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        Format::Json => builder.json().init(),
        Format::Text => builder.with_target(false).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let cases: [(bool, Option<&OsStr>, bool); 6] = [
            (true, None, true),
            (true, Some(OsStr::new("")), true),
            (true, Some(OsStr::new("1")), false),
            (true, Some(OsStr::new("yes")), false),
            (false, None, false),
            (false, Some(OsStr::new("")), false),
        ];
        for (terminal, no_color, want) in cases {
            assert_eq!(
                colour_wanted(terminal, no_color),
                want,
                "{terminal} {no_color:?}"
            );
        }
    }

    #[test]
    fn format_names() {
        assert_eq!(Format::from_name("json"), Format::Json);
        assert_eq!(Format::from_name("JSON"), Format::Json);
        assert_eq!(Format::from_name("text"), Format::Text);
    }
}
