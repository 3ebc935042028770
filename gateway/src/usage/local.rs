//! Each worker thread's own usage state: its rollup [`Accumulator`], the tokens whose first
//! success of the current minute it already kept an event for, and its sampled-out count.
//!
//! It lives in a thread-local, installed by the worker thread when it starts: a request is
//! served by one worker thread from arrival to the end of its response (both front ends, and
//! hyper's HTTP/2 streams, which its executor spawns on the worker's own single-threaded
//! runtime), so recording touches memory no other core writes, without a lock. (It cannot
//! sit in [`crate::host::Worker`] behind a `RefCell`: the hyper front end needs `Worker`
//! to be `Sync`.) Anything recorded on a thread that is not a worker of this gateway goes
//! to the hub's fallback state behind a Mutex, so nothing is lost.

use super::Handover;
use keygate_rollup::{Accumulator, RollupKeyRef};
use rustc_hash::FxHashSet;
use std::cell::RefCell;

/// One thread's usage state (or the hub's fallback).
pub(super) struct Local {
    /// The hub it records for (tests run several gateways in one process).
    hub: u64,
    acc: Accumulator,
    /// Events not kept because of the budget, since the last hand-over.
    sampled_out: u64,
    /// The minute `first_seen` is about, and the tokens that had their first success in it.
    first_minute: i64,
    first_seen: FxHashSet<Box<str>>,
}

impl Local {
    pub(super) fn new(hub: u64) -> Self {
        Self {
            hub,
            acc: Accumulator::new(),
            sampled_out: 0,
            first_minute: i64::MIN,
            first_seen: FxHashSet::default(),
        }
    }

    #[inline]
    pub(super) fn record(
        &mut self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        self.acc
            .record(key, latency_us, request_bytes, response_bytes);
    }

    pub(super) fn sampled_out(&mut self) {
        self.sampled_out += 1;
    }

    /// Whether this is `token_id`'s first success in `minute` on this thread (and marks it).
    /// A request of a minute before the current one (answered late) is not.
    pub(super) fn first_success(&mut self, minute: i64, token_id: &str) -> bool {
        if minute > self.first_minute {
            self.first_minute = minute;
            self.first_seen.clear();
        } else if minute < self.first_minute {
            return false;
        }
        if self.first_seen.contains(token_id) {
            return false;
        }
        self.first_seen.insert(token_id.into());
        true
    }

    /// What was recorded since the last hand-over; `None` when nothing was.
    pub(super) fn take(&mut self) -> Option<Handover> {
        if self.acc.is_empty() && self.sampled_out == 0 {
            return None;
        }
        Some(Handover {
            rollups: self.acc.drain(),
            sampled_out: std::mem::take(&mut self.sampled_out),
        })
    }
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Makes the calling thread record for hub `hub` (a worker thread, once, when it starts).
pub(super) fn install(hub: u64) {
    LOCAL.with(|l| *l.borrow_mut() = Some(Local::new(hub)));
}

/// Runs `f` on the calling thread's state if it records for `hub`; gives `f` back otherwise
/// (not a worker thread of this hub, or the thread is ending).
#[inline]
pub(super) fn with<R, F: FnOnce(&mut Local) -> R>(hub: u64, f: F) -> Result<R, F> {
    let mut f = Some(f);
    let done = LOCAL
        .try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            match l.as_mut() {
                Some(local) if local.hub == hub => f.take().map(|f| f(local)),
                _ => None,
            }
        })
        .ok()
        .flatten();
    match (done, f) {
        (Some(r), _) => Ok(r),
        (None, Some(f)) => Err(f),
        (None, None) => unreachable!("f runs only when it returns a value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_rollup::MINUTE_MS;

    #[test]
    fn first_success_once_per_token_and_minute() {
        let mut l = Local::new(1);
        let m = 50 * MINUTE_MS;
        // (minute, token, first?)
        let cases = [
            (m, "tok_a", true),
            (m, "tok_a", false),
            (m, "tok_b", true),
            (m + MINUTE_MS, "tok_a", true),
            (m, "tok_c", false), // answered late, from the previous minute
            (m + MINUTE_MS, "tok_b", true),
            (m + MINUTE_MS, "tok_b", false),
        ];
        for (i, (minute, token, first)) in cases.into_iter().enumerate() {
            assert_eq!(l.first_success(minute, token), first, "case {i}");
        }
    }

    #[test]
    fn take_hands_over_and_empties() {
        let mut l = Local::new(1);
        assert!(l.take().is_none());
        let key = RollupKeyRef {
            minute: 0,
            token_id: "tok_a",
            team_id: "alpha",
            route: "echo",
            status: 200,
            error: "",
        };
        l.record(key, 10, 1, 2);
        l.record(key, 30, 1, 2);
        l.sampled_out();
        let h = l.take().unwrap();
        assert_eq!(h.rollups.len(), 1);
        assert_eq!(h.rollups[0].1.count, 2);
        assert_eq!(h.sampled_out, 1);
        assert!(l.take().is_none());
    }

    #[test]
    fn with_runs_only_on_an_installed_thread_of_the_same_hub() {
        std::thread::spawn(|| {
            assert!(with(7, |_| ()).is_err(), "not installed");
            install(7);
            assert!(with(7, |l| l.sampled_out()).is_ok());
            assert!(with(8, |_| ()).is_err(), "another hub");
            let h = with(7, Local::take).ok().flatten().unwrap();
            assert_eq!(h.sampled_out, 1);
        })
        .join()
        .unwrap();
    }
}
