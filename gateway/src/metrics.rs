//! Prometheus metrics. Names are defined here and nowhere else.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name, or `-` when no route matched.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

pub struct Metrics {
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
    pub backend_errors: Counter,
    pub backend_timeouts: Counter,
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
        let m = Self {
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
            backend_errors: Counter::default(),
            backend_timeouts: Counter::default(),
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
            "backend_errors",
            "Backend connections or requests that failed (answered 502)",
            m.backend_errors.clone(),
        );
        r.register(
            "backend_timeouts",
            "Backends that did not answer within the route's timeout (answered 504)",
            m.backend_timeouts.clone(),
        );
        m
    }

    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
