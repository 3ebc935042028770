//! Rate limiting with GCRA (the generic cell rate algorithm): one `u64` of state per limited
//! key, exact, no timers. The host keeps the states (per token, per token and route) and the
//! clock; this module only does the arithmetic.
//!
//! A limit of `per_minute` requests lets one request through every `60 s / per_minute`
//! (the emission interval), with a burst of up to `burst` requests at once. `burst == 0`
//! means the default, `burst = per_minute`: a fresh key may spend its whole minute at once,
//! then refills steadily. `per_minute == 0` means no limit.

/// Microseconds per minute.
const MINUTE_US: u64 = 60_000_000;
const SECOND_US: u64 = 1_000_000;

/// The state of one limited key: its theoretical arrival time, microseconds since the Unix
/// epoch (0 for a key never seen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateState(pub u64);

/// The outcome of one check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// The burst capacity (`RateLimit-Limit`); 0 when unlimited.
    pub limit: u32,
    /// Requests that could still be made right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Seconds until the full burst is available again (`RateLimit-Reset`).
    pub reset_secs: u64,
    /// When refused: seconds until one request would be allowed (`Retry-After`, >= 1).
    pub retry_after_secs: u64,
}

impl RateDecision {
    /// The decision for "no limit".
    pub const UNLIMITED: RateDecision = RateDecision {
        allowed: true,
        limit: 0,
        remaining: 0,
        reset_secs: 0,
        retry_after_secs: 0,
    };
}

/// The burst used for `burst == 0`: `per_minute`.
pub fn default_burst(per_minute: u32) -> u32 {
    per_minute
}

fn ceil_secs(us: u64) -> u64 {
    us.div_ceil(SECOND_US)
}

/// Evaluates without changing the state; returns the decision and the state to store if
/// the request is allowed.
fn evaluate(state: RateState, per_minute: u32, burst: u32, now_ms: i64) -> (RateDecision, u64) {
    if per_minute == 0 {
        return (RateDecision::UNLIMITED, state.0);
    }
    let burst = if burst == 0 {
        default_burst(per_minute)
    } else {
        burst
    };
    let interval = (MINUTE_US / u64::from(per_minute)).max(1);
    let capacity = interval.saturating_mul(u64::from(burst));
    let now = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
    let tat = state.0.max(now);
    let new_tat = tat.saturating_add(interval);
    let ahead = new_tat - now;
    if ahead <= capacity {
        let remaining = (capacity - ahead) / interval;
        let d = RateDecision {
            allowed: true,
            limit: burst,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_secs: ceil_secs(ahead),
            retry_after_secs: 0,
        };
        (d, new_tat)
    } else {
        let d = RateDecision {
            allowed: false,
            limit: burst,
            remaining: 0,
            reset_secs: ceil_secs(tat - now),
            retry_after_secs: ceil_secs(ahead - capacity).max(1),
        };
        (d, state.0)
    }
}

/// Checks one request against one limit and, if allowed, records it.
pub fn gcra(state: &mut RateState, per_minute: u32, burst: u32, now_ms: i64) -> RateDecision {
    let (d, next) = evaluate(*state, per_minute, burst, now_ms);
    state.0 = next;
    d
}

/// One limit of [`gcra_all`]: its state, requests per minute (0: none) and burst (0: default).
#[derive(Debug)]
pub struct Limit<'s> {
    pub state: &'s mut RateState,
    pub per_minute: u32,
    pub burst: u32,
}

