//! Log lines of a Keygate binary (kv-sync here; every binary uses `keygate-logging`): plain
//! text when written to a file or pipe, colour only on a terminal, never with a non-empty
//! `NO_COLOR`. The binary is started without a sync key, so it logs its `starting` line and
//! exits at once; the terminal case runs it under `script` (util-linux), which gives it a pty.

use std::process::Command;

const ESC: char = '\u{1b}';

fn kv_sync() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_keygate-kv-sync"));
    c.env_remove("KEYGATE_SYNC_KEY")
        .env_remove("KEYGATE_SYNC_KEY_FILE")
        .env_remove("NO_COLOR")
        .env("KEYGATE_LOG", "info");
    c
}

fn output_of(mut c: Command) -> String {
    let out = c.output().expect("run keygate-kv-sync");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("starting"), "no starting line in: {text}");
    text
}

/// Runs the binary on a pty (`script -qec CMD /dev/null`), with `NO_COLOR` as given.
fn on_a_terminal(no_color: Option<&str>) -> String {
    let mut c = Command::new("script");
    c.args(["-qec", env!("CARGO_BIN_EXE_keygate-kv-sync"), "/dev/null"])
        .env_remove("KEYGATE_SYNC_KEY")
        .env_remove("KEYGATE_SYNC_KEY_FILE")
        .env_remove("NO_COLOR")
        .env("KEYGATE_LOG", "info");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    output_of(c)
}

#[test]
fn logs_to_a_pipe_are_plain_text() {
    let text = output_of(kv_sync());
    assert!(!text.contains(ESC), "ANSI codes in piped logs: {text:?}");
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color() {
    let coloured = on_a_terminal(None);
    assert!(
        coloured.contains(ESC),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(Some("1"));
    assert!(!plain.contains(ESC), "colour despite NO_COLOR=1: {plain:?}");
    // An empty NO_COLOR does not count (no-color.org).
    assert!(on_a_terminal(Some("")).contains(ESC));
}
