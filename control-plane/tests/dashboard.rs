//! L3: ListTokens' filters, sort orders and totals, ListRoutes' totals and
//! `DashboardService.GetDashboard` through the real server (generated clients and grpc-web),
//! on both stores, as callers with different teams.

use keygate_control_plane::dashboard::{DAY_MS, day_start};
use keygate_control_plane::policy::Role;
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestDb, TestServer, with_key};
use keygate_control_plane::time::{now_ms, to_timestamp};
use keygate_proto::v1 as pb;
use keygate_proto::v1::dashboard_service_client::DashboardServiceClient;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use prost::Message;
use std::collections::HashMap;
use tonic::Code;
use tonic::transport::Channel;

/// Sets a time column of a token directly (last use and creation are not settable through
/// the API).
async fn set_time(db: &TestDb, id: &str, column: &str, v: Option<i64>) {
    let sql = format!("UPDATE tokens SET {column} = $1 WHERE id = $2");
    let scopes = "UPDATE token_scopes SET created_at = $1 WHERE token_id = $2";
    match db.backend {
        Backend::Sqlite => {
            let p = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(v)
                .bind(id)
                .execute(&p)
                .await
                .unwrap();
            if column == "created_at" {
                sqlx::query(scopes)
                    .bind(v)
                    .bind(id)
                    .execute(&p)
                    .await
                    .unwrap();
            }
            p.close().await;
        }
        Backend::Postgres => {
            let p = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(v)
                .bind(id)
                .execute(&p)
                .await
                .unwrap();
            if column == "created_at" {
                sqlx::query(scopes)
                    .bind(v)
                    .bind(id)
                    .execute(&p)
                    .await
                    .unwrap();
            }
            p.close().await;
        }
    }
}

/// Teams `ta`, `tb`, `tc` (and `ops`, the gateway's) with routes `ra` (ta) and `rb` (tb),
/// members, and these tokens:
///
/// | token   | team | expires | last used | other                    |
/// |---------|------|---------|-----------|--------------------------|
/// | alpha   | ta   | never   | 40 days   | created 3 days ago       |
/// | bravo   | ta   | 3 days  | 1 hour    | 3 calls and 1 error today |
/// | charlie | ta   | 30 days | never     |                          |
/// | delta   | ta   | never   | never     | revoked                  |
/// | echo    | ta   | 2 days  | 35 days   |                          |
/// | foxtrot | tb   | 1 day   | never     |                          |
/// | golf    | tb   | never   | 50 days   | 2 calls today            |
struct World {
    s: TestServer,
    ch: Channel,
    /// Token name -> id.
    ids: HashMap<&'static str, String>,
    /// VIEWER of ta.
    viewer_a: String,
    /// VIEWER of ta and DEVELOPER of tb.
    both: String,
    /// ADMIN of tc only.
    outsider: String,
    now: i64,
}

