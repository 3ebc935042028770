//! Usage reporting: every answered request is counted in its worker thread's rollups, and raw
//! events are kept only where a person needs them; both go to the control plane's
//! `UsageService.IngestUsage`, authenticated with the gateway's service-account key.
//!
//! - **Rollups** (`keygate-rollup`): each worker thread records every answered request into
//!   its own [`keygate_rollup::Accumulator`] ([`local`]: no lock, no allocation on a warm key),
//!   keyed by minute of arrival, token, team, route, status and gateway error code. Every
//!   flush interval it hands what it counted to the sender ([`UsageHub::hand_over`]), which
//!   merges the hand-overs per key ([`outbox`], bounded by a key cap) and sends them in calls
//!   of at most 20,000 rows, each with a `batch_id`; a failed call is retried identical, so a
//!   call whose answer was lost is not counted twice.
//! - **Raw events** ([`events`]): for refusals (status >= 400 answered by the gateway) and 5xx,
//!   within a gateway-wide budget per second ([`budget`]; the rest are counted as
//!   `sampled_out`), and for each token's first success of a minute (once per worker, then
//!   once over the gateway). They wait in a bounded buffer (oldest dropped and counted) and
//!   go in calls of at most 5,000, apart from the rollups and without a `batch_id`; a failed
//!   call goes back to the buffer's front (the control plane ignores resent events,
//!   `(gateway, event_id)` is unique).
//!
//! Owns: where a request is recorded (the worker's rollups) and which wanted event is kept
//! (the budget, the first-success marks; which events are wanted, and when a request is
//! recorded, are the request pipeline's: `keygate_gateway_pipeline::{wanted, Exchange}`), and
//! delivering it. Must not: take a lock or allocate on the request path for a request whose
//! key is warm and whose event is not kept.

mod budget;
mod events;
mod local;
mod outbox;

pub use events::{MAX_EVENTS, UsageBuffer};
/// Which raw events are wanted is the pipeline's rule, shared with the Worker.
pub use keygate_gateway_pipeline::{Keep, wanted};
pub use outbox::{MAX_ROLLUPS, Outbox, RollupBatch};

use crate::metrics::UsageCounters;
use crate::snapshot::ConfigState;
use budget::Budget;
use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use keygate_rollup::{RollupKey, RollupKeyRef, RollupValue};
use local::Local;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// What a worker hands the sender every flush interval.
#[derive(Debug, Default)]
pub struct Handover {
    pub rollups: Vec<(RollupKey, RollupValue)>,
    /// Raw events not kept because of the budget.
    pub sampled_out: u64,
}

/// How usage is reported.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A gateway key is configured: record and send. Off: nothing is recorded.
    pub enabled: bool,
    /// Raw events held (`KEYGATE_USAGE_BUFFER`).
    pub buffer: usize,
    /// Hand-over and send interval (`KEYGATE_USAGE_FLUSH_MS`).
    pub flush: Duration,
    /// Refusal and 5xx events per second (`KEYGATE_USAGE_EVENT_BUDGET`).
    pub event_budget: u32,
    /// Rollup keys held for the control plane (`KEYGATE_USAGE_MAX_PENDING_ROLLUPS`).
    pub max_pending_rollups: usize,
}

impl Settings {
    /// Usage reporting off (tests, no gateway key).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            buffer: 1,
            flush: Duration::from_secs(10),
            event_budget: 0,
            max_pending_rollups: 1,
        }
    }
}

/// The gateway's usage state shared by its workers and the sender.
pub struct UsageHub {
    /// Tells this hub's thread-local state apart (tests run several gateways in a process).
    id: u64,
    enabled: bool,
    pub events: UsageBuffer,
    budget: Budget,
    flush: Duration,
    max_pending_rollups: usize,
    /// Boot id: event ids and batch ids are `<boot>-...`.
    boot: String,
    /// Recorded on threads that are not this gateway's workers (never on the request path).
    fallback: Mutex<Local>,
    pub counters: UsageCounters,
    /// Rollup rows held by the sender (pending and in flight).
    rollups_pending: AtomicU64,
}

