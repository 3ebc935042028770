//! The real `keygate` binary against a real control plane: `token list` filters, sort orders
//! and total, and `keygate dashboard`, as documented in cli/README.md.

use keygate_control_plane::testing::{Backend, TestServer};
use std::process::{Output, Stdio};

/// Runs `keygate <args>` as the system admin, with a private config dir and stdin closed.
async fn keygate(server: &TestServer, config: &tempfile::TempDir, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.args(args)
        .env("KEYGATE_ADDR", server.url())
        .env("KEYGATE_KEY", &server.admin_key)
        .env("KEYGATE_CONFIG_DIR", config.path())
        .env_remove("KEYGATE_KEY_FILE")
        .stdin(Stdio::null());
    tokio::time::timeout(std::time::Duration::from_secs(30), cmd.output())
        .await
        .expect("keygate finished within 30 s")
        .expect("keygate runs")
}

/// `(exit code, stdout, stderr)`.
async fn run(
    server: &TestServer,
    config: &tempfile::TempDir,
    args: &[&str],
) -> (i32, String, String) {
    let out = keygate(server, config, args).await;
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Names in the first column after ID: the order of the table's rows.
fn names(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_token_list_filters_sorts_total_and_dashboard() {
    let server = TestServer::start(Backend::Sqlite).await;
    let config = tempfile::tempdir().unwrap();
    let ok = |args: &'static [&'static str]| {
        let (server, config) = (&server, &config);
        async move {
            let (code, out, err) = run(server, config, args).await;
            assert_eq!(code, 0, "keygate {args:?}: {err}");
            (out, err)
        }
    };
    ok(&["team", "create", "core", "--name", "Core"]).await;
    for (name, days) in [("zulu", "2"), ("alpha", "90"), ("mike", "5")] {
        let args = [
            "token",
            "create",
            "--name",
            name,
            "--team",
            "core",
            "--scope",
            "*",
            "--expires-in-days",
            days,
            "--quiet",
        ];
        let (code, _, err) = run(&server, &config, &args).await;
        assert_eq!(code, 0, "{err}");
    }

    let (out, err) = ok(&["token", "list", "--sort", "name"]).await;
    assert_eq!(names(&out), ["alpha", "mike", "zulu"]);
    assert!(err.contains("3 tokens"), "{err}");
    let (out, err) = ok(&["token", "list", "--sort", "expires"]).await;
    assert_eq!(
        names(&out),
        ["zulu", "mike", "alpha"],
        "soonest expiry first"
    );
    assert!(err.contains("3 tokens"), "{err}");
    let (out, err) = ok(&[
        "token",
        "list",
        "--sort",
        "name",
        "--desc",
        "--page-size",
        "1",
    ])
    .await;
    assert_eq!(names(&out), ["zulu"]);
    assert!(err.contains("1 of 3 tokens"), "{err}");
    assert!(
        err.contains("more results: repeat with --page-token"),
        "{err}"
    );
    let (out, _) = ok(&[
        "token",
        "list",
        "--sort",
        "last-used",
        "--all",
        "--page-size",
        "2",
    ])
    .await;
    assert_eq!(names(&out).len(), 3, "--all follows the sorted pages");

    let (out, _) = ok(&[
        "--json",
        "token",
        "list",
        "--never-used",
        "--page-size",
        "1",
    ])
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_size"], 3);
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1);
    let (out, err) = ok(&["token", "list", "--unused-days", "30"]).await;
    assert_eq!(out, "");
    assert!(err.contains("no tokens found"), "{err}");
    let (code, _, err) = run(
        &server,
        &config,
        &["token", "list", "--never-used", "--unused-days", "3"],
    )
    .await;
    assert_eq!(code, 2, "contradicting filters are a usage error: {err}");

    let (out, _) = ok(&["dashboard"]).await;
    assert!(out.starts_with("active tokens: 3\n"), "{out}");
    assert!(out.contains("teams:         1\n"), "{out}");
    assert!(out.contains("never used:    3\n"), "{out}");
    assert!(out.contains("expiring soon: 2\n"), "{out}");
    assert!(out.contains("Never used (3 of 3):\n"), "{out}");
    assert!(out.contains("Expiring soon (2 of 2):\n"), "{out}");
    assert!(
        out.contains("Tokens created per day (3 in 30 days):\n"),
        "{out}"
    );
    assert!(out.contains("Recent audit events:\n"), "{out}");
    let (out, _) = ok(&["--json", "dashboard", "--team", "core", "--limit", "1"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["active_tokens"], 3);
    assert_eq!(v["never_used_count"], 3);
    assert_eq!(v["never_used"].as_array().unwrap().len(), 1);
    assert_eq!(v["tokens_created"].as_array().unwrap().len(), 30);
    assert_eq!(v["tokens_per_team"][0]["team_id"], "core");
    assert_eq!(v["recent_audit"].as_array().unwrap().len(), 1);
    let (code, _, err) = run(&server, &config, &["dashboard", "--team", "nope"]).await;
    assert_eq!(code, 4, "NotFound: {err}");
    let (code, _, err) = run(&server, &config, &["dashboard", "--limit", "51"]).await;
    assert_eq!(code, 5, "InvalidArgument: {err}");
    assert!(err.contains("list_limit"), "{err}");
}
