//! The sender's rollups: what the workers handed over, merged per key and minute until the
//! control plane accepts them, cut into calls of at most [`MAX_ROLLUPS`] rows.
//!
//! - Bounded: more than `max_keys` pending keys drops the oldest minutes (the least-used keys
//!   first when only part of a minute has to go); their requests are counted and reported
//!   as `rollups_dropped`.
//! - A call that failed is retried **identical**, with its `batch_id`: the control plane
//!   ignores a replayed `(gateway, batch_id)`, so a call whose answer was lost (a timeout)
//!   is not counted twice. Meanwhile new hand-overs merge into `pending`, not into it.
//! - A call refused as malformed (`InvalidArgument`) is never retried: its requests are
//!   counted as dropped.

use super::Handover;
use keygate_proto::v1 as pb;
use keygate_rollup::{Accumulator, RollupKey, RollupValue};
use std::collections::BTreeMap;

/// Most rollups per call (the RPC's limit).
pub const MAX_ROLLUPS: usize = 20_000;

/// A call being sent (or to be retried as is).
#[derive(Debug, Clone)]
pub struct RollupBatch {
    /// Everything but `gateway`, `config_revision` and `gateway_version`, which the sender
    /// sets (they are the same on a retry).
    pub req: pb::IngestUsageRequest,
    /// Sum of the rollups' counts.
    pub requests: u64,
}

pub struct Outbox {
    /// Not yet in a call, by minute.
    pending: BTreeMap<i64, Accumulator>,
    pending_keys: usize,
    max_keys: usize,
    /// The call in flight or to retry.
    held: Option<RollupBatch>,
    /// Since the last accepted call and not yet in one.
    sampled_out: u64,
    rollups_dropped: u64,
    /// `<boot>-r<n>`.
    boot: String,
    next_id: u64,
}

/// What [`Outbox::add`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    pub requests: u64,
    pub sampled_out: u64,
    /// Requests dropped to keep the bound.
    pub dropped: u64,
}

impl Outbox {
    pub fn new(max_keys: usize, boot: &str) -> Self {
        Self {
            pending: BTreeMap::new(),
            pending_keys: 0,
            max_keys: max_keys.max(1),
            held: None,
            sampled_out: 0,
            rollups_dropped: 0,
            boot: boot.to_owned(),
            next_id: 0,
        }
    }

    /// Merges a worker's hand-over in, then keeps the bound.
    pub fn add(&mut self, h: Handover) -> Added {
        let mut added = Added {
            sampled_out: h.sampled_out,
            ..Added::default()
        };
        self.sampled_out += h.sampled_out;
        for (key, value) in h.rollups {
            added.requests += value.count;
            let minute = self.pending.entry(key.minute).or_default();
            let before = minute.len();
            minute.merge_value(key, value);
            self.pending_keys += minute.len() - before;
        }
        added.dropped = self.keep_bound();
        added
    }

    /// Drops the oldest minutes while more than `max_keys` keys are pending; the requests
    /// dropped.
    fn keep_bound(&mut self) -> u64 {
        let mut dropped = 0;
        while self.pending_keys > self.max_keys {
            let excess = self.pending_keys - self.max_keys;
            let Some(mut oldest) = self.pending.first_entry() else {
                break;
            };
            if oldest.get().len() <= excess {
                let acc = oldest.remove();
                dropped += acc.requests();
                self.pending_keys -= acc.len();
            } else {
                // Part of the minute: its least-used keys go.
                let acc = oldest.get_mut();
                let mut rows = acc.drain();
                rows.sort_by_key(|(_, v)| v.count);
                for (_, v) in rows.drain(..excess) {
                    dropped += v.count;
                }
                for (k, v) in rows {
                    acc.merge_value(k, v);
                }
                self.pending_keys -= excess;
            }
        }
        self.rollups_dropped += dropped;
        dropped
    }

    /// Pending keys plus the rows of the call in flight.
    pub fn rows(&self) -> usize {
        self.pending_keys + self.held.as_ref().map_or(0, |b| b.req.rollups.len())
    }

    /// Requests pending or in flight.
    pub fn requests(&self) -> u64 {
        self.pending
            .values()
            .map(Accumulator::requests)
            .sum::<u64>()
            + self.held.as_ref().map_or(0, |b| b.requests)
    }

