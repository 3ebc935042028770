//! The usage analytics benchmarks (issue 12, "Must show"):
//!
//! - `usage-queries` ([`queries`]): the analytics query RPCs over a PostgreSQL database holding
//!   30 days of hourly rollups for 10,000 tokens. The history ([`history`]) is generated here
//!   and written with `COPY` ([`copy`]), bypassing ingestion (2.3 million rollups through
//!   IngestUsage would take several times as long as the benchmark), into exactly the rows
//!   ingestion would have written for the same rollups.
//! - `usage-storage` ([`storage`]): what one hour of a gateway's flushes costs on disk, through
//!   the real IngestUsage RPC, at several request rates over a fixed set of keys
//!   ([`traffic`] simulates the gateway).
//!
//! Owns: the usage data sets ([`catalog`]: teams, routes, tokens; [`values`]: the pool of
//! rolled-up values), their generators and the databases they live in ([`db`]).
//! Must not: tune or patch the control plane, or put load anywhere but `127.0.0.1`.

pub mod catalog;
pub mod copy;
pub mod db;
pub mod history;
pub mod queries;
pub mod report;
pub mod storage;
pub mod traffic;
pub mod values;

/// SplitMix64: small, fast and seedable, so a data set is the same on every run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A proxied request's latency: log-normal around 20 ms (sigma 0.8, so p99 about 130 ms), at
/// least 100 µs.
pub fn latency_us(rng: &mut Rng) -> u64 {
    (20_000.0 * (0.8 * rng.normal()).exp()).max(100.0) as u64
}

/// A request's size in bytes: 200-2,000.
pub fn request_bytes(rng: &mut Rng) -> u64 {
    200 + rng.below(1_800)
}

/// A response's size in bytes: 300-20,300.
pub fn response_bytes(rng: &mut Rng) -> u64 {
    300 + rng.below(20_000)
}

/// The series dimensions, as stored (migrations/*/0008_usage_rollups.sql).
pub const DIM_TOTAL: &str = "total";
pub const DIM_TEAM: &str = "team";
pub const DIM_ROUTE: &str = "route";
pub const DIM_GATEWAY: &str = "gateway";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let x = r.below(10);
            seen[x as usize] += 1;
            let f = r.f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(r.below(0), 0);
        let lat: Vec<u64> = (0..10_000).map(|_| latency_us(&mut r)).collect();
        assert!(lat.iter().all(|&l| l >= 100));
        let mut sorted = lat.clone();
        sorted.sort_unstable();
        let median = sorted[5_000];
        assert!((17_000..23_000).contains(&median), "median {median}");
    }
}
