//! The per-thread rollup map.

use hashbrown::HashMap;
use rustc_hash::FxBuildHasher;

use crate::{RollupKey, RollupKeyRef, RollupValue};

/// Rollups being gathered: one per worker thread (or Worker isolate), so the request path takes
/// no lock; a sender drains it periodically and ships the rollups.
///
/// [`record`](Self::record) on a key already present does not allocate: the map is looked up
/// with the borrowed [`RollupKeyRef`] (hashbrown's `Equivalent`; both key forms hash the same),
/// so no `String` is built for a hit, and the value's counters are updated in place. The only
/// allocation a warm key can still see is its latency sketch growing when a latency falls
/// outside the bucket range that key has seen so far (bounded: at most 1253 buckets per key).
/// A miss allocates the owned key and the map slot; [`drain`](Self::drain) keeps the map's
/// capacity, so the slots are reused in the next period.
#[derive(Default)]
pub struct Accumulator {
    map: HashMap<RollupKey, RollupValue, FxBuildHasher>,
    requests: u64,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request under `key`.
    #[inline]
    pub fn record(
        &mut self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        self.map
            .entry_ref(&key)
            .or_default()
            .record(latency_us, request_bytes, response_bytes);
        self.requests = self.requests.saturating_add(1);
    }

    /// Merges one rollup in (a sender re-queueing what it could not send, the control plane
    /// merging what gateways sent).
    pub fn merge_value(&mut self, key: RollupKey, value: RollupValue) {
        self.requests = self.requests.saturating_add(value.count);
        match self.map.entry(key) {
            hashbrown::hash_map::Entry::Occupied(mut slot) => slot.get_mut().merge(&value),
            hashbrown::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
    }

    /// Merges all of `other`'s rollups in.
    pub fn merge(&mut self, other: Accumulator) {
        if self.map.is_empty() {
            *self = other;
            return;
        }
        self.map.reserve(other.map.len());
        for (key, value) in other.map {
            self.merge_value(key, value);
        }
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of the counts held (saturating).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Moves every rollup out (in no particular order), leaving the accumulator empty with its
    /// map capacity kept.
    pub fn drain(&mut self) -> Vec<(RollupKey, RollupValue)> {
        self.requests = 0;
        self.map.drain().collect()
    }

    /// The rollups held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&RollupKey, &RollupValue)> {
        self.map.iter()
    }
}

impl std::fmt::Debug for Accumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accumulator")
            .field("keys", &self.map.len())
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(minute: i64, token_id: &str, status: u16) -> RollupKeyRef<'_> {
        RollupKeyRef {
            minute,
            token_id,
            team_id: "team",
            route: "/r",
            status,
            error: "",
        }
    }

    fn sorted(mut rollups: Vec<(RollupKey, RollupValue)>) -> Vec<(RollupKey, RollupValue)> {
        rollups.sort_by(|a, b| a.0.cmp(&b.0));
        rollups
    }

    #[test]
    fn record_groups_by_key() {
        let mut acc = Accumulator::new();
        assert!(acc.is_empty());
        acc.record(key(0, "a", 200), 100, 1, 10);
        acc.record(key(0, "a", 200), 300, 2, 20);
        acc.record(key(0, "a", 500), 50, 0, 0);
        acc.record(key(60_000, "a", 200), 7, 0, 0);
        acc.record(key(0, "b", 200), 9, 0, 0);
        assert_eq!((acc.len(), acc.requests()), (4, 5));
        let got = acc
            .iter()
            .find(|(k, _)| k.as_ref() == key(0, "a", 200))
            .unwrap()
            .1;
        assert_eq!(
            (
                got.count,
                got.request_bytes,
                got.response_bytes,
                got.latency_sum_us
            ),
            (2, 3, 30, 400)
        );
        assert_eq!((got.latency_min_us, got.latency_max_us), (100, 300));
    }

    #[test]
    fn a_hit_reuses_the_stored_key() {
        let mut acc = Accumulator::new();
        acc.record(key(0, "a", 200), 100, 0, 0);
        let stored = acc.iter().next().unwrap().0.token_id.as_ptr();
        let token = String::from("a");
        acc.record(key(0, &token, 200), 100, 0, 0);
        assert_eq!(acc.len(), 1);
        assert_eq!(acc.iter().next().unwrap().0.token_id.as_ptr(), stored);
    }

    #[test]
    fn drain_empties_and_keeps_capacity() {
        let mut acc = Accumulator::new();
        for status in 0..100 {
            acc.record(key(0, "a", status), 1, 1, 1);
        }
        let capacity = acc.map.capacity();
        let drained = acc.drain();
        assert_eq!(drained.len(), 100);
        assert!(acc.is_empty());
        assert_eq!((acc.len(), acc.requests()), (0, 0));
        assert_eq!(acc.map.capacity(), capacity);
        assert!(acc.drain().is_empty());
    }

    #[test]
    fn merge_value_and_merge_with_empty_sides() {
        let mut full = Accumulator::new();
        full.record(key(0, "a", 200), 100, 1, 1);
        full.record(key(0, "b", 200), 200, 1, 1);
        let expected = sorted(full.iter().map(|(k, v)| (k.clone(), v.clone())).collect());

        let mut into_empty = Accumulator::new();
        into_empty.merge(Accumulator::new());
        assert!(into_empty.is_empty());
        let mut copy = Accumulator::new();
        for (k, v) in &expected {
            copy.merge_value(k.clone(), v.clone());
        }
        into_empty.merge(copy);
        assert_eq!(into_empty.requests(), 2);
        assert_eq!(sorted(into_empty.drain()), expected);

        full.merge(Accumulator::new());
        full.merge_value(key(0, "a", 200).to_owned(), RollupValue::default());
        assert_eq!(full.requests(), 2);
        assert_eq!(sorted(full.drain()), expected);
    }
}
