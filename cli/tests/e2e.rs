//! The real `keygate` binary against a real control plane on 127.0.0.1:0: output, JSON and
//! exit codes as documented in cli/README.md.

use keygate_contracts::token::{API_TOKEN_PREFIX, TokenKind, check_format};
use keygate_control_plane::testing::{Backend, TestServer};
use std::process::{Output, Stdio};

struct Cli<'a> {
    server: &'a TestServer,
    /// Private config dir, so a stored session never leaks between tests or into $HOME.
    config: tempfile::TempDir,
}

impl Cli<'_> {
    /// Runs `keygate <args>` with the admin key in the environment and stdin closed.
    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
        cmd.args(args)
            .env("KEYGATE_ADDR", self.server.url())
            .env("KEYGATE_KEY", &self.server.admin_key)
            .env("KEYGATE_CONFIG_DIR", self.config.path())
            .env_remove("KEYGATE_KEY_FILE")
            .env_remove("KEYGATE_PASSWORD")
            .stdin(Stdio::null());
        for (k, v) in env {
            if let Some(name) = k.strip_prefix('-') {
                cmd.env_remove(name);
            } else {
                cmd.env(k, v);
            }
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
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_identity_login_invite_and_service_account_keys() {
    use keygate_control_plane::testing::TEST_PASSWORD;
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    // `-KEYGATE_KEY` removes the variable: these commands use the stored session.
    let no_key = [("-KEYGATE_KEY", "")];
    let out = cli
        .run(
            &["login", "--email", "admin@keygate.test"],
            &[("-KEYGATE_KEY", ""), ("KEYGATE_PASSWORD", TEST_PASSWORD)],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = std::fs::read_dir(cli.config.path()).unwrap().count();
    assert_eq!(creds, 1, "login stored one credentials file");
    let who = cli.run(&["--json", "whoami"], &no_key).await;
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    assert!(String::from_utf8_lossy(&who.stdout).contains("admin@keygate.test"));

    let out = cli
        .run(&["team", "create", "ops", "--name", "Ops"], &no_key)
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = cli
        .run(
            &[
                "invite",
                "create",
                "--email",
                "new@example.test",
                "--role",
                "ops:developer",
                "--quiet",
            ],
            &no_key,
        )
        .await;
    assert!(
        code.status.success(),
        "{}",
        String::from_utf8_lossy(&code.stderr)
    );
    let code = String::from_utf8(code.stdout).unwrap().trim().to_owned();
    assert!(code.starts_with("kginv_"), "{code}");
    // The invitee accepts in their own config dir.
    let invitee = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    let out = invitee
        .run(
            &["invite", "accept", "--code", &code, "--name", "New Person"],
            &[
                ("-KEYGATE_KEY", ""),
                ("KEYGATE_PASSWORD", "welcome aboard friend"),
            ],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = invitee.run(&["--json", "whoami"], &no_key).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("new@example.test") && text.contains("developer"),
        "{text}"
    );
    // The invitee (DEVELOPER) may not add members: exit 3.
    let out = invitee
        .run(
            &[
                "member",
                "add",
                "ops",
                "admin@keygate.test",
                "--role",
                "viewer",
            ],
            &no_key,
        )
        .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A service account key created by the admin authenticates the CLI.
    let sa = cli
        .run(
            &[
                "--json",
                "service-account",
                "create",
                "--team",
                "ops",
                "--name",
                "deployer",
                "--role",
                "developer",
            ],
            &no_key,
        )
        .await;
    assert!(
        sa.status.success(),
        "{}",
        String::from_utf8_lossy(&sa.stderr)
    );
    let sa: serde_json::Value = serde_json::from_slice(&sa.stdout).unwrap();
    let sa_id = sa["service_account"]["id"]
        .as_str()
        .or_else(|| sa["id"].as_str())
        .expect("service account id")
        .to_owned();
    let key = cli
        .run(
            &[
                "service-account",
                "key",
                "create",
                &sa_id,
                "--name",
                "ci",
                "--never-expires",
                "--quiet",
            ],
            &no_key,
        )
        .await;
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let machine = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    let out = machine
        .run(
            &[
                "token",
                "create",
                "--name",
                "from-ci",
                "--team",
                "ops",
                "--scope",
                "*",
                "--expires-in-days",
                "1",
                "--quiet",
            ],
            &[("KEYGATE_KEY", key.as_str())],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli.run(&["logout"], &no_key).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli.run(&["team", "list"], &no_key).await;
    assert_ne!(out.status.code(), Some(0), "no credentials after logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sync_status_and_resync() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    let status = cli.ok(&["sync", "status"]).await;
    assert!(status.starts_with("head revision "), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "sync", "status"]).await).unwrap();
    assert!(json["head_revision"].as_i64().unwrap() > 0);
    let out = cli.ok(&["sync", "resync"]).await;
    assert!(out.contains("resync requested for 0 follower(s)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_system_info_and_status() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    // Public: works without any credential.
    let out = cli.run(&["system", "info"], &[("-KEYGATE_KEY", "")]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8(out.stdout).unwrap();
    assert!(info.contains("http://127.0.0.1:8080"), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "system", "info"]).await).unwrap();
    assert_eq!(json["token_prefix"], "kg");
    assert_eq!(json["setup_required"], false);
    let status = cli.ok(&["system", "status"]).await;
    assert!(status.contains("sqlite reachable"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "system", "status"]).await).unwrap();
    assert_eq!(json["database"]["reachable"], true);
    assert!(json["database"]["schema_version"].as_i64().unwrap() >= 12);
    // Without credentials, status is refused before any network call (exit 2).
    let out = cli
        .run(&["system", "status"], &[("-KEYGATE_KEY", "")])
        .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_usage_list_gateways_and_capabilities() {
    use keygate_control_plane::usage::{UsageBatch, UsageEvent};
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["team", "create", "ops", "--name", "Ops"]).await;
    let sa: serde_json::Value = serde_json::from_str(
        &cli.ok(&[
            "--json",
            "service-account",
            "create",
            "--team",
            "ops",
            "--name",
            "edge",
            "--role",
            "viewer",
            "--capability",
            "gateway",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(sa["service_account"]["capability"], "gateway");
    let table = cli.ok(&["service-account", "list"]).await;
    assert!(
        table.lines().next().unwrap().contains("CAPABILITY"),
        "{table}"
    );
    assert!(table.contains(" gateway "), "{table}");

    let now = keygate_control_plane::time::now_ms();
    let event = |id: &str, at: i64, status: u16| UsageEvent {
        event_id: id.into(),
        at,
        token_hash: String::new(),
        token_id: None,
        team_id: Some(keygate_control_plane::ids::TeamId("ops".into())),
        route: "billing".into(),
        method: "GET".into(),
        status,
        error: String::new(),
        latency_us: 2500,
        request_bytes: 0,
        response_bytes: 0,
        client_ip: "192.0.2.9".into(),
        user_agent: "e2e".into(),
        config_revision: 1,
        request_id: String::new(),
    };
    server
        .store
        .ingest_usage(&UsageBatch {
            gateway: "edge-e2e".into(),
            reported_by: "service_account:sa_test".into(),
            events: vec![event("1", now - 2000, 200), event("2", now - 1000, 429)],
            dropped: 4,
            ..Default::default()
        })
        .await
        .unwrap();

    let listed: serde_json::Value = serde_json::from_str(
        &cli.ok(&[
            "--json", "usage", "list", "--team", "ops", "--status", "429", "--since", "1h",
        ])
        .await,
    )
    .unwrap();
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_id"], "2");
    assert_eq!(events[0]["gateway"], "edge-e2e");
    let out = cli.run(&["usage", "list", "--limit", "1"], &[]).await;
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 2, "header and one event: {stdout}");
    assert!(stdout.contains("edge-e2e") && stdout.contains("429") && stdout.contains("2.5ms"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--page-token"));
    let gateways = cli.ok(&["usage", "gateways"]).await;
    assert!(
        gateways.contains("edge-e2e") && gateways.contains("  4  "),
        "{gateways}"
    );

    assert_eq!(cli.code(&["usage", "list", "--status", "42"]).await.0, 2);
    let (code, stderr) = cli.code(&["usage", "list", "--team", "Not A Team"]).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("filter.team_id"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_route_cors_origins_and_rate_limit() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["team", "create", "core", "--name", "Core"]).await;
    let add = |extra: &'static [&'static str]| {
        let mut args = vec![
            "--json",
            "route",
            "add",
            "--name",
            "pay",
            "--team",
            "core",
            "--path",
            "/pay",
            "--backend",
            "http://127.0.0.1:9",
        ];
        args.extend_from_slice(extra);
        args
    };
    let (code, stderr) = cli
        .code(&add(&["--cors-origin", "https://a.com/app"]))
        .await;
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("cors_origins[0]: must not have a path"),
        "{stderr}"
    );
    let created: serde_json::Value = serde_json::from_str(
        &cli.ok(&add(&[
            "--cors-origin",
            "https://App.example.com",
            "--cors-origin",
            "http://localhost:5173",
            "--rate-limit",
            "600",
        ]))
        .await,
    )
    .unwrap();
    assert_eq!(
        created["route"]["cors_origins"],
        serde_json::json!(["http://localhost:5173", "https://app.example.com"])
    );
    assert_eq!(created["route"]["rate_limit_per_minute"], 600);
    let shown = cli
        .ok(&[
            "route",
            "update",
            "pay",
            "--clear-cors-origins",
            "--rate-limit",
            "0",
        ])
        .await;
    assert!(shown.contains("cors origins:  -\n"), "{shown}");
    assert!(shown.contains("rate limit:    none\n"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_token_rate_limit() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["team", "create", "core", "--name", "Core"]).await;
    let create = |rpm: &'static str| {
        [
            "--json",
            "token",
            "create",
            "--name",
            "limited",
            "--team",
            "core",
            "--scope",
            "*",
            "--never-expires",
            "--rate-limit",
            rpm,
        ]
    };
    let (code, stderr) = cli.code(&create("1000001")).await;
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("rate_limit_per_minute: must be between 0 (no limit) and 1000000"),
        "{stderr}"
    );
    let created: serde_json::Value = serde_json::from_str(&cli.ok(&create("600")).await).unwrap();
    assert_eq!(created["token"]["rate_limit_per_minute"], 600);
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let shown = cli.ok(&["token", "get", &id]).await;
    assert!(shown.contains("rate limit:  600/min\n"), "{shown}");
    let shown = cli.ok(&["token", "update", &id, "--rate-limit", "0"]).await;
    assert!(shown.contains("rate limit:  none\n"), "{shown}");
}

/// A gateway's report: rollups (and sampled events) through `UsageService.IngestUsage` with
/// a GATEWAY service account's key, as the gateway sends them.
async fn ingest(
    server: &TestServer,
    key: &str,
    batch_id: &str,
    rollups: Vec<keygate_proto::v1::UsageRollup>,
    events: Vec<keygate_proto::v1::UsageEvent>,
) {
    use keygate_proto::v1::IngestUsageRequest;
    use keygate_proto::v1::usage_service_client::UsageServiceClient;
    let mut client = UsageServiceClient::new(server.channel().await);
    let response = client
        .ingest_usage(keygate_control_plane::testing::with_key(
            key,
            IngestUsageRequest {
                gateway: "edge-e2e".into(),
                events,
                rollups,
                batch_id: batch_id.into(),
                events_sampled: true,
                ..Default::default()
            },
        ))
        .await
        .expect("ingest usage")
        .into_inner();
    assert!(!response.replayed);
}

/// `count` requests of one minute that took `latency_us` each.
fn rollup(
    minute_ms: i64,
    token: (&str, &str),
    status: u32,
    error: &str,
    count: u64,
    latency_us: u64,
) -> keygate_proto::v1::UsageRollup {
    let mut sketch = keygate_rollup::LatencySketch::new();
    sketch.add_n(latency_us, count);
    keygate_proto::v1::UsageRollup {
        minute: Some(prost_types::Timestamp {
            seconds: minute_ms / 1000,
            nanos: 0,
        }),
        token_id: token.0.into(),
        team_id: token.1.into(),
        route: "billing".into(),
        status,
        error: error.into(),
        count,
        request_bytes: 100 * count,
        response_bytes: 1000 * count,
        latency_sum_us: latency_us * count,
        latency_min_us: latency_us,
        latency_max_us: latency_us,
        latency_sketch: sketch.encode(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_usage_analytics_tail_and_export() {
    use keygate_control_plane::service_accounts::Capability;
    let server = TestServer::start(Backend::Sqlite).await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["team", "create", "core", "--name", "Core"]).await;
    cli.ok(&[
        "route",
        "add",
        "--name",
        "billing",
        "--team",
        "core",
        "--path",
        "/billing",
        "--backend",
        "http://127.0.0.1:9",
    ])
    .await;
    let created: serde_json::Value = serde_json::from_str(
        &cli.ok(&[
            "--json",
            "token",
            "create",
            "--name",
            "ci",
            "--team",
            "core",
            "--scope",
            "billing",
            "--never-expires",
        ])
        .await,
    )
    .unwrap();
    let token = created["token"]["id"].as_str().unwrap().to_owned();
    let gateway_key = server.capability_key(Capability::Gateway).await;

    // Five minutes ago: 8 successes at 2 ms and 2 upstream errors at 50 ms; a minute later
    // 5 successes at 4 ms.
    let now = keygate_control_plane::time::now_ms();
    let minute = now - now.rem_euclid(60_000) - 5 * 60_000;
    ingest(
        &server,
        &gateway_key,
        "b1",
        vec![
            rollup(minute, (&token, "core"), 200, "", 8, 2_000),
            rollup(minute, (&token, "core"), 502, "upstream_error", 2, 50_000),
            rollup(minute + 60_000, (&token, "core"), 200, "", 5, 4_000),
        ],
        vec![],
    )
    .await;

    // Summary: totals and percentiles from the merged sketches (1 % relative accuracy).
    let summary: serde_json::Value = serde_json::from_str(
        &cli.ok(&[
            "--json", "usage", "summary", "--since", "1h", "--step", "1m",
        ])
        .await,
    )
    .unwrap();
    let total = &summary["total"];
    assert_eq!(
        (total["calls"].as_u64(), total["errors"].as_u64()),
        (Some(15), Some(2)),
        "{summary}"
    );
    assert!((total["success_rate"].as_f64().unwrap() - 13.0 / 15.0).abs() < 1e-9);
    let p50 = total["latency_p50_us"].as_u64().unwrap();
    assert!((1_980..=2_020).contains(&p50), "p50 {p50}");
    let p99 = total["latency_p99_us"].as_u64().unwrap();
    assert!((49_500..=50_500).contains(&p99), "p99 {p99}");
    assert_eq!(total["request_bytes"], 1500);
    assert_eq!(summary["step_seconds"], 60);
    assert_eq!(summary["tier"], "minute");
    let series = summary["series"].as_array().unwrap();
    // Start rounded down, end up to the minute: every minute of the hour, empty ones too.
    assert!((60..=61).contains(&series.len()), "{}", series.len());
    let calls: Vec<u64> = series
        .iter()
        .map(|p| p["stats"]["calls"].as_u64().unwrap())
        .filter(|&c| c > 0)
        .collect();
    assert_eq!(calls, [10, 5]);

    let text = cli
        .ok(&[
            "usage", "summary", "--since", "1h", "--step", "1m", "--team", "core",
        ])
        .await;
    assert!(
        text.contains("calls:   15\n") && text.contains("errors:  2\n"),
        "{text}"
    );
    assert!(text.contains("success: 86.6%\n"), "{text}");
    assert!(
        text.contains("(max 10 per 1m)") && text.contains('█'),
        "{text}"
    );
    assert!(
        text.contains("\nTIME                  CALLS  ERRORS"),
        "{text}"
    );
    let errors_only: serde_json::Value = serde_json::from_str(
        &cli.ok(&["--json", "usage", "summary", "--status", "errors"])
            .await,
    )
    .unwrap();
    assert_eq!(errors_only["total"]["calls"], 2, "{errors_only}");

    // Top.
    let top: serde_json::Value = serde_json::from_str(
        &cli.ok(&["--json", "usage", "top", "--by", "token", "--since", "1h"])
            .await,
    )
    .unwrap();
    assert_eq!(top["entries"][0]["key"], token.as_str(), "{top}");
    assert_eq!(top["entries"][0]["label"], "ci", "{top}");
    assert_eq!(top["entries"][0]["calls"], 15);
    let by_error = cli
        .ok(&["usage", "top", "--by", "error", "--order", "errors"])
        .await;
    assert!(by_error.starts_with("ERROR "), "{by_error}");
    assert!(
        by_error
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("upstream_error "),
        "{by_error}"
    );

    // One token, one route.
    let detail: serde_json::Value = serde_json::from_str(
        &cli.ok(&["--json", "usage", "token", &token, "--since", "2h"])
            .await,
    )
    .unwrap();
    assert_eq!(detail["total"]["calls"], 15, "{detail}");
    assert_eq!(detail["routes"][0]["key"], "billing");
    let statuses: Vec<(u64, u64)> = detail["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["status"].as_u64().unwrap(), s["calls"].as_u64().unwrap()))
        .collect();
    assert!(
        statuses.contains(&(200, 13)) && statuses.contains(&(502, 2)),
        "{statuses:?}"
    );
    assert!(detail["first_used_at"].is_string(), "{detail}");
    let route = cli.ok(&["usage", "route", "billing"]).await;
    assert!(route.starts_with("route:      billing\n"), "{route}");
    assert!(route.contains("\nSTATUS  CALLS  SHARE\n"), "{route}");
    assert!(route.contains(&token), "{route}");

    // Export: CSV with a header row; the calls column adds up.
    let csv = cli
        .ok(&[
            "usage", "export", "--format", "csv", "--since", "1h", "--tier", "minute",
        ])
        .await;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let calls_at = header
        .iter()
        .position(|c| *c == "calls")
        .expect("calls column");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{csv}");
    let sum: u64 = rows
        .iter()
        .map(|r| r[calls_at].parse::<u64>().unwrap())
        .sum();
    assert_eq!(sum, 15);
    // To a file: renamed into place when complete, nothing left under `.partial`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rollups.ndjson");
    let out = cli
        .run(
            &[
                "usage",
                "export",
                "--since",
                "1h",
                "--output",
                path.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.lines().count(), 3, "{written}");
    for line in written.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("NDJSON");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote "));
    assert!(!dir.path().join("rollups.ndjson.partial").exists());
    // A refused export leaves no file behind.
    let refused = dir.path().join("refused.csv");
    let (code, stderr) = cli
        .code(&[
            "usage",
            "export",
            "--gateway",
            "edge-e2e",
            "--output",
            refused.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 5, "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only rollups.ndjson"
    );

    // Errors: client-side usage errors (2) and the server's answers.
    assert_eq!(cli.code(&["usage", "summary", "--step", "90s"]).await.0, 2);
    assert_eq!(
        cli.code(&["usage", "export", "--kind", "events", "--tier", "day"])
            .await
            .0,
        2
    );
    assert_eq!(cli.code(&["usage", "route", "nope"]).await.0, 4);

    // Tail: a new event reaches a running `usage tail --json`; Ctrl-C ends it with 0.
    tail_until_interrupted(&server, &gateway_key, &token).await;
}

async fn tail_until_interrupted(server: &TestServer, gateway_key: &str, token: &str) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let config = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["--json", "usage", "tail", "--route", "billing"])
        .env("KEYGATE_ADDR", server.url())
        .env("KEYGATE_KEY", &server.admin_key)
        .env("KEYGATE_CONFIG_DIR", config.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("keygate usage tail runs");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = std::time::Duration::from_secs(20);
    // The notice comes once the stream is open: events stored from then on are tailed.
    let notice = tokio::time::timeout(deadline, stderr.next_line())
        .await
        .expect("tail notice in time")
        .unwrap()
        .expect("a notice line");
    assert_eq!(notice, "tailing usage events (Ctrl-C to stop)");

    let now = keygate_control_plane::time::now_ms();
    let event = |id: &str, route: &str| keygate_proto::v1::UsageEvent {
        event_id: id.into(),
        time: Some(prost_types::Timestamp {
            seconds: now / 1000,
            nanos: 0,
        }),
        token_id: token.into(),
        team_id: "core".into(),
        route: route.into(),
        method: "GET".into(),
        status: 502,
        error: "upstream_error".into(),
        latency_us: 50_000,
        client_ip: "192.0.2.7".into(),
        ..Default::default()
    };
    let minute = now - now.rem_euclid(60_000);
    ingest(
        server,
        gateway_key,
        "tail-1",
        vec![
            rollup(minute, (token, "core"), 502, "upstream_error", 1, 50_000),
            keygate_proto::v1::UsageRollup {
                route: "other".into(),
                ..rollup(minute, (token, "core"), 502, "upstream_error", 1, 50_000)
            },
        ],
        vec![event("t-other", "other"), event("t-1", "billing")],
    )
    .await;
    let line = tokio::time::timeout(deadline, stdout.next_line())
        .await
        .expect("a tailed event in time")
        .unwrap()
        .expect("an event line");
    let tailed: serde_json::Value = serde_json::from_str(&line).expect("NDJSON");
    assert_eq!(
        tailed["event_id"], "t-1",
        "the --route filter applies: {tailed}"
    );
    assert_eq!(tailed["status"], 502);
    assert_eq!(tailed["client_ip"], "192.0.2.7");

    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(deadline, child.wait())
        .await
        .expect("tail exits on SIGINT")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// What a receiver got: the `keygate-signature` header and the body of each request.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1: answers every request with `status`, keeps the
/// `keygate-signature` header and body of each.
struct Receiver {
    addr: std::net::SocketAddr,
    got: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Received::default();
        let sink = got.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, head) = loop {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (p + 4, String::from_utf8_lossy(&buf[..p]).to_lowercase());
                        }
                    };
                    let header = |name: &str| {
                        head.lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.trim() == name)
                            .map(|(_, v)| v.trim().to_owned())
                    };
                    let len: usize = header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let signature = header("keygate-signature").unwrap_or_default();
                    sink.lock()
                        .unwrap()
                        .push((signature, buf[head_end..head_end + len].to_vec()));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Receiver { addr, got, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/keygate", self.addr)
    }

    fn received(&self) -> Vec<(String, Vec<u8>)> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `Keygate-Signature: t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` as a
/// receiver would.
fn signed_with(signature: &str, body: &[u8], secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some((t, v1)) = signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::decode(v1).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_alert_rules_secrets_and_webhook_tests() {
    use keygate_control_plane::alerts::AlertSettings;
    use keygate_control_plane::alerts::deliver::Allow;
    let server = TestServer::start_with_alerts(
        Backend::Sqlite,
        AlertSettings {
            allow: Allow::parse(&["127.0.0.1".into()]).unwrap(),
            ..AlertSettings::default()
        },
    )
    .await;
    let cli = Cli {
        server: &server,
        config: tempfile::tempdir().unwrap(),
    };
    cli.ok(&["team", "create", "core", "--name", "Core"]).await;
    cli.ok(&[
        "route",
        "add",
        "--name",
        "billing",
        "--team",
        "core",
        "--path",
        "/billing",
        "--backend",
        "http://127.0.0.1:9",
    ])
    .await;
    let ok_receiver = Receiver::start(204).await;

    // Create: the rule block, then the secret alone on the last line; the warning on stderr.
    let out = cli
        .run(
            &[
                "alert",
                "create",
                "--team",
                "core",
                "--name",
                "billing errors",
                "--webhook",
                &ok_receiver.url(),
                "--when",
                "route-error-rate",
                "--route",
                "billing",
                "--percent",
                "5",
                "--window",
                "15m",
            ],
            &[],
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let secret = stdout.lines().last().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{stdout}");
    assert!(stderr.contains("shown once"), "{stderr}");
    assert!(
        stdout.contains("condition:     route billing: error rate > 5% over 15m"),
        "{stdout}"
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();

    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "alert", "list", "--team", "core"]).await)
            .unwrap();
    assert_eq!(listed["rules"][0]["id"], id.as_str());
    assert_eq!(
        listed["rules"][0]["condition"]["route_error_rate"]["percent"], 5.0,
        "{listed}"
    );
    assert!(!listed.to_string().contains(&secret), "never shown again");
    let table = cli.ok(&["alert", "list"]).await;
    assert!(table.starts_with("ID "), "{table}");
    assert!(table.contains("billing errors  yes "), "{table}");

    // Parameters alone change the current condition; --enabled turns it off.
    cli.ok(&[
        "alert",
        "update",
        &id,
        "--percent",
        "10",
        "--enabled",
        "false",
    ])
    .await;
    let got: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "alert", "get", &id]).await).unwrap();
    let condition = &got["rule"]["condition"]["route_error_rate"];
    assert_eq!(
        (
            condition["percent"].as_f64(),
            condition["window_minutes"].as_u64()
        ),
        (Some(10.0), Some(15)),
        "{got}"
    );
    assert_eq!(got["rule"]["enabled"], false);

    // Test: a signed payload reaches the receiver; the printed secret verifies it.
    let tested = cli.ok(&["alert", "test", &id]).await;
    assert!(tested.contains("status:       succeeded\n"), "{tested}");
    let (signature, body) = ok_receiver.received().pop().expect("a delivery");
    assert!(signed_with(&signature, &body, &secret), "{signature}");
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["test"], true, "{payload}");

    // Rotation prints only the new secret with --quiet; it signs from then on.
    let rotated = cli
        .ok(&["alert", "update", &id, "--rotate-secret", "--quiet"])
        .await;
    let rotated = rotated.trim();
    assert!(
        rotated.starts_with("whsec_") && rotated != secret,
        "{rotated}"
    );
    cli.ok(&["alert", "test", &id]).await;
    let (signature, body) = ok_receiver.received().pop().unwrap();
    assert!(signed_with(&signature, &body, rotated));
    assert!(!signed_with(&signature, &body, &secret));

    // A failing receiver: the test exits 1 and the attempt is listed as failed.
    let failing = Receiver::start(500).await;
    cli.ok(&["alert", "update", &id, "--webhook", &failing.url()])
        .await;
    let out = cli.run(&["alert", "test", &id], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("webhook test failed: HTTP 500"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("status:       failed\n"));
    let deliveries = cli.ok(&["alert", "deliveries", "--rule", &id]).await;
    assert_eq!(
        deliveries.lines().count(),
        4,
        "header and three tests: {deliveries}"
    );
    assert!(deliveries.contains("(test)"), "{deliveries}");
    let failed: serde_json::Value = serde_json::from_str(
        &cli.ok(&[
            "--json",
            "alert",
            "deliveries",
            "--rule",
            &id,
            "--status",
            "failed",
        ])
        .await,
    )
    .unwrap();
    let failed = failed["deliveries"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["http_status"], 500);

    // Exit codes: usage errors (2), the server's validation (5), not found (4).
    let create = |when: &'static [&'static str]| {
        let mut args = vec![
            "alert",
            "create",
            "--team",
            "core",
            "--name",
            "x",
            "--webhook",
            "https://hooks.example.com/kg",
        ];
        args.extend_from_slice(when);
        args
    };
    let (code, stderr) = cli.code(&create(&["--when", "token-expiring"])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("token-expiring needs --days"), "{stderr}");
    assert_eq!(cli.code(&create(&[])).await.0, 2);
    let (code, stderr) = cli
        .code(&create(&["--when", "token-expiring", "--days", "0"]))
        .await;
    assert_eq!(code, 5, "{stderr}");
    let (code, stderr) = cli.code(&["alert", "update", &id, "--days", "3"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--days does not apply to route-error-rate"),
        "{stderr}"
    );

    // Delete asks; without a terminal it needs --yes.
    assert_eq!(cli.code(&["alert", "delete", &id]).await.0, 2);
    cli.ok(&["alert", "delete", &id, "--yes"]).await;
    assert_eq!(cli.code(&["alert", "get", &id]).await.0, 4);
}
