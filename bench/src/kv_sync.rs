//! The kv-sync benchmark: how fast the edge state reaches a KV store.
//!
//! - [`propagation`]: a committed RevokeToken until the key is gone from the local SQLite KV,
//!   one revocation at a time, with the follower running as the real `keygate-kv-sync`
//!   binary (a child process) or in-process.
//! - [`throughput`]: 100,000 token changes into the local KV and into the Cloudflare KV
//!   stand-in, by the two paths kv-sync has: following the change feed from a checkpoint, and
//!   reconciling from a snapshot; with the Cloudflare client's request counts.
//!
//! [`plane`] starts the control plane and produces changes; [`metered`] tallies the calls the
//! follower makes into a KV; [`report`] prints the figures and judges the targets.
//!
//! Owns: nothing the product uses. Must not: put load anywhere but `127.0.0.1`, run without
//! a time bound, or leave processes, servers or databases behind.

pub mod follower;
pub mod metered;
pub mod plane;
pub mod propagation;
pub mod report;
pub mod throughput;

use crate::stats::percentile;
use keygate_control_plane::testing::Backend;
use serde::Serialize;
use std::time::Duration;

/// A latency distribution (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Latency {
    /// Appends a table of `rows` (name, distribution) to `out`, one line each, under a header.
    pub fn write_table(out: &mut String, rows: &[(&str, &Latency)]) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "  {:<28} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "n", "min ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"
        );
        for (name, l) in rows {
            let _ = writeln!(
                out,
                "  {:<28} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                name, l.count, l.min_ms, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms, l.mean_ms
            );
        }
    }

    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let count = samples.len();
        if count == 0 {
            return Self::default();
        }
        let total: Duration = samples.iter().sum();
        Self {
            count,
            min_ms: ms(samples[0]),
            p50_ms: ms(percentile(&samples, 50.0)),
            p95_ms: ms(percentile(&samples, 95.0)),
            p99_ms: ms(percentile(&samples, 99.0)),
            max_ms: ms(samples[count - 1]),
            mean_ms: ms(total) / count as f64,
        }
    }
}

/// The median of `v` (mean of the two middle values for an even count); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A display name for `backend`.
pub fn backend_name(b: Backend) -> &'static str {
    crate::control_plane::backend_name(b)
}

/// Everything measured on one control-plane backend.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub backend: &'static str,
    /// One per follower kind measured.
    pub propagation: Vec<propagation::PropagationResult>,
    pub throughput: Option<throughput::ThroughputResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_and_median() {
        let l = Latency::of((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(
            (l.min_ms, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms),
            (1.0, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(vec![]).count, 0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
