//! Wiring: the Keygate services (tokens, routes, teams, audit, identity, sync, usage,
//! alerts, dashboard, system), health and reflection on one port, with grpc-web (HTTP/1.1)
//! translation, CORS, and the [`AuthLayer`] around all of them; in front of everything, the
//! admin UI's files ([`crate::web`]) for non-gRPC GETs.

use crate::alerts::{AlertApi, AlertSettings};
use crate::audit::AuditApi;
use crate::auth::{AuthLayer, REQUEST_ID};
use crate::browser::BrowserSettings;
use crate::dashboard::DashboardApi;
use crate::invitations::InvitationApi;
use crate::routes::RouteApi;
use crate::secrets::MasterKey;
use crate::service_accounts::ServiceAccountApi;
use crate::sessions::{AuthApi, service::AuthSettings};
use crate::store::DynStore;
use crate::sync::SyncApi;
use crate::system::{SystemApi, SystemSettings};
use crate::teams::TeamApi;
use crate::tokens::TokenApi;
use crate::usage::UsageApi;
use crate::users::UserApi;
use crate::web::{AdminWebLayer, AdminWebSource};
use http::{HeaderName, HeaderValue, Method};
use keygate_proto::v1::alert_service_server::AlertServiceServer;
use keygate_proto::v1::audit_service_server::AuditServiceServer;
use keygate_proto::v1::auth_service_server::AuthServiceServer;
use keygate_proto::v1::dashboard_service_server::DashboardServiceServer;
use keygate_proto::v1::invitation_service_server::InvitationServiceServer;
use keygate_proto::v1::route_service_server::RouteServiceServer;
use keygate_proto::v1::service_account_service_server::ServiceAccountServiceServer;
use keygate_proto::v1::sync_service_server::SyncServiceServer;
use keygate_proto::v1::system_service_server::SystemServiceServer;
use keygate_proto::v1::team_service_server::TeamServiceServer;
use keygate_proto::v1::token_service_server::TokenServiceServer;
use keygate_proto::v1::usage_service_server::UsageServiceServer;
use keygate_proto::v1::user_service_server::UserServiceServer;
use std::future::Future;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What the server needs.
#[derive(Clone)]
pub struct ServerParts {
    pub store: DynStore,
    pub master_key: MasterKey,
    /// Browser origins allowed for grpc-web; empty: no CORS headers; `*`: any.
    pub cors_origins: Vec<String>,
    pub auth: AuthSettings,
    /// Seals backend secrets for the edge (the gateways hold it too).
    pub edge_key: MasterKey,
    /// Webhook address allow-list (TestWebhook and rule checks; the evaluator runs apart).
    pub alerts: AlertSettings,
    /// What GetServerInfo reports (gateway URL, whether usage is collected).
    pub system: SystemSettings,
    /// The control plane's own public URL (`https://…` makes session cookies `Secure`; its
    /// origin may use them, as may `cors_origins`). `None`: only the server's own origin.
    pub public_url: Option<String>,
    /// Where the admin UI's files come from.
    pub admin_web: AdminWebSource,
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let any = origins.iter().any(|o| o == "*");
    let allow = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let h = |s: &'static str| HeaderName::from_static(s);
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            h("authorization"),
            h("content-type"),
            h("x-grpc-web"),
            h("x-user-agent"),
            h("grpc-timeout"),
            h(REQUEST_ID),
        ])
        .expose_headers([
            h("grpc-status"),
            h("grpc-message"),
            h("grpc-status-details-bin"),
            h(REQUEST_ID),
        ])
        .max_age(std::time::Duration::from_secs(600))
        // Listed origins may send the session cookie (a wildcard never may).
        .allow_credentials(!any && !origins.is_empty())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    parts: ServerParts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Long-lived Watch streams end when shutdown starts, so graceful shutdown can finish.
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = closing_tx.send(true);
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<TokenServiceServer<TokenApi>>()
        .await;
    health_reporter
        .set_serving::<RouteServiceServer<RouteApi>>()
        .await;
    health_reporter
        .set_serving::<TeamServiceServer<TeamApi>>()
        .await;
    health_reporter
        .set_serving::<AuditServiceServer<AuditApi>>()
        .await;
    health_reporter
        .set_serving::<AuthServiceServer<AuthApi>>()
        .await;
    health_reporter
        .set_serving::<UserServiceServer<UserApi>>()
        .await;
    health_reporter
        .set_serving::<InvitationServiceServer<InvitationApi>>()
        .await;
    health_reporter
        .set_serving::<ServiceAccountServiceServer<ServiceAccountApi>>()
        .await;
    health_reporter
        .set_serving::<SyncServiceServer<SyncApi>>()
        .await;
    health_reporter
        .set_serving::<UsageServiceServer<UsageApi>>()
        .await;
    health_reporter
        .set_serving::<AlertServiceServer<AlertApi>>()
        .await;
    health_reporter
        .set_serving::<DashboardServiceServer<DashboardApi>>()
        .await;
    health_reporter
        .set_serving::<SystemServiceServer<SystemApi>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(keygate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptor sets are valid");
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(keygate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .expect("embedded descriptor sets are valid");

    let store = parts.store.clone();
    tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(AdminWebLayer::new(parts.admin_web.clone()))
        .layer(cors_layer(&parts.cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(AuthLayer::new(
            store.clone(),
            BrowserSettings::new(parts.public_url.as_deref(), &parts.cors_origins),
        ))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(TokenServiceServer::new(TokenApi::new(store.clone())))
        .add_service(RouteServiceServer::new(RouteApi::new(
            store.clone(),
            parts.master_key.clone(),
        )))
        .add_service(TeamServiceServer::new(TeamApi::new(store.clone())))
        .add_service(AuditServiceServer::new(AuditApi::new(store.clone())))
        .add_service(AuthServiceServer::new(AuthApi::new(
            store.clone(),
            parts.auth.clone(),
        )))
        .add_service(UserServiceServer::new(UserApi::new(store.clone())))
        .add_service(InvitationServiceServer::new(InvitationApi::new(
            store.clone(),
        )))
        .add_service(ServiceAccountServiceServer::new(ServiceAccountApi::new(
            store.clone(),
        )))
        // Usage batches are larger than any management call (5,000 events per call).
        .add_service(
            UsageServiceServer::new(
                UsageApi::new(store.clone()).with_ingestion(parts.system.usage_enabled),
            )
            .max_decoding_message_size(crate::usage::service::MAX_REQUEST_BYTES),
        )
        .add_service(DashboardServiceServer::new(DashboardApi::new(
            store.clone(),
        )))
        .add_service(SystemServiceServer::new(SystemApi::new(
            store.clone(),
            parts.system.clone(),
        )))
        .add_service(AlertServiceServer::new(AlertApi::new(
            store.clone(),
            parts.master_key.clone(),
            parts.alerts.clone(),
        )))
        .add_service(SyncServiceServer::new(SyncApi::new(
            store,
            parts.master_key.clone(),
            parts.edge_key.clone(),
            closing_rx,
        )))
        // TCP_NODELAY: without it Nagle's algorithm and delayed ACKs add ~40 ms to small
        // unary responses (measured in bench/: 44 ms vs 1 ms per List call).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
