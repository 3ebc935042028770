//! One gateway's traffic, simulated request by request without IO, as the gateway counts and
//! samples it (gateway/src/usage.rs): every request is recorded into a per-minute rollup of its
//! key; raw events are kept for refusals within a budget per second (the rest counted as
//! `sampled_out`) and for each token's first success of a minute.
//!
//! The traffic runs over a fixed set of keys ([`keys`]): 90 % success keys (a token on one of
//! its routes, status 200) and 10 % refusal keys (429 `rate_limited`, 403 `forbidden`, 401
//! `invalid_key` without a token). [`TrafficShape::refusal_share`] of the requests go to refusal
//! keys; each request picks its key uniformly within its kind, at a uniform time within its
//! second.

use super::catalog::{self, Catalog};
use super::{Rng, latency_us, request_bytes, response_bytes};
use keygate_control_plane::time::to_timestamp;
use keygate_proto::v1 as pb;
use keygate_rollup::{Accumulator, RollupKey, RollupKeyRef, RollupValue, minute_of};
use std::collections::HashSet;

/// How the gateway's traffic looks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrafficShape {
    /// Distinct (token, route, status) keys.
    pub keys: u32,
    /// Requests per second.
    pub rate: u64,
    /// Gateway flush interval, ms.
    pub flush_ms: i64,
    /// Share of requests refused by the gateway.
    pub refusal_share: f64,
    /// Refusal (and 5xx) events kept per second.
    pub event_budget: u64,
    pub seed: u64,
}

/// One key of the traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Catalog token number; `None` for an unknown key.
    pub token: Option<u32>,
    pub token_id: String,
    pub team_id: String,
    pub route: String,
    pub status: u16,
    pub error: &'static str,
}

/// The keys of the traffic, and the catalog they refer to (its `tokens` is set to the tokens
/// the success keys need: each token's 1-3 routes, in token order).
pub fn keys(n: u32, teams: u32, routes: u32) -> (Vec<Key>, Catalog) {
    let mut catalog = Catalog {
        teams,
        routes,
        tokens: 0,
    };
    let refusals = n / 10;
    let successes = n - refusals;
    let mut out = Vec::with_capacity(n as usize);
    let mut token = 0;
    while (out.len() as u32) < successes {
        for r in catalog.token_routes(token) {
            if (out.len() as u32) < successes {
                out.push(Key {
                    token: Some(token),
                    token_id: catalog::token_id(token),
                    team_id: catalog::team_id(catalog.token_team(token)),
                    route: catalog::route_name(r),
                    status: 200,
                    error: "",
                });
            }
        }
        token += 1;
    }
    catalog.tokens = token.max(1);
    for f in 0..refusals {
        let t = f % catalog.tokens;
        let first = catalog.token_routes(t)[0];
        let (token, route, status, error) = match f % 3 {
            0 => (Some(t), first, 429, "rate_limited"),
            1 => (
                Some(t),
                (first + routes / 2) % routes.max(1),
                403,
                "forbidden",
            ),
            _ => (None, f % routes.max(1), 401, "invalid_key"),
        };
        out.push(Key {
            token,
            token_id: token.map(catalog::token_id).unwrap_or_default(),
            team_id: token
                .map(|t| catalog::team_id(catalog.token_team(t)))
                .unwrap_or_default(),
            route: catalog::route_name(route),
            status,
            error,
        });
    }
    (out, catalog)
}

/// What one flush sends.
#[derive(Debug, Default)]
pub struct Flush {
    pub rollups: Vec<(RollupKey, RollupValue)>,
    pub events: Vec<pb::UsageEvent>,
    /// Refusal events not kept (over the budget).
    pub sampled_out: u64,
    pub requests: u64,
}

/// The simulated gateway.
pub struct Simulator {
    shape: TrafficShape,
    keys: Vec<Key>,
    success: Vec<usize>,
    refusal: Vec<usize>,
    rng: Rng,
    acc: Accumulator,
    /// (token, minute) whose first success was kept.
    first_success: HashSet<(u32, i64)>,
    next_event: u64,
}

