//! The follow loop: read the checkpoint, watch from it, apply each message's batch, write the
//! checkpoint after the data, reconcile from a snapshot when needed, report status.

use crate::metrics::State;
use crate::plan::{self, Batch};
use keygate_kv::KvBackend;
use keygate_kv_record as rec;
use keygate_proto::v1 as pb;
use keygate_proto::v1::sync_service_client::SyncServiceClient;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Client = SyncServiceClient<InterceptedService<Channel, Auth>>;

/// Adds the sync key to every call.
#[derive(Clone)]
pub struct Auth(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Why a follow round ended.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("control plane: {0}")]
    Rpc(#[from] tonic::Status),
    #[error("kv: {0}")]
    Kv(#[from] keygate_kv::KvError),
    #[error("plan: {0}")]
    Plan(#[from] plan::PlanError),
    #[error("connect: {0}")]
    Connect(String),
    #[error("the watch stream ended")]
    StreamEnded,
}

/// The control plane's "resync required" (our position was compacted away): told by the
/// typed reason in `google.rpc.ErrorInfo`, never by the message text.
fn is_resync(s: &tonic::Status) -> bool {
    use keygate_contracts::error_code::{ERROR_DOMAIN, ErrorCode};
    use tonic_types::StatusExt;
    s.get_details_error_info().is_some_and(|info| {
        info.domain == ERROR_DOMAIN
            && ErrorCode::from_reason(&info.reason) == Some(ErrorCode::ResyncRequired)
    })
}

/// A follower of one control plane into one KV store.
pub struct Follower {
    client: Client,
    kv: Arc<dyn KvBackend>,
    name: String,
    pub state: Arc<State>,
    report_every: Duration,
    reconcile_every: Option<Duration>,
    batch_window: Duration,
    max_batch_keys: usize,
    checkpoint_every: Duration,
}

/// When the checkpoint was last written (a round always ends its work on a checkpoint: only
/// full batches, with more known to follow, may skip it).
struct Progress {
    last_checkpoint: tokio::time::Instant,
}

impl Follower {
    /// Connects lazily to `addr` with `key`.
    pub fn new(
        addr: &str,
        key: &str,
        kv: Arc<dyn KvBackend>,
        name: String,
        report_every: Duration,
        reconcile_every: Option<Duration>,
    ) -> Result<Self, FollowError> {
        let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())
            .map_err(|e| FollowError::Connect(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| FollowError::Connect("the sync key is not valid header text".into()))?;
        let max_batch_keys = kv.max_batch_keys().unwrap_or(50_000);
        Ok(Self {
            client: SyncServiceClient::with_interceptor(channel, Auth(value)),
            kv,
            name,
            state: Arc::new(State::default()),
            report_every,
            reconcile_every,
            batch_window: Duration::from_millis(20),
            max_batch_keys,
            checkpoint_every: Duration::from_secs(5),
        })
    }

    /// The most keys one batch may touch. Set it to the backend's bulk-call size (10,000 for
    /// Workers KV) so a batch is one bulk write (or one write and one delete), never two
    /// calls with the second mostly empty. A full batch is applied at once, without waiting
    /// for the coalescing window.
    pub fn with_max_batch_keys(mut self, keys: usize) -> Self {
        self.max_batch_keys = keys.max(1);
        self
    }

    /// While the follower is catching up (its batches are full), the checkpoint is written at
    /// most this often; it is always written once the feed goes quiet. A crash replays at
    /// most this much, idempotently.
    pub fn with_checkpoint_every(mut self, every: Duration) -> Self {
        self.checkpoint_every = every;
        self
    }

    /// How long to keep collecting changes into one batch after the first arrives. Coalescing
    /// means fewer KV writes: Workers KV allows one write per second per key, and the
    /// checkpoint key is written after every batch, so use about 1 s there.
    pub fn with_batch_window(mut self, window: Duration) -> Self {
        self.batch_window = window;
        self
    }

    /// The KV's checkpoint, if any.
    pub async fn checkpoint(&self) -> Result<Option<i64>, FollowError> {
        Ok(self
            .kv
            .get(rec::REVISION_KEY)
            .await?
            .and_then(|b| plan::read_checkpoint(&b)))
    }

    /// Rebuilds the KV from a snapshot; returns its revision.
    pub async fn reconcile(&self) -> Result<i64, FollowError> {
        let mut client = self.client.clone();
        let mut stream = client.snapshot(pb::SnapshotRequest {}).await?.into_inner();
        let mut desired = BTreeMap::new();
        let mut revision = None;
        let mut ended = false;
        while let Some(msg) = stream.message().await? {
            use pb::snapshot_response::Part;
            match msg.part {
                Some(Part::Revision(r)) => revision = Some(r),
                Some(Part::Tokens(page)) => {
                    for t in page.tokens {
                        let key =
                            rec::token_key(&t.token_hash).map_err(|e| plan::PlanError::Bad {
                                revision: 0,
                                reason: e.to_string(),
                            })?;
                        desired.insert(key, rec::encode(&plan::token_record(&t)));
                    }
                }
                Some(Part::Routes(t)) => {
                    desired.insert(
                        rec::ROUTES_KEY.to_owned(),
                        rec::encode(&plan::route_table(&t)),
                    );
                }
                Some(Part::EndTokenCount(_)) => ended = true,
                None => {}
            }
        }
        let Some(revision) = revision.filter(|_| ended) else {
            return Err(FollowError::StreamEnded);
        };
        let existing = self.kv.list_keys(rec::PREFIX).await?;
        let (puts, deletes) = plan::reconcile(&desired, &existing);
        self.kv.apply_batch(&puts, &deletes).await?;
        let (k, v) = plan::checkpoint(revision);
        self.kv.put_many(&[(k, v)]).await?;
        self.state
            .applied_revision
            .store(revision, Ordering::Relaxed);
        self.state.snapshots.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            revision,
            records = desired.len(),
            deleted = deletes.len(),
            "reconciled from snapshot"
        );
        Ok(revision)
    }

    async fn report(&self) -> Result<bool, FollowError> {
        let mut client = self.client.clone();
        let r = client
            .report_status(pb::ReportStatusRequest {
                follower: self.name.clone(),
                applied_revision: self.state.applied_revision.load(Ordering::Relaxed),
                last_error: self.state.last_error(),
                applied_changes: self.state.applied_changes.load(Ordering::Relaxed),
            })
            .await?
            .into_inner();
        self.state
            .head_revision
            .fetch_max(r.head_revision, Ordering::Relaxed);
        Ok(r.resync_requested)
    }

    /// Applies one batch's data; then writes the checkpoint unless `full` (more is known to
    /// follow) and the last checkpoint is recent. Data always lands before its checkpoint.
    async fn apply(&self, batch: Batch, full: bool, p: &mut Progress) -> Result<(), FollowError> {
        let changes = batch.changes;
        let commit = batch.committed_at_ms;
        let revision = batch.revision;
        let (puts, deletes, checkpoint) = batch.into_ops();
        if !puts.is_empty() || !deletes.is_empty() {
            self.kv.apply_batch(&puts, &deletes).await?;
        }
        if !full || p.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.kv.put_many(&[checkpoint]).await?;
            p.last_checkpoint = tokio::time::Instant::now();
        }
        self.state
            .applied_revision
            .store(revision, Ordering::Relaxed);
        self.state
            .applied_changes
            .fetch_add(changes, Ordering::Relaxed);
        self.state.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = commit {
            self.state.applied_commit_ms.store(ms, Ordering::Relaxed);
        }
        Ok(())
    }

    /// One round: from the checkpoint (or a snapshot) until an error or `stop`.
    async fn round(
        &self,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), FollowError> {
        let mut position = match self.checkpoint().await? {
            Some(r) => r,
            None => self.reconcile().await?,
        };
        let mut progress = Progress {
            last_checkpoint: tokio::time::Instant::now(),
        };
        self.state
            .applied_revision
            .store(position, Ordering::Relaxed);
        let mut client = self.client.clone();
        let mut stream = match client
            .watch(pb::WatchRequest {
                from_revision: position,
                follower: self.name.clone(),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) if is_resync(&s) => {
                tracing::warn!(position, "feed says resync required");
                self.reconcile().await?;
                return Ok(());
            }
            Err(s) => return Err(s.into()),
        };
        let mut report = tokio::time::interval(self.report_every);
        let mut reconcile = tokio::time::interval(
            self.reconcile_every
                .unwrap_or(Duration::from_secs(365 * 86_400)),
        );
        reconcile.tick().await;
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let msg = match msg {
                        Ok(Some(m)) => m,
                        Ok(None) => return Err(FollowError::StreamEnded),
                        Err(s) if is_resync(&s) => {
                            tracing::warn!(position, "feed says resync required");
                            self.reconcile().await?;
                            return Ok(());
                        }
                        Err(s) => return Err(s.into()),
                    };
                    self.state.head_revision.fetch_max(msg.head_revision, Ordering::Relaxed);
                    if msg.changes.is_empty() {
                        continue;
                    }
                    let mut batch = Batch::after(position);
                    for c in &msg.changes {
                        if batch.keys() >= self.max_batch_keys {
                            let next = Batch::after(batch.revision);
                            self.apply(std::mem::replace(&mut batch, next), true, &mut progress).await?;
                        }
                        batch.add(c)?;
                    }
                    // Coalesce whatever else arrives within the window into the same batch;
                    // a batch that fills up goes out at once.
                    let mut until = tokio::time::Instant::now() + self.batch_window;
                    while let Ok(next) = tokio::time::timeout_at(until, stream.message()).await {
                        match next {
                            Ok(Some(m)) => {
                                self.state.head_revision.fetch_max(m.head_revision, Ordering::Relaxed);
                                for c in &m.changes {
                                    if batch.keys() >= self.max_batch_keys {
                                        let next = Batch::after(batch.revision);
                                        self.apply(std::mem::replace(&mut batch, next), true, &mut progress).await?;
                                        until = tokio::time::Instant::now() + self.batch_window;
                                    }
                                    batch.add(c)?;
                                }
                            }
                            Ok(None) => return Err(FollowError::StreamEnded),
                            Err(s) if is_resync(&s) => {
                                self.reconcile().await?;
                                return Ok(());
                            }
                            Err(s) => return Err(s.into()),
                        }
                    }
                    position = batch.revision;
                    // The window closed with nothing more: the feed is quiet, checkpoint now.
                    self.apply(batch, false, &mut progress).await?;
                    self.state.clear_error();
                }
                _ = report.tick() => {
                    match self.report().await {
                        Ok(true) => {
                            tracing::info!("resync requested by an operator");
                            self.reconcile().await?;
                            return Ok(());
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "status report failed"),
                    }
                }
                _ = reconcile.tick() => {
                    self.reconcile().await?;
                    return Ok(());
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Follows until `stop` turns true, retrying with backoff after errors.
    pub async fn run(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        while !*stop.borrow() {
            match self.round(&mut stop).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    let msg = e.to_string();
                    tracing::warn!(error = %msg, retry_in_ms = backoff.as_millis() as u64, "follow round failed");
                    self.state.set_error(&msg);
                    let _ = self.report().await;
                    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff + jitter) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_resync;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn resync_is_told_by_the_reason_not_the_text() {
        let typed = |reason: &str, message: &str| {
            tonic::Status::with_error_details(
                tonic::Code::Aborted,
                message,
                ErrorDetails::with_error_info(reason, "keygate", std::collections::HashMap::new()),
            )
        };
        assert!(is_resync(&typed("RESYNC_REQUIRED", "anything at all")));
        assert!(!is_resync(&typed("FAILED_PRECONDITION", "resync required")));
        // The old text match: no longer enough on its own.
        assert!(!is_resync(&tonic::Status::aborted("resync required: x")));
    }
}
