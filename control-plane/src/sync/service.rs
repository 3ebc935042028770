//! `SyncService` RPCs: the change feed for kv-sync.

use super::model::{EdgeRouteSource, EdgeToken, Follower, SnapshotPart};
use crate::authz;
use crate::context;
use crate::error::{ApiError, ErrorCode};
use crate::policy::Action;
use crate::secrets::MasterKey;
use crate::store::{ChangeEvent, DynStore};
use crate::time::{to_timestamp, to_timestamp_opt};
use futures::StreamExt;
use futures::stream::BoxStream;
use keygate_contracts::names;
use keygate_proto::v1 as pb;
use keygate_proto::v1::sync_service_server::SyncService;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Changes read per round trip when replaying.
const BATCH: u32 = 500;
/// A heartbeat (empty message with the head revision) at least this often when idle.
const HEARTBEAT: Duration = Duration::from_secs(10);

pub struct SyncApi {
    store: DynStore,
    /// Bounds LookupEdgeToken over every caller (a flood of random well-formed keys reaches
    /// the database at most this fast).
    lookups: governor::DefaultDirectRateLimiter,
    master_key: MasterKey,
    edge_key: MasterKey,
    /// Turns true when the server is shutting down: open Watch streams end, so a graceful
    /// shutdown does not wait on followers forever.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl SyncApi {
    pub fn new(
        store: DynStore,
        master_key: MasterKey,
        edge_key: MasterKey,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            lookups: governor::RateLimiter::direct(governor::Quota::per_second(
                std::num::NonZeroU32::new(LOOKUPS_PER_SECOND).expect("non-zero"),
            )),
            master_key,
            edge_key,
            closing,
        }
    }
}

/// LookupEdgeToken calls answered per second by one control plane, over all gateways.
pub const LOOKUPS_PER_SECOND: u32 = 200;

fn resync(detail: String) -> Status {
    ApiError::new(
        ErrorCode::ResyncRequired,
        format!("resync required: {detail}"),
    )
    .into()
}

/// The change feed's head, compaction point and followers (GetSyncStatus, and the system
/// status page).
pub async fn sync_status(store: &DynStore) -> Result<pb::GetSyncStatusResponse, ApiError> {
    let (head, compacted, followers) = futures::try_join!(
        store.head_revision(),
        store.compacted_revision(),
        store.list_followers()
    )?;
    Ok(pb::GetSyncStatusResponse {
        head_revision: head,
        compacted_revision: compacted,
        followers: followers
            .into_iter()
            .map(|f| pb::FollowerStatus {
                lag_revisions: (head - f.applied_revision).max(0),
                follower: f.follower,
                applied_revision: f.applied_revision,
                last_error: f.last_error,
                reported_at: Some(to_timestamp(f.reported_at)),
                applied_changes: u64::try_from(f.applied_changes).unwrap_or(0),
                resync_requested: f.resync_requested,
            })
            .collect(),
    })
}

fn edge_token(t: EdgeToken) -> pb::EdgeToken {
    pb::EdgeToken {
        token_hash: t.token_hash,
        token_id: t.token_id.0,
        team_id: t.team_id.0,
        scopes: t.scopes,
        expires_at: to_timestamp_opt(t.expires_at),
        rate_limit_per_minute: t.rate_limit_per_minute,
    }
}

/// Re-seals each route's secret from the master key to the edge key: the plaintext exists
/// only in this function's memory, and only the edge key's holder can open the result.
fn edge_routes(
    master: &MasterKey,
    edge: &MasterKey,
    routes: Vec<EdgeRouteSource>,
) -> Result<pb::EdgeRouteTable, Status> {
    let mut out = Vec::with_capacity(routes.len());
    for src in routes {
        let r = src.route;
        let slot = r.backend_auth.kind.secret_slot();
        let sealed = match slot.and_then(|s| src.secrets.iter().find(|(slot, _)| slot == s)) {
            Some((slot, sealed)) => {
                let aad = format!("{}/{}", r.id, slot);
                let plain = master
                    .open(&aad, sealed)
                    .map_err(|e| ApiError::internal(&e))?;
                edge.seal(&aad, &plain)
            }
            None => String::new(),
        };
        out.push(pb::EdgeRoute {
            route_id: r.id.0,
            name: r.name,
            team_id: r.team_id.0,
            path_prefix: r.path_prefix,
            backend_url: r.backend_url,
            tags: r.tags,
            methods: r.methods,
            strip_prefix: r.strip_prefix,
            timeout_ms: r.timeout_ms,
            backend_auth: Some(pb::EdgeBackendAuth {
                r#type: r.backend_auth.kind.as_str().to_owned(),
                header_name: r.backend_auth.header_name,
                username: r.backend_auth.username,
                sealed_secret: sealed,
            }),
            allowed_team_ids: r.allowed_team_ids.into_iter().map(|t| t.0).collect(),
            cors_origins: r.cors_origins,
            rate_limit_per_minute: r.rate_limit_per_minute,
        });
    }
    Ok(pb::EdgeRouteTable { routes: out })
}

