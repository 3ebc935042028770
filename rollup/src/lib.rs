//! The usage rollup contract shared by every gateway (the native tokio gateway now, a
//! Cloudflare Worker compiled to `wasm32` later) and by the control plane (which rolls up plain
//! events itself and merges the gateways' sketches).
//!
//! Owns: the rollup key ([`RollupKey`], borrowed as [`RollupKeyRef`]: one rollup per minute,
//! token, team, route, status and error code), the rolled-up value ([`RollupValue`]: count,
//! byte sums, latency sum/min/max and a [`LatencySketch`]), the per-thread [`Accumulator`], the
//! minute arithmetic ([`minute_of`]) and the sketch's byte format (versioned, stored in
//! databases and sent on the wire; see [`sketch`]).
//!
//! Must not: do IO, read a clock (callers pass times), draw random numbers, depend on tokio,
//! hyper, sqlx, prost or worker, or require `Send`. It builds for `wasm32-unknown-unknown`.
//!
//! Invariants:
//! - Merging is associative and commutative: rolling up events in any split and merging the
//!   parts gives the same value as rolling up all of them at once, down to the sketch's bytes.
//! - Equal sketches encode to equal bytes, and every byte string that decodes re-encodes to
//!   itself (the format is canonical).
//! - The request path ([`Accumulator::record`]) takes no lock and, once its key is warm,
//!   allocates nothing (see [`Accumulator`]).

mod accumulator;
mod key;
pub mod sketch;
mod value;

pub use accumulator::Accumulator;
pub use key::{RollupKey, RollupKeyRef};
pub use sketch::{DecodeError, LatencySketch};
pub use value::RollupValue;

/// One minute in milliseconds: the rollup period.
pub const MINUTE_MS: i64 = 60_000;

/// Start of the UTC minute containing `ms` (milliseconds since the Unix epoch), rounding down,
/// also for negative input (`minute_of(-1) == -60_000`).
///
/// The only input whose minute start is not representable is in the partial minute at the
/// bottom of the `i64` range; it maps to the lowest representable minute start instead of
/// overflowing.
pub fn minute_of(ms: i64) -> i64 {
    let into_minute = ms.rem_euclid(MINUTE_MS);
    match ms.checked_sub(into_minute) {
        Some(start) => start,
        // Unreachable in practice (292 million years BC); stay total and do not panic.
        None => i64::MIN + (MINUTE_MS - i64::MIN.rem_euclid(MINUTE_MS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_of_rounds_down() {
        let lowest_start = i64::MIN + (MINUTE_MS - i64::MIN.rem_euclid(MINUTE_MS));
        let cases: &[(i64, i64)] = &[
            (0, 0),
            (1, 0),
            (59_999, 0),
            (60_000, 60_000),
            (60_001, 60_000),
            (119_999, 60_000),
            (-1, -60_000),
            (-59_999, -60_000),
            (-60_000, -60_000),
            (-60_001, -120_000),
            // 2025-01-01T00:00:30.5Z -> 2025-01-01T00:00:00Z
            (1_735_689_630_500, 1_735_689_600_000),
            (i64::MAX, i64::MAX - i64::MAX.rem_euclid(MINUTE_MS)),
            (i64::MIN, lowest_start),
            (lowest_start, lowest_start),
            (lowest_start + 1, lowest_start),
        ];
        for &(ms, want) in cases {
            assert_eq!(minute_of(ms), want, "minute_of({ms})");
            assert_eq!(want.rem_euclid(MINUTE_MS), 0, "{want} is a minute start");
        }
    }

    #[test]
    fn lowest_start_is_the_smallest_representable_minute_start() {
        let lowest_start = minute_of(i64::MIN);
        assert_eq!(lowest_start.rem_euclid(MINUTE_MS), 0);
        assert!(lowest_start.checked_sub(MINUTE_MS).is_none());
    }
}