impl Simulator {
    pub fn new(shape: TrafficShape, keys: Vec<Key>) -> Self {
        let success = (0..keys.len()).filter(|&i| keys[i].status < 400).collect();
        let refusal = (0..keys.len()).filter(|&i| keys[i].status >= 400).collect();
        Self {
            rng: Rng::new(shape.seed),
            shape,
            keys,
            success,
            refusal,
            acc: Accumulator::new(),
            first_success: HashSet::new(),
            next_event: 0,
        }
    }

    /// The requests of the flush interval starting at `start_ms` (whole seconds).
    pub fn flush(&mut self, start_ms: i64) -> Flush {
        let mut out = Flush::default();
        // Older minutes can no longer see a first success.
        let minute = minute_of(start_ms);
        self.first_success.retain(|&(_, m)| m >= minute);
        for second in 0..(self.shape.flush_ms / 1000).max(1) {
            let second_start = start_ms + second * 1000;
            let mut budget = self.shape.event_budget;
            for _ in 0..self.shape.rate {
                let at = second_start + self.rng.below(1000) as i64;
                let refused = !self.refusal.is_empty()
                    && (self.success.is_empty() || self.rng.chance(self.shape.refusal_share));
                let pool = if refused {
                    &self.refusal
                } else {
                    &self.success
                };
                let k = pool[self.rng.below(pool.len() as u64) as usize];
                let key = &self.keys[k];
                let (latency, req, resp) = if refused {
                    (150 + self.rng.below(400), request_bytes(&mut self.rng), 120)
                } else {
                    (
                        latency_us(&mut self.rng),
                        request_bytes(&mut self.rng),
                        response_bytes(&mut self.rng),
                    )
                };
                let minute = minute_of(at);
                self.acc.record(
                    RollupKeyRef {
                        minute,
                        token_id: &key.token_id,
                        team_id: &key.team_id,
                        route: &key.route,
                        status: key.status,
                        error: key.error,
                    },
                    latency,
                    req,
                    resp,
                );
                out.requests += 1;
                let keep = if refused {
                    if budget > 0 {
                        budget -= 1;
                        true
                    } else {
                        out.sampled_out += 1;
                        false
                    }
                } else {
                    key.token
                        .is_some_and(|t| self.first_success.insert((t, minute)))
                };
                if keep {
                    let e = self.event(k, at, latency, req, resp);
                    out.events.push(e);
                }
            }
        }
        out.rollups = self.acc.drain();
        out
    }

    /// The raw event of a request, with the fields a gateway copies from real requests.
    fn event(&mut self, k: usize, at: i64, latency: u64, req: u64, resp: u64) -> pb::UsageEvent {
        self.next_event += 1;
        let key = &self.keys[k];
        let hash = match key.token {
            Some(t) => Catalog::token_hash(t),
            None => format!(
                "{:016x}{:016x}{:016x}{:016x}",
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64(),
                self.rng.next_u64()
            ),
        };
        let client = key.token.unwrap_or(k as u32);
        pb::UsageEvent {
            event_id: format!("ev-{:012}", self.next_event),
            time: Some(to_timestamp(at)),
            token_hash: hash,
            token_id: key.token_id.clone(),
            team_id: key.team_id.clone(),
            route: key.route.clone(),
            method: if self.next_event.is_multiple_of(4) {
                "POST"
            } else {
                "GET"
            }
            .into(),
            status: u32::from(key.status),
            error: key.error.into(),
            latency_us: latency,
            request_bytes: req,
            response_bytes: resp,
            client_ip: format!(
                "10.{}.{}.{}",
                client % 200,
                (client / 200) % 250,
                1 + client % 250
            ),
            user_agent: "python-requests/2.31.0".into(),
            config_revision: 42,
            request_id: format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64()),
            gateway: String::new(),
        }
    }
}