    /// The call to send: the one that failed last, unchanged, or else a new one with the
    /// oldest pending rows (and the counters since the last accepted call). `None`: nothing
    /// to report.
    pub fn next_batch(&mut self) -> Option<&mut RollupBatch> {
        if self.held.is_none() {
            self.held = self.cut();
        }
        self.held.as_mut()
    }

    fn cut(&mut self) -> Option<RollupBatch> {
        if self.pending_keys == 0 && self.sampled_out == 0 && self.rollups_dropped == 0 {
            return None;
        }
        let mut rows: Vec<(RollupKey, RollupValue)> = Vec::new();
        while rows.len() < MAX_ROLLUPS {
            let Some(mut oldest) = self.pending.first_entry() else {
                break;
            };
            let room = MAX_ROLLUPS - rows.len();
            if oldest.get().len() <= room {
                rows.extend(oldest.remove().drain());
            } else {
                let acc = oldest.get_mut();
                let mut all = acc.drain();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in all.split_off(room) {
                    acc.merge_value(k, v);
                }
                rows.extend(all);
            }
        }
        self.pending_keys -= rows.len();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let requests = rows.iter().map(|(_, v)| v.count).sum();
        let id = self.next_id;
        self.next_id += 1;
        Some(RollupBatch {
            req: pb::IngestUsageRequest {
                batch_id: format!("{}-r{id:x}", self.boot),
                rollups: rows.into_iter().map(keygate_proto::usage_rollup).collect(),
                events_sampled: true,
                sampled_out: std::mem::take(&mut self.sampled_out),
                rollups_dropped: std::mem::take(&mut self.rollups_dropped),
                ..Default::default()
            },
            requests,
        })
    }

    /// The control plane took the call in flight.
    pub fn accepted(&mut self) -> Option<RollupBatch> {
        self.held.take()
    }

