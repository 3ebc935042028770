//! The raw-event budget: at most `per_second` refusal and 5xx events per second over the
//! whole gateway, without a lock. One `AtomicU64` holds the current second (high 32 bits) and
//! the events kept in it (low 32 bits); it is written at most `per_second + 1` times a
//! second, so under a flood of refusals the workers only read a line no one is writing.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Budget {
    per_second: u32,
    state: AtomicU64,
}

impl Budget {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: AtomicU64::new(0),
        }
    }

    /// Takes one event from the budget of the second of `at_ms` (ms since the epoch); false
    /// when that second's budget is spent. A request from a second before the current one
    /// counts against the current one.
    pub fn take(&self, at_ms: i64) -> bool {
        if self.per_second == 0 {
            return false;
        }
        // Seconds since the epoch fit in 32 bits until 2106.
        let second = u64::from(u32::try_from(at_ms.max(0) / 1000).unwrap_or(u32::MAX));
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let (current, used) = (cur >> 32, cur & 0xffff_ffff);
            let next = if second > current {
                (second << 32) | 1
            } else if used < u64::from(self.per_second) {
                cur + 1
            } else {
                return false;
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn per_second_budget() {
        let b = Budget::new(3);
        let base = 1_700_000_000_000i64;
        // (at_ms, kept)
        let cases = [
            (base, true),
            (base + 10, true),
            (base + 999, true),
            (base + 500, false), // the second's budget is spent
            (base + 1000, true), // a new second
            (base + 900, true),  // late from the previous second: counts against this one
            (base + 1500, true),
            (base + 1999, false),
            (base + 5000, true),
        ];
        for (i, (at, kept)) in cases.into_iter().enumerate() {
            assert_eq!(b.take(at), kept, "case {i}: {at}");
        }
    }

    #[test]
    fn zero_budget_keeps_nothing() {
        let b = Budget::new(0);
        assert!(!b.take(1_000));
        assert!(!b.take(10_000));
    }

    /// Many threads in one second: exactly the budget is kept.
    #[test]
    fn shared_over_threads_without_overshoot() {
        let b = Arc::new(Budget::new(200));
        let at = 1_700_000_000_123i64;
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.take(at)).count())
            })
            .collect();
        let kept: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(kept, 200);
    }
}
