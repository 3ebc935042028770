//! Property tests of the rollup contract against exact computations.

use std::collections::BTreeMap;

use keygate_rollup::{Accumulator, LatencySketch, RollupKey, RollupKeyRef, RollupValue};
use proptest::prelude::*;

/// Latency lists drawn from one of several ranges (small exact values, a few ms, the full range
/// up to 300 s, a mix), 1..5000 values.
fn latencies() -> impl Strategy<Value = Vec<u64>> {
    use prop::collection::vec;
    let n = 1..5000usize;
    prop_oneof![
        vec(0u64..100, n.clone()),
        vec(0u64..10_000, n.clone()),
        vec(0u64..=300_000_000, n.clone()),
        vec(prop_oneof![0u64..100, 0u64..10_000, 0u64..=300_000_000], n),
    ]
}

fn sketch_of(values: &[u64]) -> LatencySketch {
    let mut s = LatencySketch::new();
    for &v in values {
        s.add(v);
    }
    s
}

fn within_one_percent(estimate: u64, exact: u64) -> bool {
    100 * u128::from(estimate.abs_diff(exact)) <= u128::from(exact)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn quantiles_are_within_one_percent(mut values in latencies()) {
        let s = sketch_of(&values);
        values.sort_unstable();
        prop_assert_eq!(s.count(), values.len() as u64);
        for q in [0.0, 0.5, 0.95, 0.99, 1.0] {
            let exact = values[(q * (values.len() - 1) as f64).floor() as usize];
            let got = s.quantile(q).unwrap();
            prop_assert!(within_one_percent(got, exact), "q={} got {} exact {}", q, got, exact);
        }
    }

    #[test]
    fn merged_parts_equal_the_whole(
        values in latencies(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        reverse in any::<bool>(),
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(values.len() + 1)).collect();
        cuts.extend([0, values.len()]);
        cuts.sort_unstable();
        let mut parts: Vec<&[u64]> = cuts.windows(2).map(|w| &values[w[0]..w[1]]).collect();
        if reverse {
            parts.reverse();
        }
        let mut merged = LatencySketch::new();
        for part in parts {
            merged.merge(&sketch_of(part));
        }
        let whole = sketch_of(&values);
        prop_assert_eq!(merged.encode(), whole.encode());
        prop_assert_eq!(merged, whole);
    }

    #[test]
    fn decode_inverts_encode(
        values in prop::collection::vec(any::<u64>(), 0..300),
        weighted in prop::collection::vec((0u64..2_000_000, any::<u64>()), 0..20),
        small in latencies(),
    ) {
        let mut s = sketch_of(&values);
        for (v, n) in weighted {
            s.add_n(v, n);
        }
        for sketch in [s, sketch_of(&small)] {
            let bytes = sketch.encode();
            prop_assert_eq!(LatencySketch::decode(&bytes), Ok(sketch));
        }
    }

    /// Whatever decodes is canonical: it re-encodes to the same bytes. Nothing panics.
    #[test]
    fn decode_is_total_and_canonical(
        values in prop::collection::vec(0u64..1_000_000, 0..50),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = sketch_of(&values).encode();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let cut = cut.index(bytes.len() + 1);
        for input in [&bytes[..], &bytes[..cut], &garbage[..]] {
            if let Ok(s) = LatencySketch::decode(input) {
                prop_assert_eq!(s.encode(), input.to_vec());
            }
        }
    }
}

/// (minute, token, team, route, status, error) from small pools, so keys repeat.
type Record = (
    (
        i64,
        &'static str,
        &'static str,
        &'static str,
        u16,
        &'static str,
    ),
    u64,
    u64,
    u64,
);

