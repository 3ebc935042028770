//! Alerts: the storage conformance cases (both stores) and the real control plane delivering
//! signed webhooks to real receivers on 127.0.0.1, with retries, refusals and the evaluator
//! driven at chosen times through `alerts::evaluate::run_once`.

use hmac::{Hmac, Mac};
use keygate_contracts::scope::Scope;
use keygate_contracts::token::{API_TOKEN_PREFIX, NewToken};
use keygate_control_plane::alerts::deliver::{self, Allow};
use keygate_control_plane::alerts::evaluate::run_once;
use keygate_control_plane::alerts::{
    Alert, AlertDelivery, AlertRuleFilter, AlertRulePatch, AlertSettings, AlertState,
    AlertTokenQuery, Condition, DeliveryFilter, DeliveryStatus, NewAlertRule,
};
use keygate_control_plane::audit::{AuditEvent, AuditFilter, AuditPage};
use keygate_control_plane::context::{Actor, RequestContext};
use keygate_control_plane::ids::{AlertRuleId, DeliveryId, TeamId, TokenId};
use keygate_control_plane::store::{self, DynStore, StoreError};
use keygate_control_plane::teams::NewTeam;
use keygate_control_plane::testing::{Backend, TestDb, TestServer, test_db};
use keygate_control_plane::time::now_ms;
use keygate_control_plane::tokens::NewTokenRecord;
use keygate_proto::v1 as pb;
use keygate_proto::v1::alert_service_client::AlertServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

const DAY: i64 = 86_400_000;

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "req-alerts".into(),
        actor: Actor {
            kind: "user",
            id: "usr_test".into(),
            name: "tester".into(),
        },
        source_ip: "127.0.0.1".into(),
        user_agent: "alerts-test".into(),
    }
}

async fn open(b: Backend) -> (DynStore, TestDb) {
    let db = test_db(b).await;
    (store::open(&db.url).await.expect("open"), db)
}

async fn team(store: &DynStore, id: &str) {
    store
        .create_team(
            &ctx(),
            NewTeam {
                id: TeamId(id.into()),
                name: id.into(),
                description: String::new(),
                color: String::new(),
                icon: String::new(),
            },
            None,
        )
        .await
        .unwrap();
}

fn new_rule(team: &str, name: &str, condition: Condition) -> NewAlertRule {
    NewAlertRule {
        id: AlertRuleId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        enabled: true,
        webhook_url: "https://hooks.example.com/keygate".into(),
        condition,
        secret_sealed: "v1.sealed.not-a-real-secret".into(),
    }
}

async fn token(store: &DynStore, team: &str, expires_at: Option<i64>) -> TokenId {
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    store
        .create_token(
            &ctx(),
            NewTokenRecord {
                id: TokenId::generate(),
                team_id: TeamId(team.into()),
                name: "t".into(),
                description: String::new(),
                scopes: vec![Scope::All],
                token_hash: secret.hash(),
                preview: secret.preview(),
                expires_at,
                rate_limit_per_minute: 0,
            },
        )
        .await
        .unwrap()
        .id
}

/// Audit rows, oldest first.
async fn audit(store: &DynStore) -> Vec<AuditEvent> {
    let (page, _) = store
        .list_audit(&AuditPage {
            filter: AuditFilter::default(),
            limit: 500,
            before_seq: None,
        })
        .await
        .unwrap();
    let mut rows = page.items;
    rows.reverse();
    rows
}

