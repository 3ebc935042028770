//! Which bucket an integer latency falls in, and the value a bucket reports.
//!
//! DDSketch's mapping with `gamma = (1 + a) / (1 - a)`, `a = 0.01`, computed in integers.
//! Bucket 0 holds exactly the value 1; bucket `i + 1` starts right after bucket `i` ends, and
//! a bucket starting at `lo` has the representative `rep = lo + floor(lo / 100)` (at most 1 %
//! above `lo`) and ends at `hi = floor(100 * rep / 99)` (the largest value at most 1 % above
//! `rep`). So every integer in a bucket is within 1 % of the bucket's representative, exactly,
//! and each bucket is about `gamma` times wider than the previous one, as in DDSketch.
//!
//! Why not `ceil(ln(v) / ln(gamma))` directly: latencies are integers and the sketch answers
//! with an integer. With the float mapping, 58 and 59 share a bucket (as do 14 other pairs below
//! 100), and no integer is within 1 % of both; rounding `2 gamma^i / (gamma + 1)` also breaks the
//! bound near the bucket edges for values in the low hundreds. Integer boundaries also map
//! identically on every platform: `ln` comes from glibc natively and from a Rust port of musl's
//! libm on `wasm32`, and the two may round differently at a bucket edge.
//!
//! Values 1..=98 get a bucket each (exact answers); from 99 on, buckets hold several values.
//! Values at or above the start of the bucket holding [`MAX_TRACKED_US`] (2^40 µs, about 12.7
//! days) are clamped into that top bucket, so there are [`BUCKETS`] buckets at most (1253).

/// The largest latency (µs) the sketch tracks within 1 %; larger ones land in the top bucket.
pub const MAX_TRACKED_US: u64 = 1 << 40;

const fn rep_of_lower(lo: u64) -> u64 {
    lo + lo / 100
}

const fn upper_of_lower(lo: u64) -> u64 {
    rep_of_lower(lo) * 100 / 99
}

const fn bucket_count() -> usize {
    let mut lo = 1;
    let mut n = 1;
    while upper_of_lower(lo) < MAX_TRACKED_US {
        lo = upper_of_lower(lo) + 1;
        n += 1;
    }
    n
}

/// Number of log buckets (the zero bucket aside).
pub const BUCKETS: usize = bucket_count();

const fn lower_bounds() -> [u64; BUCKETS] {
    let mut table = [0; BUCKETS];
    let mut lo = 1;
    let mut i = 0;
    while i < BUCKETS {
        table[i] = lo;
        lo = upper_of_lower(lo) + 1;
        i += 1;
    }
    table
}

/// Smallest value of each bucket, ascending.
static LOWER: [u64; BUCKETS] = lower_bounds();

const fn naive_index(table: &[u64; BUCKETS], v: u64) -> usize {
    let mut i = 0;
    while i + 1 < BUCKETS && table[i + 1] <= v {
        i += 1;
    }
    i
}

/// `OCTAVE[k]` = bucket of `2^k`; `OCTAVE[64]` = top bucket.
const fn octaves() -> [usize; 65] {
    let table = lower_bounds();
    let mut out = [0; 65];
    let mut k = 0;
    while k < 64 {
        out[k] = naive_index(&table, 1 << k);
        k += 1;
    }
    out[64] = BUCKETS - 1;
    out
}

static OCTAVE: [usize; 65] = octaves();

/// Bucket of `v` (`v >= 1`; 0 has its own bucket outside this mapping).
#[inline]
pub fn index_of(v: u64) -> usize {
    debug_assert!(v >= 1);
    let k = v.ilog2() as usize;
    // bucket(2^k) <= bucket(v) <= bucket(2^(k+1)): search only that stretch (at most ~36).
    let first = OCTAVE[k];
    let last = OCTAVE[k + 1];
    first + LOWER[first + 1..=last].partition_point(|&lo| lo <= v)
}

/// The value bucket `index` reports (within 1 % of every value in it).
#[inline]
pub fn representative(index: usize) -> u64 {
    rep_of_lower(LOWER[index])
}

#[cfg(test)]
pub fn lower_of(index: usize) -> u64 {
    LOWER[index]
}

#[cfg(test)]
pub fn upper_of(index: usize) -> u64 {
    if index + 1 < BUCKETS {
        LOWER[index + 1] - 1
    } else {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_one_percent(estimate: u64, exact: u64) -> bool {
        100 * u128::from(estimate.abs_diff(exact)) <= u128::from(exact)
    }

    #[test]
    fn table_shape() {
        assert_eq!(BUCKETS, 1253);
        assert_eq!(LOWER[0], 1);
        assert!(LOWER.windows(2).all(|w| w[0] < w[1]));
        assert!(LOWER[BUCKETS - 1] <= MAX_TRACKED_US);
        assert!(upper_of_lower(LOWER[BUCKETS - 1]) >= MAX_TRACKED_US);
        // Exact answers below 99.
        for v in 1..=98 {
            assert_eq!(index_of(v), (v - 1) as usize);
            assert_eq!(representative(index_of(v)), v);
        }
        assert_eq!(lower_of(98), 99);
        assert_eq!(upper_of(98), 100);
    }

    #[test]
    fn every_value_of_every_bucket_is_within_one_percent() {
        // The error is largest at a bucket's edges, so checking both edges checks the bucket.
        for (i, &lo) in LOWER.iter().enumerate() {
            let rep = representative(i);
            let hi = if i + 1 < BUCKETS {
                upper_of(i)
            } else {
                upper_of_lower(lo)
            };
            for edge in [lo, hi] {
                assert!(
                    within_one_percent(rep, edge),
                    "bucket {i}: rep {rep} for {edge}"
                );
            }
        }
    }

    #[test]
    fn buckets_grow_like_gamma() {
        // From 99 on, the next bucket starts where DDSketch's would (gamma times further),
        // give or take the rounding to integers.
        let gamma = 1.01 / 0.99;
        for i in 98..BUCKETS - 1 {
            let drift = LOWER[i + 1] as f64 - gamma * LOWER[i] as f64;
            assert!(
                drift.abs() < 1.0,
                "bucket {i}: starts {drift} away from gamma * previous"
            );
        }
    }

    #[test]
    fn index_matches_the_definition() {
        let naive = |v: u64| LOWER.partition_point(|&lo| lo <= v) - 1;
        let mut values: Vec<u64> = (1..200_000).collect();
        for k in 0..64 {
            let p = 1u64 << k;
            values.extend([p - 1, p, p + 1, p | (p >> 1)]);
        }
        for &lo in LOWER.iter() {
            values.extend([lo - 1, lo, lo + 1]);
        }
        values.extend([u64::MAX, u64::MAX - 1, MAX_TRACKED_US, MAX_TRACKED_US * 2]);
        for v in values.into_iter().filter(|&v| v >= 1) {
            assert_eq!(index_of(v), naive(v), "value {v}");
        }
    }

    #[test]
    fn huge_values_clamp_to_the_top_bucket() {
        for v in [MAX_TRACKED_US, MAX_TRACKED_US + 1, u64::MAX / 2, u64::MAX] {
            assert_eq!(index_of(v), BUCKETS - 1);
        }
        assert!(within_one_percent(
            representative(BUCKETS - 1),
            MAX_TRACKED_US
        ));
    }
}