impl World {
    async fn build(backend: Backend) -> Self {
        let s = TestServer::start(backend).await;
        let ch = s.channel().await;
        let mut teams = TeamServiceClient::new(ch.clone());
        for t in ["ta", "tb", "tc"] {
            teams
                .create_team(s.request(pb::CreateTeamRequest {
                    id: t.into(),
                    name: format!("Team {t}"),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
        let viewer_a = s.user("va@dash.test", &[("ta", Role::Viewer)]).await.token;
        let both = s
            .user(
                "both@dash.test",
                &[("ta", Role::Viewer), ("tb", Role::Developer)],
            )
            .await
            .token;
        let outsider = s.user("out@dash.test", &[("tc", Role::Admin)]).await.token;
        let mut routes = RouteServiceClient::new(ch.clone());
        for (t, name) in [("ta", "ra"), ("tb", "rb")] {
            routes
                .create_route(s.request(pb::CreateRouteRequest {
                    name: name.into(),
                    team_id: t.into(),
                    path_prefix: format!("/{name}"),
                    backend_url: "https://backend.internal".into(),
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
        let mut tokens = TokenServiceClient::new(ch.clone());
        let mut ids = HashMap::new();
        for (name, team, days) in [
            ("alpha", "ta", None),
            ("bravo", "ta", Some(3)),
            ("charlie", "ta", Some(30)),
            ("delta", "ta", None),
            ("echo", "ta", Some(2)),
            ("foxtrot", "tb", Some(1)),
            ("golf", "tb", None),
        ] {
            use pb::create_token_request::Expiry;
            let t = tokens
                .create_token(s.request(pb::CreateTokenRequest {
                    name: name.into(),
                    team_id: team.into(),
                    scopes: vec!["*".into()],
                    expiry: Some(days.map_or(Expiry::NeverExpires(true), Expiry::ExpiresInDays)),
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner()
                .token
                .unwrap();
            ids.insert(name, t.id);
        }
        tokens
            .revoke_token(s.request(pb::RevokeTokenRequest {
                id: ids["delta"].clone(),
                reason: String::new(),
            }))
            .await
            .unwrap();

        // Today's traffic, reported by a gateway (this moves last_used_at: set it after).
        let now = now_ms();
        let at = (now - 2000).max(day_start(now));
        let gateway = s.capability_key(Capability::Gateway).await;
        let event = |n: u32, token: &str, team: &str, status: u32| pb::UsageEvent {
            event_id: format!("ev-{n}"),
            time: Some(to_timestamp(at)),
            token_hash: "ab".repeat(32),
            token_id: token.into(),
            team_id: team.into(),
            route: "ra".into(),
            method: "GET".into(),
            status,
            latency_us: 1000,
            ..Default::default()
        };
        UsageServiceClient::new(ch.clone())
            .ingest_usage(with_key(
                &gateway,
                pb::IngestUsageRequest {
                    gateway: "edge-1".into(),
                    events: vec![
                        event(1, &ids["bravo"], "ta", 200),
                        event(2, &ids["bravo"], "ta", 200),
                        event(3, &ids["bravo"], "ta", 200),
                        event(4, &ids["bravo"], "ta", 503),
                        event(5, &ids["golf"], "tb", 200),
                        event(6, &ids["golf"], "tb", 204),
                    ],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();

        for (name, used) in [
            ("alpha", Some(now - 40 * DAY_MS)),
            ("bravo", Some(now - 3_600_000)),
            ("charlie", None),
            ("delta", None),
            ("echo", Some(now - 35 * DAY_MS)),
            ("foxtrot", None),
            ("golf", Some(now - 50 * DAY_MS)),
        ] {
            set_time(&s.db, &ids[name], "last_used_at", used).await;
        }
        set_time(&s.db, &ids["alpha"], "created_at", Some(now - 3 * DAY_MS)).await;
        Self {
            s,
            ch,
            ids,
            viewer_a,
            both,
            outsider,
            now,
        }
    }

    fn names(&self, tokens: &[pb::Token]) -> Vec<&'static str> {
        tokens
            .iter()
            .map(|t| {
                *self
                    .ids
                    .iter()
                    .find(|(_, id)| **id == t.id)
                    .map(|(n, _)| n)
                    .expect("a token of this world")
            })
            .collect()
    }

    async fn dashboard(
        &self,
        key: &str,
        req: pb::GetDashboardRequest,
    ) -> Result<pb::GetDashboardResponse, tonic::Status> {
        DashboardServiceClient::new(self.ch.clone())
            .get_dashboard(with_key(key, req))
            .await
            .map(|r| r.into_inner())
    }

    async fn list(
        &self,
        key: &str,
        req: pb::ListTokensRequest,
    ) -> Result<pb::ListTokensResponse, tonic::Status> {
        TokenServiceClient::new(self.ch.clone())
            .list_tokens(with_key(key, req))
            .await
            .map(|r| r.into_inner())
    }

    /// Every page of `req` at `page_size`: names in order; checks total_size on each page.
    async fn walk(&self, key: &str, mut req: pb::ListTokensRequest) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut total = None;
        loop {
            let page = self.list(key, req.clone()).await.unwrap();
            assert!(page.tokens.len() <= req.page_size as usize);
            out.extend(self.names(&page.tokens));
            assert_eq!(
                *total.get_or_insert(page.total_size),
                page.total_size,
                "the total is the same on every page"
            );
            if page.next_page_token.is_empty() {
                break;
            }
            req.page_token = page.next_page_token;
        }
        assert_eq!(out.len() as u64, total.unwrap(), "total_size = rows listed");
        out
    }
}

async fn list_tokens_filters_sorts_and_totals(backend: Backend) {
    let w = World::build(backend).await;
    let admin = w.s.admin_key.clone();
    let sorted = |sort: pb::TokenSortField, descending: bool| pb::ListTokensRequest {
        sort_by: sort as i32,
        descending,
        page_size: 2,
        ..Default::default()
    };

    // Every sort order, walked two rows a page.
    use pb::TokenSortField as F;
    assert_eq!(
        w.walk(&admin, sorted(F::Name, false)).await,
        [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"
        ]
    );
    assert_eq!(
        w.walk(&admin, sorted(F::Name, true)).await,
        [
            "golf", "foxtrot", "echo", "delta", "charlie", "bravo", "alpha"
        ]
    );
    // Never used sorts as the oldest (ties by id: creation order).
    assert_eq!(
        w.walk(&admin, sorted(F::LastUsedAt, false)).await,
        [
            "charlie", "delta", "foxtrot", "golf", "alpha", "echo", "bravo"
        ]
    );
    assert_eq!(
        w.walk(&admin, sorted(F::LastUsedAt, true)).await,
        [
            "bravo", "echo", "alpha", "golf", "foxtrot", "delta", "charlie"
        ]
    );
    // Never expiring sorts last.
    assert_eq!(
        w.walk(&admin, sorted(F::ExpiresAt, false)).await,
        [
            "foxtrot", "echo", "bravo", "charlie", "alpha", "delta", "golf"
        ]
    );
    assert_eq!(
        w.walk(&admin, sorted(F::CreatedAt, false)).await,
        [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"
        ]
    );
    // The default, and created_at descending: newest first.
    let newest = [
        "golf", "foxtrot", "echo", "delta", "charlie", "bravo", "alpha",
    ];
    assert_eq!(w.walk(&admin, sorted(F::Unspecified, false)).await, newest);
    assert_eq!(w.walk(&admin, sorted(F::CreatedAt, true)).await, newest);

    // Filters and what each caller may see.
    let unused = pb::ListTokensRequest {
        last_used_before: Some(to_timestamp(w.now - 30 * DAY_MS)),
        sort_by: F::LastUsedAt as i32,
        page_size: 1,
        ..Default::default()
    };
    assert_eq!(
        w.walk(&admin, unused.clone()).await,
        ["golf", "alpha", "echo"]
    );
    assert_eq!(w.walk(&w.viewer_a, unused.clone()).await, ["alpha", "echo"]);
    let never = pb::ListTokensRequest {
        never_used: true,
        status: pb::TokenStatus::Active as i32,
        page_size: 5,
        ..Default::default()
    };
    assert_eq!(w.walk(&w.viewer_a, never.clone()).await, ["charlie"]);
    assert_eq!(w.walk(&w.both, never.clone()).await, ["foxtrot", "charlie"]);
    assert_eq!(w.walk(&w.outsider, never).await, Vec::<&str>::new());
    let team_b = pb::ListTokensRequest {
        team_id: "tb".into(),
        page_size: 1,
        ..Default::default()
    };
    assert_eq!(w.walk(&w.both, team_b.clone()).await, ["golf", "foxtrot"]);
    let e = w.list(&w.viewer_a, team_b).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Refusals name the fields.
    let e = w
        .list(
            &admin,
            pb::ListTokensRequest {
                never_used: true,
                last_used_before: Some(to_timestamp(w.now)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("never_used") && e.message().contains("last_used_before"),
        "{}",
        e.message()
    );
    let e = w
        .list(
            &admin,
            pb::ListTokensRequest {
                sort_by: 99,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.message().starts_with("sort_by"), "{}", e.message());
    // A page token continues only the list and order it came from.
    let page = w.list(&admin, sorted(F::Name, false)).await.unwrap();
    for other in [sorted(F::LastUsedAt, false), sorted(F::Name, true)] {
        let e = w
            .list(
                &admin,
                pb::ListTokensRequest {
                    page_token: page.next_page_token.clone(),
                    ..other
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("page_token"), "{}", e.message());
    }

    // ListRoutes counts too (routes are a shared catalogue).
    let mut routes = RouteServiceClient::new(w.ch.clone());
    let all = routes
        .list_routes(with_key(
            &w.viewer_a,
            pb::ListRoutesRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((all.routes.len(), all.total_size), (1, 2));
    let of_b = routes
        .list_routes(with_key(
            &w.viewer_a,
            pb::ListRoutesRequest {
                team_id: "tb".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((of_b.routes.len(), of_b.total_size), (1, 1));
}

async fn dashboard_counts_what_the_caller_may_read(backend: Backend) {
    let w = World::build(backend).await;
    let today = day_start(w.now);

    // A VIEWER of ta: that team only.
    let d = w
        .dashboard(&w.viewer_a, pb::GetDashboardRequest::default())
        .await
        .unwrap();
    assert_eq!(d.active_tokens, 4, "alpha, bravo, charlie, echo");
    assert_eq!((d.routes, d.teams), (1, 1));
    assert_eq!(d.users, 3, "the system admin who created a, va, both");
    assert_eq!(
        (d.expiring_count, w.names(&d.expiring)),
        (2, vec!["echo", "bravo"])
    );
    assert_eq!(
        (d.unused_count, w.names(&d.unused)),
        (2, vec!["alpha", "echo"])
    );
    assert_eq!(
        (d.never_used_count, w.names(&d.never_used)),
        (1, vec!["charlie"])
    );
    assert_eq!(d.tokens_created.len(), 30);
    assert_eq!(
        d.tokens_created[0].day,
        Some(to_timestamp(today - 29 * DAY_MS))
    );
    assert_eq!(d.tokens_created[29].day, Some(to_timestamp(today)));
    let created: Vec<u64> = d.tokens_created.iter().map(|c| c.count).collect();
    assert_eq!(
        created[29], 4,
        "bravo, charlie, delta, echo (revoked ones count)"
    );
    assert_eq!(created[26], 1, "alpha, three days ago");
    assert_eq!(created.iter().sum::<u64>(), 5);
    assert_eq!(d.tokens_per_team.len(), 1);
    assert_eq!(
        (
            d.tokens_per_team[0].team_id.as_str(),
            d.tokens_per_team[0].team_name.as_str()
        ),
        ("ta", "Team ta")
    );
    assert_eq!(d.tokens_per_team[0].active_tokens, 4);
    assert_eq!((d.calls_today, d.errors_today), (4, 1));
    assert!((d.success_rate_today - 0.75).abs() < 1e-9);
    assert!(!d.recent_audit.is_empty() && d.recent_audit.len() <= 10);
    assert!(
        d.recent_audit.iter().all(|e| e.team_id == "ta"),
        "only ta's rows"
    );
    assert!(
        d.recent_audit.windows(2).all(|p| p[0].seq > p[1].seq),
        "newest first"
    );
    assert_eq!(d.recent_audit[0].action, "token.revoke");

    // Two teams, or one of them, and a shorter list.
    let d = w
        .dashboard(&w.both, pb::GetDashboardRequest::default())
        .await
        .unwrap();
    assert_eq!((d.active_tokens, d.routes, d.teams), (6, 2, 2));
    assert_eq!((d.calls_today, d.errors_today), (6, 1));
    let per_team: Vec<(&str, u64)> = d
        .tokens_per_team
        .iter()
        .map(|t| (t.team_id.as_str(), t.active_tokens))
        .collect();
    assert_eq!(per_team, [("ta", 4), ("tb", 2)]);
    assert_eq!(w.names(&d.unused), ["golf", "alpha", "echo"]);
    let d = w
        .dashboard(
            &w.both,
            pb::GetDashboardRequest {
                team_id: "tb".into(),
                list_limit: 1,
                unused_for_days: 45,
                expiring_within_days: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!((d.active_tokens, d.routes, d.teams, d.users), (2, 1, 1, 2));
    assert_eq!((d.calls_today, d.errors_today), (2, 0));
    assert!((d.success_rate_today - 1.0).abs() < 1e-9);
    assert_eq!(
        (d.expiring_count, w.names(&d.expiring)),
        (1, vec!["foxtrot"]),
        "issued for 1 day, a moment ago"
    );
    assert_eq!((d.unused_count, w.names(&d.unused)), (1, vec!["golf"]));
    assert_eq!(
        (d.never_used_count, w.names(&d.never_used)),
        (1, vec!["foxtrot"])
    );
    assert_eq!(d.recent_audit.len(), 1);
    assert!(d.recent_audit.iter().all(|e| e.team_id == "tb"));
    let d = w
        .dashboard(
            &w.both,
            pb::GetDashboardRequest {
                team_id: "ta".into(),
                list_limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (d.expiring_count, w.names(&d.expiring)),
        (2, vec!["echo"]),
        "count > list"
    );

    // Another team's member: its own (empty) team, and no way into a.
    let d = w
        .dashboard(&w.outsider, pb::GetDashboardRequest::default())
        .await
        .unwrap();
    assert_eq!((d.active_tokens, d.routes, d.teams, d.users), (0, 0, 1, 2));
    assert_eq!((d.calls_today, d.success_rate_today), (0, 0.0));
    assert!(d.recent_audit.iter().all(|e| e.team_id == "tc"));
    assert!(d.expiring.is_empty() && d.unused.is_empty() && d.never_used.is_empty());
    let e = w
        .dashboard(
            &w.outsider,
            pb::GetDashboardRequest {
                team_id: "ta".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // The system admin: everything, every enabled user.
    let admin = w.s.admin_key.clone();
    let d = w
        .dashboard(&admin, pb::GetDashboardRequest::default())
        .await
        .unwrap();
    assert_eq!(
        (d.active_tokens, d.routes, d.teams, d.users),
        (6, 2, 4, 4),
        "ta, tb, tc and ops (the gateway's)"
    );
    assert_eq!((d.calls_today, d.errors_today), (6, 1));
    assert_eq!(d.tokens_per_team.len(), 4);
    assert_eq!(
        d.tokens_per_team[2].active_tokens, 0,
        "empty teams are listed"
    );
    let e = w
        .dashboard(
            &admin,
            pb::GetDashboardRequest {
                team_id: "nope".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    for (req, field) in [
        (
            pb::GetDashboardRequest {
                list_limit: 51,
                ..Default::default()
            },
            "list_limit",
        ),
        (
            pb::GetDashboardRequest {
                expiring_within_days: 366,
                ..Default::default()
            },
            "expiring_within_days",
        ),
        (
            pb::GetDashboardRequest {
                team_id: "Bad Team".into(),
                ..Default::default()
            },
            "team_id",
        ),
    ] {
        let e = w.dashboard(&admin, req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with(field), "{}", e.message());
    }
    let e = DashboardServiceClient::new(w.ch.clone())
        .get_dashboard(pb::GetDashboardRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
}

/// The admin UI calls it over grpc-web (HTTP/1.1).
async fn dashboard_over_grpc_web(backend: Backend) {
    let w = World::build(backend).await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let msg = pb::GetDashboardRequest::default().encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    let resp = http
        .post(format!(
            "{}/keygate.v1.DashboardService/GetDashboard",
            w.s.url()
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "http://admin.test")
        .header("authorization", format!("Bearer {}", w.viewer_a))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://admin.test"
    );
    let bytes = resp.bytes().await.unwrap();
    let (mut i, mut answer, mut trailers) = (0usize, None, String::new());
    while i + 5 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i + 1..i + 5].try_into().unwrap()) as usize;
        let frame = &bytes[i + 5..i + 5 + len];
        if bytes[i] & 0x80 == 0 {
            answer = Some(pb::GetDashboardResponse::decode(frame).unwrap());
        } else {
            trailers = String::from_utf8_lossy(frame).to_lowercase();
        }
        i += 5 + len;
    }
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let d = answer.unwrap();
    assert_eq!((d.active_tokens, d.teams), (4, 1));
}

keygate_control_plane::on_both_backends!(
    list_tokens_filters_sorts_and_totals,
    dashboard_counts_what_the_caller_may_read,
    dashboard_over_grpc_web,
);
