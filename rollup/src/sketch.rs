//! The latency sketch: a DDSketch-style histogram of integer microseconds with 1 % relative
//! accuracy, mergeable, with a canonical byte format.
//!
//! # Mapping
//!
//! Value 0 is counted in its own zero bucket. Values `v >= 1` go to log buckets numbered from
//! 0, each about `gamma = (1 + a) / (1 - a)` (a = 0.01) times wider than the previous one, with
//! boundaries computed in integers so that every integer in a bucket is within 1 % of the
//! value the bucket reports (details and the reason for not using `ceil(ln v / ln gamma)` as is:
//! `mapping`'s doc). Values 1..=98 have a bucket each and are reported exactly. There are 1253
//! log buckets; values of 2^40 µs (about 12.7 days) and more are clamped into the top one.
//!
//! # Byte format, version 1
//!
//! Stored in databases and sent on the wire: a versioned contract. `varint` is unsigned LEB128
//! in its shortest form; `zigzag` maps 0, -1, 1, -2, ... to 0, 1, 2, 3, ...
//!
//! ```text
//! byte      1                      format version
//! varint    zero_count             values equal to 0
//! varint    n                      values in log buckets (sum of the bucket counts, saturating)
//! if n > 0:
//!   varint  zigzag(first)          index of the first non-empty log bucket (0..1253)
//!   varint  len                    buckets from first to the last non-empty one, inclusive
//!   entries, covering len buckets:
//!     varint c (c > 0)             one bucket holding c values
//!     0, varint k (k > 0)          k consecutive empty buckets (a maximal run, never at the
//!                                  start or the end of the range)
//! ```
//!
//! The empty sketch is `[1, 0, 0]`; three zeros are `[1, 3, 0]`; the values 3, 7 and 7
//! (buckets 2 and 6) are `[1, 0, 3, 4, 5, 1, 0, 3, 2]`. The encoding is canonical: equal
//! sketches give equal bytes, and [`LatencySketch::decode`] refuses every other form (leading,
//! trailing or split runs, overlong varints, trailing bytes), so decoded bytes re-encode to
//! themselves. Decoding never panics and allocates at most 1253 counts.

mod codec;
mod mapping;

pub use codec::DecodeError;

/// DDSketch-style latency sketch over non-negative integer microseconds, relative accuracy 1 %.
///
/// `add` is O(1) (a bucket lookup in a 10 kB table, then an increment) and does not allocate
/// once the sketch's bucket range covers the value: the counts live in one `Vec`, from the first
/// to the last non-empty bucket, and grow only when a value falls outside that range (at most
/// 1253 buckets, 10 kB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencySketch {
    /// Values equal to 0.
    zero_count: u64,
    /// All values (saturating).
    count: u64,
    /// Bucket index of `counts[0]`; 0 when `counts` is empty.
    offset: usize,
    /// Dense counts from the first to the last non-empty bucket: empty, or non-zero at both
    /// ends. This keeps the derived `PartialEq` meaning "same distribution".
    counts: Vec<u64>,
}

impl LatencySketch {
    /// Every quantile is within this relative error of the exact value at its rank (for values
    /// up to 2^40 µs).
    pub const RELATIVE_ACCURACY: f64 = 0.01;

    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one value.
    #[inline]
    pub fn add(&mut self, value_us: u64) {
        self.add_n(value_us, 1);
    }

    /// Counts `n` values equal to `value_us` (counts saturate at `u64::MAX`).
    pub fn add_n(&mut self, value_us: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.count = self.count.saturating_add(n);
        if value_us == 0 {
            self.zero_count = self.zero_count.saturating_add(n);
            return;
        }
        let index = mapping::index_of(value_us);
        self.cover(index, index);
        let slot = &mut self.counts[index - self.offset];
        *slot = slot.saturating_add(n);
    }

    /// Grows `counts` so that it covers buckets `low..=high`.
    fn cover(&mut self, low: usize, high: usize) {
        if self.counts.is_empty() {
            self.offset = low;
            self.counts.resize(high - low + 1, 0);
            return;
        }
        if low < self.offset {
            let grow = self.offset - low;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = low;
        }
        if high >= self.offset + self.counts.len() {
            self.counts.resize(high - self.offset + 1, 0);
        }
    }