impl UsageHub {
    pub fn new(s: Settings, counters: UsageCounters) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let boot = format!("{:016x}", rand::random::<u64>());
        Self {
            id,
            enabled: s.enabled,
            events: UsageBuffer::new(s.buffer, s.enabled, &boot),
            budget: Budget::new(s.event_budget),
            flush: s.flush,
            max_pending_rollups: s.max_pending_rollups,
            boot,
            fallback: Mutex::new(Local::new(id)),
            counters,
            rollups_pending: AtomicU64::new(0),
        }
    }

    /// Usage reporting off: nothing recorded, nothing kept.
    pub fn disabled() -> Self {
        Self::new(Settings::disabled(), UsageCounters::default())
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn flush_every(&self) -> Duration {
        self.flush
    }

    /// Rollup rows the sender holds, not yet accepted.
    pub fn rollups_pending(&self) -> u64 {
        self.rollups_pending.load(Ordering::Relaxed)
    }

    fn fallback(&self) -> std::sync::MutexGuard<'_, Local> {
        self.fallback.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the calling thread one of this gateway's workers: what it records goes to its
    /// own rollups, handed over by [`UsageHub::hand_over`] on the same thread.
    pub fn install_worker(&self) {
        if self.enabled {
            local::install(self.id);
        }
    }

    /// Counts one answered request in the calling worker's rollups.
    #[inline]
    pub fn record(
        &self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let record = |l: &mut Local| l.record(key, latency_us, request_bytes, response_bytes);
        if let Err(record) = local::with(self.id, record) {
            record(&mut self.fallback());
        }
    }

    /// Whether a request answered with `status` (arrived at `at_ms`) gets a raw event: see
    /// [`wanted`]; refusals and 5xx spend the budget (or count as sampled out), a success
    /// needs to be `token_id`'s first of the minute on this worker.
    pub fn keep(&self, status: u16, by_gateway: bool, at_ms: i64, token_id: &str) -> Keep {
        if !self.enabled {
            return Keep::No;
        }
        match wanted(status, by_gateway, !token_id.is_empty()) {
            Keep::No => Keep::No,
            Keep::Event => {
                if self.budget.take(at_ms) {
                    return Keep::Event;
                }
                if let Err(out) = local::with(self.id, Local::sampled_out) {
                    out(&mut self.fallback());
                }
                Keep::No
            }
            Keep::FirstSuccess => {
                let minute = keygate_rollup::minute_of(at_ms);
                let first = |l: &mut Local| l.first_success(minute, token_id);
                let first = match local::with(self.id, first) {
                    Ok(first) => first,
                    Err(first) => first(&mut self.fallback()),
                };
                if first { Keep::FirstSuccess } else { Keep::No }
            }
        }
    }

    /// Queues a kept event (`at_ms`: the request's arrival).
    pub fn push_event(&self, keep: Keep, e: pb::UsageEvent, at_ms: i64) {
        match keep {
            Keep::No => {}
            Keep::Event => self.events.push(e),
            Keep::FirstSuccess => self
                .events
                .push_first_success(e, keygate_rollup::minute_of(at_ms)),
        }
    }

    /// What the calling worker thread recorded since its last hand-over.
    pub fn hand_over(&self) -> Option<Handover> {
        local::with(self.id, Local::take).ok().flatten()
    }

    fn take_fallback(&self) -> Option<Handover> {
        self.fallback().take()
    }
}

/// Where the sender reports.
#[derive(Clone)]
pub struct Target {
    /// The control plane's gRPC address.
    pub addr: String,
    /// The gateway's management key.
    pub key: String,
    /// This instance's name.
    pub gateway: String,
}

