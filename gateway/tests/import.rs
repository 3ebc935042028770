//! `keygate import old-system` end to end, on SQLite and on PostgreSQL: a real old-schema
//! PostgreSQL database with the planted data-quality cases (control-plane
//! `testing::old_system`), the old KV layout in the Cloudflare KV REST stand-in, the identity
//! provider's user export; the import through the library the CLI calls; then kv-sync -> the
//! local KV -> the native gateway (configured with the legacy prefix `ntk`) -> a real upstream
//! that records what it received. Then a delta run after changing the old database.

mod common;

use base64::Engine;
use common::{follow_into, test_config};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keygate_control_plane::import::run::{Args, Outcome, run};
use keygate_control_plane::testing::old_system::{self, OldFixture, OldKv};
use keygate_control_plane::testing::{Backend, TestServer, pg_admin_url};
use keygate_control_plane::tokens::TokenFilter;
use keygate_kv_standin::{StandIn, StandInConfig};
use serde_json::Value;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KV_TOKEN: &str = "old-kv-api-token";
const KV_ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const KV_NAMESPACE: &str = "fedcba9876543210fedcba9876543210";

/// What the upstream saw: (path, headers).
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

async fn upstream() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let log = log.clone();
                    async move {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
                            .collect();
                        log.lock()
                            .unwrap()
                            .push((req.uri().path().to_owned(), headers));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"{\"ok\":true}",
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn last_seen(seen: &Seen) -> (String, Vec<(String, String)>) {
    seen.lock()
        .unwrap()
        .last()
        .cloned()
        .expect("upstream saw a request")
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The importer's arguments for this stack (a dry run unless changed).
fn args(old: &OldFixture, kv: &StandIn, cp: &TestServer, dir: &std::path::Path) -> Args {
    let idp = dir.join("users.json");
    std::fs::write(&idp, &old.idp_users_json).unwrap();
    Args {
        old_database_url: Some(old.url.clone()),
        old_kv_account: Some(KV_ACCOUNT.into()),
        old_kv_namespace: Some(KV_NAMESPACE.into()),
        old_kv_token: Some(KV_TOKEN.into()),
        old_kv_url: kv.url(),
        idp_users: Some(idp),
        route_team: "core-team".into(),
        usage_days: 7,
        // Several chunks, so rollups of one minute are merged across chunks.
        usage_chunk_rows: 7,
        no_history: false,
        resolve: Vec::new(),
        dry_run: true,
        json: true,
        invitations_out: dir.join("invitations.csv"),
        invitation_hours: 720,
        legacy_prefix: "ntk".into(),
        list_classes: false,
        data_dir: dir.to_path_buf(),
        database_url: Some(cp.db.url.clone()),
        master_key: Some(base64::engine::general_purpose::STANDARD.encode([42u8; 32])),
    }
}

/// The resolutions the test applies with: each planted class resolved.
fn resolutions() -> Vec<String> {
    [
        "path_conflict=accept",
        "invalid_backend_url=skip",
        "missing_secret=skip",
        "duplicate_name=rename",
        "unknown_auth_type=skip",
        "orphan_token=skip",
        "deleted_route_scope=drop",
        "kv_only_token=skip",
        "unknown_team_role=drop",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the importer; returns its outcome and its JSON report.
async fn import(a: &Args) -> (Outcome, Value) {
    let mut out = Vec::new();
    let outcome = run(a, &mut out).await.expect("import runs");
    let text = String::from_utf8(out).unwrap();
    let report: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("report is JSON ({e}): {text}"));
    (outcome, report)
}

fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["class"].as_str().unwrap().to_owned(),
                p["old_row"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn count(report: &Value, kind: &str, what: &str) -> u64 {
    report["counts"][kind][what].as_u64().unwrap_or(0)
}

async fn audit_rows(cp: &TestServer) -> u64 {
    cp.store.verify_audit_chain().await.unwrap().checked
}

/// Polls `GET url` with the key until it answers `want` (kv-sync and the gateway's KV poll
/// take a moment), for at most 15 s; returns the last status.
async fn status_eventually(http: &reqwest::Client, url: &str, key: &str, want: u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = http
            .get(url)
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == want || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn import_end_to_end(backend: Backend) {
    let (up, seen) = upstream().await;
    let pg = pg_admin_url();
    let old = old_system::build(&pg, &up).await;
    let kv = StandIn::start(StandInConfig::new(KV_TOKEN, KV_ACCOUNT, KV_NAMESPACE))
        .await
        .unwrap();
    old.seed_kv(&OldKv {
        base_url: kv.url(),
        account_id: KV_ACCOUNT.into(),
        namespace_id: KV_NAMESPACE.into(),
        api_token: KV_TOKEN.into(),
    })
    .await;
    let cp = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(&old, &kv, &cp, dir.path());

    // 1. The dry run lists every planted problem, refuses, and writes nothing.
    let before = audit_rows(&cp).await;
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Refused, "{report:#}");
    let found = problems(&report);
    for planted in old.planted_problems() {
        assert!(
            found.contains(&planted),
            "{planted:?} not reported: {found:?}"
        );
    }
    assert_eq!(report["dry_run"], true);
    assert_eq!(audit_rows(&cp).await, before, "a dry run writes nothing");

    // 2. Applying with unresolved problems is refused too, and writes nothing.
    a.dry_run = false;
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Refused);
    assert!(report["applied"].is_null());
    assert_eq!(audit_rows(&cp).await, before);

    // 3. With every class resolved it applies.
    a.resolve = resolutions();
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Applied, "{report:#}");
    assert_eq!(report["unresolved"], 0);
    // billing, images, imagex, reports, billing-8: 5 routes; crm, spaces, vault, ledger skipped.
    assert_eq!(count(&report, "routes", "create"), 5, "{report:#}");
    assert_eq!(count(&report, "routes", "skipped"), 4, "{report:#}");
    // 9 database tokens minus the orphan; the KV-only one skipped.
    assert_eq!(count(&report, "tokens", "create"), 8, "{report:#}");
    assert_eq!(count(&report, "teams", "create"), 3, "{report:#}");
    // alice (admin), bob, carol (her gone-team role dropped); dan has no role.
    assert_eq!(count(&report, "users", "create"), 3, "{report:#}");
    let run1 = report["run_id"].as_str().unwrap().to_owned();
    let csv = std::fs::read_to_string(dir.path().join("invitations.csv")).unwrap();
    assert!(csv.contains("alice@example.com,true,kginv_"), "{csv}");
    assert!(csv.contains("bob@example.com,false,kginv_"), "{csv}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("invitations.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // An imported super-admin becomes a system admin with the old team roles on accepting.
    let code = csv
        .lines()
        .find(|l| l.starts_with("alice@example.com,"))
        .and_then(|l| l.rsplit(',').next())
        .unwrap()
        .to_owned();
    keygate_proto::v1::auth_service_client::AuthServiceClient::new(cp.channel().await)
        .accept_invitation(keygate_proto::v1::AcceptInvitationRequest {
            code,
            display_name: "Alice Admin".into(),
            password: "correct horse battery staple".into(),
        })
        .await
        .unwrap();
    let (alice, _) = cp
        .store
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(alice.system_admin);
    let mut roles: Vec<(String, &str)> = cp
        .store
        .user_roles(&alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(t, r)| (t.0, r.as_str()))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            ("core-team".to_owned(), "ADMIN"),
            ("payments".to_owned(), "ADMIN")
        ]
    );

    // Audit: every imported entity by the import's actor, marker first.
    let page = cp
        .store
        .list_audit(&keygate_control_plane::audit::AuditPage {
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    let by_run: Vec<_> = page
        .items
        .iter()
        .filter(|e| e.actor_type == "import" && e.actor_id == run1)
        .collect();
    let actions = |a: &str| by_run.iter().filter(|e| e.action == a).count();
    assert_eq!(actions("import.run"), 1);
    assert_eq!(actions("token.import"), 8);
    assert_eq!(actions("route.import"), 5);
    assert_eq!(actions("team.import"), 3);
    assert_eq!(actions("invitation.import"), 3);
    assert_eq!(actions("history.import"), 5);
    assert!(
        cp.store
            .verify_audit_chain()
            .await
            .unwrap()
            .first_bad
            .is_none()
    );

    // Legacy tokens are listed as such, with their last use.
    let legacy = cp
        .store
        .list_tokens(&TokenFilter {
            legacy: true,
            ..TokenFilter::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(legacy.len(), 8);
    let bot = legacy.iter().find(|t| t.name == "billing-bot").unwrap();
    assert_eq!(bot.legacy_prefix, "ntk");
    assert!(bot.last_used_at.is_some(), "last use kept");
    assert_eq!(bot.created_by, format!("import:{run1}"));

    // The last 7 days of usage logs became rollups of the imported token: the 50 rows of the
    // last 3 days (every 10th a 502); the rows of 40 days ago were not read.
    assert_eq!(report["usage_rows"], 55, "50 of billing-bot, 5 of no token");
    use keygate_control_plane::usage::analytics::UsageScope;
    let now = keygate_control_plane::time::now_ms();
    let day = 86_400_000;
    let usage = cp
        .store
        .usage_series(
            &UsageScope {
                token_id: Some(bot.id.clone()),
                start: (now / day - 8) * day,
                end: (now / day + 1) * day,
                ..Default::default()
            },
            day,
        )
        .await
        .unwrap();
    assert_eq!(usage.total.calls, 50);
    assert_eq!(usage.total.errors, 5);
    assert!(
        usage.total.latency_max_us >= usage.total.latency_min_us
            && usage.total.latency_min_us >= 5_000
    );

    // 4. kv-sync -> local KV -> native gateway accepting `ntk_` keys.
    let kv_dir = tempfile::tempdir().unwrap();
    let kv_path = kv_dir.path().join("kv.db");
    let follow = follow_into(&cp, &kv_path, "import").await;
    let mut config = test_config(kv_path);
    config.legacy_prefixes = vec!["ntk".into()];
    let gateway = keygate_gateway::start(config).await.unwrap();
    let gw = format!("http://{}", gateway.addr);
    let http = reqwest::Client::new();

    // The old key, the route's secret injected by the gateway.
    let url = format!("{gw}/api/billing/invoices");
    assert_eq!(
        status_eventually(&http, &url, old.key("billing"), 200).await,
        200
    );
    let (path, headers) = last_seen(&seen);
    assert_eq!(path, "/billing/invoices");
    assert_eq!(
        header(&headers, "authorization"),
        Some("Bearer bill-secret-1")
    );
    // A scope by path, translated to the route's name; api-key auth with its header.
    let url = format!("{gw}/api/image/cat.png");
    assert_eq!(
        status_eventually(&http, &url, old.key("by_path"), 200).await,
        200
    );
    assert_eq!(
        header(&last_seen(&seen).1, "x-images-key"),
        Some("img-secret-2")
    );
    // Basic auth from two KV secrets; the trailing '/' of the old path removed.
    let url = format!("{gw}/api/reports/q1");
    assert_eq!(
        status_eventually(&http, &url, old.key("reports"), 200).await,
        200
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("reporter:rep-pass-3");
    assert_eq!(
        header(&last_seen(&seen).1, "authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    // A tag scope, and a token whose deleted-route scope was dropped.
    let url = format!("{gw}/api/billing/x");
    assert_eq!(
        status_eventually(&http, &url, old.key("tagged"), 200).await,
        200
    );
    assert_eq!(
        status_eventually(&http, &url, old.key("stale_scope"), 200).await,
        200
    );
    assert_eq!(
        status_eventually(&http, &url, old.key("db_only"), 200).await,
        200
    );
    // Revoked in the old system (deleted), expired, skipped: refused.
    for label in ["revoked", "expired", "kv_only", "orphan"] {
        let r = http
            .get(&url)
            .header("X-API-Key", old.key(label))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{label}");
    }
    // A route the tagged token holds no scope for.
    assert_eq!(
        http.get(format!("{gw}/api/image/x"))
            .header("X-API-Key", old.key("tagged"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );

    // 5. A delta: a new token, a deleted one, a changed route.
    let new_key = format!("ntk_{}", "N".repeat(43));
    let new_hash = keygate_contracts::token::sha256_hex(&new_key);
    old.exec(&format!(
        "INSERT INTO tokens (token_hash, name, team_id, created_by, scopes, created_at) \
         VALUES ('{new_hash}', 'late-token', 'payments', 'user_alice', '{{billing}}', now());\
         DELETE FROM tokens WHERE name = 'tagged';\
         UPDATE routes SET backend_url = '{up}/billing-next' WHERE id = 1"
    ))
    .await;
    let audit_before = audit_rows(&cp).await;
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Applied, "{report:#}");
    assert_eq!(count(&report, "tokens", "create"), 1, "{report:#}");
    assert_eq!(count(&report, "tokens", "delete"), 1, "{report:#}");
    assert_eq!(count(&report, "tokens", "update"), 0, "{report:#}");
    assert_eq!(count(&report, "routes", "update"), 1, "{report:#}");
    assert_eq!(count(&report, "routes", "create"), 0, "{report:#}");
    assert_eq!(
        count(&report, "teams", "create") + count(&report, "teams", "update"),
        0
    );
    assert_eq!(count(&report, "users", "create"), 0);
    let run2 = report["run_id"].as_str().unwrap().to_owned();
    // Marker + new token + revoked token + changed route: nothing else was written.
    assert_eq!(audit_rows(&cp).await - audit_before, 4, "{report:#}");
    let page = cp
        .store
        .list_audit(&keygate_control_plane::audit::AuditPage {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    let delta: Vec<&str> = page
        .items
        .iter()
        .filter(|e| e.actor_id == run2)
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(delta.len(), 4, "{delta:?}");
    let url = format!("{gw}/api/billing/late");
    assert_eq!(status_eventually(&http, &url, &new_key, 200).await, 200);
    assert_eq!(
        last_seen(&seen).0,
        "/billing-next/late",
        "route change reached the edge"
    );
    assert_eq!(
        status_eventually(&http, &url, old.key("tagged"), 401).await,
        401
    );

    // 6. A secret changed in the old KV is written again; one rotated here since is kept.
    let put = reqwest::Client::new()
        .put(format!(
            "{}/accounts/{KV_ACCOUNT}/storage/kv/namespaces/{KV_NAMESPACE}/values/secret%3ABILLING_TOKEN",
            kv.url()
        ))
        .bearer_auth(KV_TOKEN)
        .body(r#"{"value":"bill-secret-2"}"#)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Applied, "{report:#}");
    assert_eq!(count(&report, "routes", "update"), 1, "{report:#}");
    assert_eq!(
        report["applied"]["audit_rows"], 2,
        "marker and the route: {report:#}"
    );
    let bearer = |want: &'static str| {
        let (http, url, key, seen) = (
            &http,
            format!("{gw}/api/billing/s"),
            old.key("billing"),
            &seen,
        );
        async move {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let r = http
                    .get(&url)
                    .header("X-API-Key", key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200);
                let got = header(&last_seen(seen).1, "authorization").map(str::to_owned);
                if got.as_deref() == Some(want) || Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(
        bearer("Bearer bill-secret-2").await.as_deref(),
        Some("Bearer bill-secret-2")
    );
    let billing = cp.store.get_route("billing").await.unwrap();
    let rotated = keygate_control_plane::routes::AuthInput {
        kind: keygate_control_plane::routes::AuthKind::Bearer,
        header_name: String::new(),
        username: String::new(),
        secret: keygate_control_plane::secrets::SecretString::new("rotated-here"),
    }
    .seal(&cp.master_key, &billing.id);
    cp.store
        .update_route(
            &keygate_control_plane::context::RequestContext::system("test"),
            &billing.id,
            keygate_control_plane::routes::RoutePatch {
                auth: Some(rotated),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Applied, "{report:#}");
    assert_eq!(count(&report, "routes", "update"), 0, "kept: {report:#}");
    assert_eq!(
        bearer("Bearer rotated-here").await.as_deref(),
        Some("Bearer rotated-here")
    );

    // 7. Nothing changed since: nothing written.
    let audit_before = audit_rows(&cp).await;
    let (outcome, report) = import(&a).await;
    assert_eq!(outcome, Outcome::Applied, "{report:#}");
    assert!(
        report["applied"]["audit_rows"].as_u64() == Some(0),
        "{report:#}"
    );
    assert_eq!(audit_rows(&cp).await, audit_before);

    follow.abort();
    gateway.shutdown().await;
    cp.stop().await;
    kv.shutdown().await;
    old.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_system_import_on_sqlite() {
    import_end_to_end(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_system_import_on_postgres() {
    import_end_to_end(Backend::Postgres).await;
}