/// A rollup on the wire.
pub fn rollup_to_pb(k: &RollupKey, v: &RollupValue) -> pb::UsageRollup {
    pb::UsageRollup {
        minute: Some(to_timestamp(k.minute)),
        token_id: k.token_id.clone(),
        team_id: k.team_id.clone(),
        route: k.route.clone(),
        status: u32::from(k.status),
        error: k.error.clone(),
        count: v.count,
        request_bytes: v.request_bytes,
        response_bytes: v.response_bytes,
        latency_sum_us: v.latency_sum_us,
        latency_min_us: v.latency_min_us,
        latency_max_us: v.latency_max_us,
        latency_sketch: v.sketch.encode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(rate: u64) -> TrafficShape {
        TrafficShape {
            keys: 1000,
            rate,
            flush_ms: 10_000,
            refusal_share: 0.02,
            event_budget: 200,
            seed: 9,
        }
    }

    /// 2025-03-10T10:25:00Z.
    const T0: i64 = 1_741_602_300_000;

    #[test]
    fn keys_are_distinct_and_split_90_10() {
        let (keys, catalog) = keys(1000, 50, 100);
        assert_eq!(keys.len(), 1000);
        let distinct: HashSet<(String, String, u16)> = keys
            .iter()
            .map(|k| (k.token_id.clone(), k.route.clone(), k.status))
            .collect();
        assert_eq!(distinct.len(), 1000);
        assert_eq!(keys.iter().filter(|k| k.status == 200).count(), 900);
        // Success keys are a token on one of its routes.
        for k in keys.iter().filter(|k| k.status == 200) {
            let t = k.token.unwrap();
            assert!(t < catalog.tokens);
            assert!(
                catalog
                    .token_routes(t)
                    .iter()
                    .any(|&r| catalog::route_name(r) == k.route)
            );
        }
        assert!((300..600).contains(&catalog.tokens), "{}", catalog.tokens);
    }

    #[test]
    fn a_flush_counts_every_request_in_rollups_of_the_keys() {
        for rate in [1000, 5000] {
            let (keys, _) = keys(1000, 50, 100);
            let mut sim = Simulator::new(shape(rate), keys);
            let f = sim.flush(T0);
            assert_eq!(f.requests, rate * 10);
            assert_eq!(
                f.rollups.iter().map(|(_, v)| v.count).sum::<u64>(),
                rate * 10
            );
            for (k, v) in &f.rollups {
                assert_eq!(k.minute, T0, "one minute per aligned flush");
                assert_eq!(v.sketch.count(), v.count);
                assert!(v.latency_min_us <= v.latency_max_us);
            }
            // Rows per flush are bounded by the keys, not by the rate.
            assert!(f.rollups.len() <= 1000);
            assert!(f.rollups.len() > 850, "{}", f.rollups.len());
            // Refusal events within the budget; the rest sampled out.
            let refusals = f.events.iter().filter(|e| e.status >= 400).count() as u64;
            assert!(refusals <= 200 * 10);
            let refused: u64 = f
                .rollups
                .iter()
                .filter(|(k, _)| k.status >= 400)
                .map(|(_, v)| v.count)
                .sum();
            assert_eq!(refusals + f.sampled_out, refused);
            let share = refused as f64 / (rate * 10) as f64;
            assert!((0.015..0.025).contains(&share), "{share}");
        }
    }

    #[test]
    fn first_success_once_per_token_and_minute() {
        let (keys, catalog) = keys(1000, 50, 100);
        let mut sim = Simulator::new(shape(1000), keys);
        let mut per_minute = Vec::new();
        for i in 0..12 {
            let f = sim.flush(T0 + i * 10_000);
            per_minute.push(f.events.iter().filter(|e| e.status < 400).count());
            for e in &f.events {
                assert_eq!(e.token_hash.len(), 64);
                assert!(e.event_id.len() <= 128);
            }
        }
        let first: usize = per_minute[..6].iter().sum();
        let second: usize = per_minute[6..].iter().sum();
        // Every token is active within a minute at 1000 req/s: one success event each.
        assert_eq!(first, catalog.tokens as usize);
        assert_eq!(second, catalog.tokens as usize);
        assert!(per_minute[0] > per_minute[5]);
    }

    #[test]
    fn rollups_go_on_the_wire_unchanged() {
        let mut v = RollupValue::default();
        v.record(900, 1, 2);
        v.record(1100, 3, 4);
        let k = RollupKey {
            minute: T0,
            token_id: "tok_1".into(),
            team_id: "team-01".into(),
            route: "svc-001".into(),
            status: 200,
            error: String::new(),
        };
        let p = rollup_to_pb(&k, &v);
        assert_eq!((p.count, p.request_bytes, p.response_bytes), (2, 4, 6));
        assert_eq!(
            (p.latency_sum_us, p.latency_min_us, p.latency_max_us),
            (2000, 900, 1100)
        );
        assert_eq!(
            keygate_rollup::LatencySketch::decode(&p.latency_sketch).unwrap(),
            v.sketch
        );
    }
}
