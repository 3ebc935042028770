//! Conflicting writes from truly concurrent callers, and two control planes on one
//! PostgreSQL.
//!
//! ARCHITECTURE.md invariant 10 says setup codes and invitations are consumed by a
//! conditional write "that only one transaction can win", and the contracts say route names
//! and path prefixes are unique, and the store keeps at least one ADMIN per team under
//! concurrent writers (`store/sql/members.rs` locks the team row). Here two callers are released together by a barrier on a
//! multi-thread runtime, many times over, through the real server: exactly one wins, the
//! other gets the documented refusal, and only the winner's rows, audit rows and change
//! events exist. Invariant 2 (revision order = commit order "with several replicas on
//! PostgreSQL") is held by a write through one control plane seen in order through the
//! other's `Watch`.

use keygate_control_plane::audit::{AuditFilter, AuditPage};
use keygate_control_plane::context::RequestContext;
use keygate_control_plane::ids::TeamId;
use keygate_control_plane::policy::Role;
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::sessions::service::AuthSettings;
use keygate_control_plane::teams::NewTeam;
use keygate_control_plane::testing::{Backend, TestDb, TestServer, test_db, with_key};
use keygate_proto::v1 as pb;
use keygate_proto::v1::auth_service_client::AuthServiceClient;
use keygate_proto::v1::invitation_service_client::InvitationServiceClient;
use keygate_proto::v1::route_service_client::RouteServiceClient;
use keygate_proto::v1::sync_service_client::SyncServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tonic::{Code, Status};

/// Rounds of each race; each round is a fresh conflict.
const ROUNDS: usize = 25;

