//! L2, conformance on both stores: ListTokens filters, every sort order walked page by page
//! (each matching row once, in order), list totals, and the dashboard's aggregates (a scope
//! sees only its teams). Expected answers are computed here in Rust from the stored rows, so
//! the two SQL dialects are held to one reference.

use keygate_contracts::scope::Scope;
use keygate_contracts::token::{API_TOKEN_PREFIX, NewToken};
use keygate_control_plane::context::RequestContext;
use keygate_control_plane::dashboard::{DAY_MS, day_start};
use keygate_control_plane::ids::{RouteId, TeamId, TokenId, UserId};
use keygate_control_plane::policy::Role;
use keygate_control_plane::routes::{AuthChange, AuthKind, NewRoute, RouteFilter};
use keygate_control_plane::store::{self, DynStore};
use keygate_control_plane::teams::NewTeam;
use keygate_control_plane::testing::{Backend, TestDb, test_db};
use keygate_control_plane::time::now_ms;
use keygate_control_plane::tokens::{
    NEVER_EXPIRES_KEY, NEVER_USED_KEY, NewTokenRecord, SortKey, Token, TokenFilter, TokenPatch,
    TokenSort, TokenStatus,
};
use keygate_control_plane::users::NewUser;
use std::cmp::Ordering;

fn ctx() -> RequestContext {
    RequestContext::system("conformance")
}

