//! L2: the storage conformance suite. Every test runs against SQLite and against a real
//! PostgreSQL (`KEYGATE_TEST_PG_URL`, started by `./scripts/test.sh`), through the same
//! `Store` trait the services use.

use keygate_contracts::scope::Scope;
use keygate_contracts::token::{API_TOKEN_PREFIX, NewToken};
use keygate_control_plane::audit::{AuditFilter, AuditPage};
use keygate_control_plane::context::{Actor, RequestContext};
use keygate_control_plane::ids::{RouteId, TeamId, TokenId};
use keygate_control_plane::routes::{
    AuthChange, AuthKind, NewRoute, RouteFilter, RoutePatch, RouteSort, SealedSecret,
};
use keygate_control_plane::store::{self, DynStore, RotatedToken, StoreError};
use keygate_control_plane::teams::{NewTeam, TeamFilter, TeamPatch};
use keygate_control_plane::testing::{Backend, TestDb, test_db};
use keygate_control_plane::time::now_ms;
use keygate_control_plane::tokens::{NewTokenRecord, TokenFilter, TokenPatch, TokenStatus};
use keygate_control_plane::usage::analytics::Stats;
use keygate_control_plane::usage::{UsageBatch, UsageEvent, UsageFilter};
use std::collections::{HashMap, HashSet};

const DAY: i64 = 86_400_000;

fn ctx() -> RequestContext {
    RequestContext {
        request_id: "req-test".into(),
        actor: Actor {
            kind: "key",
            id: "mk_test".into(),
            name: "tester".into(),
        },
        source_ip: "127.0.0.1".into(),
        user_agent: "conformance".into(),
    }
}

struct Fixture {
    store: DynStore,
    db: TestDb,
}

async fn fixture(b: Backend) -> Fixture {
    let db = test_db(b).await;
    let store = store::open(&db.url).await.expect("open");
    Fixture { store, db }
}

/// Raw SQL access for checks the API must not offer (tampering, counting secret rows).
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    async fn open(db: &TestDb) -> Self {
        match db.backend {
            Backend::Sqlite => Raw::Sqlite(sqlx::SqlitePool::connect(&db.url).await.unwrap()),
            Backend::Postgres => Raw::Pg(sqlx::PgPool::connect(&db.url).await.unwrap()),
        }
    }

    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Raw::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    async fn exec(&self, sql: &'static str) {
        match self {
            Raw::Sqlite(p) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
            Raw::Pg(p) => {
                sqlx::query(sql).execute(p).await.unwrap();
            }
        }
    }

    /// Revisions with `revision > after`, in order.
    async fn revisions_after(&self, after: i64) -> Vec<i64> {
        let sql = "SELECT revision FROM change_events WHERE revision > $1 ORDER BY revision";
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(after)
                .fetch_all(p)
                .await
                .unwrap(),
            Raw::Pg(p) => sqlx::query_scalar(sql)
                .bind(after)
                .fetch_all(p)
                .await
                .unwrap(),
        }
    }
}

async fn team(s: &DynStore, id: &str) {
    s.create_team(
        &ctx(),
        NewTeam {
            id: TeamId(id.into()),
            name: format!("Team {id}"),
            description: String::new(),
            color: String::new(),
            icon: String::new(),
        },
        None,
    )
    .await
    .unwrap();
}

fn token_record(
    team: &str,
    name: &str,
    scopes: &[&str],
    expires_at: Option<i64>,
) -> (NewTokenRecord, NewToken) {
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    let rec = NewTokenRecord {
        id: TokenId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        description: format!("{name} description"),
        scopes: scopes
            .iter()
            .map(|s| Scope::parse("scopes", s).unwrap())
            .collect(),
        token_hash: secret.hash(),
        preview: secret.preview(),
        expires_at,
        rate_limit_per_minute: 0,
    };
    (rec, secret)
}

