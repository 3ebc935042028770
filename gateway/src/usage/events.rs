//! The raw-event buffer: events the request path decided to keep (refusals and 5xx within
//! the budget, each token's first success of a minute), bounded (beyond its capacity the
//! oldest are dropped and counted), sent in batches by the sender. Its Mutex is taken only
//! for kept events, a few hundred per second at most, never for every request.

use keygate_proto::v1 as pb;
use rustc_hash::FxHashSet;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most events per call (the RPC's limit).
pub const MAX_EVENTS: usize = 5_000;

/// Minutes of first-success marks kept (a worker hands an event in within its request's
/// minute or just after).
const FIRST_SEEN_MINUTES: i64 = 3;

/// The bounded buffer.
pub struct UsageBuffer {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Dropped since the last successful send (reported with it), and in total.
    pub(super) dropped_pending: AtomicU64,
    pub dropped_total: AtomicU64,
    pub sent_total: AtomicU64,
    /// Calls the control plane did not take (events and rollups alike).
    pub send_errors_total: AtomicU64,
    next_id: AtomicU64,
    boot: String,
    enabled: bool,
    pub(super) wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<pb::UsageEvent>,
    /// Tokens whose first success of a minute is already in (by minute): each worker keeps
    /// one per token and minute, this keeps one over all workers.
    first_seen: BTreeMap<i64, FxHashSet<String>>,
}

impl UsageBuffer {
    /// `enabled = false` (no gateway key): nothing is kept.
    pub fn new(capacity: usize, enabled: bool, boot: &str) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::with_capacity(capacity.min(65_536)),
                first_seen: BTreeMap::new(),
            }),
            capacity: capacity.max(1),
            dropped_pending: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            sent_total: AtomicU64::new(0),
            send_errors_total: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            boot: boot.to_owned(),
            enabled,
            wake: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh event id, unique for this process (boot id + counter).
    pub fn event_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.boot)
    }

    /// Queues a refusal or 5xx event, dropping the oldest when full.
    pub fn push(&self, e: pb::UsageEvent) {
        if !self.enabled {
            return;
        }
        let mut inner = self.lock();
        self.push_locked(&mut inner, e);
    }

    /// Queues a token's first successful request of a minute, unless another worker's
    /// already came in for that token and minute (`minute`: ms since the epoch).
    pub fn push_first_success(&self, e: pb::UsageEvent, minute: i64) {
        if !self.enabled {
            return;
        }
        let mut inner = self.lock();
        if let Some((&newest, _)) = inner.first_seen.last_key_value()
            && minute <= newest - FIRST_SEEN_MINUTES * keygate_rollup::MINUTE_MS
        {
            // Older than the marks kept: it cannot be told apart from a duplicate.
            return;
        }
        let seen = inner.first_seen.entry(minute).or_default();
        if seen.contains(e.token_id.as_str()) {
            return;
        }
        seen.insert(e.token_id.clone());
        let keep_from = minute - (FIRST_SEEN_MINUTES - 1) * keygate_rollup::MINUTE_MS;
        inner.first_seen.retain(|&m, _| m >= keep_from);
        self.push_locked(&mut inner, e);
    }

    fn push_locked(&self, inner: &mut Inner, mut e: pb::UsageEvent) {
        if e.event_id.is_empty() {
            e.event_id = self.event_id();
        }
        if inner.queue.len() >= self.capacity {
            inner.queue.pop_front();
            self.dropped_pending.fetch_add(1, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        inner.queue.push_back(e);
        if inner.queue.len() >= MAX_EVENTS {
            self.wake.notify_one();
        }
    }

    pub(super) fn take(&self, n: usize) -> Vec<pb::UsageEvent> {
        let mut inner = self.lock();
        let n = n.min(inner.queue.len());
        inner.queue.drain(..n).collect()
    }

    /// Puts a failed batch back in front, keeping the bound (newer events win).
    pub(super) fn put_back(&self, batch: Vec<pb::UsageEvent>) {
        let mut inner = self.lock();
        let room = self.capacity.saturating_sub(inner.queue.len());
        let skip = batch.len().saturating_sub(room);
        if skip > 0 {
            self.dropped_pending
                .fetch_add(skip as u64, Ordering::Relaxed);
            self.dropped_total.fetch_add(skip as u64, Ordering::Relaxed);
        }
        for e in batch.into_iter().skip(skip).rev() {
            inner.queue.push_front(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::MINUTE_MS;

    fn ev(n: u32) -> pb::UsageEvent {
        pb::UsageEvent {
            status: n,
            ..Default::default()
        }
    }

    fn success(token: &str, n: u32) -> pb::UsageEvent {
        pb::UsageEvent {
            token_id: token.into(),
            status: 200,
            latency_us: u64::from(n),
            ..Default::default()
        }
    }

    #[test]
    fn bounded_drop_oldest_and_counted() {
        let b = UsageBuffer::new(3, true, "boot");
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
        let b = UsageBuffer::new(4, true, "boot");
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
        let b = UsageBuffer::new(10, false, "boot");
        b.push(ev(1));
        b.push_first_success(success("tok_a", 1), 0);
        assert!(b.is_empty());
    }

    /// Workers each send a token's first success of a minute; one per token and minute goes
    /// through, whatever the order they arrive in.
    #[test]
    fn first_success_is_kept_once_per_token_and_minute_over_workers() {
        let b = UsageBuffer::new(100, true, "boot");
        let m = 100 * MINUTE_MS;
        // (token, minute, marker): three workers, two tokens, two minutes, one late arrival.
        let cases = [
            ("tok_a", m, 1),
            ("tok_a", m, 2), // another worker, same minute: dropped
            ("tok_b", m, 3),
            ("tok_a", m + MINUTE_MS, 4), // next minute: kept
            ("tok_b", m, 5),             // a worker late with the previous minute: dropped
            ("tok_a", m + MINUTE_MS, 6), // dropped
            ("tok_b", m + MINUTE_MS, 7),
        ];
        for (token, minute, n) in cases {
            b.push_first_success(success(token, n), minute);
        }
        let got: Vec<u64> = b.take(100).iter().map(|e| e.latency_us).collect();
        assert_eq!(got, vec![1, 3, 4, 7]);
        // Refusals are never deduplicated.
        b.push(ev(401));
        b.push(ev(401));
        assert_eq!(b.len(), 2);
        // Marks older than the window are forgotten, and what is older still is not kept.
        b.push_first_success(success("tok_c", 8), m + 5 * MINUTE_MS);
        b.push_first_success(success("tok_c", 9), m);
        assert_eq!(b.take(100).len(), 3);
        assert!(
            b.lock().first_seen.keys().all(|&k| k > m + MINUTE_MS),
            "old marks pruned"
        );
    }
}