/// Adds the gateway's key to every call.
#[derive(Clone)]
struct Auth(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Client = UsageServiceClient<InterceptedService<Channel, Auth>>;

fn client(target: &Target) -> Option<Client> {
    let channel = match tonic::transport::Endpoint::from_shared(target.addr.clone()) {
        Ok(e) => e
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_lazy(),
        Err(e) => {
            tracing::error!(error = %e, addr = %target.addr, "bad control plane address; usage will not be sent");
            return None;
        }
    };
    let Ok(bearer) = format!("Bearer {}", target.key).parse() else {
        tracing::error!("the gateway key is not valid header text; usage will not be sent");
        return None;
    };
    Some(UsageServiceClient::with_interceptor(channel, Auth(bearer)))
}

/// The sender's state: the rollups it holds and the way to the control plane.
struct Sender {
    hub: Arc<UsageHub>,
    client: Client,
    outbox: Outbox,
    gateway: String,
    state: Arc<ConfigState>,
}

impl Sender {
    fn revision(&self) -> i64 {
        self.state.load().map_or(0, |s| s.revision)
    }

    /// Merges a worker's hand-over in.
    fn absorb(&mut self, h: Handover) {
        let added = self.outbox.add(h);
        let c = &self.hub.counters;
        c.requests_counted.inc_by(added.requests);
        c.events_sampled_out.inc_by(added.sampled_out);
        if added.dropped > 0 {
            c.rollups_dropped.inc_by(added.dropped);
            tracing::warn!(
                requests = added.dropped,
                max_keys = self.hub.max_pending_rollups,
                "usage rollups dropped: too many pending for the control plane"
            );
        }
        self.publish();
    }

    fn publish(&self) {
        self.hub
            .rollups_pending
            .store(self.outbox.rows() as u64, Ordering::Relaxed);
    }

    /// Sends what is pending, rollups first; `Err` at the first call the control plane did
    /// not take for a reason that may pass (it is retried later, identical).
    async fn send_all(&mut self) -> Result<(), ()> {
        if let Some(h) = self.hub.take_fallback() {
            self.absorb(h);
        }
        let r = self.send_rollups().await;
        self.publish();
        r?;
        self.send_events().await
    }

    async fn send_rollups(&mut self) -> Result<(), ()> {
        let revision = self.revision();
        let c = self.hub.counters.clone();
        while let Some(batch) = self.outbox.next_batch() {
            if batch.req.gateway.is_empty() {
                // Set once: a retry is the identical call.
                batch.req.gateway = self.gateway.clone();
                batch.req.config_revision = revision;
                batch.req.gateway_version = env!("CARGO_PKG_VERSION").into();
            }
            let (rows, requests) = (batch.req.rollups.len(), batch.requests);
            match self.client.ingest_usage(batch.req.clone()).await {
                Ok(resp) => {
                    let resp = resp.into_inner();
                    let batch = self.outbox.accepted();
                    if resp.replayed || resp.rollups_accepted as usize >= rows {
                        c.rollups_sent.inc_by(rows as u64);
                        c.rollup_requests_sent.inc_by(requests);
                    } else {
                        tracing::warn!(
                            rows,
                            accepted = resp.rollups_accepted,
                            batch_id = batch.map(|b| b.req.batch_id).unwrap_or_default(),
                            "the control plane did not store every usage rollup (an older version?)"
                        );
                    }
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    // Never retried: the same call would be refused again.
                    self.hub
                        .events
                        .send_errors_total
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(b) = self.outbox.refused() {
                        c.rollups_dropped.inc_by(b.requests);
                        tracing::error!(error = %status.message(), batch_id = %b.req.batch_id, rollups = rows, requests, "usage rollups refused as malformed; dropped");
                    }
                }
                Err(status) => {
                    self.hub
                        .events
                        .send_errors_total
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(code = ?status.code(), error = %status.message(), pending_rollups = self.outbox.rows(), "sending usage rollups failed; will retry");
                    return Err(());
                }
            }
        }
        Ok(())
    }

    async fn send_events(&mut self) -> Result<(), ()> {
        let buffer = &self.hub.events;
        loop {
            let batch = buffer.take(MAX_EVENTS);
            if batch.is_empty() {
                return Ok(());
            }
            let n = batch.len();
            let dropped = buffer.dropped_pending.swap(0, Ordering::Relaxed);
            // No batch_id: a resend after a failure may differ (the buffer keeps the
            // newest), and events are idempotent on their own (`event_id`; a call whose
            // every event was stored before is a resend, its `dropped` not counted again).
            let req = pb::IngestUsageRequest {
                gateway: self.gateway.clone(),
                events: batch.clone(),
                dropped,
                config_revision: self.revision(),
                gateway_version: env!("CARGO_PKG_VERSION").into(),
                events_sampled: true,
                ..Default::default()
            };
            match self.client.ingest_usage(req).await {
                Ok(_) => {
                    buffer.sent_total.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    // Never retry a batch the control plane refuses as malformed.
                    buffer.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    buffer.dropped_total.fetch_add(n as u64, Ordering::Relaxed);
                    buffer
                        .dropped_pending
                        .fetch_add(dropped + n as u64, Ordering::Relaxed);
                    tracing::error!(error = %status.message(), events = n, "usage events refused as malformed; dropped");
                }
                Err(status) => {
                    buffer.dropped_pending.fetch_add(dropped, Ordering::Relaxed);
                    buffer.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    buffer.put_back(batch);
                    tracing::warn!(code = ?status.code(), error = %status.message(), pending = buffer.len(), "sending usage events failed; will retry");
                    return Err(());
                }
            }
        }
    }
}

/// How long the sender waits after a hand-over for the other workers' before it sends.
const GATHER: Duration = Duration::from_millis(250);

/// Merges the workers' hand-overs and reports every flush interval (sooner when
/// [`MAX_EVENTS`] events wait), backing off while the control plane does not take them. On
/// `stop` it waits for the workers' last hand-overs (the channel closes when every worker
/// thread has ended) and reports once more.
pub async fn run_sender(
    hub: Arc<UsageHub>,
    mut handovers: tokio::sync::mpsc::UnboundedReceiver<Handover>,
    state: Arc<ConfigState>,
    target: Target,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(client) = client(&target) else {
        return;
    };
    let every = hub.flush;
    let mut s = Sender {
        outbox: Outbox::new(hub.max_pending_rollups, &hub.boot),
        hub,
        client,
        gateway: target.gateway,
        state,
    };
    let mut backoff = every;
    let mut next = tokio::time::Instant::now() + every;
    let mut open = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            // A full batch of events waiting: send now, unless backing off.
            _ = s.hub.events.wake.notified(), if backoff == every => {}
            h = handovers.recv(), if open => {
                match h {
                    Some(h) => {
                        s.absorb(h);
                        // Send shortly after the workers' hand-overs (their ticks line up:
                        // they start together), not up to a whole interval later, so a
                        // request reaches the control plane within about one interval.
                        if backoff == every {
                            next = next.min(tokio::time::Instant::now() + GATHER);
                        }
                    }
                    None => open = false,
                }
                continue;
            }
            _ = stop.changed() => break,
        }
        backoff = match s.send_all().await {
            Ok(()) => every,
            Err(()) => (backoff * 2).min(Duration::from_secs(30)),
        };
        next = tokio::time::Instant::now() + backoff;
    }
    // The workers hand over their last counts as their threads end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while open {
        match tokio::time::timeout_at(deadline, handovers.recv()).await {
            Ok(Some(h)) => s.absorb(h),
            Ok(None) => open = false,
            Err(_) => {
                tracing::warn!(
                    "usage: workers still running 30 s after stop; sending without them"
                );
                break;
            }
        }
    }
    if s.send_all().await.is_err() {
        tracing::warn!(
            rollups = s.outbox.rows(),
            requests = s.outbox.requests(),
            events = s.hub.events.len(),
            "usage not delivered at shutdown: the control plane did not take it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_answers_want_an_event() {
        // (status, by the gateway, known token) -> wanted
        let cases = [
            (200, false, true, Keep::FirstSuccess),
            (200, false, false, Keep::No),
            (204, true, false, Keep::No), // a preflight
            (304, false, true, Keep::FirstSuccess),
            (401, true, false, Keep::Event),
            (403, true, true, Keep::Event),
            (429, true, true, Keep::Event),
            (404, false, true, Keep::No), // the backend's 404
            (500, false, true, Keep::Event),
            (502, true, true, Keep::Event),
            (503, true, false, Keep::Event),
        ];
        for (status, by_gateway, token, want) in cases {
            assert_eq!(
                wanted(status, by_gateway, token),
                want,
                "{status} {by_gateway} {token}"
            );
        }
    }

    fn hub(budget: u32) -> UsageHub {
        UsageHub::new(
            Settings {
                enabled: true,
                buffer: 100,
                flush: Duration::from_secs(10),
                event_budget: budget,
                max_pending_rollups: 100,
            },
            UsageCounters::default(),
        )
    }

    /// Over the budget, refusals are sampled out and counted in the worker's hand-over; a
    /// token's first success of a minute is kept once per worker.
    #[test]
    fn budget_and_first_success_on_a_worker() {
        let h = Arc::new(hub(2));
        let at = 1_700_000_000_000;
        let h2 = h.clone();
        std::thread::spawn(move || {
            let h = h2;
            h.install_worker();
            let kept: Vec<Keep> = (0..5).map(|_| h.keep(401, true, at, "")).collect();
            assert_eq!(
                kept,
                [Keep::Event, Keep::Event, Keep::No, Keep::No, Keep::No]
            );
            assert_eq!(h.keep(200, false, at, "tok_a"), Keep::FirstSuccess);
            assert_eq!(h.keep(200, false, at + 1, "tok_a"), Keep::No);
            assert_eq!(h.keep(201, false, at, "tok_b"), Keep::FirstSuccess);
            assert_eq!(h.keep(404, false, at, "tok_b"), Keep::No);
            h.record(
                RollupKeyRef {
                    minute: keygate_rollup::minute_of(at),
                    token_id: "",
                    team_id: "",
                    route: "",
                    status: 401,
                    error: "invalid_key",
                },
                5,
                0,
                0,
            );
            let handed = h.hand_over().unwrap();
            assert_eq!(handed.sampled_out, 3);
            assert_eq!(handed.rollups.len(), 1);
            assert!(h.hand_over().is_none());
        })
        .join()
        .unwrap();
        // Another thread (not a worker): its own marks, kept in the fallback.
        assert_eq!(h.keep(200, false, at, "tok_a"), Keep::FirstSuccess);
        assert_eq!(h.keep(401, true, at + 1000, ""), Keep::Event);
        assert!(h.hand_over().is_none(), "not a worker");
        assert!(h.take_fallback().is_none(), "nothing recorded there");
    }

    #[test]
    fn disabled_keeps_and_records_nothing() {
        let h = UsageHub::disabled();
        assert_eq!(h.keep(500, false, 0, "tok"), Keep::No);
        h.install_worker();
        assert!(h.hand_over().is_none());
        h.push_event(Keep::Event, pb::UsageEvent::default(), 0);
        assert!(h.events.is_empty());
    }
}