fn new_route(team: &str, name: &str, path: &str, tags: &[&str], auth: AuthChange) -> NewRoute {
    NewRoute {
        id: RouteId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        path_prefix: path.into(),
        backend_url: format!("http://127.0.0.1:9/{name}"),
        description: String::new(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        methods: vec![],
        strip_prefix: false,
        timeout_ms: 30_000,
        auth,
        allowed_team_ids: vec![],
        cors_origins: vec![],
        rate_limit_per_minute: 0,
    }
}

fn no_auth() -> AuthChange {
    AuthChange {
        kind: AuthKind::None,
        header_name: String::new(),
        username: String::new(),
        secret: None,
    }
}

fn bearer(sealed: &str) -> AuthChange {
    AuthChange {
        kind: AuthKind::Bearer,
        header_name: String::new(),
        username: String::new(),
        secret: Some(SealedSecret {
            slot: "bearer_token",
            sealed: sealed.into(),
            key_id: "k1".into(),
        }),
    }
}

/// `(audit rows, head revision)`: a failed mutation must change neither.
async fn log_position(s: &DynStore) -> (u64, i64) {
    let (_, total) = s
        .list_audit(&AuditPage {
            filter: AuditFilter::default(),
            limit: 1,
            before_seq: None,
        })
        .await
        .unwrap();
    (total, s.head_revision().await.unwrap())
}

async fn teams_crud(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "payments").await;
    let dup = s
        .create_team(
            &ctx(),
            NewTeam {
                id: TeamId("payments".into()),
                name: "x".into(),
                description: String::new(),
                color: String::new(),
                icon: String::new(),
            },
            None,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(m)) if m.contains("payments")));
    for i in 0..7 {
        team(s, &format!("team-{i}")).await;
    }
    // Pages of 3 walk every team exactly once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .list_teams(&TeamFilter {
                query: None,
                limit: 3,
                after: after.clone(),
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|t| t.id.0.clone()));
        if !page.more {
            break;
        }
        after = page.items.last().map(|t| t.id.clone());
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 8);
    let found = s
        .list_teams(&TeamFilter {
            query: Some("PAYM".into()),
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    let updated = s
        .update_team(
            &ctx(),
            &TeamId("payments".into()),
            TeamPatch {
                name: Some("Payments Squad".into()),
                color: Some("#112233".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Payments Squad");
    assert_eq!(updated.color, "#112233");
    let missing = s.get_team(&TeamId("nope".into())).await;
    assert!(matches!(
        missing,
        Err(StoreError::NotFound { entity: "team", .. })
    ));
}

async fn token_lifecycle(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    s.create_route(
        &ctx(),
        new_route("core", "billing", "/api/billing", &["money"], no_auth()),
    )
    .await
    .unwrap();
    let (rec, _) = token_record(
        "core",
        "ci",
        &["billing", "tag:money"],
        Some(now_ms() + 30 * DAY),
    );
    let t = s.create_token(&ctx(), rec.clone()).await.unwrap();
    assert_eq!(t.scopes, vec!["billing", "tag:money"]);
    assert_eq!(t.status(now_ms()), TokenStatus::Active);
    assert_eq!(s.get_token(&t.id).await.unwrap(), t);

    // Unknown route scope: refused with the field named, nothing written.
    let before = log_position(s).await;
    let (bad, _) = token_record("core", "bad", &["no-such-route"], None);
    let e = s.create_token(&ctx(), bad).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(fe) if fe.field == "scopes"),
        "{e:?}"
    );
    let (orphan, _) = token_record("ghost-team", "x", &["*"], None);
    assert!(matches!(
        s.create_token(&ctx(), orphan).await,
        Err(StoreError::NotFound { entity: "team", .. })
    ));
    assert_eq!(
        log_position(s).await,
        before,
        "failed mutations must leave no audit row or change"
    );

    let u = s
        .update_token(
            &ctx(),
            &t.id,
            TokenPatch {
                name: Some("ci-renamed".into()),
                scopes: Some(vec![Scope::All]),
                expires_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.name, "ci-renamed");
    assert_eq!(u.scopes, vec!["*"]);
    assert_eq!(u.expires_at, None);
    let by_scope = s
        .list_tokens(&TokenFilter {
            scope: Some("billing".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_scope.items.is_empty(), "scope index must follow updates");

    let r = s.revoke_token(&ctx(), &t.id, "leaked").await.unwrap();
    assert_eq!(r.status(now_ms()), TokenStatus::Revoked);
    let pos = log_position(s).await;
    let again = s.revoke_token(&ctx(), &t.id, "again").await.unwrap();
    assert_eq!(again.revoked_at, r.revoked_at, "revoke is idempotent");
    assert_eq!(log_position(s).await, pos, "a no-op revoke writes nothing");
    let e = s
        .update_token(
            &ctx(),
            &t.id,
            TokenPatch {
                name: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Precondition(_)));
    assert_eq!(log_position(s).await, pos);
}

async fn token_rotation(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    let now = now_ms();
    let (rec, _) = token_record("core", "svc", &["*"], Some(now + 10 * DAY));
    let old = s.create_token(&ctx(), rec).await.unwrap();
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    // Grace longer than the old token's own expiry: capped at its expiry.
    let (new, old_after) = s
        .rotate_token(
            &ctx(),
            &old.id,
            RotatedToken {
                id: TokenId::generate(),
                token_hash: secret.hash(),
                preview: secret.preview(),
                grace_until: now + 20 * DAY,
            },
        )
        .await
        .unwrap();
    assert_eq!(new.rotated_from_id.as_ref(), Some(&old.id));
    assert_eq!(old_after.replaced_by_id.as_ref(), Some(&new.id));
    assert_eq!(
        old_after.expires_at, old.expires_at,
        "never past its own expiry"
    );
    assert_eq!(new.expires_at, old.expires_at);
    assert_eq!(
        (new.name.as_str(), &new.scopes),
        (old.name.as_str(), &old.scopes)
    );
    // Rotating the old one again is refused.
    let s2 = NewToken::generate(API_TOKEN_PREFIX);
    let e = s
        .rotate_token(
            &ctx(),
            &old.id,
            RotatedToken {
                id: TokenId::generate(),
                token_hash: s2.hash(),
                preview: s2.preview(),
                grace_until: now,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Precondition(m) if m.contains("already rotated")));
    // Short grace shortens; zero grace revokes at once.
    let s3 = NewToken::generate(API_TOKEN_PREFIX);
    let (newer, prev) = s
        .rotate_token(
            &ctx(),
            &new.id,
            RotatedToken {
                id: TokenId::generate(),
                token_hash: s3.hash(),
                preview: s3.preview(),
                grace_until: now + 3_600_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(prev.expires_at, Some(now + 3_600_000));
    assert_eq!(prev.status(now_ms()), TokenStatus::Active);
    let s4 = NewToken::generate(API_TOKEN_PREFIX);
    let (_, prev2) = s
        .rotate_token(
            &ctx(),
            &newer.id,
            RotatedToken {
                id: TokenId::generate(),
                token_hash: s4.hash(),
                preview: s4.preview(),
                grace_until: now_ms(),
            },
        )
        .await
        .unwrap();
    assert_eq!(prev2.status(now_ms()), TokenStatus::Revoked);
    let changes = s.list_changes(0, 100).await.unwrap();
    let last = changes.last().unwrap();
    assert_eq!(
        (last.entity_id.as_str(), last.op.as_str()),
        (newer.id.as_str(), "delete")
    );
}

async fn token_list_filters_and_pages(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "a").await;
    team(s, "b").await;
    let now = now_ms();
    let mut ids = HashSet::new();
    for i in 0..23 {
        let team_id = if i % 2 == 0 { "a" } else { "b" };
        let scopes: &[&str] = if i % 3 == 0 { &["tag:blue"] } else { &["*"] };
        let expires = if i % 5 == 0 {
            Some(now + 2 * DAY)
        } else {
            None
        };
        let name = if i == 7 {
            "Needle_Token 100%".to_string()
        } else {
            format!("token {i}")
        };
        let (rec, _) = token_record(team_id, &name, scopes, expires);
        ids.insert(s.create_token(&ctx(), rec).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut filter = TokenFilter {
        limit: 5,
        ..Default::default()
    };
    loop {
        let page = s.list_tokens(&filter).await.unwrap();
        for t in &page.items {
            seen.push((t.created_at, t.id.clone()));
        }
        if !page.more {
            break;
        }
        let last = page.items.last().unwrap();
        filter.after = Some(filter.position_after(last));
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(
        seen.iter().map(|(_, i)| i.clone()).collect::<HashSet<_>>(),
        ids
    );
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, strictly ordered"
    );

    let count = |f: TokenFilter| {
        let s = s.clone();
        async move {
            s.list_tokens(&TokenFilter { limit: 100, ..f })
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(
        count(TokenFilter {
            team_id: Some(TeamId("a".into())),
            ..Default::default()
        })
        .await,
        12
    );
    assert_eq!(
        count(TokenFilter {
            scope: Some("tag:blue".into()),
            ..Default::default()
        })
        .await,
        8
    );
    assert_eq!(
        count(TokenFilter {
            expiring_before: Some(now + 3 * DAY),
            ..Default::default()
        })
        .await,
        5
    );
    assert_eq!(
        count(TokenFilter {
            query: Some("needle_token 100%".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(TokenFilter {
            query: Some("_".into()),
            ..Default::default()
        })
        .await,
        1,
        "LIKE wildcards are literal"
    );
    assert_eq!(
        count(TokenFilter {
            status: Some(TokenStatus::Active),
            ..Default::default()
        })
        .await,
        23
    );
    let first = s
        .list_tokens(&TokenFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .items
        .remove(0);
    s.revoke_token(&ctx(), &first.id, "").await.unwrap();
    assert_eq!(
        count(TokenFilter {
            status: Some(TokenStatus::Revoked),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(TokenFilter {
            status: Some(TokenStatus::Active),
            ..Default::default()
        })
        .await,
        22
    );
}

async fn routes_and_secrets(b: Backend) {
    let f = fixture(b).await;
    let raw = Raw::open(&f.db).await;
    let s = &f.store;
    team(s, "core").await;
    let r = s
        .create_route(
            &ctx(),
            new_route(
                "core",
                "pay",
                "/api/pay",
                &["money", "v2"],
                bearer("v1.k1.sealed-a"),
            ),
        )
        .await
        .unwrap();
    assert!(r.backend_auth.secret_set);
    assert_eq!(
        s.route_secrets(&r.id).await.unwrap(),
        vec![("bearer_token".into(), "v1.k1.sealed-a".into())]
    );
    let before = log_position(s).await;
    let dup_name = s
        .create_route(
            &ctx(),
            new_route("core", "pay", "/api/other", &[], no_auth()),
        )
        .await;
    assert!(matches!(dup_name, Err(StoreError::AlreadyExists(m)) if m.starts_with("name:")));
    let dup_path = s
        .create_route(
            &ctx(),
            new_route("core", "pay2", "/api/pay", &[], no_auth()),
        )
        .await;
    assert!(
        matches!(dup_path, Err(StoreError::AlreadyExists(m)) if m.starts_with("path_prefix:") && m.contains("\"pay\""))
    );
    assert_eq!(log_position(s).await, before);

    // Same kind, no new secret: kept. Other kind without secret: refused.
    let kept = s
        .update_route(
            &ctx(),
            &r.id,
            RoutePatch {
                description: Some("desc".into()),
                auth: Some(AuthChange {
                    secret: None,
                    ..bearer("")
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(kept.backend_auth.secret_set);
    assert_eq!(s.route_secrets(&r.id).await.unwrap()[0].1, "v1.k1.sealed-a");
    let e = s
        .update_route(
            &ctx(),
            &r.id,
            RoutePatch {
                auth: Some(AuthChange {
                    kind: AuthKind::ApiKey,
                    header_name: "X-Key".into(),
                    username: String::new(),
                    secret: None,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(fe) if fe.field == "backend_auth.api_key.value"));
    let switched = s
        .update_route(
            &ctx(),
            &r.id,
            RoutePatch {
                auth: Some(no_auth()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!switched.backend_auth.secret_set);
    assert_eq!(raw.count("SELECT count(*) FROM route_secrets").await, 0);

    s.update_route(
        &ctx(),
        &r.id,
        RoutePatch {
            auth: Some(bearer("v1.k1.sealed-b")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.create_route(
        &ctx(),
        new_route("core", "ledger", "/api/ledger", &["money"], no_auth()),
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_route_tags().await.unwrap(),
        vec![("money".to_string(), 2), ("v2".to_string(), 1)]
    );
    let by_tag = s
        .list_routes(&RouteFilter {
            tag: Some("v2".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_tag.items.len(), 1);
    let desc = s
        .list_routes(&RouteFilter {
            sort: RouteSort::Name,
            descending: true,
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(desc.items[0].name, "pay");
    assert!(desc.more);
    let next = s
        .list_routes(&RouteFilter {
            sort: RouteSort::Name,
            descending: true,
            limit: 1,
            after: Some(("pay".into(), desc.items[0].id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.items[0].name, "ledger");
    assert_eq!(s.get_route("pay").await.unwrap().id, r.id);

    s.delete_route(&ctx(), &r.id).await.unwrap();
    assert_eq!(
        raw.count("SELECT count(*) FROM route_secrets").await,
        0,
        "secrets go with their route"
    );
    assert!(matches!(
        s.get_route(r.id.as_str()).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn team_delete_refuses_then_cascades(b: Backend) {
    let f = fixture(b).await;
    let raw = Raw::open(&f.db).await;
    let s = &f.store;
    team(s, "doomed").await;
    team(s, "other").await;
    let (a, _) = token_record("doomed", "alpha", &["*"], None);
    let (bb, _) = token_record("doomed", "beta", &["*"], None);
    let (c, _) = token_record("other", "gamma", &["*"], None);
    let a = s.create_token(&ctx(), a).await.unwrap();
    let bb = s.create_token(&ctx(), bb).await.unwrap();
    s.create_token(&ctx(), c).await.unwrap();
    s.create_route(
        &ctx(),
        new_route("doomed", "svc", "/svc", &[], bearer("v1.k1.s")),
    )
    .await
    .unwrap();

    let before = log_position(s).await;
    let e = s
        .delete_team(&ctx(), &TeamId("doomed".into()), false)
        .await
        .unwrap_err();
    match e {
        StoreError::Precondition(m) => {
            assert!(
                m.contains("alpha") && m.contains("beta") && m.contains("svc"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log_position(s).await, before);

    let done = s
        .delete_team(&ctx(), &TeamId("doomed".into()), true)
        .await
        .unwrap();
    let revoked: HashSet<_> = done.revoked_token_ids.into_iter().collect();
    assert_eq!(revoked, HashSet::from([a.id.clone(), bb.id.clone()]));
    assert_eq!(done.deleted_route_ids.len(), 1);
    // Every revoked token has a delete change carrying its hash, in the same commit.
    let changes = s.list_changes(before.1, 100).await.unwrap();
    let deleted: HashSet<_> = changes
        .iter()
        .filter(|c| c.entity_type == "token" && c.op == "delete")
        .map(|c| TokenId(c.entity_id.clone()))
        .collect();
    assert_eq!(deleted, revoked);
    assert!(
        changes
            .iter()
            .all(|c| c.entity_type != "token" || c.payload.contains("token_hash"))
    );
    assert_eq!(raw.count("SELECT count(*) FROM route_secrets").await, 0);
    assert_eq!(
        raw.count("SELECT count(*) FROM tokens WHERE team_id = 'doomed'")
            .await,
        0
    );
    assert_eq!(raw.count("SELECT count(*) FROM tokens").await, 1);
    assert!(matches!(
        s.get_team(&TeamId("doomed".into())).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn audit_chain_and_filters(b: Backend) {
    let f = fixture(b).await;
    let raw = Raw::open(&f.db).await;
    let s = &f.store;
    team(s, "core").await;
    for i in 0..5 {
        let (rec, _) = token_record("core", &format!("t{i}"), &["*"], None);
        s.create_token(&ctx(), rec).await.unwrap();
    }
    let report = s.verify_audit_chain().await.unwrap();
    assert_eq!((report.checked, report.first_bad.clone()), (6, None));
    let (page, total) = s
        .list_audit(&AuditPage {
            filter: AuditFilter {
                action: Some("token.create".into()),
                ..Default::default()
            },
            limit: 2,
            before_seq: None,
        })
        .await
        .unwrap();
    assert_eq!(total, 5);
    assert_eq!(page.items.len(), 2);
    assert!(page.more);
    let e = &page.items[0];
    assert_eq!(
        (
            e.actor_id.as_str(),
            e.request_id.as_str(),
            e.source_ip.as_str()
        ),
        ("mk_test", "req-test", "127.0.0.1")
    );
    assert!(e.diff.contains("\"name\""));
    assert!(
        !e.diff.contains("token_hash"),
        "hashes stay out of the audit diff"
    );
    let (next, _) = s
        .list_audit(&AuditPage {
            filter: AuditFilter {
                action: Some("token.create".into()),
                ..Default::default()
            },
            limit: 10,
            before_seq: Some(page.items[1].seq),
        })
        .await
        .unwrap();
    assert_eq!(next.items.len(), 3);
    use futures::StreamExt;
    let all: Vec<_> = s.export_audit(AuditFilter::default()).collect().await;
    let seqs: Vec<i64> = all.into_iter().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());

    // Tampering with any row breaks the chain at that row.
    raw.exec("UPDATE audit_events SET actor_name = 'mallory' WHERE seq = 3")
        .await;
    let report = s.verify_audit_chain().await.unwrap();
    assert_eq!(report.first_bad.map(|(seq, _)| seq), Some(3));
    raw.exec("UPDATE audit_events SET actor_name = 'tester' WHERE seq = 3")
        .await;
    assert!(s.verify_audit_chain().await.unwrap().first_bad.is_none());
    // Removing the newest row is caught by the head.
    raw.exec("DELETE FROM audit_events WHERE seq = 6").await;
    assert!(s.verify_audit_chain().await.unwrap().first_bad.is_some());
}

/// Revision order must equal commit order: a follower polling "revisions after N" must never
/// see a gap that is filled later (it would skip that change forever).
async fn revisions_follow_commit_order(b: Backend) {
    let f = fixture(b).await;
    let raw = Raw::open(&f.db).await;
    let s = f.store.clone();
    team(&s, "core").await;
    let writers = 8;
    let per_writer = 40;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = 0i64;
            let mut polls = 0u64;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let revs = raw.revisions_after(last).await;
                for r in &revs {
                    assert_eq!(
                        *r,
                        last + 1,
                        "gap observed: saw {r} while {} was not yet visible",
                        last + 1
                    );
                    last = *r;
                }
                polls += 1;
                if finished && revs.is_empty() {
                    return (last, polls);
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let (rec, _) = token_record("core", &format!("w{w}-{i}"), &["*"], None);
                s.create_token(&ctx(), rec).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (last, polls) = watcher.await.unwrap();
    assert_eq!(
        last,
        1 + writers * per_writer,
        "every revision seen exactly once"
    );
    assert!(polls > 1);
    assert!(s.verify_audit_chain().await.unwrap().first_bad.is_none());
}

async fn management_keys(b: Backend) {
    use keygate_contracts::token::MANAGEMENT_KEY_PREFIX;
    use keygate_control_plane::ids::KeyId;
    use keygate_control_plane::store::NewManagementKey;
    let f = fixture(b).await;
    let s = &f.store;
    assert_eq!(s.count_management_keys().await.unwrap(), 0);
    let k = NewToken::generate(MANAGEMENT_KEY_PREFIX);
    s.create_management_key(
        &ctx(),
        NewManagementKey {
            id: KeyId::generate(),
            service_account_id: None,
            name: "ops".into(),
            key_hash: k.hash(),
            preview: k.preview(),
            is_bootstrap: false,
            expires_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(s.count_management_keys().await.unwrap(), 1);
    assert_eq!(
        s.find_management_key(&k.hash())
            .await
            .unwrap()
            .unwrap()
            .name,
        "ops"
    );
    assert!(s.find_management_key("00").await.unwrap().is_none());
}

/// Per-route CORS origins and rate limit: stored, patched field by field, audited as a diff,
/// and carried to the edge (change feed and snapshot).
async fn route_edge_options(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    let mut nr = new_route("core", "pay", "/api/pay", &[], no_auth());
    nr.cors_origins = vec![
        "https://a.example.com".into(),
        "https://b.example.com".into(),
    ];
    nr.rate_limit_per_minute = 600;
    let r = s.create_route(&ctx(), nr).await.unwrap();
    assert_eq!(
        r.cors_origins,
        ["https://a.example.com", "https://b.example.com"]
    );
    assert_eq!(r.rate_limit_per_minute, 600);
    assert_eq!(s.get_route("pay").await.unwrap(), r);

    // Changing one keeps the other.
    let after = s
        .update_route(
            &ctx(),
            &r.id,
            RoutePatch {
                cors_origins: Some(vec!["*".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (after.cors_origins.clone(), after.rate_limit_per_minute),
        (vec!["*".to_string()], 600)
    );
    let (page, _) = s
        .list_audit(&AuditPage {
            filter: AuditFilter {
                action: Some("route.update".into()),
                ..Default::default()
            },
            limit: 1,
            before_seq: None,
        })
        .await
        .unwrap();
    let diff: serde_json::Value = serde_json::from_str(&page.items[0].diff).unwrap();
    assert_eq!(
        diff["cors_origins"],
        serde_json::json!([["https://a.example.com", "https://b.example.com"], ["*"]])
    );
    assert!(diff.get("rate_limit_per_minute").is_none(), "{diff}");
    let after = s
        .update_route(
            &ctx(),
            &r.id,
            RoutePatch {
                rate_limit_per_minute: Some(0),
                cors_origins: Some(vec![]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (after.cors_origins.len(), after.rate_limit_per_minute),
        (0, 0)
    );
    // The same values again change nothing: no audit row, no change event.
    let before = log_position(s).await;
    s.update_route(
        &ctx(),
        &r.id,
        RoutePatch {
            rate_limit_per_minute: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(log_position(s).await, before);

    // The edge sees them, through the feed's route table and through a snapshot.
    s.update_route(
        &ctx(),
        &r.id,
        RoutePatch {
            rate_limit_per_minute: Some(120),
            cors_origins: Some(vec!["http://localhost:5173".into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let edge = s.edge_routes().await.unwrap();
    assert_eq!(edge[0].route.cors_origins, ["http://localhost:5173"]);
    assert_eq!(edge[0].route.rate_limit_per_minute, 120);
    use futures::StreamExt;
    let mut parts = s.snapshot(100);
    let mut seen = false;
    while let Some(part) = parts.next().await {
        if let keygate_control_plane::sync::SnapshotPart::Routes(routes) = part.unwrap() {
            assert_eq!(routes[0].route.rate_limit_per_minute, 120);
            assert_eq!(routes[0].route.cors_origins, ["http://localhost:5173"]);
            seen = true;
        }
    }
    assert!(seen);
}

/// The per-token rate limit: stored, patched on its own, audited as a diff, kept by a
/// rotation, and carried to the edge (per-id feed read and snapshot).
async fn token_rate_limit(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    let (mut rec, _) = token_record("core", "limited", &["*"], None);
    rec.rate_limit_per_minute = 600;
    let t = s.create_token(&ctx(), rec).await.unwrap();
    assert_eq!(t.rate_limit_per_minute, 600);
    assert_eq!(s.get_token(&t.id).await.unwrap(), t);
    let listed = s
        .list_tokens(&TokenFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.items[0].rate_limit_per_minute, 600);
    let (plain, _) = token_record("core", "plain", &["*"], None);
    let plain = s.create_token(&ctx(), plain).await.unwrap();
    assert_eq!(plain.rate_limit_per_minute, 0, "0: no limit");

    let last_audit = |action: &'static str| async move {
        let (page, _) = s
            .list_audit(&AuditPage {
                filter: AuditFilter {
                    action: Some(action.into()),
                    ..Default::default()
                },
                limit: 1,
                before_seq: None,
            })
            .await
            .unwrap();
        let diff: serde_json::Value = serde_json::from_str(&page.items[0].diff).unwrap();
        diff
    };
    assert_eq!(
        last_audit("token.create").await["rate_limit_per_minute"],
        serde_json::json!([null, 0])
    );

    // Changing the limit alone keeps everything else; the diff names only the limit.
    let u = s
        .update_token(
            &ctx(),
            &t.id,
            TokenPatch {
                rate_limit_per_minute: Some(120),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.rate_limit_per_minute, 120);
    assert_eq!((u.name.as_str(), &u.scopes), (t.name.as_str(), &t.scopes));
    assert_eq!(
        last_audit("token.update").await,
        serde_json::json!({"rate_limit_per_minute": [600, 120]})
    );
    // Changing something else keeps the limit.
    let u = s
        .update_token(
            &ctx(),
            &t.id,
            TokenPatch {
                name: Some("limited-renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.rate_limit_per_minute, 120);
    // The same limit again changes nothing: no audit row, no change event.
    let pos = log_position(s).await;
    s.update_token(
        &ctx(),
        &t.id,
        TokenPatch {
            rate_limit_per_minute: Some(120),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(log_position(s).await, pos);

    // The edge sees it: the feed's per-id read and the snapshot.
    let edge = s
        .edge_tokens(&[t.id.clone(), plain.id.clone()])
        .await
        .unwrap();
    let rpm_of = |id: &TokenId| {
        edge.iter()
            .find(|e| &e.token_id == id)
            .map(|e| e.rate_limit_per_minute)
    };
    assert_eq!((rpm_of(&t.id), rpm_of(&plain.id)), (Some(120), Some(0)));
    use futures::StreamExt;
    let mut parts = s.snapshot(100);
    let mut seen = Vec::new();
    while let Some(part) = parts.next().await {
        if let keygate_control_plane::sync::SnapshotPart::Tokens(tokens) = part.unwrap() {
            seen.extend(
                tokens
                    .into_iter()
                    .map(|e| (e.token_id.0, e.rate_limit_per_minute)),
            );
        }
    }
    seen.sort();
    let mut want = vec![(t.id.0.clone(), 120), (plain.id.0.clone(), 0)];
    want.sort();
    assert_eq!(seen, want);

    // A rotation's replacement keeps the limit, and so does its edge record.
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    let (new, _) = s
        .rotate_token(
            &ctx(),
            &t.id,
            RotatedToken {
                id: TokenId::generate(),
                token_hash: secret.hash(),
                preview: secret.preview(),
                grace_until: now_ms() + 3_600_000,
            },
        )
        .await
        .unwrap();
    assert_eq!(new.rate_limit_per_minute, 120);
    assert_eq!(
        last_audit("token.rotate").await["rate_limit_per_minute"],
        serde_json::json!([null, 120])
    );
    let edge = s.edge_tokens(std::slice::from_ref(&new.id)).await.unwrap();
    assert_eq!(edge[0].rate_limit_per_minute, 120);

    // 0 removes it.
    let cleared = s
        .update_token(
            &ctx(),
            &new.id,
            TokenPatch {
                rate_limit_per_minute: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.rate_limit_per_minute, 0);
    assert_eq!(
        last_audit("token.update").await,
        serde_json::json!({"rate_limit_per_minute": [120, 0]})
    );
    let edge = s.edge_tokens(std::slice::from_ref(&new.id)).await.unwrap();
    assert_eq!(edge[0].rate_limit_per_minute, 0);
}

fn usage_event(id: &str, at: i64, token: Option<(&TokenId, &str)>, status: u16) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        at,
        token_hash: token.map(|_| "ab".repeat(32)).unwrap_or_default(),
        token_id: token.map(|(t, _)| t.clone()),
        team_id: token.map(|(_, team)| TeamId(team.into())),
        route: "billing".into(),
        method: "GET".into(),
        status,
        error: String::new(),
        latency_us: 1200,
        request_bytes: 10,
        response_bytes: 20,
        client_ip: "192.0.2.7".into(),
        user_agent: "conformance".into(),
        config_revision: 3,
        request_id: format!("req-{id}"),
    }
}

fn batch(gateway: &str, events: Vec<UsageEvent>, dropped: i64) -> UsageBatch {
    UsageBatch {
        gateway: gateway.into(),
        reported_by: "service_account:sa_gw".into(),
        events,
        dropped,
        ..Default::default()
    }
}

fn usage_filter(limit: u32) -> UsageFilter {
    UsageFilter {
        limit,
        ..Default::default()
    }
}

/// Every event matching `f`, walking pages of `f.limit`; event ids newest first.
async fn usage_ids(s: &DynStore, mut f: UsageFilter) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = s.list_usage(&f).await.unwrap();
        let last = page.items.last().map(|e| (e.event.at, e.id));
        ids.extend(page.items.into_iter().map(|e| e.event.event_id));
        if !page.more {
            return ids;
        }
        f.after = last;
    }
}

async fn usage_ingest_list_and_retention(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    team(s, "ops").await;
    let (core_rec, _) = token_record("core", "ci", &["*"], None);
    let (ops_rec, _) = token_record("ops", "bot", &["*"], None);
    let core_tok = s.create_token(&ctx(), core_rec).await.unwrap().id;
    let ops_tok = s.create_token(&ctx(), ops_rec).await.unwrap().id;
    let now = now_ms();
    let before = log_position(s).await;

    let first = batch(
        "edge-1",
        vec![
            usage_event("e1", now - 5000, Some((&core_tok, "core")), 200),
            usage_event("e2", now - 3000, Some((&core_tok, "core")), 403),
            usage_event("e3", now - 4000, Some((&ops_tok, "ops")), 200),
            usage_event("e4", now - 2000, None, 401),
        ],
        2,
    );
    assert_eq!(s.ingest_usage(&first).await.unwrap().events, 4);
    // Telemetry: no audit row, no change event.
    assert_eq!(log_position(s).await, before);
    let last_used = |id: &TokenId| {
        let id = id.clone();
        async move { s.get_token(&id).await.unwrap().last_used_at }
    };
    assert_eq!(last_used(&core_tok).await, Some(now - 3000));
    assert_eq!(last_used(&ops_tok).await, Some(now - 4000));
    let core_updated = s.get_token(&core_tok).await.unwrap().updated_at;

    // A resent batch is stored once.
    assert_eq!(s.ingest_usage(&first).await.unwrap().events, 0);
    // An older event never moves last_used_at back; a newer one moves it forward.
    let late = batch(
        "edge-1",
        vec![
            usage_event("e0", now - 60_000, Some((&core_tok, "core")), 200),
            usage_event("e5", now - 1000, Some((&ops_tok, "ops")), 200),
        ],
        0,
    );
    assert_eq!(s.ingest_usage(&late).await.unwrap().events, 2);
    assert_eq!(last_used(&core_tok).await, Some(now - 3000));
    assert_eq!(last_used(&ops_tok).await, Some(now - 1000));
    assert_eq!(
        s.get_token(&core_tok).await.unwrap().updated_at,
        core_updated
    );
    // Idempotency is per gateway: another gateway's "e1" is a different event.
    let other = batch("edge-2", vec![usage_event("e1", now - 1500, None, 404)], 0);
    assert_eq!(s.ingest_usage(&other).await.unwrap().events, 1);
    // A call with no events only reports drops.
    assert_eq!(
        s.ingest_usage(&batch("edge-2", vec![], 5))
            .await
            .unwrap()
            .events,
        0
    );
    assert_eq!(log_position(s).await, before);

    let gateways = s.list_gateways().await.unwrap();
    let totals: Vec<(&str, i64, i64)> = gateways
        .iter()
        .map(|g| (g.name.as_str(), g.events_total, g.dropped_total))
        .collect();
    assert_eq!(totals, vec![("edge-1", 6, 2), ("edge-2", 1, 5)]);
    assert!(gateways[0].first_seen_at <= gateways[0].last_seen_at);
    assert_eq!(gateways[0].reported_by, "service_account:sa_gw");

    // Every field round-trips.
    let page = s.list_usage(&usage_filter(1)).await.unwrap();
    assert!(page.more);
    let newest = &page.items[0];
    assert_eq!(
        (newest.gateway.as_str(), newest.event.event_id.as_str()),
        ("edge-1", "e5")
    );
    assert_eq!(
        newest.event,
        usage_event("e5", now - 1000, Some((&ops_tok, "ops")), 200)
    );

    // Filters, newest first.
    let all = usage_ids(s, usage_filter(2)).await;
    assert_eq!(all, ["e5", "e1", "e4", "e2", "e3", "e1", "e0"]);
    let by = |f: UsageFilter| usage_ids(s, f);
    assert_eq!(
        by(UsageFilter {
            team_id: Some(TeamId("core".into())),
            ..usage_filter(50)
        })
        .await,
        ["e2", "e1", "e0"]
    );
    assert_eq!(
        by(UsageFilter {
            token_id: Some(ops_tok.clone()),
            ..usage_filter(50)
        })
        .await,
        ["e5", "e3"]
    );
    assert_eq!(
        by(UsageFilter {
            status: Some(403),
            ..usage_filter(50)
        })
        .await,
        ["e2"]
    );
    assert_eq!(
        by(UsageFilter {
            route: Some("billing".into()),
            start: Some(now - 4000),
            end: Some(now - 2000),
            ..usage_filter(50)
        })
        .await,
        ["e2", "e3"]
    );
    assert_eq!(
        by(UsageFilter {
            route: Some("other".into()),
            ..usage_filter(50)
        })
        .await,
        Vec::<String>::new()
    );
    // A caller's visible teams: events without a team are not among them.
    assert_eq!(
        by(UsageFilter {
            visible_teams: Some(vec![TeamId("ops".into())]),
            ..usage_filter(1)
        })
        .await,
        ["e5", "e3"]
    );
    assert!(
        by(UsageFilter {
            visible_teams: Some(vec![]),
            ..usage_filter(50)
        })
        .await
        .is_empty()
    );

    // Retention deletes by event time, and only what is older.
    assert_eq!(s.delete_usage_before(now - 4000).await.unwrap(), 2);
    assert_eq!(
        usage_ids(s, usage_filter(50)).await,
        ["e5", "e1", "e4", "e2", "e3"]
    );
    assert_eq!(s.delete_usage_before(now - 4000).await.unwrap(), 0);
    assert_eq!(log_position(s).await, before);
}

/// Batches larger than one INSERT statement, many events at the same instant (the row id
/// breaks ties across pages), and a retention pass larger than one DELETE statement.
/// An event whose key the gateway no longer knows (no token id; e.g. a revoked token, gone
/// from the edge) is attributed to its token and team by the key's hash, and is not a use.
async fn usage_of_keys_the_edge_forgot_is_attributed(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    let (rec, secret) = token_record("core", "ci", &["*"], None);
    let tok = s.create_token(&ctx(), rec).await.unwrap().id;
    s.revoke_token(&ctx(), &tok, "leaked").await.unwrap();
    let now = now_ms();
    let mut revoked_key = usage_event("r1", now - 2000, None, 401);
    revoked_key.token_hash = secret.hash();
    revoked_key.error = "invalid_key".into();
    let mut unknown_key = usage_event("r2", now - 1000, None, 401);
    unknown_key.token_hash = "cd".repeat(32);
    unknown_key.error = "invalid_key".into();
    assert_eq!(
        s.ingest_usage(&batch("edge-1", vec![revoked_key, unknown_key], 0))
            .await
            .unwrap()
            .events,
        2
    );
    let of_token = s
        .list_usage(&UsageFilter {
            token_id: Some(tok.clone()),
            ..usage_filter(10)
        })
        .await
        .unwrap()
        .items;
    assert_eq!(of_token.len(), 1);
    assert_eq!(of_token[0].event.event_id, "r1");
    assert_eq!(of_token[0].event.team_id, Some(TeamId("core".into())));
    let of_team = s
        .list_usage(&UsageFilter {
            team_id: Some(TeamId("core".into())),
            ..usage_filter(10)
        })
        .await
        .unwrap()
        .items;
    assert_eq!(of_team.len(), 1);
    let all = s.list_usage(&usage_filter(10)).await.unwrap().items;
    let unknown = all.iter().find(|e| e.event.event_id == "r2").unwrap();
    assert_eq!(
        (&unknown.event.token_id, &unknown.event.team_id),
        (&None, &None)
    );
    assert_eq!(s.get_token(&tok).await.unwrap().last_used_at, None);
}

async fn usage_large_batches_and_ties(b: Backend) {
    let f = fixture(b).await;
    let s = &f.store;
    team(s, "core").await;
    let (rec, _) = token_record("core", "ci", &["*"], None);
    let tok = s.create_token(&ctx(), rec).await.unwrap().id;
    let now = now_ms();
    let events: Vec<UsageEvent> = (0..5000)
        .map(|i| {
            usage_event(
                &format!("ev-{i:05}"),
                now - 100_000 + (i / 1000),
                Some((&tok, "core")),
                200,
            )
        })
        .collect();
    let big = batch("edge-1", events, 0);
    assert_eq!(s.ingest_usage(&big).await.unwrap().events, 5000);
    assert_eq!(s.ingest_usage(&big).await.unwrap().events, 0);
    assert_eq!(
        s.get_token(&tok).await.unwrap().last_used_at,
        Some(now - 100_000 + 4)
    );
    let ids = usage_ids(s, usage_filter(777)).await;
    assert_eq!(ids.len(), 5000);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        5000,
        "no row twice"
    );
    assert!(ids[..1000].iter().all(|id| id.as_str() >= "ev-04000"));
    assert_eq!(s.delete_usage_before(now).await.unwrap(), 5000);
    assert!(usage_ids(s, usage_filter(10)).await.is_empty());
}

/// One simulated request, as the gateway saw it.
#[derive(Clone, Debug)]
struct Req {
    at: i64,
    token: Option<(TokenId, String)>,
    route: &'static str,
    status: u16,
    error: &'static str,
    latency_us: u64,
    req_bytes: u64,
    resp_bytes: u64,
}

fn random_requests(tokens: &[(TokenId, String)], now: i64, n: usize, seed: u64) -> Vec<Req> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let routes = ["billing", "files", ""];
    let outcomes: [(u16, &str); 9] = [
        (200, ""),
        (201, ""),
        (304, ""),
        (401, "invalid_key"),
        (403, "forbidden"),
        (404, "route_not_found"),
        (429, "rate_limited"),
        (500, ""),
        (502, "bad_gateway"),
    ];
    (0..n)
        .map(|_| {
            let token = match rng.random_range(0..=tokens.len()) {
                i if i < tokens.len() => Some(tokens[i].clone()),
                _ => None,
            };
            let (status, error) = outcomes[rng.random_range(0..outcomes.len())];
            // Log-uniform latencies from 50 µs to 5 s.
            let latency_us = (50f64 * (1e5f64).powf(rng.random::<f64>())) as u64;
            Req {
                at: now - rng.random_range(0..3 * 3_600_000),
                token,
                route: routes[rng.random_range(0..routes.len())],
                status,
                error,
                latency_us,
                req_bytes: rng.random_range(0..10_000),
                resp_bytes: rng.random_range(0..100_000),
            }
        })
        .collect()
}

/// What a gateway sends for `reqs`: per-thread accumulators, merged, cut into batches.
fn rollup_batches(reqs: &[Req], gateway: &str) -> Vec<UsageBatch> {
    let mut workers = [
        keygate_rollup::Accumulator::new(),
        keygate_rollup::Accumulator::new(),
    ];
    for (i, r) in reqs.iter().enumerate() {
        let (tok, team) = r
            .token
            .as_ref()
            .map(|(t, team)| (t.as_str(), team.as_str()))
            .unwrap_or(("", ""));
        workers[i % 2].record(
            keygate_rollup::RollupKeyRef {
                minute: keygate_rollup::minute_of(r.at),
                token_id: tok,
                team_id: team,
                route: r.route,
                status: r.status,
                error: r.error,
            },
            r.latency_us,
            r.req_bytes,
            r.resp_bytes,
        );
    }
    let [mut a, b] = workers;
    a.merge(b);
    let rollups = a.drain();
    rollups
        .chunks(rollups.len().div_ceil(3).max(1))
        .enumerate()
        .map(|(i, chunk)| UsageBatch {
            gateway: gateway.into(),
            reported_by: "service_account:sa_gw".into(),
            rollups: chunk.to_vec(),
            batch_id: Some(format!("b{i}")),
            events_sampled: true,
            ..Default::default()
        })
        .collect()
}

/// What a sender of plain events sends for `reqs`.
fn event_batches(reqs: &[Req], gateway: &str) -> Vec<UsageBatch> {
    let events: Vec<UsageEvent> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| UsageEvent {
            event_id: format!("ev-{i}"),
            at: r.at,
            token_hash: String::new(),
            token_id: r.token.as_ref().map(|(t, _)| t.clone()),
            team_id: r.token.as_ref().map(|(_, team)| TeamId(team.clone())),
            route: r.route.into(),
            method: "GET".into(),
            status: r.status,
            error: r.error.into(),
            latency_us: r.latency_us as i64,
            request_bytes: r.req_bytes as i64,
            response_bytes: r.resp_bytes as i64,
            client_ip: "192.0.2.9".into(),
            user_agent: String::new(),
            config_revision: 1,
            request_id: String::new(),
        })
        .collect();
    events
        .chunks(1000)
        .map(|c| batch(gateway, c.to_vec(), 0))
        .collect()
}

/// Checks `got` against the exact figures of `reqs`: counts, bytes, latency sum/min/max
/// equal; p50/p95/p99 within 1 % of the exact value at rank floor(q (n - 1)).
fn assert_exact(what: &str, got: &Stats, reqs: &[&Req]) {
    assert_eq!(got.calls, reqs.len() as u64, "{what}: calls");
    let errors = reqs.iter().filter(|r| r.status >= 400).count() as u64;
    assert_eq!(got.errors, errors, "{what}: errors");
    assert_eq!(
        got.request_bytes,
        reqs.iter().map(|r| r.req_bytes).sum::<u64>(),
        "{what}: request bytes"
    );
    assert_eq!(
        got.response_bytes,
        reqs.iter().map(|r| r.resp_bytes).sum::<u64>(),
        "{what}: response bytes"
    );
    let mut lat: Vec<u64> = reqs.iter().map(|r| r.latency_us).collect();
    lat.sort_unstable();
    assert_eq!(
        got.latency_sum_us,
        lat.iter().sum::<u64>(),
        "{what}: latency sum"
    );
    if lat.is_empty() {
        return;
    }
    assert_eq!(got.latency_min_us, lat[0], "{what}: min");
    assert_eq!(got.latency_max_us, *lat.last().unwrap(), "{what}: max");
    for q in [0.5, 0.95, 0.99] {
        let exact = lat[(q * (lat.len() - 1) as f64).floor() as usize] as f64;
        let est = got.sketch.quantile(q).unwrap() as f64;
        assert!(
            (est - exact).abs() <= 0.01 * exact,
            "{what}: p{} {est} vs exact {exact}",
            q * 100.0
        );
    }
}

async fn usage_rollups_agree_with_an_exact_computation(b: Backend) {
    use keygate_control_plane::usage::analytics::{DAY_MS, StatusClass, Tier, TopBy, UsageScope};
    let now = now_ms();
    // Two databases: one fed rollups (a rollup gateway), one fed the same requests as plain
    // events (an older gateway): both must answer the same.
    let fa = fixture(b).await;
    let fb = fixture(b).await;
    let mut tokens = Vec::new();
    for s in [&fa.store, &fb.store] {
        team(s, "core").await;
        team(s, "ops").await;
    }
    for (team_id, name) in [("core", "t1"), ("core", "t2"), ("ops", "t3")] {
        let (rec, _) = token_record(team_id, name, &["*"], None);
        let id = fa.store.create_token(&ctx(), rec.clone()).await.unwrap().id;
        fb.store.create_token(&ctx(), rec).await.unwrap();
        tokens.push((id, team_id.to_owned()));
    }
    let reqs = random_requests(&tokens, now, 3000, 7);
    let rollups = rollup_batches(&reqs, "edge-1");
    for batch in &rollups {
        let out = fa.store.ingest_usage(batch).await.unwrap();
        assert!(!out.replayed && out.rollups > 0);
    }
    for batch in event_batches(&reqs, "edge-1") {
        assert_eq!(fb.store.ingest_usage(&batch).await.unwrap().events, 1000);
    }
    // A replayed batch changes nothing.
    let again = fa.store.ingest_usage(&rollups[0]).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.rollups, 0);

    let day0 = Tier::Day.floor(now) - DAY_MS;
    let (start, end) = (day0, day0 + 3 * DAY_MS);
    let scope = |f: &dyn Fn(&mut UsageScope)| {
        let mut s = UsageScope {
            start,
            end,
            ..Default::default()
        };
        f(&mut s);
        s
    };
    let t1 = tokens[0].0.clone();
    type Case<'a> = (&'a str, UsageScope, Box<dyn Fn(&Req) -> bool + 'a>);
    let cases: Vec<Case> = vec![
        ("all", scope(&|_| {}), Box::new(|_| true)),
        (
            "team core",
            scope(&|s| s.team_id = Some(TeamId("core".into()))),
            Box::new(|r| r.token.as_ref().is_some_and(|t| t.1 == "core")),
        ),
        (
            "token t1",
            scope(&|s| s.token_id = Some(t1.clone())),
            Box::new(|r| r.token.as_ref().is_some_and(|t| t.0 == tokens[0].0)),
        ),
        (
            "route billing",
            scope(&|s| s.route = Some("billing".into())),
            Box::new(|r| r.route == "billing"),
        ),
        (
            "core x files",
            scope(&|s| {
                s.team_id = Some(TeamId("core".into()));
                s.route = Some("files".into());
            }),
            Box::new(|r| r.route == "files" && r.token.as_ref().is_some_and(|t| t.1 == "core")),
        ),
        (
            "errors",
            scope(&|s| s.status = Some(StatusClass::Errors)),
            Box::new(|r| r.status >= 400),
        ),
        (
            "gateway",
            scope(&|s| s.gateway = Some("edge-1".into())),
            Box::new(|_| true),
        ),
        (
            // A member of ops only sees ops' calls.
            "visible ops",
            scope(&|s| s.visible_teams = Some(vec![TeamId("ops".into())])),
            Box::new(|r| r.token.as_ref().is_some_and(|t| t.1 == "ops")),
        ),
    ];
    for (what, sc, keep) in &cases {
        let expect: Vec<&Req> = reqs.iter().filter(|r| keep(r)).collect();
        for (db, store) in [("rollups", &fa.store), ("events", &fb.store)] {
            // The tiers agree: one step per tier, each answer exact.
            for step in [60_000, 3_600_000, 3 * DAY_MS] {
                let a = store.usage_series(sc, step).await.unwrap();
                assert_exact(&format!("{db} {what} step {step}"), &a.total, &expect);
                let summed = a.points.iter().map(|(_, p)| p.calls).sum::<u64>();
                assert_eq!(summed, expect.len() as u64, "{db} {what}: series sum");
            }
        }
    }
    // Minute points hold their minute's requests. Over a range that starts within the minute
    // tier's retention: the whole test range starts at yesterday 00:00, which is older than
    // that from 23:55 on (the store then reads the hour tier), so it cannot serve here.
    let recent = UsageScope {
        start: keygate_rollup::minute_of(now - 3 * 3_600_000) - 60_000,
        end: now + 60_000,
        ..Default::default()
    };
    let a = fa.store.usage_series(&recent, 60_000).await.unwrap();
    let minute = keygate_rollup::minute_of(reqs[0].at);
    let point = a.points.iter().find(|(t, _)| *t == minute).unwrap();
    let in_minute: Vec<&Req> = reqs
        .iter()
        .filter(|r| keygate_rollup::minute_of(r.at) == minute)
        .collect();
    assert_exact("one minute", &point.1, &in_minute);

    // Rankings, per-token totals, first and last use.
    // Token rankings over whole days read `usage_token_day`; with a route, gateway or status
    // filter, or over part of a day, they read the detail tiers. Both must be exact.
    let part_day = scope(&|s| s.end = now);
    let token_cases = [&cases[0], &cases[1], &cases[3], &cases[5], &cases[7]];
    for store in [&fa.store, &fb.store] {
        for (what, sc, keep) in token_cases.iter().map(|c| (c.0, &c.1, &c.2)).chain([(
            "part of a day",
            &part_day,
            &cases[0].2,
        )]) {
            let sc = if what == "part of a day" {
                let mut p = sc.clone();
                p.start = keygate_rollup::minute_of(now - 2 * 3_600_000);
                p
            } else {
                sc.clone()
            };
            for by_errors in [false, true] {
                let (top, _) = store
                    .usage_top(&sc, TopBy::Token, by_errors, 10)
                    .await
                    .unwrap();
                let mut expect: HashMap<String, (u64, u64)> = HashMap::new();
                for r in reqs
                    .iter()
                    .filter(|r| keep(r) && r.at >= sc.start && r.at < sc.end)
                {
                    let k = r.token.as_ref().map(|t| t.0.as_str()).unwrap_or("");
                    let e = expect.entry(k.to_owned()).or_default();
                    e.0 += 1;
                    e.1 += u64::from(r.status >= 400);
                }
                assert_eq!(top.len(), expect.len(), "{what}: ranked tokens");
                for row in &top {
                    assert_eq!(
                        (row.calls, row.errors),
                        expect[&row.key],
                        "{what} by_errors {by_errors}: token {}",
                        row.key
                    );
                }
                let order = |r: &keygate_control_plane::usage::analytics::TopRow| {
                    if by_errors {
                        (r.errors, r.calls)
                    } else {
                        (r.calls, 0)
                    }
                };
                assert!(
                    top.windows(2).all(|w| order(&w[0]) >= order(&w[1])),
                    "{what}: order"
                );
            }
        }
        let ids: Vec<TokenId> = tokens.iter().map(|t| t.0.clone()).collect();
        let totals = store.token_totals(&ids, start, end).await.unwrap();
        for t in &totals {
            let n = reqs
                .iter()
                .filter(|r| r.token.as_ref().is_some_and(|x| x.0 == t.token_id))
                .count() as u64;
            assert_eq!(t.calls, n);
        }
        let t1_at: Vec<i64> = reqs
            .iter()
            .filter(|r| r.token.as_ref().is_some_and(|x| x.0 == t1))
            .map(|r| r.at)
            .collect();
        let (first, last) = store.first_last_use(&cases[2].1).await.unwrap().unwrap();
        assert_eq!(
            first,
            keygate_rollup::minute_of(*t1_at.iter().min().unwrap())
        );
        assert_eq!(
            last,
            keygate_rollup::minute_of(*t1_at.iter().max().unwrap())
        );
        let statuses = store.usage_statuses(&cases[0].1).await.unwrap();
        assert_eq!(
            statuses.iter().map(|(_, n)| n).sum::<u64>(),
            reqs.len() as u64
        );
        let by_route = store
            .usage_breakdown(&cases[2].1, TopBy::Route, 10)
            .await
            .unwrap();
        assert_eq!(
            by_route.iter().map(|(_, s)| s.calls).sum::<u64>(),
            t1_at.len() as u64
        );
    }
    // last_used_at comes from the rollups (to the minute) or the events (exact).
    let t1_last = reqs
        .iter()
        .filter(|r| r.token.as_ref().is_some_and(|x| x.0 == t1))
        .map(|r| r.at)
        .max()
        .unwrap();
    let got = fa.store.get_token(&t1).await.unwrap().last_used_at;
    assert_eq!(got, Some(keygate_rollup::minute_of(t1_last)));
    let got = fb.store.get_token(&t1).await.unwrap().last_used_at;
    assert_eq!(got, Some(t1_last));

    // Retention: three days on, the minute tier and the raw events are gone; hours and
    // days keep answering.
    let later = now + 3 * DAY_MS;
    assert!(fb.store.apply_rollup_retention(later).await.unwrap() > 0);
    fb.store.delete_usage_before(later - DAY_MS).await.unwrap();
    let raw = Raw::open(&fb.db).await;
    assert_eq!(
        raw.count("SELECT COUNT(*) FROM usage_rollup_minute").await,
        0
    );
    assert_eq!(
        raw.count("SELECT COUNT(*) FROM usage_series_minute").await,
        0
    );
    assert_eq!(raw.count("SELECT COUNT(*) FROM usage_events").await, 0);
    assert!(raw.count("SELECT COUNT(*) FROM usage_rollup_hour").await > 0);
    let all: Vec<&Req> = reqs.iter().collect();
    for step in [3_600_000, 3 * DAY_MS] {
        let a = fb.store.usage_series(&cases[0].1, step).await.unwrap();
        assert_exact(&format!("after retention, step {step}"), &a.total, &all);
    }
    // Past the day tier's retention, the per-token days go with it.
    assert!(raw.count("SELECT COUNT(*) FROM usage_token_day").await > 0);
    let much_later = now + 402 * DAY_MS;
    assert!(fb.store.apply_rollup_retention(much_later).await.unwrap() > 0);
    for sql in [
        "SELECT COUNT(*) FROM usage_rollup_day",
        "SELECT COUNT(*) FROM usage_series_day",
        "SELECT COUNT(*) FROM usage_token_day",
    ] {
        assert_eq!(raw.count(sql).await, 0, "{sql}");
    }
}

keygate_control_plane::on_both_backends!(
    teams_crud,
    usage_rollups_agree_with_an_exact_computation,
    token_lifecycle,
    token_rotation,
    token_list_filters_and_pages,
    routes_and_secrets,
    team_delete_refuses_then_cascades,
    audit_chain_and_filters,
    revisions_follow_commit_order,
    management_keys,
    usage_ingest_list_and_retention,
    usage_large_batches_and_ties,
    usage_of_keys_the_edge_forgot_is_attributed,
    route_edge_options,
    token_rate_limit,
);