/// A server whose sign-in throttle does not get in the way of many accepts.
async fn server(backend: Backend) -> TestServer {
    let auth = AuthSettings {
        attempts_per_account: NonZeroU32::new(100_000).unwrap(),
        attempts_per_address: NonZeroU32::new(100_000).unwrap(),
        ..AuthSettings::default()
    };
    let s = TestServer::start_full(test_db(backend).await, vec![], auth).await;
    TeamServiceClient::new(s.channel().await)
        .create_team(s.request(pb::CreateTeamRequest {
            id: "core".into(),
            name: "Core".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    s
}

/// Runs `call(0)` and `call(1)` on two tasks released at the same instant; their outcomes.
async fn race<T, F, Fut>(call: F) -> [Result<T, Status>; 2]
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            let b = barrier.clone();
            let fut = call(i);
            tokio::spawn(async move {
                b.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out.try_into().map_err(|_| ()).expect("two outcomes")
}

/// Exactly one `Ok`; the other refused with `loser`. Returns the winner's index.
fn one_wins<T>(round: usize, outcomes: &[Result<T, Status>; 2], loser: Code) -> usize {
    let wins: Vec<usize> = (0..2).filter(|i| outcomes[*i].is_ok()).collect();
    assert_eq!(wins.len(), 1, "round {round}: {} callers won", wins.len());
    let lost = &outcomes[1 - wins[0]];
    let e = lost.as_ref().err().unwrap();
    assert_eq!(e.code(), loser, "round {round}: {}", e.message());
    wins[0]
}

async fn audit_rows(s: &TestServer, action: &str, entity: &str) -> usize {
    s.store
        .list_audit(&AuditPage {
            filter: AuditFilter {
                action: Some(action.into()),
                entity_id: Some(entity.into()),
                ..Default::default()
            },
            limit: 10,
            before_seq: None,
        })
        .await
        .unwrap()
        .0
        .items
        .len()
}

/// Two people accept the same invitation at once: one account is created, the other gets
/// the single-use refusal (invariant 10).
async fn an_invitation_is_accepted_once(backend: Backend) {
    let s = server(backend).await;
    let ch = s.channel().await;
    for round in 0..ROUNDS {
        let email = format!("racer{round}@example.test");
        let created = InvitationServiceClient::new(ch.clone())
            .create_invitation(s.request(pb::CreateInvitationRequest {
                email: email.clone(),
                roles: vec![pb::TeamRole {
                    team_id: "core".into(),
                    role: pb::Role::Viewer as i32,
                }],
                expires_in_hours: 1,
            }))
            .await
            .unwrap()
            .into_inner();
        let id = created.invitation.unwrap().id;
        let outcomes = race(|i| {
            let mut auth = AuthServiceClient::new(ch.clone());
            let code = created.code.clone();
            async move {
                auth.accept_invitation(tonic::Request::new(pb::AcceptInvitationRequest {
                    code,
                    display_name: format!("Racer {i}"),
                    password: "correct horse battery staple".into(),
                }))
                .await
                .map(|r| r.into_inner().user.unwrap())
            }
        })
        .await;
        let w = one_wins(round, &outcomes, Code::FailedPrecondition);
        let winner = outcomes[w].as_ref().unwrap();
        let (user, _) = s
            .store
            .find_user_by_email(&email)
            .await
            .unwrap()
            .expect("the winner's account");
        assert_eq!(user.id.as_str(), winner.id, "round {round}");
        assert_eq!(user.display_name, format!("Racer {w}"), "round {round}");
        assert_eq!(
            audit_rows(&s, "invitation.accept", &id).await,
            1,
            "round {round}"
        );
        assert_eq!(
            audit_rows(&s, "user.accept_invitation", &winner.id).await,
            1,
            "round {round}"
        );
    }
}

/// Two callers create a route with the same unique name at once (different prefixes, so
/// only the name conflicts): one route, one audit row, one change event.
async fn a_unique_route_name_is_taken_once(backend: Backend) {
    let s = server(backend).await;
    let ch = s.channel().await;
    for round in 0..ROUNDS {
        let name = format!("race-{round}");
        let head = s.store.head_revision().await.unwrap();
        let outcomes = race(|i| {
            let mut routes = RouteServiceClient::new(ch.clone());
            let req = s.request(pb::CreateRouteRequest {
                name: name.clone(),
                team_id: "core".into(),
                path_prefix: format!("/race-{round}-{i}"),
                backend_url: "http://127.0.0.1:9".into(),
                ..Default::default()
            });
            async move {
                routes
                    .create_route(req)
                    .await
                    .map(|r| r.into_inner().route.unwrap())
            }
        })
        .await;
        let w = one_wins(round, &outcomes, Code::AlreadyExists);
        let winner = outcomes[w].as_ref().unwrap();
        assert_eq!(winner.path_prefix, format!("/race-{round}-{w}"));
        let listed: Vec<pb::Route> = RouteServiceClient::new(ch.clone())
            .list_routes(s.request(pb::ListRoutesRequest {
                query: name.clone(),
                page_size: 500,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .routes
            .into_iter()
            .filter(|r| r.name == name)
            .collect();
        assert_eq!(listed.len(), 1, "round {round}: {listed:?}");
        assert_eq!(listed[0].id, winner.id, "round {round}");
        let changes = s.store.list_changes(head, 100).await.unwrap();
        assert_eq!(
            changes
                .iter()
                .map(|c| (c.entity_type.as_str(), c.entity_id.as_str()))
                .collect::<Vec<_>>(),
            [("route", winner.id.as_str())],
            "round {round}: one change event, the winner's"
        );
        assert_eq!(audit_rows(&s, "route.create", &winner.id).await, 1);
    }
}

/// The two ADMINs of a team leave it at the same time: the store's guard "a team keeps at
/// least one ADMIN" (checked under the team row's lock) lets exactly one go.
async fn a_team_keeps_its_last_admin(backend: Backend) {
    let s = server(backend).await;
    let ch = s.channel().await;
    let x = s.user("x@example.test", &[]).await;
    let y = s.user("y@example.test", &[]).await;
    for round in 0..ROUNDS {
        let team = TeamId(format!("pair-{round}"));
        s.store
            .create_team(
                &RequestContext::system("test"),
                NewTeam {
                    id: team.clone(),
                    name: team.0.clone(),
                    description: String::new(),
                    color: String::new(),
                    icon: String::new(),
                },
                None,
            )
            .await
            .unwrap();
        for u in [&x, &y] {
            s.store
                .add_member(&RequestContext::system("test"), &team, &u.id, Role::Admin)
                .await
                .unwrap();
        }
        let people = [x.clone(), y.clone()];
        let outcomes = race(|i| {
            let mut teams = TeamServiceClient::new(ch.clone());
            let req = with_key(
                &people[i].token,
                pb::RemoveMemberRequest {
                    team_id: team.0.clone(),
                    user_id: people[i].id.0.clone(),
                },
            );
            async move { teams.remove_member(req).await.map(drop) }
        })
        .await;
        let w = one_wins(round, &outcomes, Code::FailedPrecondition);
        let left = s.store.list_members(&team).await.unwrap();
        assert_eq!(
            left.iter()
                .map(|m| (m.user_id.as_str(), m.role))
                .collect::<Vec<_>>(),
            [(people[1 - w].id.as_str(), Role::Admin)],
            "round {round}: the one who stayed is the last ADMIN"
        );
    }
}

keygate_control_plane::on_both_backends!(
    an_invitation_is_accepted_once,
    a_unique_route_name_is_taken_once,
    a_team_keeps_its_last_admin,
);

/// How long one change may take to reach the other control plane's watcher. Watchers wake on
/// PostgreSQL NOTIFY; without it they would only look again at the 10 s heartbeat.
const REACH: Duration = Duration::from_secs(5);

/// Two control planes on one PostgreSQL database: writes through either (alternating,
/// each committed before the next) reach a `Watch` on the second one promptly, each once,
/// in commit order with consecutive revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_control_planes_share_one_feed() {
    let a = server(Backend::Postgres).await;
    let second_db = TestDb {
        url: a.db.url.clone(),
        backend: Backend::Postgres,
        dir: tempfile::tempdir().unwrap(),
    };
    let b = TestServer::start_on(second_db, vec![]).await;
    assert_ne!(a.addr, b.addr);
    let sync_key = a.capability_key(Capability::Sync).await;
    let from = b.store.head_revision().await.unwrap();
    let mut feed = SyncServiceClient::new(b.channel().await)
        .watch(with_key(
            &sync_key,
            pb::WatchRequest {
                from_revision: from,
                follower: "second-plane".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let planes = [(&a, a.channel().await), (&b, b.channel().await)];
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut written = Vec::new();
    for n in 0..10 {
        let (plane, ch) = &planes[n % 2];
        let token = TokenServiceClient::new(ch.clone())
            .create_token(plane.request(pb::CreateTokenRequest {
                name: format!("t{n}"),
                team_id: "core".into(),
                scopes: vec!["*".into()],
                expiry: Some(pb::create_token_request::Expiry::NeverExpires(true)),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .token
            .unwrap();
        written.push(token.id.clone());
        // Read the feed until this write arrived (heartbeats carry no change).
        let arrived = tokio::time::timeout(REACH, async {
            loop {
                let m = feed
                    .message()
                    .await
                    .expect("watch stream")
                    .expect("stream open");
                let mut found = false;
                for c in m.changes {
                    if let Some(pb::edge_change::Change::TokenUpsert(t)) = &c.change {
                        found |= t.token_id == token.id;
                        seen.push((c.revision, t.token_id.clone()));
                    } else {
                        panic!("unexpected change {c:?}");
                    }
                }
                if found {
                    return;
                }
            }
        })
        .await;
        assert!(
            arrived.is_ok(),
            "write {n} through plane {} did not reach the other plane's Watch within {REACH:?}",
            if n % 2 == 0 { "A" } else { "B" }
        );
    }
    let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids,
        written.iter().collect::<Vec<_>>(),
        "each write once, in commit order"
    );
    let revisions: Vec<i64> = seen.iter().map(|(r, _)| *r).collect();
    let expected: Vec<i64> = (from + 1..=from + 10).collect();
    assert_eq!(revisions, expected, "consecutive revisions after {from}");
    b.stop().await;
    a.stop().await;
}
