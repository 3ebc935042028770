//! What one rollup holds.

use crate::LatencySketch;

/// The rolled-up requests of one [`RollupKey`](crate::RollupKey). Sums saturate at `u64::MAX`.
/// `latency_min_us` and `latency_max_us` mean nothing while `count` is 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RollupValue {
    pub count: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub latency_sum_us: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    pub sketch: LatencySketch,
}

impl RollupValue {
    /// Counts one request.
    #[inline]
    pub fn record(&mut self, latency_us: u64, request_bytes: u64, response_bytes: u64) {
        if self.count == 0 {
            self.latency_min_us = latency_us;
            self.latency_max_us = latency_us;
        } else {
            self.latency_min_us = self.latency_min_us.min(latency_us);
            self.latency_max_us = self.latency_max_us.max(latency_us);
        }
        self.count = self.count.saturating_add(1);
        self.request_bytes = self.request_bytes.saturating_add(request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(response_bytes);
        self.latency_sum_us = self.latency_sum_us.saturating_add(latency_us);
        self.sketch.add(latency_us);
    }

    /// Adds `other`'s requests. Min and max come only from sides with `count > 0`, so an empty
    /// value (min 0) never wins.
    pub fn merge(&mut self, other: &RollupValue) {
        if other.count > 0 {
            if self.count == 0 {
                self.latency_min_us = other.latency_min_us;
                self.latency_max_us = other.latency_max_us;
            } else {
                self.latency_min_us = self.latency_min_us.min(other.latency_min_us);
                self.latency_max_us = self.latency_max_us.max(other.latency_max_us);
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.request_bytes = self.request_bytes.saturating_add(other.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(other.response_bytes);
        self.latency_sum_us = self.latency_sum_us.saturating_add(other.latency_sum_us);
        self.sketch.merge(&other.sketch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (latency, request bytes, response bytes) of each request.
    type Requests<'a> = &'a [(u64, u64, u64)];

    fn value_of(records: Requests<'_>) -> RollupValue {
        let mut v = RollupValue::default();
        for &(latency, req, resp) in records {
            v.record(latency, req, resp);
        }
        v
    }

    #[test]
    fn record_tracks_min_and_max_from_the_first_request() {
        let cases: &[(Requests<'_>, [u64; 6])] = &[
            // count, req, resp, sum, min, max
            (&[], [0, 0, 0, 0, 0, 0]),
            (&[(500, 10, 20)], [1, 10, 20, 500, 500, 500]),
            (
                &[(500, 10, 20), (300, 1, 2), (900, 0, 0)],
                [3, 11, 22, 1700, 300, 900],
            ),
            (&[(0, 0, 0), (5, 0, 0)], [2, 0, 0, 5, 0, 5]),
            (
                &[(u64::MAX, u64::MAX, 1), (1, 1, u64::MAX)],
                [2, u64::MAX, u64::MAX, u64::MAX, 1, u64::MAX],
            ),
        ];
        for &(records, want) in cases {
            let v = value_of(records);
            let got = [
                v.count,
                v.request_bytes,
                v.response_bytes,
                v.latency_sum_us,
                v.latency_min_us,
                v.latency_max_us,
            ];
            assert_eq!(got, want, "{records:?}");
            assert_eq!(v.sketch.count(), v.count);
        }
    }

    #[test]
    fn merge_handles_empty_sides() {
        let a: Requests<'_> = &[(500, 10, 20), (300, 1, 2)];
        let b: Requests<'_> = &[(900, 5, 5), (400, 0, 1)];
        let cases: &[(Requests<'_>, Requests<'_>)] =
            &[(&[], &[]), (a, &[]), (&[], a), (a, b), (b, a), (a, a)];
        for &(left, right) in cases {
            let mut merged = value_of(left);
            merged.merge(&value_of(right));
            assert_eq!(
                merged,
                value_of(&[left, right].concat()),
                "{left:?} + {right:?}"
            );
        }
    }

    #[test]
    fn an_empty_side_never_wins_min() {
        let mut v = value_of(&[(700, 0, 0)]);
        v.merge(&RollupValue::default());
        assert_eq!((v.latency_min_us, v.latency_max_us), (700, 700));
        let mut empty = RollupValue::default();
        empty.merge(&value_of(&[(700, 0, 0)]));
        assert_eq!((empty.latency_min_us, empty.latency_max_us), (700, 700));
    }
}
