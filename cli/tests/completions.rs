//! `keygate completions <shell>`: a script for each shell, without configuration, credential
//! or network; an unknown shell is a usage error naming the choices.

use std::process::Command;

fn keygate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        // No credential, an unreachable control plane: completions must not need either.
        .env_remove("KEYGATE_TOKEN")
        .env("KEYGATE_ADDR", "http://127.0.0.1:9")
        .env(
            "KEYGATE_CONFIG_DIR",
            std::env::temp_dir().join("keygate-completions-none"),
        )
        .output()
        .expect("run keygate")
}

#[test]
fn each_shell_gets_a_script_naming_the_subcommands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef keygate"),
        ("fish", "complete -c keygate"),
        ("elvish", "edit:completion:arg-completer[keygate]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = keygate(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(marker),
            "{shell}: no {marker:?} in the script"
        );
        for sub in ["token", "route", "service-account", "completions"] {
            assert!(script.contains(sub), "{shell}: subcommand {sub} missing");
        }
        assert!(
            out.stderr.is_empty(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = keygate(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("tcsh") && err.contains("bash"), "{err}");
}
