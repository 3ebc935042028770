//! Latency samples and their summary. Percentiles are exact (nearest rank over the sorted
//! samples): sample counts here are thousands, not millions.

use serde::Serialize;
use std::time::Duration;

/// A summary of one measured phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Requests that succeeded and were measured.
    pub count: usize,
    /// Requests that failed (not in the latencies).
    pub errors: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Successful requests per second of wall time.
    pub per_sec: f64,
    pub wall_secs: f64,
}

/// Nearest-rank percentile of sorted `v` (`p` in 0..=100).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Summarises `latencies` measured over `wall` of wall-clock time.
pub fn summarise(mut latencies: Vec<Duration>, errors: usize, wall: Duration) -> Summary {
    latencies.sort_unstable();
    let count = latencies.len();
    let total: Duration = latencies.iter().sum();
    let wall_secs = wall.as_secs_f64();
    Summary {
        count,
        errors,
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        mean_ms: if count == 0 {
            0.0
        } else {
            ms(total) / count as f64
        },
        per_sec: if wall_secs > 0.0 {
            count as f64 / wall_secs
        } else {
            0.0
        },
        wall_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = summarise(v, 0, Duration::from_secs(2));
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.per_sec, 50.0);
        let one = summarise(vec![Duration::from_millis(7)], 0, Duration::from_secs(1));
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert_eq!(summarise(vec![], 3, Duration::ZERO).p99_ms, 0.0);
    }
}
