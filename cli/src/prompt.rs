//! Reading what the user types: an email, passwords and one-time codes.
//!
//! Owns: where a password comes from (`--password-stdin`, an environment variable, or a
//! hidden prompt when stdin is a terminal), reading an email line, and reading a code from a
//! flag or a file. Must not: echo, print or put into an error message a password or a code.

use std::ffi::OsString;
use std::io::{self, BufRead, Read, Write};

use crate::args::CodeSource;
use crate::client::CliError;
use crate::secret::Secret;

/// The terminal side of a prompt, replaced in tests.
pub(crate) trait Terminal {
    /// Whether stdin is a terminal, so that a prompt can be answered.
    fn is_terminal(&self) -> bool;
    /// Shows `prompt` and reads a line without echoing it.
    fn read_hidden(&mut self, prompt: &str) -> io::Result<String>;
}

/// The process's terminal: rpassword prompts and reads on the controlling TTY with echo off.
pub(crate) struct ProcessTerminal;

impl Terminal for ProcessTerminal {
    fn is_terminal(&self) -> bool {
        io::IsTerminal::is_terminal(&io::stdin())
    }

    fn read_hidden(&mut self, prompt: &str) -> io::Result<String> {
        rpassword::prompt_password(prompt)
    }
}

/// One password to read.
pub(crate) struct PasswordRequest<'a> {
    /// Shown at the prompt and in errors, e.g. "password", "new password".
    pub what: &'a str,
    /// `Some(true)` with `--password-stdin`; `None` when the command has no such flag.
    pub from_stdin: Option<bool>,
    /// The environment variable that may hold it, and its value.
    pub env_name: &'static str,
    pub env_value: Option<OsString>,
    /// Ask twice at a prompt (a new password).
    pub confirm: bool,
}

