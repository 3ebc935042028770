//! Usage events: one per answered request, buffered in memory (bounded: beyond the limit the
//! oldest are dropped and counted) and sent in batches to the control plane's
//! `UsageService.IngestUsage`, authenticated with the gateway's service-account key.
//! A batch that fails goes back to the front of the buffer and is retried with backoff; the
//! control plane ignores resent events (`(gateway, event_id)` is unique), so a timeout that
//! hid a success does not double count.

use keygate_proto::v1 as pb;
use keygate_proto::v1::usage_service_client::UsageServiceClient;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most events per call (the RPC's limit).
pub const MAX_BATCH: usize = 5_000;

/// The bounded buffer.
pub struct UsageBuffer {
    queue: Mutex<VecDeque<pb::UsageEvent>>,
    capacity: usize,
    /// Dropped since the last successful send (reported with it), and in total.
    dropped_pending: AtomicU64,
    pub dropped_total: AtomicU64,
    pub sent_total: AtomicU64,
    pub send_errors_total: AtomicU64,
    next_id: AtomicU64,
    boot: String,
    enabled: bool,
    wake: tokio::sync::Notify,
}

impl UsageBuffer {
    /// `enabled = false` (no gateway key): events are counted, not kept.
    pub fn new(capacity: usize, enabled: bool) -> Self {
        Self {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))),
            capacity: capacity.max(1),
            dropped_pending: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            send_errors_total: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            boot: format!("{:016x}", rand::random::<u64>()),
            enabled,
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn len(&self) -> usize {
        self.queue.lock().expect("usage lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh event id, unique for this process (boot id + counter).
    pub fn event_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.boot)
    }

    /// Queues one event, dropping the oldest when full.
    pub fn push(&self, mut e: pb::UsageEvent) {
        if !self.enabled {
            return;
        }
        if e.event_id.is_empty() {
            e.event_id = self.event_id();
        }
        let len = {
            let mut q = self.queue.lock().expect("usage lock");
            if q.len() >= self.capacity {
                q.pop_front();
                self.dropped_pending.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(e);
            q.len()
        };
        if len >= MAX_BATCH {
            self.wake.notify_one();
        }
    }

    fn take(&self, n: usize) -> Vec<pb::UsageEvent> {
        let mut q = self.queue.lock().expect("usage lock");
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Puts a failed batch back in front, keeping the bound (newer events win).
    fn put_back(&self, batch: Vec<pb::UsageEvent>) {
        let mut q = self.queue.lock().expect("usage lock");
        let room = self.capacity.saturating_sub(q.len());
        let skip = batch.len().saturating_sub(room);
        if skip > 0 {
            self.dropped_pending
                .fetch_add(skip as u64, Ordering::Relaxed);
            self.dropped_total.fetch_add(skip as u64, Ordering::Relaxed);
        }
        for e in batch.into_iter().skip(skip).rev() {
            q.push_front(e);
        }
    }
}

/// Sends buffered events until `stop`; one last flush is attempted on the way out.
pub async fn run_sender(
    buffer: std::sync::Arc<UsageBuffer>,
    addr: String,
    key: String,
    gateway: String,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let channel = match tonic::transport::Endpoint::from_shared(addr.clone()) {
        Ok(e) => e
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect_lazy(),
        Err(e) => {
            tracing::error!(error = %e, addr = %addr, "bad control plane address; usage events will not be sent");
            return;
        }
    };
    let bearer: tonic::metadata::MetadataValue<_> = match format!("Bearer {key}").parse() {
        Ok(v) => v,
        Err(_) => {
            tracing::error!(
                "the gateway key is not valid header text; usage events will not be sent"
            );
            return;
        }
    };
    let mut client =
        UsageServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", bearer.clone());
            Ok(req)
        });
    let mut backoff = every;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(backoff) => false,
            _ = buffer.wake.notified() => false,
            _ = stop.changed() => true,
        };
        // Drain in batches while sends succeed.
        loop {
            let batch = buffer.take(MAX_BATCH);
            if batch.is_empty() {
                backoff = every;
                break;
            }
            let n = batch.len();
            let dropped = buffer.dropped_pending.swap(0, Ordering::Relaxed);
            let req = pb::IngestUsageRequest {
                gateway: gateway.clone(),
                events: batch.clone(),
                dropped,
            };
            match client.ingest_usage(req).await {
                Ok(_) => {
                    buffer.sent_total.fetch_add(n as u64, Ordering::Relaxed);
                    backoff = every;
                }
                Err(status) if status.code() == tonic::Code::InvalidArgument => {
                    // Never retry a batch the control plane refuses as malformed.
                    buffer.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    buffer.dropped_total.fetch_add(n as u64, Ordering::Relaxed);
                    buffer
                        .dropped_pending
                        .fetch_add(dropped + n as u64, Ordering::Relaxed);
                    tracing::error!(error = %status.message(), events = n, "usage batch refused as malformed; dropped");
                }
                Err(status) => {
                    buffer.dropped_pending.fetch_add(dropped, Ordering::Relaxed);
                    buffer.send_errors_total.fetch_add(1, Ordering::Relaxed);
                    buffer.put_back(batch);
                    tracing::warn!(code = ?status.code(), error = %status.message(), pending = buffer.len(), "sending usage events failed; will retry");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    break;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u32) -> pb::UsageEvent {
        pb::UsageEvent {
            status: n,
            ..Default::default()
        }
    }

    #[test]
    fn bounded_drop_oldest_and_counted() {
        let b = UsageBuffer::new(3, true);
        for n in 0..5 {
            b.push(ev(n));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped_total.load(Ordering::Relaxed), 2);
        let got: Vec<u32> = b.take(10).iter().map(|e| e.status).collect();
        assert_eq!(got, vec![2, 3, 4]);
        // Event ids are unique.
        assert_ne!(b.event_id(), b.event_id());
    }

    #[test]
    fn put_back_keeps_order_and_bound() {
        let b = UsageBuffer::new(4, true);
        for n in 0..4 {
            b.push(ev(n));
        }
        let batch = b.take(3); // 0, 1, 2
        b.push(ev(10));
        b.push(ev(11)); // queue: 3, 10, 11
        b.put_back(batch); // room for 1: keeps the newest of the batch (2)
        let got: Vec<u32> = b.take(10).iter().map(|e| e.status).collect();
        assert_eq!(got, vec![2, 3, 10, 11]);
        assert_eq!(b.dropped_total.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn disabled_buffer_keeps_nothing() {
        let b = UsageBuffer::new(10, false);
        b.push(ev(1));
        assert!(b.is_empty());
    }
}
