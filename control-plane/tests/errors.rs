//! L3: structured errors through the real server. Every error status carries
//! `google.rpc.ErrorInfo { reason: <ErrorCode::reason>, domain: "keygate" }`; invalid input
//! carries `google.rpc.BadRequest` with every field violation (gRPC and grpc-web alike).

use base64::Engine;
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestServer, grpc_web_call, with_key};
use keygate_control_plane::time::now_ms;
use keygate_proto::v1 as pb;
use keygate_proto::v1::sync_service_client::SyncServiceClient;
use keygate_proto::v1::team_service_client::TeamServiceClient;
use keygate_proto::v1::token_service_client::TokenServiceClient;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

fn reason(s: &tonic::Status) -> String {
    let info = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
    assert_eq!(info.domain, "keygate");
    info.reason
}

fn violations(s: &tonic::Status) -> Vec<(String, String)> {
    s.get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
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

fn bad_token_request() -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        name: String::new(),
        team_id: "core".into(),
        scopes: vec!["Not A Scope".into()],
        expiry: Some(pb::create_token_request::Expiry::NeverExpires(true)),
        ..Default::default()
    }
}

/// CreateToken with an empty name and a bad scope: both fields, not only the first.
async fn every_field_violation_is_returned(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    let mut tokens = TokenServiceClient::new(s.channel().await);
    let e = tokens
        .create_token(s.request(bad_token_request()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(reason(&e), "INVALID_ARGUMENT");
    let v = violations(&e);
    let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["name", "scopes[0]"], "{v:?}");
    assert!(v.iter().all(|(_, rule)| !rule.is_empty()));
    assert!(
        e.message().starts_with("name: ") && e.message().ends_with("(and 1 more)"),
        "{}",
        e.message()
    );

    // Errors decided by the store carry their code too.
    let e = tokens
        .get_token(s.request(pb::GetTokenRequest {
            id: "tok_0123456789abcdef0123456789abcdef".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!((e.code(), reason(&e)), (Code::NotFound, "NOT_FOUND".into()));
    assert!(violations(&e).is_empty());
    let e = TeamServiceClient::new(s.channel().await)
        .create_team(s.request(pb::CreateTeamRequest {
            id: "core".into(),
            name: "again".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::AlreadyExists, "ALREADY_EXISTS".into())
    );

    // Refusals by the policy and by the auth layer.
    let viewer = s
        .user(
            "viewer@errors.test",
            &[("core", keygate_control_plane::policy::Role::Viewer)],
        )
        .await;
    let ok_request = pb::CreateTokenRequest {
        name: "n".into(),
        scopes: vec!["*".into()],
        ..bad_token_request()
    };
    let e = tokens
        .create_token(with_key(&viewer.token, ok_request.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::PermissionDenied, "PERMISSION_DENIED".into())
    );
    let e = tokens
        .create_token(tonic::Request::new(ok_request))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::Unauthenticated, "UNAUTHENTICATED".into())
    );
}

/// The browser sees the same details over grpc-web.
async fn violations_reach_grpc_web(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let auth = format!("Bearer {}", s.admin_key);
    let answer = grpc_web_call(
        &http,
        &s.url(),
        "/keygate.v1.TokenService/CreateToken",
        &bad_token_request(),
        &[("x-grpc-web", "1"), ("authorization", &auth)],
    )
    .await;
    assert_eq!(answer.grpc_status, Code::InvalidArgument as i32);
    let bin = answer.details_bin.expect("grpc-status-details-bin");
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(bin.trim_end_matches('='))
        .unwrap();
    let status = tonic::Status::with_details(Code::InvalidArgument, "", raw.into());
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["name", "scopes[0]"]);
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    // The details are decodable as a google.rpc.Status by any client.
    assert!(tonic_types::pb::Status::decode(status.details()).is_ok());
}

/// A follower behind the compacted revision is told RESYNC_REQUIRED (ABORTED), the typed
/// reason kv-sync acts on.
async fn resync_required_has_its_reason(backend: Backend) {
    let s = TestServer::start(backend).await;
    seed_team(&s, "core").await;
    seed_team(&s, "more").await;
    let key = s.capability_key(Capability::Sync).await;
    let compacted = s.store.compact_changes(now_ms() + 60_000).await.unwrap();
    assert!(compacted > 1, "compacted up to {compacted}");
    let mut sync = SyncServiceClient::new(s.channel().await);
    let e = sync
        .watch(with_key(
            &key,
            pb::WatchRequest {
                from_revision: 0,
                follower: "test".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), reason(&e)),
        (Code::Aborted, "RESYNC_REQUIRED".into())
    );
}

keygate_control_plane::on_both_backends!(
    every_field_violation_is_returned,
    violations_reach_grpc_web,
    resync_required_has_its_reason,
);
