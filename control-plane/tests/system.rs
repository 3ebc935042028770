//! L3: `SystemService` through the real server: GetServerInfo before sign-in (gRPC and
//! grpc-web), GetSystemStatus for system admins (database, schema, sync, gateways), and the
//! usage ingestion switch it reports.

use keygate_control_plane::policy::Role;
use keygate_control_plane::service_accounts::Capability;
use keygate_control_plane::testing::{Backend, TestServer, grpc_web_call, with_key};
use keygate_control_plane::time::now_ms;
use keygate_proto::v1 as pb;
use keygate_proto::v1::system_service_client::SystemServiceClient;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use tonic::Code;

/// The newest migration file's number for `backend` (what the server applied at start).
fn newest_migration(backend: Backend) -> i64 {
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .unwrap()
}

fn report(gateway: &str, config_revision: i64) -> pb::IngestUsageRequest {
    pb::IngestUsageRequest {
        gateway: gateway.into(),
        events: vec![pb::UsageEvent {
            event_id: format!("{gateway}-1"),
            time: Some(keygate_control_plane::time::to_timestamp(now_ms() - 1000)),
            route: "billing".into(),
            method: "GET".into(),
            status: 401,
            latency_us: 500,
            config_revision,
            ..Default::default()
        }],
        config_revision,
        gateway_version: "test".into(),
        ..Default::default()
    }
}

/// Public facts, with the configured gateway URL and usage switch; no credentials needed,
/// bad ones ignored.
async fn server_info_is_public(backend: Backend) {
    let s = TestServer::start_adjusted(backend, |p| {
        p.system.gateway_public_url = "https://gw.example.com".into();
        p.system.usage_enabled = false;
    })
    .await;
    let mut system = SystemServiceClient::new(s.channel().await);
    for request in [
        tonic::Request::new(pb::GetServerInfoRequest {}),
        with_key("kgs_not_a_session", pb::GetServerInfoRequest {}),
    ] {
        let info = system.get_server_info(request).await.unwrap().into_inner();
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.gateway_public_url, "https://gw.example.com");
        assert_eq!(info.token_prefix, "kg");
        assert!(!info.usage_enabled);
        assert!(!info.setup_required, "the test admin exists");
    }
    // With ingestion off, gateways' reports are refused, and say why.
    let gw = s.capability_key(Capability::Gateway).await;
    let e = UsageServiceClient::new(s.channel().await)
        .ingest_usage(with_key(&gw, report("edge-1", 3)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("KEYGATE_USAGE_INGESTION"),
        "{}",
        e.message()
    );

    // The admin UI asks over grpc-web before anyone signed in.
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    let answer = grpc_web_call(
        &http,
        &s.url(),
        "/keygate.v1.SystemService/GetServerInfo",
        &pb::GetServerInfoRequest {},
        &[("x-grpc-web", "1")],
    )
    .await;
    assert_eq!(answer.grpc_status, 0, "{}", answer.grpc_message);
    let info: pb::GetServerInfoResponse = answer.decode();
    assert_eq!(info.gateway_public_url, "https://gw.example.com");

    // A fresh installation says setup is due.
    let empty = TestServer::start_empty(backend).await;
    let info = SystemServiceClient::new(empty.channel().await)
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(info.setup_required);
    assert!(info.usage_enabled, "on by default");
    assert_eq!(info.gateway_public_url, "http://127.0.0.1:8080");
}

/// The database, the schema version, the change feed and the gateways, for system admins.
async fn system_status_for_system_admins(backend: Backend) {
    let s = TestServer::start(backend).await;
    let gw = s.capability_key(Capability::Gateway).await;
    let mut usage = UsageServiceClient::new(s.channel().await);
    usage
        .ingest_usage(with_key(&gw, report("edge-1", 7)))
        .await
        .unwrap();
    let mut system = SystemServiceClient::new(s.channel().await);
    let status = system
        .get_system_status(s.request(pb::GetSystemStatusRequest {}))
        .await
        .unwrap()
        .into_inner();
    let db = status.database.unwrap();
    let kind = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(db.backend, kind);
    assert!(db.reachable, "{}", db.error);
    assert!(db.ping_micros > 0 && db.ping_micros < 5_000_000);
    assert_eq!(db.schema_version, newest_migration(backend));
    assert!(!db.schema_description.is_empty());
    assert!(db.error.is_empty());
    let sync = status.sync.unwrap();
    assert_eq!(sync.head_revision, s.store.head_revision().await.unwrap());
    assert!(sync.head_revision > 0, "creating the ops team was a change");
    let edge = status
        .gateways
        .iter()
        .find(|g| g.name == "edge-1")
        .expect("the reporting gateway");
    assert_eq!(edge.config_revision, 7);
    assert_eq!(edge.version, "test");
    assert!(edge.last_seen_at.is_some());
    assert!(status.checked_at.is_some());
    assert_eq!(status.server_version, env!("CARGO_PKG_VERSION"));

    // Team roles give no view of the system.
    let admin = s
        .user("team-admin@system.test", &[("ops", Role::Admin)])
        .await;
    let e = system
        .get_system_status(with_key(&admin.token, pb::GetSystemStatusRequest {}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}

keygate_control_plane::on_both_backends!(server_info_is_public, system_status_for_system_admins,);
