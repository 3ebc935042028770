//! `SystemService` RPCs.

use super::SystemSettings;
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::policy::Action;
use crate::store::DynStore;
use crate::time::{now_ms, to_timestamp};
use keygate_contracts::token::API_TOKEN_PREFIX;
use keygate_proto::v1 as pb;
use keygate_proto::v1::system_service_server::SystemService;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// The control plane's version, as `GetServerInfo` and `GetSystemStatus` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long the status page waits for the database before calling it unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SystemApi {
    store: DynStore,
    settings: SystemSettings,
}

impl SystemApi {
    pub fn new(store: DynStore, settings: SystemSettings) -> Self {
        Self { store, settings }
    }

    /// Pings the database (bounded by [`PING_TIMEOUT`]) and reads its schema version.
    async fn database(&self) -> pb::DatabaseStatus {
        let mut db = pb::DatabaseStatus {
            backend: self.store.backend().to_owned(),
            ..Default::default()
        };
        let started = Instant::now();
        let ping = tokio::time::timeout(PING_TIMEOUT, self.store.ping()).await;
        db.ping_micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match ping {
            Ok(Ok(())) => db.reachable = true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database ping failed");
                db.error = "the database did not answer; see the server log".into();
                return db;
            }
            Err(_) => {
                tracing::warn!(
                    timeout_s = PING_TIMEOUT.as_secs(),
                    "database ping timed out"
                );
                db.error = format!("no answer within {} s", PING_TIMEOUT.as_secs());
                return db;
            }
        }
        match self.store.schema_version().await {
            Ok(v) => {
                db.schema_version = v.version;
                db.schema_description = v.description;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the schema version");
                db.error = "could not read the schema version; see the server log".into();
            }
        }
        db
    }
}

#[tonic::async_trait]
impl SystemService for SystemApi {
    async fn get_server_info(
        &self,
        _req: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::GetServerInfoResponse>, Status> {
        let users = self.store.count_users().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetServerInfoResponse {
            version: VERSION.to_owned(),
            gateway_public_url: self.settings.gateway_public_url.clone(),
            token_prefix: API_TOKEN_PREFIX.to_owned(),
            usage_enabled: self.settings.usage_enabled,
            setup_required: users == 0,
        }))
    }

    async fn get_system_status(
        &self,
        req: Request<pb::GetSystemStatusRequest>,
    ) -> Result<Response<pb::GetSystemStatusResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadSystemStatus)?;
        let database = self.database().await;
        let (sync, gateways) = if database.reachable {
            let (sync, gateways) = futures::join!(
                crate::sync::service::sync_status(&self.store),
                self.store.list_gateways()
            );
            (Some(sync?), gateways.map_err(ApiError::from)?)
        } else {
            (None, Vec::new())
        };
        Ok(Response::new(pb::GetSystemStatusResponse {
            database: Some(database),
            sync,
            gateways: gateways.into_iter().map(Into::into).collect(),
            checked_at: Some(to_timestamp(now_ms())),
            server_version: VERSION.to_owned(),
        }))
    }
}