    /// The control plane refused the call in flight as malformed: it is not retried, its
    /// requests count as dropped and its counters go with the next call.
    pub fn refused(&mut self) -> Option<RollupBatch> {
        let b = self.held.take()?;
        self.sampled_out += b.req.sampled_out;
        self.rollups_dropped += b.req.rollups_dropped + b.requests;
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::{LatencySketch, MINUTE_MS, RollupKeyRef};

    /// A hand-over of `n` requests on each of `keys` keys of `minute` (tokens `t0`, `t1`...).
    fn handover(minute: i64, keys: usize, n: u64) -> Handover {
        let mut acc = Accumulator::new();
        for k in 0..keys {
            let token = format!("t{k}");
            for i in 0..n {
                acc.record(
                    RollupKeyRef {
                        minute,
                        token_id: &token,
                        team_id: "alpha",
                        route: "echo",
                        status: 200,
                        error: "",
                    },
                    100 + i,
                    1,
                    2,
                );
            }
        }
        Handover {
            rollups: acc.drain(),
            sampled_out: 0,
        }
    }

    #[test]
    fn handovers_merge_per_key_and_go_out_in_one_call() {
        let mut o = Outbox::new(1000, "b");
        let m = 10 * MINUTE_MS;
        // Two workers with the same keys: merged, not repeated.
        assert_eq!(o.add(handover(m, 3, 2)).requests, 6);
        o.add(Handover {
            sampled_out: 4,
            ..handover(m, 3, 1)
        });
        assert_eq!((o.rows(), o.requests()), (3, 9));
        let b = o.next_batch().unwrap().clone();
        assert_eq!(b.req.rollups.len(), 3);
        assert_eq!(b.requests, 9);
        assert_eq!(b.req.sampled_out, 4);
        assert!(b.req.events_sampled);
        let r = &b.req.rollups[0];
        assert_eq!(
            (
                r.token_id.as_str(),
                r.count,
                r.request_bytes,
                r.response_bytes
            ),
            ("t0", 3, 3, 6)
        );
        assert_eq!(r.minute.unwrap().seconds, m / 1000);
        assert_eq!((r.latency_min_us, r.latency_max_us), (100, 101));
        assert_eq!(
            LatencySketch::decode(&r.latency_sketch).unwrap().count(),
            r.count
        );
        assert!(o.accepted().is_some());
        assert!(o.next_batch().is_none(), "nothing left");
        assert_eq!((o.rows(), o.requests()), (0, 0));
    }

    /// A failed call is retried identical (same batch_id and rows) while new hand-overs wait
    /// in `pending`; the next call gets a new batch_id.
    #[test]
    fn a_retry_reuses_the_batch_id_and_rows() {
        let mut o = Outbox::new(1000, "boot1");
        let m = 10 * MINUTE_MS;
        o.add(handover(m, 2, 1));
        let first = o.next_batch().unwrap().clone();
        assert_eq!(first.req.batch_id, "boot1-r0");
        // The send fails: more arrives in the meantime.
        o.add(handover(m, 2, 5));
        o.add(handover(m + MINUTE_MS, 1, 1));
        let retry = o.next_batch().unwrap().clone();
        assert_eq!(retry.req, first.req, "identical, batch_id included");
        assert_eq!(o.rows(), 2 + 3);
        assert_eq!(o.requests(), 2 + 10 + 1);
        o.accepted();
        let next = o.next_batch().unwrap().clone();
        assert_ne!(next.req.batch_id, first.req.batch_id);
        assert_eq!(next.req.batch_id, "boot1-r1");
        assert_eq!(next.requests, 11);
        assert_eq!(next.req.rollups.len(), 3);
    }

    /// More than MAX_ROLLUPS rows go out in several calls, oldest minute first, each with its
    /// own batch_id, no row lost or repeated.
    #[test]
    fn large_flushes_are_split() {
        let mut o = Outbox::new(1_000_000, "b");
        let m = 10 * MINUTE_MS;
        o.add(handover(m + MINUTE_MS, 15_000, 1));
        o.add(handover(m, 15_000, 2));
        assert_eq!(o.rows(), 30_000);
        let mut ids = Vec::new();
        let (mut rows, mut requests) = (0, 0);
        let mut minutes = Vec::new();
        while let Some(b) = o.next_batch() {
            assert!(b.req.rollups.len() <= MAX_ROLLUPS);
            assert_eq!(
                b.requests,
                b.req.rollups.iter().map(|r| r.count).sum::<u64>()
            );
            ids.push(b.req.batch_id.clone());
            rows += b.req.rollups.len();
            requests += b.requests;
            minutes.extend(b.req.rollups.iter().map(|r| r.minute.unwrap().seconds));
            o.accepted();
        }
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert_eq!((rows, requests), (30_000, 45_000));
        assert!(minutes.is_sorted(), "oldest minute first");
        let mut keys: Vec<_> = minutes.clone();
        keys.dedup();
        assert_eq!(keys.len(), 2);
    }

    /// Beyond the key bound the oldest minutes go (whole, or their least-used keys), counted
    /// as dropped requests and reported with the next call.
    #[test]
    fn the_pending_bound_drops_the_oldest_minutes() {
        let mut o = Outbox::new(10, "b");
        let m = 10 * MINUTE_MS;
        assert_eq!(o.add(handover(m, 4, 3)).dropped, 0);
        assert_eq!(o.add(handover(m + MINUTE_MS, 6, 1)).dropped, 0);
        assert_eq!(o.rows(), 10);
        // One more key in the oldest minute: 11 keys, so that minute loses its least-used
        // key (the new one: 1 request, the others have 3).
        let mut h = handover(m, 1, 1);
        h.rollups[0].0.token_id = "rare".into();
        assert_eq!(o.add(h).dropped, 1);
        assert_eq!(o.rows(), 10);
        // Five more keys in a newer minute: 15 keys, 5 over. Minute m (4 keys, 12 requests)
        // goes whole, then one key (1 request) of minute m + 1.
        let added = o.add(handover(m + 2 * MINUTE_MS, 5, 1));
        assert_eq!(added.dropped, 13);
        assert_eq!(o.rows(), 10);
        let b = o.next_batch().unwrap();
        assert_eq!(
            b.req.rollups_dropped,
            1 + 13,
            "the first drop (rare) counts too"
        );
        assert!(
            b.req
                .rollups
                .iter()
                .all(|r| r.minute.unwrap().seconds > m / 1000)
        );
        assert_eq!(b.requests, 5 + 5);
    }

    #[test]
    fn a_refused_call_is_not_retried_and_counts_as_dropped() {
        let mut o = Outbox::new(1000, "b");
        o.add(Handover {
            sampled_out: 2,
            ..handover(0, 3, 2)
        });
        let id = o.next_batch().unwrap().req.batch_id.clone();
        let b = o.refused().unwrap();
        assert_eq!(b.requests, 6);
        let next = o.next_batch().unwrap();
        assert_ne!(next.req.batch_id, id);
        assert!(next.req.rollups.is_empty());
        assert_eq!(next.req.rollups_dropped, 6);
        assert_eq!(next.req.sampled_out, 2);
    }
}
