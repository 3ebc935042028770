//! A pool of rolled-up values, built once from simulated requests through
//! [`RollupValue::record`] and reused by every generated rollup: real sketches whose counts
//! equal `calls`, with byte and latency sums, minimum and maximum that agree with them.

use super::{Rng, latency_us, request_bytes, response_bytes};
use keygate_rollup::RollupValue;

/// Distinct values built.
pub const POOL_SIZE: usize = 300;
/// Calls of one value: 1 to this.
pub const MAX_CALLS: u64 = 500;

/// The pool, with each value's sketch encoded once.
pub struct ValuePool {
    values: Vec<RollupValue>,
    sketches: Vec<Vec<u8>>,
}

impl ValuePool {
    /// `size` values of 1 to `max_calls` requests each.
    pub fn new(seed: u64, size: usize, max_calls: u64) -> Self {
        let mut rng = Rng::new(seed);
        let values: Vec<RollupValue> = (0..size.max(1))
            .map(|_| {
                let calls = 1 + rng.below(max_calls.max(1));
                let mut v = RollupValue::default();
                for _ in 0..calls {
                    v.record(
                        latency_us(&mut rng),
                        request_bytes(&mut rng),
                        response_bytes(&mut rng),
                    );
                }
                v
            })
            .collect();
        let sketches = values.iter().map(|v| v.sketch.encode()).collect();
        Self { values, sketches }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Value `i` and its encoded sketch.
    pub fn get(&self, i: usize) -> (&RollupValue, &[u8]) {
        (&self.values[i], &self.sketches[i])
    }

    /// A random index.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        rng.below(self.values.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::LatencySketch;

    #[test]
    fn values_are_consistent() {
        let pool = ValuePool::new(3, 50, 500);
        assert_eq!(pool.len(), 50);
        let mut distinct = std::collections::HashSet::new();
        for i in 0..pool.len() {
            let (v, enc) = pool.get(i);
            assert!((1..=500).contains(&v.count));
            assert_eq!(v.sketch.count(), v.count, "sketch count equals calls");
            assert!(v.latency_min_us <= v.latency_max_us);
            assert!(v.latency_sum_us >= v.latency_min_us * v.count);
            assert!(v.latency_sum_us <= v.latency_max_us * v.count);
            assert!(v.request_bytes >= 200 * v.count && v.response_bytes >= 300 * v.count);
            assert_eq!(&LatencySketch::decode(enc).unwrap(), &v.sketch);
            distinct.insert(enc.to_vec());
        }
        assert!(distinct.len() > 45, "sketches differ");
    }
}
