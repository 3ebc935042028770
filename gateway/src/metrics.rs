//! Prometheus metrics. Names are defined here and nowhere else.
//!
//! Request series carry a `worker` label (the worker thread's index): each worker counts into
//! its own series, so two cores never increment the same counter (a shared counter's cache
//! line would move between cores on every request). Sum over `worker` for the gateway's total.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name, or `-` when no route matched.
    pub route: String,
    pub status: u16,
    pub worker: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
    pub worker: u16,
}

thread_local! {
    /// The worker index requests observed on this thread are counted under.
    static WORKER: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}

/// Counts this thread's requests under worker `index` (called once by each worker thread).
pub fn set_thread_worker(index: usize) {
    WORKER.with(|w| w.set(u16::try_from(index).unwrap_or(u16::MAX)));
}

/// The usage sender's counters (registered here, incremented by [`crate::usage`] off the
/// request path: when workers hand their rollups over and when the control plane answers).
#[derive(Clone, Default)]
pub struct UsageCounters {
    /// Requests recorded into rollups (as handed over by the workers).
    pub requests_counted: Counter,
    /// Rollup rows the control plane accepted.
    pub rollups_sent: Counter,
    /// Sum of the counts of those rows: requests the control plane has.
    pub rollup_requests_sent: Counter,
    /// Requests whose rollups were dropped (pending bound, or a batch refused as malformed).
    pub rollups_dropped: Counter,
    /// Raw events not kept because of the event budget.
    pub events_sampled_out: Counter,
}

pub struct Metrics {
    /// Distinguishes instances (tests run several gateways in one process) in the per-thread
    /// handle caches.
    id: u64,
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub config_revision: Gauge,
    pub kv_age_seconds: Gauge<f64, AtomicU64>,
    pub tokens: Gauge,
    pub routes: Gauge,
    pub ready: Gauge,
    pub kv_errors: Gauge,
    pub route_tables_refused: Gauge,
    pub usage_pending: Gauge,
    pub usage_dropped: Gauge,
    pub usage_sent: Gauge,
    pub usage_send_errors: Gauge,
    pub usage_rollups_pending: Gauge,
    pub usage: UsageCounters,
    pub backend_errors: Counter,
    pub backend_timeouts: Counter,
    /// Caller connections the HTTP/1.1 fast path passed to hyper (see `h1`).
    pub handoffs: Counter,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~26 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("keygate_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "request_duration_seconds",
            "From request received to response headers sent",
            latency.clone(),
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let m = Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            latency,
            config_revision: Gauge::default(),
            kv_age_seconds: Gauge::default(),
            tokens: Gauge::default(),
            routes: Gauge::default(),
            ready: Gauge::default(),
            kv_errors: Gauge::default(),
            route_tables_refused: Gauge::default(),
            usage_pending: Gauge::default(),
            usage_dropped: Gauge::default(),
            usage_sent: Gauge::default(),
            usage_send_errors: Gauge::default(),
            usage_rollups_pending: Gauge::default(),
            usage: UsageCounters::default(),
            backend_errors: Counter::default(),
            backend_timeouts: Counter::default(),
            handoffs: Counter::default(),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "config_revision",
            "KV revision of the configuration in force",
            m.config_revision.clone(),
        );
        r.register(
            "kv_age_seconds",
            "Seconds since kv-sync wrote the revision in force",
            m.kv_age_seconds.clone(),
        );
        r.register("tokens", "Token records loaded", m.tokens.clone());
        r.register("routes", "Routes loaded", m.routes.clone());
        r.register("ready", "1 once a configuration is loaded", m.ready.clone());
        r.register(
            "kv_read_errors",
            "KV reads that failed (the last good configuration kept serving)",
            m.kv_errors.clone(),
        );
        r.register(
            "route_tables_refused",
            "Route tables refused because they failed validation",
            m.route_tables_refused.clone(),
        );
        r.register(
            "usage_events_pending",
            "Usage events buffered, not yet sent",
            m.usage_pending.clone(),
        );
        r.register(
            "usage_events_dropped",
            "Usage events dropped because the buffer was full",
            m.usage_dropped.clone(),
        );
        r.register(
            "usage_events_sent",
            "Usage events accepted by the control plane",
            m.usage_sent.clone(),
        );
        r.register(
            "usage_send_errors",
            "Usage batches the control plane did not take (unreachable, or refused)",
            m.usage_send_errors.clone(),
        );
        r.register(
            "usage_rollups_pending",
            "Rollup rows held for the control plane, not yet accepted (merged per key)",
            m.usage_rollups_pending.clone(),
        );
        r.register(
            "usage_requests_counted",
            "Requests recorded into usage rollups (updated as workers hand their rollups over)",
            m.usage.requests_counted.clone(),
        );
        r.register(
            "usage_rollups_sent",
            "Usage rollup rows the control plane accepted",
            m.usage.rollups_sent.clone(),
        );
        r.register(
            "usage_rollup_requests_sent",
            "Requests counted in the rollup rows the control plane accepted (sum of their counts)",
            m.usage.rollup_requests_sent.clone(),
        );
        r.register(
            "usage_rollups_dropped",
            "Requests whose rollups were dropped (pending bound reached, or a batch refused as malformed)",
            m.usage.rollups_dropped.clone(),
        );
        r.register(
            "usage_events_sampled_out",
            "Raw usage events not kept because of the event budget (their requests are in the rollups)",
            m.usage.events_sampled_out.clone(),
        );
        r.register(
            "backend_errors",
            "Backend connections or requests that failed (answered 502)",
            m.backend_errors.clone(),
        );
        r.register(
            "hyper_handoffs",
            "Caller connections the HTTP/1.1 fast path passed to hyper (h2c, HTTP/1.0, Expect, Upgrade, chunked uploads, https backends, heads it does not parse)",
            m.handoffs.clone(),
        );
        r.register(
            "backend_timeouts",
            "Backends that did not answer within the route's timeout (answered 504)",
            m.backend_timeouts.clone(),
        );
        m
    }

    /// Counts one answered request. The calling thread keeps handles to the series it has
    /// used, so the usual request costs one lookup by route name in a thread-local map, no
    /// label allocation and no lock on the shared families (a series is created there once).
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let worker = WORKER.with(|w| w.get());
        SERIES.with(|cache| {
            let mut cache = cache.borrow_mut();
            let routes = cache.entry(self.id).or_default();
            let series = match routes.get_mut(route) {
                Some(s) => s,
                None => routes
                    .entry(route.to_owned())
                    .or_insert_with(|| RouteSeries {
                        latency: self
                            .latency
                            .get_or_create(&RouteLabel {
                                route: route.to_owned(),
                                worker,
                            })
                            .clone(),
                        by_status: Vec::new(),
                    }),
            };
            series.latency.observe(seconds);
            match series.by_status.iter().find(|(s, _)| *s == status) {
                Some((_, c)) => {
                    c.inc();
                }
                None => {
                    let c = self
                        .requests
                        .get_or_create(&RequestLabels {
                            route: route.to_owned(),
                            status,
                            worker,
                        })
                        .clone();
                    c.inc();
                    series.by_status.push((status, c));
                }
            }
        });
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// One route's series as seen from one thread (handles share their values with the families).
struct RouteSeries {
    latency: Histogram,
    /// Few statuses per route: a short list beats a map.
    by_status: Vec<(u16, Counter)>,
}