/// Raw SQL for what the API does not offer (setting `last_used_at`, scanning tables).
async fn exec(db: &TestDb, sql: &str) {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// Every text value in the alert tables, as one string.
async fn alert_tables_text(db: &TestDb) -> String {
    let sql = "SELECT id || ' ' || name || ' ' || webhook_url || ' ' || secret_sealed || ' ' || \
               condition FROM alert_rules";
    let mut out = String::new();
    for q in [
        sql,
        "SELECT id || ' ' || message || ' ' || details FROM alerts",
        "SELECT id || ' ' || message || ' ' || error FROM alert_deliveries",
    ] {
        let rows: Vec<(String,)> = match db.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
                sqlx::query_as(sqlx::AssertSqlSafe(q.to_owned()))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                sqlx::query_as(sqlx::AssertSqlSafe(q.to_owned()))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        for (r,) in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// L2: storage conformance

async fn alert_rules_crud_and_audit(b: Backend) {
    let (store, _db) = open(b).await;
    team(&store, "alpha").await;
    team(&store, "beta").await;
    let head = store.head_revision().await.unwrap();
    let created = store
        .create_alert_rule(
            &ctx(),
            new_rule("alpha", "expiring", Condition::TokenExpiring { days: 7 }),
        )
        .await
        .unwrap();
    assert_eq!(created.created_by, "user:usr_test");
    assert_eq!(created.condition, Condition::TokenExpiring { days: 7 });
    assert_eq!(store.get_alert_rule(&created.id).await.unwrap(), created);
    assert_eq!(
        store.alert_rule_secret(&created.id).await.unwrap(),
        "v1.sealed.not-a-real-secret"
    );
    // A rule for a team that does not exist is refused, and writes nothing.
    let seq = audit(&store).await.last().unwrap().seq;
    let e = store
        .create_alert_rule(&ctx(), new_rule("nope", "x", Condition::GatewayDropping))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e:?}");
    assert_eq!(audit(&store).await.last().unwrap().seq, seq);

    // More rules, then pages newest first, filtered by team and by visible teams.
    let mut ids = vec![created.id.clone()];
    for (i, t) in ["alpha", "beta", "alpha"].iter().enumerate() {
        let r = store
            .create_alert_rule(
                &ctx(),
                new_rule(t, &format!("r{i}"), Condition::GatewaySilent { minutes: 5 }),
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_alert_rules(&AlertRuleFilter {
                team_id: Some(TeamId("alpha".into())),
                limit: 2,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        let last = page.items.last().unwrap();
        after = Some((last.created_at, last.id.clone()));
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, vec![ids[3].clone(), ids[1].clone(), ids[0].clone()]);
    let visible = store
        .list_alert_rules(&AlertRuleFilter {
            visible_teams: Some(vec![TeamId("beta".into())]),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(visible.items.len(), 1);
    assert_eq!(visible.items[0].id, ids[2]);
    let none = store
        .list_alert_rules(&AlertRuleFilter {
            visible_teams: Some(vec![]),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // Update: a new condition forgets the old states; a rotation replaces the sealed secret
    // and is audited without any value.
    store
        .record_evaluation(
            &created.id,
            &[AlertState {
                firing: true,
                fired_at: Some(1),
                ..AlertState::new("tok_x")
            }],
            &[],
        )
        .await
        .unwrap();
    let unchanged = store
        .update_alert_rule(
            &ctx(),
            &created.id,
            AlertRulePatch {
                name: Some("expiring".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unchanged, created, "a no-op update changes nothing");
    assert_eq!(store.alert_states(&created.id).await.unwrap().len(), 1);
    let updated = store
        .update_alert_rule(
            &ctx(),
            &created.id,
            AlertRulePatch {
                name: Some("soon".into()),
                enabled: Some(false),
                condition: Some(Condition::TokenExpiring { days: 3 }),
                secret_sealed: Some("v1.sealed.rotated".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "soon");
    assert!(!updated.enabled);
    assert!(updated.secret_issued_at >= created.secret_issued_at);
    assert!(store.alert_states(&created.id).await.unwrap().is_empty());
    assert_eq!(
        store.alert_rule_secret(&created.id).await.unwrap(),
        "v1.sealed.rotated"
    );
    let enabled = store.enabled_alert_rules().await.unwrap();
    assert!(enabled.iter().all(|r| r.id != created.id));
    assert_eq!(enabled.len(), 3);

    let deleted = store.delete_alert_rule(&ctx(), &created.id).await.unwrap();
    assert_eq!(deleted.id, created.id);
    assert!(matches!(
        store.get_alert_rule(&created.id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(matches!(
        store
            .delete_alert_rule(&ctx(), &created.id)
            .await
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));

    // Audit: one row per change, with its change event (no edge record: empty payload);
    // never a sealed or plain secret.
    let rows: Vec<AuditEvent> = audit(&store)
        .await
        .into_iter()
        .filter(|e| e.entity_type == "alert_rule")
        .collect();
    let actions: Vec<&str> = rows.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "alert_rule.create",
            "alert_rule.create",
            "alert_rule.create",
            "alert_rule.create",
            "alert_rule.update",
            "alert_rule.delete"
        ]
    );
    for e in &rows {
        assert!(!e.diff.contains("v1.sealed"), "{}", e.diff);
        assert_eq!(e.actor_id, "usr_test");
    }
    // A deleted team takes its rules along.
    store
        .delete_team(&ctx(), &TeamId("beta".into()), false)
        .await
        .unwrap();
    assert!(matches!(
        store.get_alert_rule(&ids[2]).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    let update: serde_json::Value = serde_json::from_str(&rows[4].diff).unwrap();
    assert_eq!(update["name"], serde_json::json!(["expiring", "soon"]));
    assert_eq!(
        update["webhook_secret"],
        serde_json::json!([null, "rotated"])
    );
    assert!(update.get("updated_at").is_none());
    let changes = store.list_changes(head, 100).await.unwrap();
    let alert_changes: Vec<_> = changes
        .iter()
        .filter(|c| c.entity_type == "alert_rule")
        .collect();
    assert_eq!(alert_changes.len(), 6);
    assert!(alert_changes.iter().all(|c| c.payload == "{}"));
    assert_eq!(alert_changes.last().unwrap().op, "delete");
}

fn delivery(alert: &Alert, attempt: u32, status: DeliveryStatus, at: i64) -> AlertDelivery {
    AlertDelivery {
        id: DeliveryId::generate(),
        alert_id: alert.id.clone(),
        rule_id: alert.rule_id.clone(),
        team_id: alert.team_id.clone(),
        kind: alert.kind.clone(),
        subject: alert.subject.clone(),
        message: alert.message.clone(),
        test: alert.test,
        attempt,
        status,
        http_status: if status == DeliveryStatus::Succeeded {
            204
        } else {
            500
        },
        error: if status == DeliveryStatus::Succeeded {
            String::new()
        } else {
            "the receiver answered 500 Internal Server Error".into()
        },
        duration_ms: 12,
        attempted_at: at,
        next_attempt_at: (status == DeliveryStatus::Retrying).then_some(at + 30_000),
    }
}

async fn alert_queue_and_deliveries(b: Backend) {
    let (store, _db) = open(b).await;
    team(&store, "alpha").await;
    team(&store, "beta").await;
    let rule = store
        .create_alert_rule(
            &ctx(),
            new_rule("alpha", "silent", Condition::GatewaySilent { minutes: 5 }),
        )
        .await
        .unwrap();
    let other = store
        .create_alert_rule(
            &ctx(),
            new_rule("beta", "silent", Condition::GatewaySilent { minutes: 5 }),
        )
        .await
        .unwrap();
    let t0 = 1_800_000_000_000;
    // States upsert by subject; alerts are queued due at their firing time.
    let a = Alert::new(
        &rule,
        "gw-1",
        "silent",
        serde_json::json!({"n": 1}),
        t0,
        false,
    );
    let mut state = AlertState {
        firing: true,
        fired_at: Some(t0),
        ..AlertState::new("gw-1")
    };
    store
        .record_evaluation(
            &rule.id,
            std::slice::from_ref(&state),
            std::slice::from_ref(&a),
        )
        .await
        .unwrap();
    state.firing = false;
    state.resolved_at = Some(t0 + 1);
    state.marker = Some(7);
    store
        .record_evaluation(&rule.id, std::slice::from_ref(&state), &[])
        .await
        .unwrap();
    assert_eq!(store.alert_states(&rule.id).await.unwrap(), vec![state]);
    let b_alert = Alert::new(
        &other,
        "gw-2",
        "silent",
        serde_json::json!({}),
        t0 + 5,
        false,
    );
    store
        .record_evaluation(&other.id, &[], std::slice::from_ref(&b_alert))
        .await
        .unwrap();
    assert!(store.due_alerts(t0 - 1, 10).await.unwrap().is_empty());
    let due = store.due_alerts(t0 + 5, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
        vec![a.id.clone(), b_alert.id.clone()],
        "most overdue first"
    );
    assert_eq!(due[0], a);

    // Tries: each is a row, moves the alert's due time, and is audited without a change event.
    let head = store.head_revision().await.unwrap();
    let d1 = delivery(&a, 1, DeliveryStatus::Retrying, t0);
    store.record_delivery(&ctx(), &d1).await.unwrap();
    assert_eq!(store.due_alerts(t0 + 29_999, 10).await.unwrap().len(), 1);
    let again = store.due_alerts(t0 + 30_000, 10).await.unwrap();
    let again_a = again.iter().find(|x| x.id == a.id).unwrap();
    assert_eq!(again_a.attempts, 1);
    let d2 = delivery(&a, 2, DeliveryStatus::Succeeded, t0 + 30_000);
    store.record_delivery(&ctx(), &d2).await.unwrap();
    assert!(
        store
            .due_alerts(t0 + DAY, 10)
            .await
            .unwrap()
            .iter()
            .all(|x| x.id != a.id)
    );
    let d3 = delivery(&b_alert, 1, DeliveryStatus::Failed, t0 + 40_000);
    store.record_delivery(&ctx(), &d3).await.unwrap();
    assert_eq!(
        store.head_revision().await.unwrap(),
        head,
        "no change events"
    );
    let rows = audit(&store).await;
    let delivered: Vec<&AuditEvent> = rows
        .iter()
        .filter(|e| e.entity_type == "alert_delivery")
        .collect();
    assert_eq!(
        delivered
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        vec![
            "alert.delivery_failed",
            "alert.delivered",
            "alert.delivery_failed"
        ]
    );
    assert_eq!(delivered[1].entity_id, d2.id.0);
    assert_eq!(delivered[2].team_id, "beta");
    assert!(delivered[0].diff.contains("next_attempt_at"));

    // Listing: newest first, by rule, team, status and visible teams, in pages.
    let list = |f: DeliveryFilter| {
        let store = store.clone();
        async move {
            store
                .list_alert_deliveries(&f)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|d| d.id)
                .collect::<Vec<_>>()
        }
    };
    let all = DeliveryFilter {
        limit: 50,
        ..Default::default()
    };
    assert_eq!(
        list(all.clone()).await,
        vec![d3.id.clone(), d2.id.clone(), d1.id.clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            rule_id: Some(rule.id.clone()),
            ..all.clone()
        })
        .await,
        vec![d2.id.clone(), d1.id.clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            status: Some(DeliveryStatus::Retrying),
            ..all.clone()
        })
        .await,
        vec![d1.id.clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            team_id: Some(TeamId("beta".into())),
            ..all.clone()
        })
        .await,
        vec![d3.id.clone()]
    );
    assert_eq!(
        list(DeliveryFilter {
            visible_teams: Some(vec![TeamId("alpha".into())]),
            ..all.clone()
        })
        .await,
        vec![d2.id.clone(), d1.id.clone()]
    );
    let first = store
        .list_alert_deliveries(&DeliveryFilter {
            limit: 2,
            ..all.clone()
        })
        .await
        .unwrap();
    assert!(first.more);
    let last = first.items.last().unwrap();
    assert_eq!(
        list(DeliveryFilter {
            after: Some((last.attempted_at, last.id.clone())),
            ..all.clone()
        })
        .await,
        vec![d1.id.clone()]
    );
    let stored = store.list_alert_deliveries(&all).await.unwrap().items;
    assert_eq!(stored[2], d1);

    // History retention: finished alerts go with their rows; pending ones stay.
    let pending = Alert::new(&rule, "gw-3", "m", serde_json::json!({}), t0, false);
    store
        .record_evaluation(&rule.id, &[], std::slice::from_ref(&pending))
        .await
        .unwrap();
    assert_eq!(store.delete_alert_history_before(t0 + 1).await.unwrap(), 1);
    assert_eq!(list(all.clone()).await, vec![d3.id.clone()]);
    assert_eq!(
        store.due_alerts(t0 + 1, 10).await.unwrap()[0].id,
        pending.id
    );

    // A rule's deletion takes its queue and history; a try finishing afterwards is NotFound.
    store.delete_alert_rule(&ctx(), &other.id).await.unwrap();
    assert!(list(all.clone()).await.is_empty());
    let late = delivery(&b_alert, 2, DeliveryStatus::Succeeded, t0 + 50_000);
    assert!(matches!(
        store.record_delivery(&ctx(), &late).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
}

async fn alert_token_queries(b: Backend) {
    let (store, db) = open(b).await;
    team(&store, "alpha").await;
    team(&store, "beta").await;
    let now = now_ms();
    let soon = token(&store, "alpha", Some(now + 2 * DAY)).await;
    let later = token(&store, "alpha", Some(now + 30 * DAY)).await;
    let never_expires = token(&store, "alpha", None).await;
    let revoked = token(&store, "alpha", Some(now + DAY)).await;
    store.revoke_token(&ctx(), &revoked, "").await.unwrap();
    let _other_team = token(&store, "beta", Some(now + DAY)).await;
    let alpha = TeamId("alpha".into());
    let ids = |v: Vec<keygate_control_plane::tokens::Token>| {
        let mut v: Vec<TokenId> = v.into_iter().map(|t| t.id).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<TokenId>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(store
            .alert_tokens(&alpha, AlertTokenQuery::ExpiringBefore(now + 7 * DAY), now)
            .await
            .unwrap()),
        vec![soon.clone()]
    );
    assert_eq!(
        ids(store
            .alert_tokens(&alpha, AlertTokenQuery::Live, now)
            .await
            .unwrap()),
        sorted(vec![soon.clone(), later.clone(), never_expires.clone()])
    );
    // Used 40 days ago, used yesterday, never used (created "60 days ago").
    exec(
        &db,
        &format!(
            "UPDATE tokens SET last_used_at = {} WHERE id = '{}'",
            now - 40 * DAY,
            soon
        ),
    )
    .await;
    exec(
        &db,
        &format!(
            "UPDATE tokens SET last_used_at = {} WHERE id = '{}'",
            now - DAY,
            later
        ),
    )
    .await;
    exec(
        &db,
        &format!(
            "UPDATE tokens SET created_at = {} WHERE id = '{}'",
            now - 60 * DAY,
            never_expires
        ),
    )
    .await;
    let unused = |include_never_used| AlertTokenQuery::UnusedSince {
        before: now - 30 * DAY,
        include_never_used,
    };
    assert_eq!(
        ids(store
            .alert_tokens(&alpha, unused(false), now)
            .await
            .unwrap()),
        vec![soon.clone()]
    );
    assert_eq!(
        ids(store.alert_tokens(&alpha, unused(true), now).await.unwrap()),
        sorted(vec![soon.clone(), never_expires.clone()])
    );
    // Expired tokens are not live.
    assert!(
        store
            .alert_tokens(&alpha, AlertTokenQuery::Live, now + 3 * DAY)
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != soon)
    );
    assert!(store.team_route_names(&alpha).await.unwrap().is_empty());
}

async fn evaluation_lock_is_exclusive(b: Backend) {
    let (store, db) = open(b).await;
    let first = store.lock_alert_evaluation().await.unwrap();
    assert!(first.is_some());
    let second = store.lock_alert_evaluation().await.unwrap();
    match b {
        // One process per SQLite file: nothing to exclude.
        Backend::Sqlite => assert!(second.is_some()),
        Backend::Postgres => {
            assert!(second.is_none(), "held by the first run");
            // Another replica (its own pool) is refused too.
            let replica = store::open(&db.url).await.unwrap();
            assert!(replica.lock_alert_evaluation().await.unwrap().is_none());
            store
                .release_alert_evaluation(first.unwrap())
                .await
                .unwrap();
            // Released at once: the other replica gets it on its next try.
            let got = replica.lock_alert_evaluation().await.unwrap();
            assert!(got.is_some(), "released");
            assert!(store.lock_alert_evaluation().await.unwrap().is_none());
            drop(got);
            // A dropped guard (a crashed run) releases it too, a little later.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                if let Some(l) = store.lock_alert_evaluation().await.unwrap() {
                    store.release_alert_evaluation(l).await.unwrap();
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "lock never released");
                tokio::task::yield_now().await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// L3: the real server and real receivers

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 webhook receiver on 127.0.0.1 answering every request with `status`.
struct Receiver {
    addr: std::net::SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (status, got.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (s, g) = (s.clone(), g.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("")
                        .to_owned();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    g.lock().unwrap().push(Received {
                        path,
                        headers,
                        body,
                    });
                    let code = s.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { addr, got, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `Keygate-Signature` against `secret` the way a receiver would: recompute the
/// HMAC-SHA256 of `"<t>.<body>"` (independently of the server's code).
fn verify_signature(r: &Received, secret: &str) {
    let header = r
        .headers
        .get("keygate-signature")
        .expect("signature header");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {header}"));
    let t: i64 = t.parse().unwrap();
    assert!((now_ms() / 1000 - t).abs() < 300, "timestamp is current");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("signature verifies with the rule's secret");
}

fn allow_loopback() -> AlertSettings {
    AlertSettings {
        allow: Allow::parse(&["127.0.0.1".into()]).unwrap(),
        ..AlertSettings::default()
    }
}

async fn seed_team(s: &TestServer, id: &str) {
    TeamServiceClient::new(s.channel().await)
        .create_team(s.request(pb::CreateTeamRequest {
            id: id.into(),
            name: id.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
}

async fn api_token(s: &TestServer, team: &str, days: u32) -> String {
    TokenServiceClient::new(s.channel().await)
        .create_token(s.request(pb::CreateTokenRequest {
            name: "ci".into(),
            team_id: team.into(),
            scopes: vec!["*".into()],
            expiry: Some(pb::create_token_request::Expiry::ExpiresInDays(days)),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap()
        .id
}

fn expiring(days: u32) -> Option<pb::AlertCondition> {
    Some(pb::AlertCondition {
        kind: Some(pb::alert_condition::Kind::TokenExpiring(
            pb::TokenExpiringCondition { days },
        )),
    })
}

async fn create_rule(
    s: &TestServer,
    team: &str,
    url: String,
    condition: Option<pb::AlertCondition>,
) -> Result<pb::CreateAlertRuleResponse, tonic::Status> {
    AlertServiceClient::new(s.channel().await)
        .create_alert_rule(s.request(pb::CreateAlertRuleRequest {
            team_id: team.into(),
            name: "watch".into(),
            enabled: None,
            webhook_url: url,
            condition,
        }))
        .await
        .map(|r| r.into_inner())
}

async fn deliveries(
    s: &TestServer,
    rule: &str,
    status: pb::AlertDeliveryStatus,
) -> Vec<pb::AlertDelivery> {
    AlertServiceClient::new(s.channel().await)
        .list_alert_deliveries(s.request(pb::ListAlertDeliveriesRequest {
            rule_id: rule.into(),
            status: status as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .deliveries
}

async fn expiring_token_alert_is_signed_and_delivered(b: Backend) {
    let settings = allow_loopback();
    let s = TestServer::start_with_alerts(b, settings.clone()).await;
    let receiver = Receiver::start(204).await;
    seed_team(&s, "alpha").await;
    let token_id = api_token(&s, "alpha", 3).await;
    let _far = api_token(&s, "alpha", 90).await;
    let created = create_rule(&s, "alpha", receiver.url("/hooks/keygate"), expiring(7))
        .await
        .unwrap();
    let secret = created.webhook_secret.clone();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let rule = created.rule.unwrap();
    assert!(rule.enabled && !rule.system_wide);

    let now = now_ms();
    let report = run_once(&s.store, &s.master_key, &settings.allow, now)
        .await
        .unwrap();
    assert_eq!((report.fired, report.tries, report.delivered), (1, 1, 1));
    let got = receiver.received();
    assert_eq!(
        got.len(),
        1,
        "one alert: only the token expiring within 7 days"
    );
    let r = &got[0];
    assert_eq!(r.path, "/hooks/keygate");
    assert_eq!(r.headers["content-type"], "application/json");
    verify_signature(r, &secret);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["kind"], "token_expiring");
    assert_eq!(body["subject"], token_id.as_str());
    assert_eq!(body["rule_id"], rule.id.as_str());
    assert_eq!(body["team_id"], "alpha");
    assert_eq!(body["test"], false);
    assert_eq!(body["details"]["token_id"], token_id.as_str());
    assert!(body["id"].as_str().unwrap().starts_with("alt_"));
    assert!(body["message"].as_str().unwrap().contains("expires in"));

    let listed = deliveries(&s, &rule.id, pb::AlertDeliveryStatus::Unspecified).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, r.headers["keygate-delivery"]);
    assert_eq!(listed[0].status, pb::AlertDeliveryStatus::Succeeded as i32);
    assert_eq!((listed[0].attempt, listed[0].http_status), (1, 204));
    assert_eq!(listed[0].alert_id, body["id"].as_str().unwrap());

    // Once per token: later runs do not fire again.
    let report = run_once(&s.store, &s.master_key, &settings.allow, now + 60_000)
        .await
        .unwrap();
    assert_eq!((report.fired, report.tries), (0, 0));
    assert_eq!(receiver.received().len(), 1);

    // TestWebhook: signed, marked as a test, listed.
    let mut alerts = AlertServiceClient::new(s.channel().await);
    let tested = alerts
        .test_webhook(s.request(pb::TestWebhookRequest {
            rule_id: rule.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(tested.status, pb::AlertDeliveryStatus::Succeeded as i32);
    assert_eq!((tested.http_status, tested.test), (204, true));
    let r = receiver.received().pop().unwrap();
    verify_signature(&r, &secret);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["test"], true);

    // Rotation: a new secret, shown once; later deliveries are signed with it.
    let rotated = alerts
        .update_alert_rule(s.request(pb::UpdateAlertRuleRequest {
            id: rule.id.clone(),
            rotate_secret: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.webhook_secret.starts_with("whsec_"));
    assert_ne!(rotated.webhook_secret, secret);
    alerts
        .test_webhook(s.request(pb::TestWebhookRequest {
            rule_id: rule.id.clone(),
        }))
        .await
        .unwrap();
    verify_signature(&receiver.received().pop().unwrap(), &rotated.webhook_secret);

    // The secrets appear in no other response, no audit row and no table.
    let got_rule = alerts
        .get_alert_rule(s.request(pb::GetAlertRuleRequest {
            id: rule.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let listed_rules = alerts
        .list_alert_rules(s.request(pb::ListAlertRulesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let listed = deliveries(&s, &rule.id, pb::AlertDeliveryStatus::Unspecified).await;
    assert_eq!(listed.len(), 3);
    let shown = format!(
        "{got_rule:?} {listed_rules:?} {listed:?} {:?}",
        audit(&s.store).await
    );
    let tables = alert_tables_text(&s.db).await;
    for secret in [&secret, &rotated.webhook_secret] {
        assert!(!shown.contains(secret.as_str()));
        assert!(!tables.contains(secret.as_str()));
    }
    // Deliveries are audited as the system's doing.
    let rows = audit(&s.store).await;
    let delivered: Vec<&AuditEvent> = rows
        .iter()
        .filter(|e| e.action == "alert.delivered")
        .collect();
    assert_eq!(delivered.len(), 3);
    assert!(
        delivered
            .iter()
            .all(|e| e.actor_type == "system" && e.team_id == "alpha")
    );
    s.stop().await;
}

async fn failing_receiver_is_retried_until_it_gives_up(b: Backend) {
    let settings = allow_loopback();
    let s = TestServer::start_with_alerts(b, settings.clone()).await;
    let receiver = Receiver::start(500).await;
    seed_team(&s, "alpha").await;
    api_token(&s, "alpha", 2).await;
    let rule = create_rule(&s, "alpha", receiver.url("/hook/s3cr3t-path"), expiring(7))
        .await
        .unwrap()
        .rule
        .unwrap();
    let run = |at: i64| run_once(&s.store, &s.master_key, &settings.allow, at);
    let t0 = now_ms();
    let r = run(t0).await.unwrap();
    assert_eq!((r.fired, r.tries, r.delivered), (1, 1, 0));
    // Not due before 30 s.
    assert_eq!(run(t0 + 29_000).await.unwrap().tries, 0);
    assert_eq!(run(t0 + 30_000).await.unwrap().tries, 1);
    // Then 1 min later.
    assert_eq!(run(t0 + 60_000).await.unwrap().tries, 0);
    assert_eq!(run(t0 + 90_000).await.unwrap().tries, 1);
    // Near the end of the 24 h: the last try, then none.
    assert_eq!(run(t0 + 24 * 3_600_000 - 10_000).await.unwrap().tries, 1);
    assert_eq!(run(t0 + 48 * 3_600_000).await.unwrap().tries, 0);
    assert_eq!(
        receiver.received().len(),
        4,
        "each try reached the receiver"
    );
    for r in receiver.received() {
        assert_eq!(r.path, "/hook/s3cr3t-path");
    }
    let listed = deliveries(&s, &rule.id, pb::AlertDeliveryStatus::Unspecified).await;
    let attempts: Vec<(u32, i32)> = listed.iter().map(|d| (d.attempt, d.status)).collect();
    use pb::AlertDeliveryStatus as S;
    assert_eq!(
        attempts,
        vec![
            (4, S::Failed as i32),
            (3, S::Retrying as i32),
            (2, S::Retrying as i32),
            (1, S::Retrying as i32)
        ],
        "newest first, one row per try"
    );
    for d in &listed {
        assert_eq!(d.http_status, 500);
        assert!(d.error.contains("500"), "{}", d.error);
        assert!(!d.error.contains("s3cr3t"), "{}", d.error);
        assert_eq!(d.alert_id, listed[0].alert_id, "one alert, several tries");
    }
    assert_eq!(
        listed[3].next_attempt_at.as_ref().unwrap().seconds * 1000,
        (t0 + 30_000) / 1000 * 1000
    );
    assert!(listed[0].next_attempt_at.is_none());
    assert_eq!(deliveries(&s, &rule.id, S::Retrying).await.len(), 3);
    assert_eq!(deliveries(&s, &rule.id, S::Failed).await.len(), 1);
    let failed = audit(&s.store)
        .await
        .into_iter()
        .filter(|e| e.action == "alert.delivery_failed")
        .count();
    assert_eq!(failed, 4);

    // A receiver that is not listening: no answer, a reason without the URL.
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut alerts = AlertServiceClient::new(s.channel().await);
    alerts
        .update_alert_rule(s.request(pb::UpdateAlertRuleRequest {
            id: rule.id.clone(),
            webhook_url: Some(format!("http://{gone}/hook/s3cr3t-path")),
            ..Default::default()
        }))
        .await
        .unwrap();
    let d = alerts
        .test_webhook(s.request(pb::TestWebhookRequest {
            rule_id: rule.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(d.status, S::Failed as i32, "tests are not retried");
    assert_eq!(d.http_status, 0);
    assert!(
        !d.error.is_empty() && !d.error.contains("s3cr3t"),
        "{}",
        d.error
    );
    s.stop().await;
}

async fn private_targets_are_refused(b: Backend) {
    let s = TestServer::start_with_alerts(b, AlertSettings::default()).await;
    let receiver = Receiver::start(204).await;
    seed_team(&s, "alpha").await;
    seed_team(&s, "beta").await;
    for url in [
        receiver.url("/hook"),
        "http://localhost:8080/hook".to_owned(),
        "http://10.1.2.3/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]:9/hook".to_owned(),
    ] {
        let e = create_rule(&s, "alpha", url.clone(), expiring(7))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{url}");
        assert!(e.message().starts_with("webhook_url: "), "{}", e.message());
        assert!(
            e.message().contains("KEYGATE_ALERT_WEBHOOK_ALLOW"),
            "{}",
            e.message()
        );
    }
    // A public URL is accepted; changing it to a private one is refused.
    let rule = create_rule(
        &s,
        "alpha",
        "https://hooks.example.com/x".into(),
        expiring(7),
    )
    .await
    .unwrap()
    .rule
    .unwrap();
    let e = AlertServiceClient::new(s.channel().await)
        .update_alert_rule(s.request(pb::UpdateAlertRuleRequest {
            id: rule.id.clone(),
            webhook_url: Some(receiver.url("/hook")),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // A rule stored with a private target (say, created while an allow-list named it) is
    // refused at delivery, after resolution, before any connection.
    let id = AlertRuleId::generate();
    let sealed = s.master_key.seal(
        &deliver::secret_aad(&id),
        &keygate_control_plane::secrets::SecretString::new("whsec_x".to_owned()),
    );
    s.store
        .create_alert_rule(
            &ctx(),
            NewAlertRule {
                id: id.clone(),
                team_id: TeamId("alpha".into()),
                name: "old".into(),
                enabled: true,
                webhook_url: receiver.url("/hook"),
                condition: Condition::TokenExpiring { days: 7 },
                secret_sealed: sealed,
            },
        )
        .await
        .unwrap();
    let d = AlertServiceClient::new(s.channel().await)
        .test_webhook(s.request(pb::TestWebhookRequest {
            rule_id: id.0.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .delivery
        .unwrap();
    assert_eq!(d.status, pb::AlertDeliveryStatus::Failed as i32);
    assert!(d.error.contains("loopback"), "{}", d.error);
    assert!(receiver.received().is_empty(), "nothing was sent");

    // Validation errors name the field and the rule.
    let bad_rate = Some(pb::AlertCondition {
        kind: Some(pb::alert_condition::Kind::RouteErrorRate(
            pb::RouteErrorRateCondition {
                route: String::new(),
                percent: 0.01,
                window_minutes: 5,
                min_calls: 0,
            },
        )),
    });
    let e = create_rule(&s, "alpha", "https://hooks.example.com/x".into(), bad_rate)
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "condition.route_error_rate.percent: must be between 0.1 and 100"
    );
    // A route condition names a route of the rule's own team.
    keygate_proto::v1::route_service_client::RouteServiceClient::new(s.channel().await)
        .create_route(s.request(pb::CreateRouteRequest {
            name: "billing".into(),
            team_id: "beta".into(),
            path_prefix: "/billing".into(),
            backend_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let on_billing = Some(pb::AlertCondition {
        kind: Some(pb::alert_condition::Kind::RouteErrorRate(
            pb::RouteErrorRateCondition {
                route: "billing".into(),
                percent: 5.0,
                window_minutes: 5,
                min_calls: 0,
            },
        )),
    });
    let e = create_rule(
        &s,
        "alpha",
        "https://hooks.example.com/x".into(),
        on_billing.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("condition.route_error_rate.route: "),
        "{}",
        e.message()
    );
    assert!(
        create_rule(&s, "beta", "https://hooks.example.com/x".into(), on_billing)
            .await
            .is_ok()
    );
    s.stop().await;
}

async fn system_wide_conditions_fire_once_per_crossing(b: Backend) {
    let settings = allow_loopback();
    let s = TestServer::start_with_alerts(b, settings.clone()).await;
    let receiver = Receiver::start(200).await;
    seed_team(&s, "ops").await;
    // A follower that applied nothing while the head moved on.
    s.store
        .report_follower(&keygate_control_plane::sync::Follower {
            follower: "kv-sync-1".into(),
            applied_revision: 0,
            last_error: String::new(),
            applied_changes: 0,
            reported_at: now_ms(),
            resync_requested: false,
        })
        .await
        .unwrap();
    let lag = Some(pb::AlertCondition {
        kind: Some(pb::alert_condition::Kind::SyncLag(pb::SyncLagCondition {
            seconds: 60,
        })),
    });
    let rule = create_rule(&s, "ops", receiver.url("/lag"), lag)
        .await
        .unwrap()
        .rule
        .unwrap();
    assert!(rule.system_wide);
    let run = |at: i64| run_once(&s.store, &s.master_key, &settings.allow, at);
    let now = now_ms();
    assert_eq!(run(now).await.unwrap().fired, 0, "changes are fresh");
    assert_eq!(
        run(now + 120_000).await.unwrap().fired,
        1,
        "2 minutes behind"
    );
    assert_eq!(
        run(now + 180_000).await.unwrap().fired,
        0,
        "still behind: no repeat"
    );
    let body: serde_json::Value = serde_json::from_slice(&receiver.received()[0].body).unwrap();
    assert_eq!(body["kind"], "sync_lag");
    assert_eq!(body["subject"], "kv-sync-1");
    // Caught up: resolved, and behind again later: fires again.
    let head = s.store.head_revision().await.unwrap();
    let follower = |applied| keygate_control_plane::sync::Follower {
        follower: "kv-sync-1".into(),
        applied_revision: applied,
        last_error: String::new(),
        applied_changes: 0,
        reported_at: now_ms(),
        resync_requested: false,
    };
    s.store.report_follower(&follower(head)).await.unwrap();
    assert_eq!(run(now + 240_000).await.unwrap().fired, 0);
    seed_team(&s, "later").await;
    assert_eq!(run(now + 600_000).await.unwrap().fired, 1);
    assert_eq!(receiver.received().len(), 2);
    s.stop().await;
}

/// One rollup as a gateway sends it: `(latency µs, count)` groups of one minute.
fn rollup(
    minute: i64,
    token: Option<(&str, &str)>,
    route: &str,
    status: u32,
    latencies: &[(u64, u32)],
) -> pb::UsageRollup {
    let mut v = keygate_rollup::RollupValue::default();
    for (l, n) in latencies {
        for _ in 0..*n {
            v.record(*l, 100, 1000);
        }
    }
    pb::UsageRollup {
        minute: Some(keygate_control_plane::time::to_timestamp(
            keygate_rollup::minute_of(minute),
        )),
        token_id: token.map(|(t, _)| t.to_owned()).unwrap_or_default(),
        team_id: token.map(|(_, team)| team.to_owned()).unwrap_or_default(),
        route: route.into(),
        status,
        error: String::new(),
        count: v.count,
        request_bytes: v.request_bytes,
        response_bytes: v.response_bytes,
        latency_sum_us: v.latency_sum_us,
        latency_min_us: v.latency_min_us,
        latency_max_us: v.latency_max_us,
        latency_sketch: v.sketch.encode(),
    }
}

async fn usage_conditions_read_the_rollups(b: Backend) {
    use pb::alert_condition::Kind;
    let settings = allow_loopback();
    let s = TestServer::start_with_alerts(b, settings.clone()).await;
    let receiver = Receiver::start(204).await;
    seed_team(&s, "alpha").await;
    keygate_proto::v1::route_service_client::RouteServiceClient::new(s.channel().await)
        .create_route(s.request(pb::CreateRouteRequest {
            name: "billing".into(),
            team_id: "alpha".into(),
            path_prefix: "/billing".into(),
            backend_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let leaky = api_token(&s, "alpha", 90).await;
    // The token has more than a week of history.
    exec(
        &s.db,
        &format!(
            "UPDATE tokens SET created_at = {} WHERE id = '{leaky}'",
            now_ms() - 10 * DAY
        ),
    )
    .await;
    let condition = |k: Kind| Some(pb::AlertCondition { kind: Some(k) });
    let error_rate = |min_calls| {
        condition(Kind::RouteErrorRate(pb::RouteErrorRateCondition {
            route: String::new(),
            percent: 10.0,
            window_minutes: 5,
            min_calls,
        }))
    };
    let rules = [
        create_rule(&s, "alpha", receiver.url("/rate"), error_rate(0)).await,
        create_rule(&s, "alpha", receiver.url("/busy"), error_rate(1000)).await,
        create_rule(
            &s,
            "alpha",
            receiver.url("/latency"),
            condition(Kind::RouteLatency(pb::RouteLatencyCondition {
                route: "billing".into(),
                p99_ms: 500,
                window_minutes: 5,
                min_calls: 0,
            })),
        )
        .await,
        create_rule(
            &s,
            "alpha",
            receiver.url("/spike"),
            condition(Kind::TokenTrafficSpike(pb::TokenTrafficSpikeCondition {
                factor: 3.0,
                min_calls: 0,
            })),
        )
        .await,
    ];
    assert!(rules.iter().all(Result::is_ok), "{rules:?}");

    // A gateway reports: 100 calls on billing in the last minutes, 20 of them 500s taking
    // 0.9 s; the token made 10 calls two days ago and 150 in the last hour.
    let gw = s
        .capability_key(keygate_control_plane::service_accounts::Capability::Gateway)
        .await;
    let now = now_ms();
    let tok = Some((leaky.as_str(), "alpha"));
    let mut usage =
        keygate_proto::v1::usage_service_client::UsageServiceClient::new(s.channel().await);
    usage
        .ingest_usage(keygate_control_plane::testing::with_key(
            &gw,
            pb::IngestUsageRequest {
                gateway: "edge-1".into(),
                batch_id: "b-1".into(),
                events_sampled: true,
                rollups: vec![
                    rollup(now - 60_000, tok, "billing", 200, &[(1000, 80)]),
                    rollup(now - 60_000, tok, "billing", 500, &[(900_000, 20)]),
                    rollup(now - 20 * 60_000, tok, "billing", 200, &[(1000, 50)]),
                    rollup(now - 2 * DAY, tok, "billing", 200, &[(1000, 10)]),
                ],
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let run = |at: i64| run_once(&s.store, &s.master_key, &settings.allow, at);
    let r = run(now).await.unwrap();
    assert_eq!(r.fired, 3, "{r:?}");
    let mut paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["/latency", "/rate", "/spike"],
        "not /busy: too few calls"
    );
    for r in receiver.received() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        match r.path.as_str() {
            "/rate" => {
                assert_eq!(body["kind"], "route_error_rate");
                assert_eq!(body["subject"], "billing");
                assert_eq!(body["details"]["calls"], 100);
                assert_eq!(body["details"]["errors"], 20);
            }
            "/latency" => {
                assert_eq!(body["kind"], "route_latency");
                assert!(
                    body["details"]["p99_ms"].as_f64().unwrap() > 800.0,
                    "{body}"
                );
            }
            _ => {
                assert_eq!(body["kind"], "token_traffic_spike");
                assert_eq!(body["subject"], leaky.as_str());
                assert_eq!(body["details"]["calls_last_hour"], 150);
            }
        }
    }
    // Still above: no repeat. Ten minutes later the window is empty: resolved, silently.
    assert_eq!(run(now + 1000).await.unwrap().fired, 0);
    assert_eq!(run(now + 10 * 60_000).await.unwrap().fired, 0);
    assert_eq!(receiver.received().len(), 3);
    // Above again (the same minutes, seen from now): fires again.
    assert_eq!(run(now).await.unwrap().fired, 2, "rate and latency");
    s.stop().await;
}

keygate_control_plane::on_both_backends!(
    alert_rules_crud_and_audit,
    alert_queue_and_deliveries,
    alert_token_queries,
    evaluation_lock_is_exclusive,
    expiring_token_alert_is_signed_and_delivered,
    failing_receiver_is_retried_until_it_gives_up,
    private_targets_are_refused,
    system_wide_conditions_fire_once_per_crossing,
    usage_conditions_read_the_rollups,
);