/// Reads a password: from stdin with `--password-stdin`, else from the environment
/// variable, else from a hidden prompt when stdin is a terminal. An empty password, a
/// mismatched confirmation or no source at all is a usage error.
pub(crate) fn password(
    request: &PasswordRequest<'_>,
    terminal: &mut dyn Terminal,
    stdin: &mut dyn Read,
) -> Result<Secret, CliError> {
    let what = request.what;
    let value = if request.from_stdin == Some(true) {
        let mut raw = String::new();
        stdin
            .read_to_string(&mut raw)
            .map_err(|e| CliError::io(format!("cannot read the {what} from stdin"), e))?;
        let trimmed = raw.trim_end_matches(['\n', '\r']).len();
        raw.truncate(trimmed);
        raw
    } else if let Some(value) = request.env_value.as_ref().filter(|v| !v.is_empty()) {
        value
            .clone()
            .into_string()
            .map_err(|_| CliError::usage(format!("{} is not valid UTF-8", request.env_name)))?
    } else if terminal.is_terminal() {
        let mut prompt = capitalized(what);
        prompt.push_str(": ");
        let first = terminal
            .read_hidden(&prompt)
            .map_err(|e| CliError::io(format!("cannot read the {what}"), e))?;
        if request.confirm && !first.is_empty() {
            let again = terminal
                .read_hidden(&format!("Repeat the {what}: "))
                .map_err(|e| CliError::io(format!("cannot read the {what}"), e))?;
            if again != first {
                return Err(CliError::usage(format!("the two {what}s do not match")));
            }
        }
        first
    } else {
        let stdin_flag = if request.from_stdin.is_some() {
            " or pass --password-stdin"
        } else {
            ""
        };
        return Err(CliError::usage(format!(
            "no {what}: set {}{stdin_flag} (stdin is not a terminal, so there is no prompt)",
            request.env_name
        )));
    };
    if value.is_empty() {
        return Err(CliError::usage(format!("the {what} is empty")));
    }
    Ok(Secret::new(value))
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The email from `--email`, else one line from stdin (after an `Email: ` prompt on `err`
/// when stdin is a terminal).
pub(crate) fn email(
    flag: Option<String>,
    is_terminal: bool,
    input: &mut dyn BufRead,
    err: &mut dyn Write,
) -> Result<String, CliError> {
    let raw = match flag {
        Some(email) => email,
        None => {
            if is_terminal {
                write!(err, "Email: ")?;
                err.flush()?;
            }
            let mut line = String::new();
            input
                .read_line(&mut line)
                .map_err(|e| CliError::io("cannot read the email", e))?;
            line
        }
    };
    let email = raw.trim();
    if email.is_empty() {
        return Err(CliError::usage("no email: pass --email"));
    }
    Ok(email.to_owned())
}

/// A one-time code from `--code` or `--code-file` (surrounding whitespace trimmed).
pub(crate) fn code(source: &CodeSource, what: &str) -> Result<Secret, CliError> {
    let code = match (&source.code, &source.code_file) {
        (Some(code), _) => code.clone(),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!("cannot read code file {}: {e}", path.display()))
            })?;
            Secret::new(raw.trim())
        }
        // clap requires one of the two.
        (None, None) => return Err(CliError::usage(format!("no {what}: pass --code-file PATH"))),
    };
    if code.is_empty() {
        return Err(CliError::usage(format!("the {what} is empty")));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted terminal: answers prompts in order and records them.
    struct Scripted {
        terminal: bool,
        answers: VecDeque<&'static str>,
        prompts: Vec<String>,
    }

    impl Scripted {
        fn new(terminal: bool, answers: &[&'static str]) -> Self {
            Scripted {
                terminal,
                answers: answers.iter().copied().collect(),
                prompts: Vec::new(),
            }
        }
    }

    impl Terminal for Scripted {
        fn is_terminal(&self) -> bool {
            self.terminal
        }

        fn read_hidden(&mut self, prompt: &str) -> io::Result<String> {
            self.prompts.push(prompt.to_owned());
            Ok(self
                .answers
                .pop_front()
                .expect("no more answers")
                .to_owned())
        }
    }

    fn request(
        from_stdin: Option<bool>,
        env: Option<&OsString>,
        confirm: bool,
    ) -> PasswordRequest<'static> {
        PasswordRequest {
            what: "password",
            from_stdin,
            env_name: "KEYGATE_PASSWORD",
            env_value: env.cloned(),
            confirm,
        }
    }

    #[test]
    fn password_sources_in_order() {
        let env: OsString = "from-env-123".into();
        let empty: OsString = "".into();

        // --password-stdin wins, and loses only its trailing line break.
        let mut tty = Scripted::new(true, &[]);
        let got = password(
            &request(Some(true), Some(&env), false),
            &mut tty,
            &mut &b"from stdin \r\n"[..],
        )
        .unwrap();
        assert_eq!(got.expose(), "from stdin ");

        // Then the environment, even on a terminal.
        let got = password(
            &request(Some(false), Some(&env), false),
            &mut tty,
            &mut &b""[..],
        )
        .unwrap();
        assert_eq!(got.expose(), "from-env-123");
        assert!(tty.prompts.is_empty());

        // Then a hidden prompt; an empty variable counts as unset.
        let mut tty = Scripted::new(true, &["typed-secret"]);
        let got = password(
            &request(Some(false), Some(&empty), false),
            &mut tty,
            &mut &b""[..],
        )
        .unwrap();
        assert_eq!(got.expose(), "typed-secret");
        assert_eq!(tty.prompts, ["Password: "]);

        // Nothing to read from: a usage error that names the ways in.
        let mut no_tty = Scripted::new(false, &[]);
        let err = password(
            &request(Some(false), None, false),
            &mut no_tty,
            &mut &b"x"[..],
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "no password: set KEYGATE_PASSWORD or pass --password-stdin (stdin is not a \
             terminal, so there is no prompt)"
        );
        let err = password(&request(None, None, false), &mut no_tty, &mut &b"x"[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no password: set KEYGATE_PASSWORD (stdin is not a terminal, so there is no prompt)"
        );

        let err = password(
            &request(Some(true), None, false),
            &mut no_tty,
            &mut &b"\n"[..],
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "the password is empty");
    }

    #[test]
    fn new_passwords_are_typed_twice() {
        let mut tty = Scripted::new(true, &["correct horse", "correct horse"]);
        let got = password(&request(Some(false), None, true), &mut tty, &mut &b""[..]).unwrap();
        assert_eq!(got.expose(), "correct horse");
        assert_eq!(tty.prompts, ["Password: ", "Repeat the password: "]);

        let mut tty = Scripted::new(true, &["correct horse", "battery staple"]);
        let err = password(&request(Some(false), None, true), &mut tty, &mut &b""[..]).unwrap_err();
        assert_eq!(err.to_string(), "the two passwords do not match");
        assert!(!err.to_string().contains("horse"));
    }

    #[test]
    fn emails() {
        let mut err = Vec::new();
        let got = email(
            Some(" ada@example.com ".into()),
            false,
            &mut &b""[..],
            &mut err,
        );
        assert_eq!(got.unwrap(), "ada@example.com");
        let got = email(None, false, &mut &b"bob@example.com\nrest"[..], &mut err);
        assert_eq!(got.unwrap(), "bob@example.com");
        assert!(err.is_empty(), "no prompt without a terminal");
        let got = email(None, true, &mut &b"eve@example.com\n"[..], &mut err);
        assert_eq!(got.unwrap(), "eve@example.com");
        assert_eq!(err, b"Email: ");
        let failed = email(None, false, &mut &b""[..], &mut Vec::new()).unwrap_err();
        assert_eq!(failed.exit_code(), 2);
    }

    #[test]
    fn codes_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("code");
        std::fs::write(&file, "  SETUP-1234\n").unwrap();
        let from_file = CodeSource {
            code: None,
            code_file: Some(file.clone()),
        };
        assert_eq!(
            code(&from_file, "setup code").unwrap().expose(),
            "SETUP-1234"
        );
        let from_flag = CodeSource {
            code: Some(Secret::new("INV-1")),
            code_file: None,
        };
        assert_eq!(code(&from_flag, "code").unwrap().expose(), "INV-1");

        std::fs::write(&file, "\n").unwrap();
        let err = code(&from_file, "setup code").unwrap_err();
        assert_eq!(err.to_string(), "the setup code is empty");
        let missing = CodeSource {
            code: None,
            code_file: Some(dir.path().join("absent")),
        };
        assert_eq!(code(&missing, "code").unwrap_err().exit_code(), 2);
    }
}
