//! What the user sees: aligned tables and `key: value` blocks for people, JSON for machines,
//! RFC 3339 times, and the yes/no confirmation question.
//!
//! Owns: formatting helpers shared by the resource modules. Must not: know any resource's
//! fields (each resource module chooses its columns and JSON fields) or talk to the network.

use std::io::{self, BufRead, Write};

use comfy_table::{ColumnConstraint, Table, presets};
use prost_types::Timestamp;
use serde_json::Value;

use crate::client::CliError;

/// Shown for an empty string or list in human output.
pub const NONE: &str = "-";

/// A timestamp as UTC RFC 3339 with seconds precision, e.g. `2025-01-31T12:00:00Z`.
pub fn rfc3339(ts: &Timestamp) -> String {
    let nanos = u32::try_from(ts.nanos).unwrap_or(0);
    match chrono::DateTime::from_timestamp(ts.seconds, nanos) {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("<invalid time: {}s>", ts.seconds),
    }
}

/// A present timestamp as RFC 3339, an absent one as `absent` (e.g. `never` or `-`).
pub fn time_or(ts: Option<&Timestamp>, absent: &str) -> String {
    ts.map_or_else(|| absent.to_owned(), rfc3339)
}

/// A timestamp for JSON output: an RFC 3339 string, or `null` when absent.
pub fn time_json(ts: Option<&Timestamp>) -> Value {
    ts.map_or(Value::Null, |ts| Value::String(rfc3339(ts)))
}

/// The short lowercase name of a protobuf enum value: `TOKEN_STATUS_ACTIVE` with prefix
/// `TOKEN_STATUS_` becomes `active`.
pub fn enum_name(str_name: &str, prefix: &str) -> String {
    str_name
        .strip_prefix(prefix)
        .unwrap_or(str_name)
        .to_ascii_lowercase()
}

/// The text itself, or `-` when empty.
pub fn or_none(text: &str) -> String {
    if text.is_empty() {
        NONE.to_owned()
    } else {
        text.to_owned()
    }
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Items joined with `,`, or `-` when there are none.
pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        NONE.to_owned()
    } else {
        items.join(",")
    }
}

/// A borderless table with left-aligned columns two spaces apart and no trailing spaces.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    let last = header.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
        // Never wrap or shrink: the output may be piped to other tools.
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
    let mut text = table.trim_fmt();
    text.push('\n');
    text
}

/// A `key: value` block with the values aligned, one pair per line.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut text = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        text.push_str(format!("{label:<width$} {value}").trim_end());
        text.push('\n');
    }
    text
}

/// Pretty JSON followed by a newline.
pub fn write_json(out: &mut dyn Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

/// Asks `Really <action>? [y/N]` on `err` and reads the answer from `input`.
///
/// `action` reads like `delete route billing`. `yes` skips the question. Without it, a non-terminal stdin is refused (exit 2) rather
/// than read, so that a script never deletes on a stray `y` in its input; any answer other
/// than `y`/`yes` aborts (exit 1).
pub fn confirm(
    action: &str,
    yes: bool,
    is_terminal: bool,
    input: &mut dyn BufRead,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    if !is_terminal {
        return Err(CliError::usage(format!(
            "refusing to {action} without --yes: stdin is not a terminal"
        )));
    }
    write!(err, "Really {action}? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .map_err(|e| CliError::io("cannot read the answer", e))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Failed("aborted".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn times_are_utc_rfc3339_with_seconds() {
        assert_eq!(rfc3339(&ts(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(&ts(1_738_324_800, 999_000_000)),
            "2025-01-31T12:00:00Z"
        );
        assert_eq!(time_or(None, "never"), "never");
        assert_eq!(time_json(None), Value::Null);
        assert_eq!(
            time_json(Some(&ts(1_738_324_800, 0))),
            Value::String("2025-01-31T12:00:00Z".into())
        );
    }

    #[test]
    fn enum_names() {
        assert_eq!(enum_name("TOKEN_STATUS_ACTIVE", "TOKEN_STATUS_"), "active");
        assert_eq!(
            enum_name("BACKEND_AUTH_TYPE_API_KEY", "BACKEND_AUTH_TYPE_"),
            "api_key"
        );
    }

    #[test]
    fn tables_align_columns_without_trailing_space() {
        let text = table(
            &["ID", "NAME", "SCOPES"],
            [
                vec!["tok_1".into(), "deploy bot".into(), "*".into()],
                vec!["tok_22".into(), "ci".into(), list(&[])],
            ],
        );
        assert_eq!(
            text,
            "ID      NAME        SCOPES\n\
             tok_1   deploy bot  *\n\
             tok_22  ci          -\n"
        );
    }

    #[test]
    fn tables_do_not_wrap_long_cells() {
        let long = "x".repeat(300);
        let text = table(&["A", "B"], [vec![long.clone(), "b".into()]]);
        assert_eq!(text.lines().nth(1).unwrap(), format!("{long}  b"));
    }

    #[test]
    fn field_blocks_align_values() {
        let text = fields(&[
            ("id", "tok_1".into()),
            ("last used", "never".into()),
            ("note", String::new()),
        ]);
        assert_eq!(text, "id:        tok_1\nlast used: never\nnote:\n");
    }

    #[test]
    fn confirmation() {
        let mut err = Vec::new();
        assert!(confirm("delete x", true, false, &mut &b""[..], &mut err).is_ok());

        let refused = confirm("delete x", false, false, &mut &b"y\n"[..], &mut err).unwrap_err();
        assert_eq!(refused.exit_code(), 2);
        assert_eq!(
            refused.to_string(),
            "refusing to delete x without --yes: stdin is not a terminal"
        );

        assert!(confirm("delete x", false, true, &mut &b"yes\n"[..], &mut err).is_ok());
        assert_eq!(String::from_utf8(err).unwrap(), "Really delete x? [y/N] ");

        let aborted =
            confirm("delete x", false, true, &mut &b"\n"[..], &mut Vec::new()).unwrap_err();
        assert_eq!(aborted.exit_code(), 1);
    }
}
