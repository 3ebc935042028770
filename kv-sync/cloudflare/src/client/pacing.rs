//! Client-side pacing: the API-wide request budget ([`Pacer`]) and the one-write-per-second
//! rule per key ([`KeyGate`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::RateLimit;

/// One bucket for every request the client sends, plus a pause every request honours after
/// a 429 (the API limit is per user, so one throttled call means all calls are throttled).
pub(crate) struct Pacer {
    bucket: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(limit: &RateLimit) -> Self {
        let burst = NonZeroU32::new(limit.burst).expect("validated: burst > 0");
        let quota = Quota::with_period(limit.period())
            .expect("validated: period > 0")
            .allow_burst(burst);
        Self {
            bucket: RateLimiter::direct(quota),
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request may be sent. A pause longer than `max_wait` is not slept
    /// through: its remaining time comes back as the error.
    pub async fn ready(&self, max_wait: Duration) -> Result<(), Duration> {
        loop {
            let until = *self.paused_until.lock().expect("pacer lock");
            let now = Instant::now();
            match until {
                Some(t) if t > now => {
                    if t - now > max_wait {
                        return Err(t - now);
                    }
                    tokio::time::sleep_until(t).await;
                }
                _ => break,
            }
        }
        self.bucket.until_ready().await;
        Ok(())
    }

    /// Holds every request back for `d` from now (never shortens an existing pause), as a
    /// 429's `Retry-After` asks: the API limit is per user, so it applies to every call.
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut paused = self.paused_until.lock().expect("pacer lock");
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

enum Slot {
    /// A request writing this key is in flight.
    Busy,
    /// The last write's response arrived at this instant.
    Done(Instant),
}

struct GateState {
    slots: HashMap<String, Slot>,
    last_prune: Instant,
}

/// Remembers when each key was last written and holds a write back until `interval` has passed
/// since the previous write's response. Measuring from the response (not the send) means the
/// server sees at least `interval` between two writes of a key whatever the network delay.
/// Concurrent writers of the same key take turns.
pub(crate) struct KeyGate {
    interval: Duration,
    state: Mutex<GateState>,
    released: Notify,
}

/// Entries older than the interval are dropped once the map grows past this.
const PRUNE_ABOVE: usize = 4096;

impl KeyGate {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(GateState {
                slots: HashMap::new(),
                last_prune: Instant::now(),
            }),
            released: Notify::new(),
        }
    }

    /// Waits until none of `keys` is in flight or was written less than the interval ago, then
    /// marks them in flight until the returned guard is dropped.
    pub async fn acquire(&self, keys: Vec<String>) -> GateGuard<'_> {
        let mut waited = false;
        loop {
            let notified;
            let until;
            {
                let mut st = self.state.lock().expect("gate lock");
                let now = Instant::now();
                let mut busy = false;
                let mut ready = now;
                for k in &keys {
                    match st.slots.get(k) {
                        Some(Slot::Busy) => {
                            busy = true;
                            break;
                        }
                        Some(Slot::Done(t)) => ready = ready.max(*t + self.interval),
                        None => {}
                    }
                }
                if !busy && ready <= now {
                    for k in &keys {
                        st.slots.insert(k.clone(), Slot::Busy);
                    }
                    if waited {
                        tracing::debug!(keys = keys.len(), "same-key write spacing applied");
                    }
                    return GateGuard { gate: self, keys };
                }
                // Created under the lock, so a release after it is never missed.
                notified = self.released.notified();
                until = if busy { None } else { Some(ready) };
            }
            waited = true;
            match until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => notified.await,
            }
        }
    }

    fn release(&self, keys: &[String]) {
        let mut st = self.state.lock().expect("gate lock");
        let now = Instant::now();
        for k in keys {
            st.slots.insert(k.clone(), Slot::Done(now));
        }
        if st.slots.len() > PRUNE_ABOVE && now.duration_since(st.last_prune) >= self.interval {
            let interval = self.interval;
            st.slots.retain(|_, s| match s {
                Slot::Busy => true,
                Slot::Done(t) => now.duration_since(*t) < interval,
            });
            st.last_prune = now;
        }
        drop(st);
        self.released.notify_waiters();
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap().slots.len()
    }
}

/// Marks its keys written (now) when dropped, also when the request future is cancelled.
pub(crate) struct GateGuard<'a> {
    gate: &'a KeyGate,
    keys: Vec<String>,
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.gate.release(&self.keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn same_key_waits_for_the_interval_after_release() {
        let gate = KeyGate::new(Duration::from_secs(1));
        let start = Instant::now();
        let g = gate.acquire(keys(&["a", "b"])).await;
        tokio::time::sleep(Duration::from_millis(300)).await; // request in flight
        drop(g);
        // A different key goes at once.
        drop(gate.acquire(keys(&["c"])).await);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        // A batch containing "b" waits 1 s after the release.
        drop(gate.acquire(keys(&["x", "b"])).await);
        assert_eq!(start.elapsed(), Duration::from_millis(1300));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_writers_of_a_key_take_turns() {
        let gate = std::sync::Arc::new(KeyGate::new(Duration::from_secs(1)));
        let start = Instant::now();
        let g = gate.acquire(keys(&["a"])).await;
        let g2 = gate.clone();
        let waiter = tokio::spawn(async move {
            let _held = g2.acquire(keys(&["a"])).await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(g);
        let acquired_at = waiter.await.unwrap();
        assert_eq!(acquired_at - start, Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn old_entries_are_pruned() {
        let gate = KeyGate::new(Duration::from_secs(1));
        for i in 0..(PRUNE_ABOVE + 10) {
            drop(gate.acquire(vec![format!("k{i}")]).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(gate.acquire(keys(&["last"])).await);
        assert_eq!(gate.tracked(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pause_delays_requests() {
        let pacer = Pacer::new(&RateLimit::per(100, Duration::from_secs(1)));
        let start = Instant::now();
        pacer.pause(Duration::from_secs(2));
        pacer.pause(Duration::from_secs(1)); // never shortens
        assert_eq!(
            pacer.ready(Duration::from_secs(1)).await,
            Err(Duration::from_secs(2))
        );
        pacer.ready(Duration::from_secs(5)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
}