thread_local! {
    /// Per `Metrics` instance, per route name. FxHash: the keys are our own instance ids and
    /// route names from the validated route table, not attacker-chosen.
    static SERIES: RefCell<FxHashMap<u64, FxHashMap<String, RouteSeries>>> = RefCell::default();
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    }

    /// Counts from several threads and routes land in their worker's series, and two
    /// instances in one process (one thread-local cache) do not see each other's counts.
    #[test]
    fn observe_counts_per_route_status_and_worker_across_threads_and_instances() {
        let a = std::sync::Arc::new(Metrics::new());
        let b = Metrics::new();
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let a = a.clone();
                std::thread::spawn(move || {
                    // Threads 0 and 1 count as worker 0, thread 2 as worker 1.
                    set_thread_worker(i / 2);
                    for _ in 0..100 {
                        a.observe("pay", 200, 0.001);
                    }
                    a.observe("pay", 502, 0.2);
                    a.observe("-", 401, 0.0001);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        b.observe("pay", 200, 0.001);
        let text = a.encode();
        let req = |route: &str, status: u16, worker: u16| {
            value(
                &text,
                &format!(
                    "keygate_gateway_requests_total{{route=\"{route}\",status=\"{status}\",worker=\"{worker}\"}}"
                ),
            )
        };
        assert_eq!(req("pay", 200, 0).as_deref(), Some("200"), "{text}");
        assert_eq!(req("pay", 200, 1).as_deref(), Some("100"), "{text}");
        assert_eq!(req("pay", 502, 0).as_deref(), Some("2"));
        assert_eq!(req("-", 401, 1).as_deref(), Some("1"));
        assert_eq!(
            value(
                &text,
                "keygate_gateway_request_duration_seconds_count{route=\"pay\",worker=\"0\"}"
            )
            .as_deref(),
            Some("202"),
            "{text}"
        );
        let other = b.encode();
        assert_eq!(
            value(
                &other,
                "keygate_gateway_requests_total{route=\"pay\",status=\"200\",worker=\"0\"}"
            )
            .as_deref(),
            Some("1"),
            "{other}"
        );
    }
}