    /// Adds `other`'s values to this sketch (exactly the sketch of both value lists).
    pub fn merge(&mut self, other: &LatencySketch) {
        self.count = self.count.saturating_add(other.count);
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        if other.counts.is_empty() {
            return;
        }
        self.cover(other.offset, other.offset + other.counts.len() - 1);
        let start = other.offset - self.offset;
        for (mine, theirs) in self.counts[start..].iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// Number of values counted (saturating).
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Value at rank `floor(q * (count - 1))` (0-based, values sorted ascending), within 1 %
    /// relative error of the exact value at that rank (exact below 99 µs and for 0); `None` when
    /// empty; `q` is clamped to `[0, 1]` (NaN counts as 0). The rank is computed in `f64`,
    /// exactly as written.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // `as` floors a non-negative float (and saturates).
        let rank = (q * (self.count - 1) as f64) as u64;
        if rank < self.zero_count {
            return Some(0);
        }
        let rank = rank - self.zero_count;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if rank < seen {
                return Some(mapping::representative(self.offset + i));
            }
        }
        // Only reachable with saturated counts; the top value is the best answer then.
        self.counts
            .len()
            .checked_sub(1)
            .map(|last| mapping::representative(self.offset + last))
            .or(Some(0))
    }

    /// Empties the sketch, keeping its allocation.
    pub fn clear(&mut self) {
        self.zero_count = 0;
        self.count = 0;
        self.offset = 0;
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(values: &[u64]) -> LatencySketch {
        let mut s = LatencySketch::new();
        for &v in values {
            s.add(v);
        }
        s
    }

    fn exact_at(sorted: &[u64], q: f64) -> u64 {
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    #[test]
    fn quantiles_table() {
        let cases: &[(&[u64], f64, Option<u64>)] = &[
            (&[], 0.5, None),
            (&[0], 0.5, Some(0)),
            (&[7], 0.0, Some(7)),
            (&[7], 1.0, Some(7)),
            (&[1, 2, 3, 4, 5], 0.5, Some(3)),
            (&[1, 2, 3, 4, 5], 0.0, Some(1)),
            (&[1, 2, 3, 4, 5], 1.0, Some(5)),
            (&[1, 2, 3, 4, 5], -3.0, Some(1)),
            (&[1, 2, 3, 4, 5], 7.0, Some(5)),
            (&[1, 2, 3, 4, 5], f64::NAN, Some(1)),
            (&[0, 0, 0, 98], 0.99, Some(0)),
            (&[0, 0, 0, 98], 1.0, Some(98)),
            // rank floor(0.95 * 3) = 2
            (&[10, 20, 30, 40], 0.95, Some(30)),
        ];
        for &(values, q, want) in cases {
            assert_eq!(sketch_of(values).quantile(q), want, "{values:?} q={q}");
        }
    }

    #[test]
    fn quantiles_within_one_percent_on_fixed_lists() {
        let lists: Vec<Vec<u64>> = vec![
            (0..1000).collect(),
            (0..1000).map(|i| i * i * 37).collect(),
            (1..=64).map(|k| (1u64 << 40) >> (k % 41)).collect(),
            vec![58, 59],
            vec![99, 100, 101, 102, 103],
        ];
        for mut values in lists {
            let s = sketch_of(&values);
            values.sort_unstable();
            for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
                let (got, exact) = (s.quantile(q).unwrap(), exact_at(&values, q));
                assert!(
                    100 * u128::from(got.abs_diff(exact)) <= u128::from(exact),
                    "q={q}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn counts_and_add_n() {
        let mut s = LatencySketch::new();
        assert!(s.is_empty());
        s.add_n(500, 0);
        assert!(s.is_empty());
        assert_eq!(
            s,
            LatencySketch::new(),
            "add_n(_, 0) leaves no empty bucket behind"
        );
        s.add_n(500, 3);
        s.add(0);
        assert_eq!(s.count(), 4);
        assert!(!s.is_empty());
        let mut one_by_one = LatencySketch::new();
        for v in [500, 0, 500, 500] {
            one_by_one.add(v);
        }
        assert_eq!(s, one_by_one);
    }

    #[test]
    fn insertion_order_does_not_matter() {
        // Growing the range downwards (splice) and upwards (resize) must agree.
        let values = [5_000, 3, 1_000_000, 0, 7, 250_000_000, 1, 42];
        let mut reversed = values;
        reversed.reverse();
        assert_eq!(sketch_of(&values), sketch_of(&reversed));
        assert_eq!(sketch_of(&values).encode(), sketch_of(&reversed).encode());
    }

    #[test]
    fn merge_with_empty_sides() {
        let full = sketch_of(&[0, 10, 20_000]);
        let empty = LatencySketch::new();
        let zeros = sketch_of(&[0, 0]);
        let cases: &[(&LatencySketch, &LatencySketch, LatencySketch)] = &[
            (&empty, &empty, LatencySketch::new()),
            (&full, &empty, full.clone()),
            (&empty, &full, full.clone()),
            (&zeros, &full, sketch_of(&[0, 0, 0, 10, 20_000])),
            (&full, &zeros, sketch_of(&[0, 0, 0, 10, 20_000])),
            (&full, &full, sketch_of(&[0, 10, 20_000, 0, 10, 20_000])),
        ];
        for (a, b, want) in cases {
            let mut merged = (*a).clone();
            merged.merge(b);
            assert_eq!(&merged, want, "{a:?} + {b:?}");
        }
    }

    #[test]
    fn merge_overlapping_and_disjoint_ranges() {
        let parts: [&[u64]; 4] = [&[100, 200], &[150, 10_000], &[1, 2], &[50_000_000]];
        let all: Vec<u64> = parts.concat();
        let mut merged = LatencySketch::new();
        for p in parts {
            merged.merge(&sketch_of(p));
        }
        assert_eq!(merged, sketch_of(&all));
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut s = sketch_of(&[1, 1_000_000]);
        let capacity = s.counts.capacity();
        assert!(capacity > 0);
        s.clear();
        assert_eq!(s, LatencySketch::new());
        assert_eq!(s.counts.capacity(), capacity);
        assert_eq!(s.quantile(0.5), None);
    }

    #[test]
    fn a_warm_range_does_not_grow() {
        let mut s = sketch_of(&[10, 1_000_000]);
        let (ptr, capacity) = (s.counts.as_ptr(), s.counts.capacity());
        for v in [10, 11, 5_000, 999_999, 1_000_000, 0] {
            s.add(v);
        }
        assert_eq!((s.counts.as_ptr(), s.counts.capacity()), (ptr, capacity));
    }

    #[test]
    fn hostile_values_stay_within_the_cap() {
        let mut s = LatencySketch::new();
        for v in [1, u64::MAX, u64::MAX / 3, 1 << 50] {
            s.add(v);
        }
        assert!(s.counts.len() <= mapping::BUCKETS);
        assert_eq!(
            s.quantile(1.0),
            Some(mapping::representative(mapping::BUCKETS - 1))
        );
    }
}