async fn open(b: Backend) -> (DynStore, TestDb) {
    let db = test_db(b).await;
    let store = store::open(&db.url).await.expect("open");
    (store, db)
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

async fn token(
    s: &DynStore,
    team: &str,
    name: &str,
    scope: &str,
    expires_at: Option<i64>,
) -> TokenId {
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    let rec = NewTokenRecord {
        id: TokenId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        description: String::new(),
        scopes: vec![Scope::parse("scopes", scope).unwrap()],
        token_hash: secret.hash(),
        preview: secret.preview(),
        expires_at,
        rate_limit_per_minute: 0,
    };
    s.create_token(&ctx(), rec).await.unwrap().id
}

/// Writes what the API cannot set: creation and last-use times, and an expiry in the past.
struct Raw(RawPool);

enum RawPool {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    async fn open(db: &TestDb) -> Self {
        Raw(match db.backend {
            Backend::Sqlite => RawPool::Sqlite(sqlx::SqlitePool::connect(&db.url).await.unwrap()),
            Backend::Postgres => RawPool::Pg(sqlx::PgPool::connect(&db.url).await.unwrap()),
        })
    }

    /// Sets one nullable time column of a token (and the scope index's copy of created_at).
    async fn set(&self, id: &TokenId, column: &str, v: Option<i64>) {
        let sql = format!("UPDATE tokens SET {column} = $1 WHERE id = $2");
        let scopes = "UPDATE token_scopes SET created_at = $1 WHERE token_id = $2";
        match &self.0 {
            RawPool::Sqlite(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(v)
                    .bind(id.as_str())
                    .execute(p)
                    .await
                    .unwrap();
                if column == "created_at" {
                    sqlx::query(scopes)
                        .bind(v)
                        .bind(id.as_str())
                        .execute(p)
                        .await
                        .unwrap();
                }
            }
            RawPool::Pg(p) => {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(v)
                    .bind(id.as_str())
                    .execute(p)
                    .await
                    .unwrap();
                if column == "created_at" {
                    sqlx::query(scopes)
                        .bind(v)
                        .bind(id.as_str())
                        .execute(p)
                        .await
                        .unwrap();
                }
            }
        }
    }
}

/// Every token matching `f`, walking pages of `f.limit`; asserts the total on the way.
async fn walk(s: &DynStore, f: &TokenFilter) -> Vec<Token> {
    let mut f = f.clone();
    let mut out: Vec<Token> = Vec::new();
    let total = s.count_tokens(&f).await.unwrap();
    loop {
        let page = s.list_tokens(&f).await.unwrap();
        assert!(page.items.len() <= f.limit as usize);
        out.extend(page.items.iter().cloned());
        if !page.more {
            break;
        }
        assert_eq!(
            page.items.len(),
            f.limit as usize,
            "a page before the last is full"
        );
        f.after = Some(f.position_after(page.items.last().unwrap()));
        assert!(out.len() <= 1000, "paging does not end");
    }
    assert_eq!(out.len() as u64, total, "count_tokens = rows walked");
    out
}

/// The reference: what `f` should list, in order, from `all`.
fn expected(all: &[Token], f: &TokenFilter, now: i64) -> Vec<TokenId> {
    let mut rows: Vec<&Token> = all
        .iter()
        .filter(|t| f.team_id.as_ref().is_none_or(|team| &t.team_id == team))
        .filter(|t| {
            f.visible_teams
                .as_ref()
                .is_none_or(|teams| teams.contains(&t.team_id))
        })
        .filter(|t| f.scope.as_ref().is_none_or(|s| t.scopes.contains(s)))
        .filter(|t| f.status.is_none_or(|st| t.status(now) == st))
        .filter(|t| {
            f.expiring_before
                .is_none_or(|b| t.expires_at.is_some_and(|e| e < b))
        })
        .filter(|t| {
            f.last_used_before
                .is_none_or(|b| t.last_used_at.is_some_and(|u| u < b))
        })
        .filter(|t| !f.never_used || t.last_used_at.is_none())
        .collect();
    let cmp = |a: &&Token, b: &&Token| -> Ordering {
        let ka = f.sort.key_of(a);
        let kb = f.sort.key_of(b);
        let o = match (ka, kb) {
            (SortKey::Int(x), SortKey::Int(y)) => x.cmp(&y),
            (SortKey::Text(x), SortKey::Text(y)) => x.cmp(&y),
            _ => unreachable!(),
        };
        o.then_with(|| a.id.0.cmp(&b.id.0))
    };
    rows.sort_by(cmp);
    if f.descending {
        rows.reverse();
    }
    rows.into_iter().map(|t| t.id.clone()).collect()
}

fn ids(v: &[Token]) -> Vec<TokenId> {
    v.iter().map(|t| t.id.clone()).collect()
}

async fn token_list_sorts_filters_and_totals(b: Backend) {
    let (s, db) = open(b).await;
    let raw = Raw::open(&db).await;
    team(&s, "a").await;
    team(&s, "b").await;
    let now = now_ms();
    // Names with repeats (ties broken by id), lowercase letters only so that every collation
    // orders them alike. Creation times repeat too; some tokens were never used, some never
    // expire, one expired, one revoked.
    let names = [
        "delta", "alpha", "echo", "alpha", "charlie", "bravo", "echo", "foxtrot",
    ];
    let mut made = Vec::new();
    for i in 0..23i64 {
        let team_id = if i % 3 == 0 { "b" } else { "a" };
        let scope = if i % 4 == 0 { "tag:blue" } else { "*" };
        let expires = match i % 5 {
            0 => None,
            1 => Some(now + DAY_MS),
            2 => Some(now + (i + 2) * DAY_MS),
            3 => Some(now + 3 * DAY_MS),
            _ => None,
        };
        let id = token(&s, team_id, names[i as usize % names.len()], scope, expires).await;
        raw.set(&id, "created_at", Some(now - (i % 6) * 60_000))
            .await;
        let used = match i % 4 {
            0 => None,
            1 => Some(now - 40 * DAY_MS),
            2 => Some(now - (i % 3) * DAY_MS - 1000),
            _ => Some(now - 40 * DAY_MS),
        };
        raw.set(&id, "last_used_at", used).await;
        made.push(id);
    }
    raw.set(&made[7], "expires_at", Some(now - 1000)).await;
    s.revoke_token(&ctx(), &made[9], "").await.unwrap();
    let mut all = Vec::new();
    for id in &made {
        all.push(s.get_token(id).await.unwrap());
    }
    assert!(all.iter().any(|t| t.last_used_at.is_none()));
    assert!(all.iter().any(|t| t.expires_at.is_none()));

    // Every sort order, both directions, page sizes that split ties across pages.
    let sorts = [
        TokenSort::CreatedAt,
        TokenSort::Name,
        TokenSort::LastUsedAt,
        TokenSort::ExpiresAt,
    ];
    for sort in sorts {
        for descending in [false, true] {
            for limit in [1, 4, 7, 50] {
                let f = TokenFilter {
                    sort,
                    descending,
                    limit,
                    ..Default::default()
                };
                let got = ids(&walk(&s, &f).await);
                assert_eq!(
                    got,
                    expected(&all, &f, now),
                    "{sort:?} descending={descending} pages of {limit}"
                );
            }
        }
    }
    // The documented edges of the nullable keys.
    let by_use = walk(
        &s,
        &TokenFilter {
            sort: TokenSort::LastUsedAt,
            descending: false,
            ..Default::default()
        },
    )
    .await;
    assert!(
        by_use[0].last_used_at.is_none(),
        "never used sorts as the oldest"
    );
    assert_eq!(
        TokenSort::LastUsedAt.key_of(&by_use[0]),
        SortKey::Int(NEVER_USED_KEY)
    );
    let by_expiry = walk(
        &s,
        &TokenFilter {
            sort: TokenSort::ExpiresAt,
            descending: false,
            ..Default::default()
        },
    )
    .await;
    assert!(
        by_expiry.last().unwrap().expires_at.is_none(),
        "never expiring sorts last"
    );
    assert_eq!(
        TokenSort::ExpiresAt.key_of(by_expiry.last().unwrap()),
        SortKey::Int(NEVER_EXPIRES_KEY)
    );
    assert!(by_expiry[0].expires_at.is_some());
    let default = walk(&s, &TokenFilter::default()).await;
    assert!(
        default
            .windows(2)
            .all(|w| (w[0].created_at, &w[0].id.0) > (w[1].created_at, &w[1].id.0)),
        "the default is newest first"
    );

    // Filters, alone and combined with sorts, visibility and the scope-driven plan.
    let filters = vec![
        TokenFilter {
            last_used_before: Some(now - 30 * DAY_MS),
            ..Default::default()
        },
        TokenFilter {
            never_used: true,
            ..Default::default()
        },
        TokenFilter {
            never_used: true,
            status: Some(TokenStatus::Active),
            sort: TokenSort::Name,
            descending: false,
            ..Default::default()
        },
        TokenFilter {
            last_used_before: Some(now - DAY_MS),
            team_id: Some(TeamId("a".into())),
            sort: TokenSort::LastUsedAt,
            ..Default::default()
        },
        TokenFilter {
            status: Some(TokenStatus::Active),
            expiring_before: Some(now + 4 * DAY_MS),
            sort: TokenSort::ExpiresAt,
            descending: false,
            ..Default::default()
        },
        TokenFilter {
            scope: Some("tag:blue".into()),
            sort: TokenSort::Name,
            ..Default::default()
        },
        TokenFilter {
            scope: Some("tag:blue".into()),
            ..Default::default()
        },
        TokenFilter {
            scope: Some("*".into()),
            sort: TokenSort::LastUsedAt,
            descending: false,
            last_used_before: Some(now),
            ..Default::default()
        },
        TokenFilter {
            visible_teams: Some(vec![TeamId("b".into())]),
            sort: TokenSort::ExpiresAt,
            ..Default::default()
        },
        TokenFilter {
            visible_teams: Some(vec![]),
            ..Default::default()
        },
        TokenFilter {
            status: Some(TokenStatus::Revoked),
            ..Default::default()
        },
        TokenFilter {
            status: Some(TokenStatus::Expired),
            sort: TokenSort::ExpiresAt,
            ..Default::default()
        },
    ];
    for (i, f) in filters.into_iter().enumerate() {
        for limit in [2, 50] {
            let f = TokenFilter { limit, ..f.clone() };
            let want = expected(&all, &f, now);
            assert_eq!(
                ids(&walk(&s, &f).await),
                want,
                "filter #{i}, pages of {limit}"
            );
            if i == 9 {
                assert!(want.is_empty(), "no visible team: nothing");
            } else {
                assert!(!want.is_empty(), "filter #{i} matches something");
            }
        }
    }
    // The totals ignore the page position and size.
    let f = TokenFilter {
        never_used: true,
        limit: 1,
        after: Some(TokenFilter::default().position_after(&all[0])),
        ..Default::default()
    };
    assert_eq!(
        s.count_tokens(&f).await.unwrap(),
        all.iter().filter(|t| t.last_used_at.is_none()).count() as u64
    );
}

fn route(team: &str, name: &str, tags: &[&str]) -> NewRoute {
    NewRoute {
        id: RouteId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        path_prefix: format!("/{name}"),
        backend_url: "https://backend.internal".into(),
        description: String::new(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        methods: vec![],
        strip_prefix: false,
        timeout_ms: 30_000,
        auth: AuthChange {
            kind: AuthKind::None,
            header_name: String::new(),
            username: String::new(),
            secret: None,
        },
        allowed_team_ids: vec![],
        cors_origins: vec![],
        rate_limit_per_minute: 0,
    }
}

async fn route_totals(b: Backend) {
    let (s, _db) = open(b).await;
    team(&s, "a").await;
    team(&s, "b").await;
    for i in 0..7 {
        let (t, tags): (&str, &[&str]) = if i % 2 == 0 {
            ("a", &["blue"])
        } else {
            ("b", &[])
        };
        s.create_route(&ctx(), route(t, &format!("r{i}"), tags))
            .await
            .unwrap();
    }
    let count = |f: RouteFilter| {
        let s = s.clone();
        async move {
            let listed = s
                .list_routes(&RouteFilter {
                    limit: 100,
                    ..f.clone()
                })
                .await
                .unwrap()
                .items
                .len() as u64;
            let paged = s
                .count_routes(&RouteFilter { limit: 1, ..f })
                .await
                .unwrap();
            assert_eq!(listed, paged, "count_routes = rows listed");
            paged
        }
    };
    assert_eq!(count(RouteFilter::default()).await, 7);
    assert_eq!(
        count(RouteFilter {
            team_id: Some(TeamId("a".into())),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(RouteFilter {
            tag: Some("blue".into()),
            team_id: Some(TeamId("a".into())),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(RouteFilter {
            query: Some("r3".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(RouteFilter {
            tag: Some("none".into()),
            ..Default::default()
        })
        .await,
        0
    );
}

async fn user(s: &DynStore, email: &str, roles: &[(&str, Role)]) -> UserId {
    let roles: Vec<(TeamId, Role)> = roles
        .iter()
        .map(|(t, r)| (TeamId((*t).into()), *r))
        .collect();
    s.create_user(
        &ctx(),
        NewUser {
            id: UserId::generate(),
            email: email.into(),
            display_name: email.into(),
            password_hash: "x".into(),
            system_admin: false,
        },
        &roles,
    )
    .await
    .unwrap()
    .id
}

async fn dashboard_counts_by_scope(b: Backend) {
    let (s, db) = open(b).await;
    let raw = Raw::open(&db).await;
    for t in ["a", "b", "c"] {
        team(&s, t).await;
    }
    user(&s, "u1@x.test", &[("a", Role::Viewer)]).await;
    user(
        &s,
        "u2@x.test",
        &[("a", Role::Admin), ("b", Role::Developer)],
    )
    .await;
    user(&s, "u3@x.test", &[("c", Role::Admin)]).await;
    let gone = user(&s, "u4@x.test", &[("a", Role::Developer)]).await;
    s.set_user_disabled(&ctx(), &gone, true).await.unwrap();
    user(&s, "loner@x.test", &[]).await;
    for (t, n) in [("a", "ra1"), ("a", "ra2"), ("b", "rb1"), ("c", "rc1")] {
        s.create_route(&ctx(), route(t, n, &[])).await.unwrap();
    }
    let now = now_ms();
    let today = day_start(now);
    let since = today - 29 * DAY_MS;
    // (team, created, state): a has 3 active, 1 revoked, 1 expired; b 2 active; c 1 active.
    let mut ids = Vec::new();
    for (t, created, state) in [
        ("a", today + 1, "active"),
        ("a", today + 2, "active"),
        ("a", today - 3 * DAY_MS, "active"),
        ("a", today - 3 * DAY_MS + 5, "revoked"),
        ("a", today - 40 * DAY_MS, "expired"),
        ("b", today + 3, "active"),
        ("b", since, "active"),
        ("c", since - 1, "active"),
    ] {
        let id = token(&s, t, "t", "*", None).await;
        raw.set(&id, "created_at", Some(created.min(now))).await;
        match state {
            "revoked" => {
                s.revoke_token(&ctx(), &id, "").await.unwrap();
            }
            "expired" => raw.set(&id, "expires_at", Some(now - 1)).await,
            _ => {}
        }
        ids.push(id);
    }
    let scope = |v: &[&str]| v.iter().map(|t| TeamId((*t).into())).collect::<Vec<_>>();
    let per_team = |c: &keygate_control_plane::dashboard::DashboardCounts| {
        c.tokens_per_team
            .iter()
            .map(|t| (t.team_id.0.clone(), t.active_tokens))
            .collect::<Vec<_>>()
    };

    let a = s
        .dashboard_counts(Some(&scope(&["a"])), since, now)
        .await
        .unwrap();
    assert_eq!(
        (a.routes, a.teams, a.users),
        (2, 1, 2),
        "enabled members of a only"
    );
    assert_eq!(per_team(&a), vec![("a".into(), 3)]);
    assert_eq!(a.tokens_per_team[0].team_name, "Team a");
    // Revoked and expired tokens were still created that day; the 40-day-old one is out.
    assert_eq!(
        a.created_per_day,
        vec![(today - 3 * DAY_MS, 2), (today, 2)],
        "today's count is at today's start"
    );

    let ab = s
        .dashboard_counts(Some(&scope(&["a", "b"])), since, now)
        .await
        .unwrap();
    assert_eq!(
        (ab.routes, ab.teams, ab.users),
        (3, 2, 2),
        "u2 is counted once"
    );
    assert_eq!(per_team(&ab), vec![("a".into(), 3), ("b".into(), 2)]);
    assert_eq!(
        ab.created_per_day,
        vec![(since, 1), (today - 3 * DAY_MS, 2), (today, 3)]
    );

    let all = s.dashboard_counts(None, since, now).await.unwrap();
    assert_eq!(
        (all.routes, all.teams, all.users),
        (4, 3, 4),
        "everything; every enabled user (u1, u2, u3, loner)"
    );
    assert_eq!(
        per_team(&all),
        vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 1)]
    );

    let none = s.dashboard_counts(Some(&[]), since, now).await.unwrap();
    assert_eq!((none.routes, none.teams, none.users), (0, 0, 0));
    assert!(none.created_per_day.is_empty() && none.tokens_per_team.is_empty());

    // The token counts the dashboard reads through ListTokens' filters agree.
    let active_a = s
        .count_tokens(&TokenFilter {
            status: Some(TokenStatus::Active),
            visible_teams: Some(scope(&["a"])),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active_a, 3);
}

/// A token with a description (`token` leaves it empty).
async fn described(s: &DynStore, team: &str, name: &str, description: &str) -> TokenId {
    let secret = NewToken::generate(API_TOKEN_PREFIX);
    let rec = NewTokenRecord {
        id: TokenId::generate(),
        team_id: TeamId(team.into()),
        name: name.into(),
        description: description.into(),
        scopes: vec![Scope::parse("scopes", "*").unwrap()],
        token_hash: secret.hash(),
        preview: secret.preview(),
        expires_at: None,
        rate_limit_per_minute: 0,
    };
    s.create_token(&ctx(), rec).await.unwrap().id
}

/// ListTokens' text filter: a substring of `name + " " + description`, any (ASCII) case,
/// wildcards and quotes literal, short queries too; renames and revocations followed; paging
/// and totals through it. Then that the index answers it: on SQLite, emptying the FTS table
/// empties the results of a 3+ character search; on PostgreSQL, the plan of the filter's
/// expression uses the pg_trgm index (`tokens_search`, migration 0001; SQLite's is 0013).
async fn token_search(b: Backend) {
    let (s, db) = open(b).await;
    team(&s, "a").await;
    team(&s, "b").await;
    let prod = described(&s, "a", "deploy-prod", "nightly build").await;
    let staging = described(&s, "a", "Deploy staging", "").await;
    let zephyr = described(&s, "b", "zephyr watcher", "watches the DEPLOY queue").await;
    let sale = described(&s, "b", "cache warmer", "50%_off \"quoted\" literal").await;
    let abc = described(&s, "b", "abc", "").await;
    let search = |q: &str| TokenFilter {
        query: Some(q.into()),
        sort: TokenSort::Name,
        limit: 2,
        ..Default::default()
    };
    let found = |q: &'static str| {
        let s = s.clone();
        async move {
            let mut v = ids(&walk(&s, &search(q)).await);
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
    };
    let sorted = |mut v: Vec<TokenId>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let deploys = sorted(vec![prod.clone(), staging.clone(), zephyr.clone()]);
    assert_eq!(
        found("deploy").await,
        deploys,
        "name or description, any case"
    );
    let cases: Vec<(&'static str, Vec<TokenId>, &str)> = vec![
        ("DEPLOY", deploys.clone(), "any case"),
        (
            "ploy-pr",
            vec![prod.clone()],
            "a substring with punctuation",
        ),
        ("d n", vec![prod.clone()], "across name and description"),
        ("y s", vec![staging.clone()], "a space inside"),
        ("50%_", vec![sale.clone()], "wildcards are literal"),
        ("0%", vec![sale.clone()], "short, wildcards literal"),
        ("\"quoted\"", vec![sale.clone()], "quotes are literal"),
        ("ab", vec![abc.clone()], "two characters"),
        ("deploy\" OR \"abc", vec![], "no query syntax"),
    ];
    for (q, want, why) in cases {
        assert_eq!(found(q).await, want, "{q:?}: {why}");
    }
    assert!(found("nothing like it").await.is_empty());

    // With a team filter, walked in pages of 2, sorted by name.
    let in_a = walk(
        &s,
        &TokenFilter {
            team_id: Some(TeamId("a".into())),
            ..search("deploy")
        },
    )
    .await;
    assert_eq!(
        sorted(ids(&in_a)),
        sorted(vec![staging.clone(), prod.clone()])
    );

    // Renamed: found by the new text only. Revoked: still found (status is another filter).
    s.update_token(
        &ctx(),
        &abc,
        TokenPatch {
            name: Some("renamed token".into()),
            description: Some("now described".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        found("abc").await.is_empty(),
        "the old name is gone from the index"
    );
    assert_eq!(found("renamed").await, vec![abc.clone()]);
    assert_eq!(found("now desc").await, vec![abc.clone()]);
    s.revoke_token(&ctx(), &zephyr, "test").await.unwrap();
    assert_eq!(found("deploy").await, deploys);

    // The index answers it.
    match db.backend {
        Backend::Sqlite => {
            let p = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            // A word in 1,000 tokens or more: the LIKE walk (store/sql/tokens.rs,
            // INDEX_MAX_MATCHES). With one of 1,100 missing from the index, all still match;
            // a rarer query is answered by the index, which misses it.
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100) \
                 INSERT INTO tokens (id, team_id, name, description, scopes, token_hash, \
                 preview, created_at, updated_at, created_by) \
                 SELECT printf('tok_bulk%05d', i), 'a', printf('bulk common %d', i), '', \
                 '[\"*\"]', printf('%064d', i), 'kg_bulk', 1, 1, 'test' FROM n",
            )
            .execute(&p)
            .await
            .unwrap();
            let common = |q: &str| TokenFilter {
                query: Some(q.into()),
                ..Default::default()
            };
            assert_eq!(s.count_tokens(&common("common")).await.unwrap(), 1100);
            sqlx::query(
                "DELETE FROM token_search WHERE rowid = \
                 (SELECT rowid FROM token_search_ids WHERE token_id = 'tok_bulk00001')",
            )
            .execute(&p)
            .await
            .unwrap();
            assert_eq!(
                s.count_tokens(&common("common")).await.unwrap(),
                1100,
                "1,100 matches: answered by the LIKE"
            );
            assert_eq!(
                s.count_tokens(&common("bulk common 1")).await.unwrap(),
                211,
                "\"bulk common 1\" (1, 10-19, 100-199, 1000-1100): 212 tokens, the index misses one"
            );
            sqlx::query("DELETE FROM token_search")
                .execute(&p)
                .await
                .unwrap();
            assert!(
                found("deploy").await.is_empty(),
                "3+ characters: read from token_search"
            );
            assert_eq!(found("ab").await.len(), 0, "renamed away");
            assert_eq!(found("y s").await.len(), 0);
            assert_eq!(
                found("0%").await,
                vec![sale.clone()],
                "2 characters: the LIKE"
            );
        }
        Backend::Postgres => {
            let p = sqlx::PgPool::connect(&db.url).await.unwrap();
            let mut c = p.acquire().await.unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *c)
                .await
                .unwrap();
            let plan: Vec<(String,)> = sqlx::query_as(
                "EXPLAIN SELECT t.id FROM tokens t \
                 WHERE lower(t.name || ' ' || t.description) LIKE $1 ESCAPE '\\'",
            )
            .bind("%deploy%")
            .fetch_all(&mut *c)
            .await
            .unwrap();
            let plan = plan.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n");
            assert!(
                plan.contains("tokens_search"),
                "the trigram index is used:\n{plan}"
            );
        }
    }
}

keygate_control_plane::on_both_backends!(
    token_list_sorts_filters_and_totals,
    token_search,
    route_totals,
    dashboard_counts_by_scope,
);
