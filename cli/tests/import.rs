//! The real `keygate import old-system` binary against a real old-schema PostgreSQL database
//! (control-plane `testing::old_system`): the printed plan and its exit codes, `token list
//! --legacy`, and a run killed with SIGKILL in the middle of its transaction, re-run, ending
//! in the same state as an uninterrupted run (SQLite and PostgreSQL).

use base64::Engine;
use keygate_control_plane::import::run::SOURCE;
use keygate_control_plane::routes::RouteFilter;
use keygate_control_plane::store::{self, DynStore};
use keygate_control_plane::testing::old_system;
use keygate_control_plane::testing::{Backend, TestServer, pg_admin_url, test_db};
use keygate_control_plane::tokens::TokenFilter;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The test control plane's master key ([42; 32]), as the importer takes it.
fn master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

fn import_cmd(db_url: &str, old_url: &str, dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.args(["import", "old-system", "--old-database-url", old_url])
        .arg("--data-dir")
        .arg(dir)
        .arg("--invitations-out")
        .arg(dir.join("invitations.csv"))
        .env("DATABASE_URL", db_url)
        .env("KEYGATE_MASTER_KEY", master_key())
        .env_remove("KEYGATE_IMPORT_OLD_KV_ACCOUNT")
        .env_remove("KEYGATE_IMPORT_OLD_KV_NAMESPACE")
        .env_remove("KEYGATE_IMPORT_OLD_KV_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: tokio::process::Command, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.args(args).output())
        .await
        .expect("keygate import finished within 120 s")
        .expect("keygate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_problems_exit_codes_and_legacy_list() {
    let old = old_system::build(&pg_admin_url(), "http://127.0.0.1:9").await;
    let db = test_db(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let cmd = import_cmd(&db.url, &old.url, dir.path());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            output(cmd, &a).await
        }
    };

    // The plan names every problem with its old row and rule; exit 5, nothing written.
    // (Without KV, missing secrets would skip route 2 and with it route 3's conflict: take
    // them without backend auth for this dry run.)
    let (code, out, err) = run(&["--dry-run", "--resolve", "missing_secret=none"]).await;
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.starts_with("PLAN (dry run)"), "{out}");
    for (class, row) in old_system::PLANTED_PROBLEMS {
        let line = out
            .lines()
            .find(|l| l.contains(class) && l.contains(&format!(" {row} ")))
            .unwrap_or_else(|| panic!("no line for {class} {row} in:\n{out}"));
        let expect = if *class == "missing_secret" {
            "[resolved: none]"
        } else {
            "unresolved (--resolve"
        };
        assert!(line.contains(expect), "{line}");
    }
    // No KV given: routes with backend auth cannot get their secrets.
    assert!(
        out.contains("missing_secret") && out.contains("[resolved: none]"),
        "{out}"
    );
    assert!(out.contains("which was not given (--old-kv-*)"), "{out}");
    assert!(out.contains("read as UTC"), "{out}");
    assert!(err.contains("import refused"), "{err}");
    assert!(!dir.path().join("invitations.csv").exists());

    // Bad --resolve: named in the error, exit 1, nothing read.
    let (code, _, err) = run(&["--resolve", "orphan_token=delete"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("\"delete\" is not an action of orphan_token"),
        "{err}"
    );
    let (code, _, err) = run(&["--resolve", "nonsense=skip"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown class \"nonsense\""), "{err}");
    // --list-classes needs nothing else.
    let (code, out, _) = output(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate")),
        &["import", "old-system", "--list-classes"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.contains("orphan_token") && out.contains("team:<slug>"),
        "{out}"
    );

    // Resolved: applied.
    let (code, out, err) = run(&[
        "--resolve",
        "path_conflict=accept",
        "--resolve",
        "invalid_backend_url=skip",
        "--resolve",
        "missing_secret=skip",
        "--resolve",
        "duplicate_name=rename",
        "--resolve",
        "unknown_auth_type=none",
        "--resolve",
        "orphan_token=team:payments",
        "--resolve",
        "deleted_route_scope=drop",
    ])
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("applied run imp_"), "{out}");
    assert!(out.contains("KEYGATE_LEGACY_PREFIXES=ntk"), "{out}");
    assert!(err.contains("import: applying tokens"), "{err}");

    // The tokens listed as legacy through the API, with their old-format preview.
    let server = TestServer::start_on(db, vec![]).await;
    let cfg = tempfile::tempdir().unwrap();
    let list = tokio::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["token", "list", "--legacy", "--json"])
        .env("KEYGATE_ADDR", server.url())
        .env("KEYGATE_KEY", &server.admin_key)
        .env("KEYGATE_CONFIG_DIR", cfg.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<&str> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Active legacy tokens only: the expired one is left out; the orphan moved to payments.
    assert!(names.contains(&"billing-bot"), "{names:?}");
    assert!(names.contains(&"orphan"), "{names:?}");
    assert!(!names.contains(&"expired"), "{names:?}");
    for t in v["tokens"].as_array().unwrap() {
        assert_eq!(t["legacy_prefix"], "ntk");
        assert_eq!(t["preview"], "ntk_…");
    }
    server.stop().await;
    old.drop_db().await;
}

/// What an import leaves, without the ids it generated: comparable across databases.
async fn state(store: &DynStore) -> Vec<String> {
    let mut out = Vec::new();
    let mut f = TokenFilter {
        legacy: true,
        limit: 500,
        ..TokenFilter::default()
    };
    loop {
        let page = store.list_tokens(&f).await.unwrap();
        for t in &page.items {
            out.push(format!(
                "token {} {} {:?} {:?} {:?} {}",
                t.name, t.team_id, t.scopes, t.expires_at, t.last_used_at, t.created_at
            ));
        }
        match (page.more, page.items.last()) {
            (true, Some(last)) => f.after = Some(f.position_after(last)),
            _ => break,
        }
    }
    let routes = store
        .list_routes(&RouteFilter {
            limit: 500,
            ..RouteFilter::default()
        })
        .await
        .unwrap();
    for r in routes.items {
        out.push(format!(
            "route {} {} {} {:?} {:?}",
            r.name, r.path_prefix, r.backend_url, r.tags, r.backend_auth.kind
        ));
    }
    for m in store.import_map(SOURCE).await.unwrap() {
        out.push(format!("map {} {} {}", m.kind, m.old_id, m.fingerprint));
    }
    out.sort();
    out
}

async fn killed_run_converges(backend: Backend) {
    let pg = pg_admin_url();
    let old_url = old_system::build_bulk(&pg, "http://127.0.0.1:9", 3_000, 40, 5_000).await;
    let resolve = [
        "--resolve",
        "missing_secret=skip",
        "--resolve",
        "deleted_route_scope=drop",
        "--resolve",
        "path_conflict=accept",
        "--usage-days",
        "30",
    ];

    // Killed while its transaction is open (after 1000 of 3,000 tokens were written).
    let killed = test_db(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = import_cmd(&killed.url, &old_url, dir.path());
    let mut child = cmd
        .args(resolve)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let reached = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let hit = line.starts_with("import: applying tokens: 1000/");
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await
    .expect("the import reached its tokens within 120 s");
    assert!(reached, "no progress line: {seen:?}");
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed, not finished");
    // Nothing of it stayed.
    let store = store::open(&killed.url).await.unwrap();
    assert!(
        state(&store).await.is_empty(),
        "a killed run left rows behind"
    );
    assert_eq!(store.verify_audit_chain().await.unwrap().checked, 0);
    drop(store);

    // Re-run to the end.
    let (code, out, err) = output(import_cmd(&killed.url, &old_url, dir.path()), &resolve).await;
    assert_eq!(code, 0, "{out}\n{err}");
    // And an uninterrupted run into another database.
    let clean = test_db(backend).await;
    let dir2 = tempfile::tempdir().unwrap();
    let (code, out, err) = output(import_cmd(&clean.url, &old_url, dir2.path()), &resolve).await;
    assert_eq!(code, 0, "{out}\n{err}");

    let a = state(&store::open(&killed.url).await.unwrap()).await;
    let b = state(&store::open(&clean.url).await.unwrap()).await;
    assert!(
        a.iter().filter(|l| l.starts_with("token ")).count() > 2_500,
        "{}",
        a.len()
    );
    assert_eq!(a, b, "killed + re-run and uninterrupted runs differ");
    old_system::drop_database(&pg, &old_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_import_rerun_converges_on_sqlite() {
    killed_run_converges(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_import_rerun_converges_on_postgres() {
    killed_run_converges(Backend::Postgres).await;
}