/// Checks one request against several limits (e.g. the token's and the route's) and records
/// it in all of them only if every one allows it, so a refused request costs nothing.
/// Returns the most restrictive decision: when allowed, the one with the fewest remaining;
/// when refused, the one with the longest `retry_after_secs`.
pub fn gcra_all(limits: &mut [Limit<'_>], now_ms: i64) -> RateDecision {
    let evaluated: Vec<(RateDecision, u64)> = limits
        .iter()
        .map(|l| evaluate(*l.state, l.per_minute, l.burst, now_ms))
        .collect();
    let refused = evaluated
        .iter()
        .filter(|(d, _)| !d.allowed)
        .max_by_key(|(d, _)| d.retry_after_secs);
    if let Some((d, _)) = refused {
        return *d;
    }
    for (l, (_, next)) in limits.iter_mut().zip(&evaluated) {
        l.state.0 = *next;
    }
    evaluated
        .iter()
        .filter(|(d, _)| d.limit > 0)
        .min_by_key(|(d, _)| d.remaining)
        .map_or(RateDecision::UNLIMITED, |(d, _)| *d)
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and `Retry-After` when
/// refused; nothing when unlimited.
pub fn ratelimit_headers(d: &RateDecision) -> Vec<(&'static str, String)> {
    if d.limit == 0 {
        return Vec::new();
    }
    let mut h = vec![
        ("RateLimit-Limit", d.limit.to_string()),
        ("RateLimit-Remaining", d.remaining.to_string()),
        ("RateLimit-Reset", d.reset_secs.to_string()),
    ];
    if !d.allowed {
        h.push(("Retry-After", d.retry_after_secs.to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_refill() {
        let mut s = RateState::default();
        let t0 = 1_700_000_000_000;
        for i in 0..60 {
            let d = gcra(&mut s, 60, 0, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
            assert_eq!(d.limit, 60);
        }
        let d = gcra(&mut s, 60, 0, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        assert_eq!(d.reset_secs, 60);
        // One second later exactly one more fits.
        assert!(gcra(&mut s, 60, 0, t0 + 1000).allowed);
        assert!(!gcra(&mut s, 60, 0, t0 + 1000).allowed);
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let mut s = RateState::default();
        let t0 = 1_000_000;
        assert!(gcra(&mut s, 1, 1, t0).allowed);
        let before = s;
        for _ in 0..100 {
            assert!(!gcra(&mut s, 1, 1, t0 + 1).allowed);
        }
        assert_eq!(s, before);
        assert!(gcra(&mut s, 1, 1, t0 + 60_000).allowed);
    }

    #[test]
    fn all_or_nothing_over_several_limits() {
        let (mut token, mut route) = (RateState::default(), RateState::default());
        let now = 5_000_000;
        let mut limits = [
            Limit {
                state: &mut token,
                per_minute: 100,
                burst: 0,
            },
            Limit {
                state: &mut route,
                per_minute: 2,
                burst: 0,
            },
        ];
        assert_eq!(gcra_all(&mut limits, now).remaining, 1);
        assert_eq!(gcra_all(&mut limits, now).remaining, 0);
        let d = gcra_all(&mut limits, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 30);
        let token_after = *limits[0].state;
        assert_eq!(gcra_all(&mut limits, now), d);
        assert_eq!(
            *limits[0].state, token_after,
            "refused request charged the token"
        );
        let mut none: [Limit<'_>; 0] = [];
        assert_eq!(gcra_all(&mut none, now), RateDecision::UNLIMITED);
    }

    #[test]
    fn headers_and_extremes() {
        let mut s = RateState::default();
        assert_eq!(gcra(&mut s, 0, 0, 1), RateDecision::UNLIMITED);
        assert!(ratelimit_headers(&RateDecision::UNLIMITED).is_empty());
        let d = gcra(&mut s, u32::MAX, u32::MAX, i64::MAX);
        assert!(d.allowed);
        let mut s = RateState::default();
        let d = gcra(&mut s, 10, 1, -5);
        assert!(d.allowed);
        let refused = gcra(&mut s, 10, 1, -5);
        assert_eq!(
            ratelimit_headers(&refused),
            [
                ("RateLimit-Limit", "1".to_owned()),
                ("RateLimit-Remaining", "0".to_owned()),
                ("RateLimit-Reset", "6".to_owned()),
                ("Retry-After", "6".to_owned()),
            ]
        );
    }
}