fn records() -> impl Strategy<Value = Vec<Record>> {
    let key = (
        prop::sample::select(vec![-60_000i64, 0, 60_000, 1_735_689_600_000]),
        prop::sample::select(vec!["", "tok_a", "tok_b"]),
        prop::sample::select(vec!["", "team_1"]),
        prop::sample::select(vec!["", "/v1/users", "/v1/orders"]),
        prop::sample::select(vec![200u16, 404, 429, 502]),
        prop::sample::select(vec!["", "rate_limited", "bad_gateway"]),
    );
    let latency = prop_oneof![0u64..100, 0u64..10_000, 0u64..=300_000_000];
    prop::collection::vec((key, latency, 0u64..1 << 40, 0u64..1 << 40), 0..600)
}

fn key_ref(
    k: &(
        i64,
        &'static str,
        &'static str,
        &'static str,
        u16,
        &'static str,
    ),
) -> RollupKeyRef<'static> {
    RollupKeyRef {
        minute: k.0,
        token_id: k.1,
        team_id: k.2,
        route: k.3,
        status: k.4,
        error: k.5,
    }
}

fn accumulate(records: &[Record]) -> Accumulator {
    let mut acc = Accumulator::new();
    for (k, latency, req, resp) in records {
        acc.record(key_ref(k), *latency, *req, *resp);
    }
    acc
}

fn sorted(mut rollups: Vec<(RollupKey, RollupValue)>) -> Vec<(RollupKey, RollupValue)> {
    rollups.sort_by(|a, b| a.0.cmp(&b.0));
    rollups
}

#[derive(Debug, PartialEq, Eq)]
struct Exact {
    count: u64,
    request_bytes: u64,
    response_bytes: u64,
    latency_sum_us: u64,
    latency_min_us: u64,
    latency_max_us: u64,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn accumulator_matches_an_exact_rollup(records in records()) {
        let mut exact: BTreeMap<RollupKey, (Exact, Vec<u64>)> = BTreeMap::new();
        for (k, latency, req, resp) in &records {
            let (e, latencies) = exact.entry(key_ref(k).to_owned()).or_insert((
                Exact {
                    count: 0,
                    request_bytes: 0,
                    response_bytes: 0,
                    latency_sum_us: 0,
                    latency_min_us: u64::MAX,
                    latency_max_us: 0,
                },
                Vec::new(),
            ));
            e.count += 1;
            e.request_bytes += req;
            e.response_bytes += resp;
            e.latency_sum_us += latency;
            e.latency_min_us = e.latency_min_us.min(*latency);
            e.latency_max_us = e.latency_max_us.max(*latency);
            latencies.push(*latency);
        }
        let mut acc = accumulate(&records);
        prop_assert_eq!(acc.len(), exact.len());
        prop_assert_eq!(acc.is_empty(), records.is_empty());
        prop_assert_eq!(acc.requests(), records.len() as u64);
        let got = sorted(acc.drain());
        prop_assert!(acc.is_empty());
        prop_assert_eq!(got.len(), exact.len());
        for ((key, value), (exact_key, (e, latencies))) in got.iter().zip(&exact) {
            prop_assert_eq!(key, exact_key);
            let as_exact = Exact {
                count: value.count,
                request_bytes: value.request_bytes,
                response_bytes: value.response_bytes,
                latency_sum_us: value.latency_sum_us,
                latency_min_us: value.latency_min_us,
                latency_max_us: value.latency_max_us,
            };
            prop_assert_eq!(&as_exact, e);
            prop_assert_eq!(&value.sketch, &sketch_of(latencies));
        }
    }

    #[test]
    fn merged_accumulators_equal_one_over_both(
        records in records(),
        split in any::<prop::sample::Index>(),
        via_values in any::<bool>(),
    ) {
        let split = split.index(records.len() + 1);
        let (left, right) = records.split_at(split);
        let mut merged = accumulate(left);
        if via_values {
            let mut right = accumulate(right);
            for (k, v) in right.drain() {
                merged.merge_value(k, v);
            }
        } else {
            merged.merge(accumulate(right));
        }
        let mut whole = accumulate(&records);
        prop_assert_eq!(merged.len(), whole.len());
        prop_assert_eq!(merged.requests(), whole.requests());
        prop_assert_eq!(sorted(merged.drain()), sorted(whole.drain()));
    }
}