/// Turns outbox events into edge changes, reading the entities' current state.
async fn to_edge(
    store: &DynStore,
    master: &MasterKey,
    edge: &MasterKey,
    events: &[ChangeEvent],
) -> Result<Vec<pb::EdgeChange>, Status> {
    // One route table per batch, read once, attached to the batch's last route change.
    let last_route = events.iter().rposition(|e| e.entity_type == "route");
    let mut routes = None;
    if last_route.is_some() {
        let sources = store.edge_routes().await.map_err(ApiError::from)?;
        routes = Some(edge_routes(master, edge, sources)?);
    }
    // The live tokens this page mentions, read in one query.
    let ids: Vec<crate::ids::TokenId> = events
        .iter()
        .filter(|e| e.entity_type == "token" && e.op != "delete")
        .map(|e| crate::ids::TokenId(e.entity_id.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let live_tokens: std::collections::HashMap<String, crate::sync::EdgeToken> = if ids.is_empty() {
        Default::default()
    } else {
        store
            .edge_tokens(&ids)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| (t.token_id.0.clone(), t))
            .collect()
    };
    let mut out = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        use pb::edge_change::Change;
        let change = match e.entity_type.as_str() {
            "token" => {
                let payload: serde_json::Value =
                    serde_json::from_str(&e.payload).unwrap_or_default();
                let hash = payload["token_hash"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                // The current state, not the state at this event's revision: a later event
                // on the same token in this page will carry the same record (idempotent).
                let live = if e.op == "delete" {
                    None
                } else {
                    live_tokens.get(&e.entity_id).cloned()
                };
                match live {
                    Some(t) => Change::TokenUpsert(edge_token(t)),
                    None => Change::TokenDeleteHash(hash),
                }
            }
            "route" if Some(i) == last_route => Change::Routes(routes.take().unwrap_or_default()),
            _ => Change::Nothing(true),
        };
        out.push(pb::EdgeChange {
            revision: e.revision,
            committed_at: Some(to_timestamp(e.at)),
            change: Some(change),
        });
    }
    Ok(out)
}

#[tonic::async_trait]
impl SyncService for SyncApi {
    type WatchStream = BoxStream<'static, Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::FollowFeed)?;
        let r = req.into_inner();
        let compacted = self
            .store
            .compacted_revision()
            .await
            .map_err(ApiError::from)?;
        if r.from_revision < compacted {
            return Err(resync(format!(
                "revision {} is older than the outbox retention (compacted up to {compacted})",
                r.from_revision
            )));
        }
        let (tx, rx) = mpsc::channel::<Result<pb::WatchResponse, Status>>(8);
        let store = self.store.clone();
        let (master, edge) = (self.master_key.clone(), self.edge_key.clone());
        let follower = r.follower;
        let mut closing = self.closing.clone();
        tokio::spawn(async move {
            let mut position = r.from_revision;
            let mut commits = store.subscribe();
            tracing::info!(follower = %follower, from = position, "watch started");
            // The first message goes out at once, so followers know the head immediately.
            let mut first = true;
            loop {
                commits.borrow_and_update();
                let events = match store.list_changes(position, BATCH).await {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into())).await;
                        return;
                    }
                };
                if let Some(first_event) = events.first()
                    && first_event.revision != position + 1
                {
                    // Compaction ran past this follower while it was behind.
                    let _ = tx
                        .send(Err(resync(format!(
                            "revisions after {position} were compacted"
                        ))))
                        .await;
                    return;
                }
                let head = match store.head_revision().await {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into())).await;
                        return;
                    }
                };
                if !events.is_empty() || first {
                    first = false;
                    let changes = match to_edge(&store, &master, &edge, &events).await {
                        Ok(c) => c,
                        Err(s) => {
                            let _ = tx.send(Err(s)).await;
                            return;
                        }
                    };
                    if let Some(last) = events.last() {
                        position = last.revision;
                    }
                    if tx
                        .send(Ok(pb::WatchResponse {
                            changes,
                            head_revision: head,
                        }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if events.len() as u32 == BATCH {
                        continue;
                    }
                }
                // Caught up: wait for the next commit, or send a heartbeat.
                tokio::select! {
                    changed = commits.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(HEARTBEAT) => {
                        if tx.send(Ok(pb::WatchResponse { changes: vec![], head_revision: head })).await.is_err() {
                            return;
                        }
                    }
                    _ = tx.closed() => return,
                    _ = closing.changed() => {
                        let _ = tx.send(Err(ApiError::new(ErrorCode::Unavailable, "the control plane is shutting down; reconnect").into())).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    type SnapshotStream = BoxStream<'static, Result<pb::SnapshotResponse, Status>>;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::FollowFeed)?;
        let (master, edge) = (self.master_key.clone(), self.edge_key.clone());
        let parts = self.store.snapshot(5000).map(move |p| {
            use pb::snapshot_response::Part;
            let part = match p.map_err(|e| Status::from(ApiError::from(e)))? {
                SnapshotPart::Revision(r) => Part::Revision(r),
                SnapshotPart::Tokens(t) => Part::Tokens(pb::EdgeTokenPage {
                    tokens: t.into_iter().map(edge_token).collect(),
                }),
                SnapshotPart::Routes(r) => Part::Routes(edge_routes(&master, &edge, r)?),
                SnapshotPart::End(n) => Part::EndTokenCount(n),
            };
            Ok(pb::SnapshotResponse { part: Some(part) })
        });
        Ok(Response::new(parts.boxed()))
    }

    async fn report_status(
        &self,
        req: Request<pb::ReportStatusRequest>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::FollowFeed)?;
        let r = req.into_inner();
        names::validate_text("follower", &r.follower, 100, true, false).map_err(ApiError::from)?;
        names::validate_text("last_error", &r.last_error, 2000, false, true)
            .map_err(ApiError::from)?;
        let resync_requested = self
            .store
            .report_follower(&Follower {
                follower: r.follower,
                applied_revision: r.applied_revision,
                last_error: r.last_error,
                applied_changes: i64::try_from(r.applied_changes).unwrap_or(i64::MAX),
                reported_at: 0,
                resync_requested: false,
            })
            .await
            .map_err(ApiError::from)?;
        let head_revision = self.store.head_revision().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ReportStatusResponse {
            resync_requested,
            head_revision,
        }))
    }

    async fn lookup_edge_token(
        &self,
        req: Request<pb::LookupEdgeTokenRequest>,
    ) -> Result<Response<pb::LookupEdgeTokenResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::LookupEdgeToken)?;
        let hash = req.into_inner().token_hash;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ApiError::invalid(
                "token_hash",
                "must be 64 lowercase hexadecimal characters (SHA-256 of the key)",
            )
            .into());
        }
        if self.lookups.check().is_err() {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("more than {LOOKUPS_PER_SECOND} token lookups per second; retry later"),
            )
            .into());
        }
        let token = self
            .store
            .edge_token_by_hash(&hash)
            .await
            .map_err(ApiError::from)?;
        let head_revision = self.store.head_revision().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::LookupEdgeTokenResponse {
            token: token.map(edge_token),
            head_revision,
        }))
    }

    async fn get_sync_status(
        &self,
        req: Request<pb::GetSyncStatusRequest>,
    ) -> Result<Response<pb::GetSyncStatusResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ManageSync)?;
        Ok(Response::new(sync_status(&self.store).await?))
    }

    async fn request_resync(
        &self,
        req: Request<pb::RequestResyncRequest>,
    ) -> Result<Response<pb::RequestResyncResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let r = req.into_inner();
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::ManageSync,
            "sync.resync",
            &r.follower,
        )
        .await?;
        let follower = (!r.follower.is_empty()).then_some(r.follower.as_str());
        let n = self
            .store
            .request_resync(follower)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RequestResyncResponse { followers: n }))
    }
}
