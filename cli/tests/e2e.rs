//! The real `keygate` binary against a real control plane on 127.0.0.1:0: output, JSON and
//! exit codes as documented in cli/README.md.

use keygate_contracts::token::{API_TOKEN_PREFIX, TokenKind, check_format};
use keygate_control_plane::testing::{Backend, TestServer};
use std::process::{Output, Stdio};

struct Cli<'a> {
    server: &'a TestServer,
}

impl Cli<'_> {
    /// Runs `keygate <args>` with the admin key in the environment and stdin closed.
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
        cmd.args(args)
            .env("KEYGATE_ADDR", self.server.url())
            .env("KEYGATE_KEY", &self.server.admin_key)
            .env_remove("KEYGATE_KEY_FILE")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
            .await
            .expect("keygate finished within 30 s")
            .expect("keygate runs")
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]).await;
        assert!(
            out.status.success(),
            "keygate {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn code(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args, &[]).await;
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_walkthrough_and_exit_codes() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli { server: &server };
    cli.ok(&["team", "create", "core", "--name", "Core"]).await;
    let out = cli
        .run(
            &[
                "route",
                "add",
                "--name",
                "billing",
                "--team",
                "core",
                "--path",
                "/api/billing",
                "--backend",
                "http://127.0.0.1:9/v1",
                "--tag",
                "money",
                "--auth",
                "bearer",
                "--auth-secret-env",
                "BILLING_SECRET",
            ],
            &[("BILLING_SECRET", "s3cr3t-backend")],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cr3t-backend"));

    let plaintext = cli
        .ok(&[
            "token",
            "create",
            "--name",
            "ci",
            "--team",
            "core",
            "--scope",
            "billing",
            "--expires-in-days",
            "30",
            "--quiet",
        ])
        .await;
    let plaintext = plaintext.trim();
    assert_eq!(
        check_format(plaintext, API_TOKEN_PREFIX, &[]),
        Ok(TokenKind::Checksummed)
    );

    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "token", "list"]).await).unwrap();
    let tokens = listed["tokens"].as_array().expect("tokens array");
    assert_eq!(tokens.len(), 1);
    assert!(!listed.to_string().contains(plaintext));
    let id = tokens[0]["id"].as_str().unwrap().to_owned();

    let table = cli.ok(&["token", "list"]).await;
    assert!(table.contains("ci") && table.contains("billing"), "{table}");

    cli.ok(&["token", "revoke", &id, "--reason", "rotation drill"])
        .await;
    let got: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "token", "get", &id]).await).unwrap();
    assert_eq!(got["token"]["status"], "revoked", "{got}");

    let csv = cli.ok(&["audit", "export", "--format", "csv"]).await;
    assert!(csv.starts_with("seq,time,actor_type"));
    assert!(!csv.contains(plaintext) && !csv.contains("s3cr3t-backend"));
    cli.ok(&["audit", "verify"]).await;

    // Exit codes.
    assert_eq!(cli.code(&["route", "get", "nope"]).await.0, 4);
    let (code, err) = cli.code(&["team", "create", "Bad_Id", "--name", "x"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("id:") && err.contains("request id"), "{err}");
    let (code, _) = cli.code(&["team", "delete", "core"]).await;
    assert_eq!(code, 2, "delete without --yes and without a TTY is refused");
    let out = cli
        .run(&["team", "list"], &[("KEYGATE_KEY", "kgm_not-a-real-key")])
        .await;
    assert_eq!(out.status.code(), Some(3));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = cli
        .run(
            &["team", "list"],
            &[("KEYGATE_ADDR", &format!("http://{closed}"))],
        )
        .await;
    assert_eq!(out.status.code(), Some(6));

    let (code, err) = cli.code(&["team", "delete", "core", "--yes"]).await;
    assert_eq!(code, 5, "owning a route refuses deletion: {err}");
    assert!(err.contains("billing"), "{err}");
    cli.ok(&["team", "delete", "core", "--cascade", "--yes"])
        .await;
}
