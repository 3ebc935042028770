//! Usage on the Worker: every answered request is counted in this isolate's rollup
//! accumulator (`keygate-rollup`, the native gateway's), and sent to the control plane's
//! `UsageService.IngestUsage` over grpc-web from `ctx.waitUntil`, at most one call in flight
//! per isolate, under the gateway name `worker/<colo>`.
//!
//! Loss bound: an evicted isolate loses what it counted since its last flush (at most one
//! flush interval, `KEYGATE_USAGE_FLUSH_MS`, plus a batch held after a failed send), and
//! `waitUntil` work is cut 30 s after the response. Raw events are not sent from the Worker
//! (rollups only). A failure never touches the response.

use crate::grpc_web;
use crate::settings::UsageTarget;
use keygate_gateway_core::Route;
use keygate_gateway_pipeline::{Failure, Keep, UsageEvent, UsageSink};
use keygate_proto::v1 as pb;
use keygate_rollup::{Accumulator, RollupKeyRef};
use prost::Message;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// Rollup keys one call carries (the control plane's cap); beyond it, requests are dropped
/// and counted as `rollups_dropped`.
pub const MAX_KEYS: usize = 20_000;

/// This isolate's usage state.
#[derive(Default)]
pub struct Usage {
    acc: RefCell<Accumulator>,
    /// Requests not counted because the accumulator was full.
    dropped: Cell<u64>,
    /// A call that failed, resent identical (same batch id) before anything new.
    held: RefCell<Option<pb::IngestUsageRequest>>,
    /// A flush is scheduled or in flight.
    flushing: Cell<bool>,
    batches: Cell<u64>,
    /// The config revision last served (sent with each call).
    pub revision: Cell<i64>,
    pub sent_calls: Cell<u64>,
    pub failed_calls: Cell<u64>,
}

/// The pipeline's usage sink on the Worker: rollups only.
pub struct Sink<'u> {
    pub usage: Option<&'u Usage>,
}

impl UsageSink for Sink<'_> {
    fn enabled(&self) -> bool {
        self.usage.is_some()
    }

    fn observe(&self, _route: &str, _status: u16, _elapsed: Duration) {}

    fn keep(&self, _status: u16, _by_gateway: bool, _at_ms: i64, _token_id: &str) -> Keep {
        Keep::No
    }

    fn record(
        &self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let Some(u) = self.usage else { return };
        let mut acc = u.acc.borrow_mut();
        if acc.len() >= MAX_KEYS {
            u.dropped.set(u.dropped.get() + 1);
            return;
        }
        acc.record(key, latency_us, request_bytes, response_bytes);
    }

    fn push_event(&self, _keep: Keep, _event: UsageEvent) {}

    fn backend_failed(&self, route: &Route, request_id: &str, failure: &Failure<'_>) {
        match failure {
            Failure::Unforwardable => worker::console_warn!(
                "backend URL cannot be sent: route={} request_id={request_id}",
                route.name
            ),
            Failure::Timeout => worker::console_warn!(
                "backend timed out: route={} request_id={request_id} timeout_ms={}",
                route.name,
                route.timeout_ms
            ),
            Failure::Backend(e) => worker::console_warn!(
                "backend request failed: route={} request_id={request_id} error={e}",
                route.name
            ),
        }
    }
}

impl Usage {
    /// Whether this call should schedule the isolate's flush (none is scheduled yet); marks
    /// it scheduled.
    pub fn claim_flush(&self) -> bool {
        !self.flushing.replace(true)
    }

    /// Waits the flush interval, then sends what was counted (and a held batch first). Runs
    /// inside `waitUntil`; clears the mark when done.
    pub async fn flush_later(&self, target: &UsageTarget, gateway: &str, boot: &str) {
        worker::Delay::from(Duration::from_millis(target.flush_ms)).await;
        self.flush(target, gateway, boot).await;
        self.flushing.set(false);
    }

    async fn flush(&self, target: &UsageTarget, gateway: &str, boot: &str) {
        // Taken out first: no borrow is held across the call.
        let held = self.held.borrow_mut().take();
        if let Some(held) = held
            && !self.send(target, held).await
        {
            return;
        }
        let rows = self.acc.borrow_mut().drain();
        let dropped = self.dropped.replace(0);
        if rows.is_empty() && dropped == 0 {
            return;
        }
        let n = self.batches.get() + 1;
        self.batches.set(n);
        let req = pb::IngestUsageRequest {
            gateway: gateway.to_owned(),
            rollups: rows.into_iter().map(keygate_proto::usage_rollup).collect(),
            batch_id: format!("{boot}-{n}"),
            config_revision: self.revision.get().max(0),
            gateway_version: env!("CARGO_PKG_VERSION").into(),
            events_sampled: true,
            rollups_dropped: dropped,
            ..Default::default()
        };
        self.send(target, req).await;
    }

    /// One call; a failed one is held for the next flush. Whether it was stored.
    async fn send(&self, target: &UsageTarget, req: pb::IngestUsageRequest) -> bool {
        match ingest(target, &req).await {
            Ok(()) => {
                self.sent_calls.set(self.sent_calls.get() + 1);
                true
            }
            Err(e) => {
                self.failed_calls.set(self.failed_calls.get() + 1);
                worker::console_warn!("sending usage failed; held for the next flush: {e}");
                *self.held.borrow_mut() = Some(req);
                false
            }
        }
    }
}

/// `UsageService.IngestUsage` as a grpc-web call.
async fn ingest(target: &UsageTarget, req: &pb::IngestUsageRequest) -> Result<(), String> {
    grpc_web::call(
        &target.base_url,
        &target.key,
        "keygate.v1.UsageService/IngestUsage",
        &req.encode_to_vec(),
    )
    .await
    .map(drop)
}
