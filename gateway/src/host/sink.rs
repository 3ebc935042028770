//! The native usage sink: metrics ([`crate::metrics`]), the worker's rollups and the raw-event
//! buffer ([`crate::usage`]); and the clock reading the pipeline asks for latencies.

use super::App;
use keygate_gateway_core::Route;
use keygate_gateway_pipeline::{Failure, Keep, Started, UsageEvent, UsageSink};
use keygate_proto::v1 as pb;
use keygate_rollup::RollupKeyRef;
use std::time::{Duration, Instant};

/// When a request arrived, on the monotonic clock.
#[derive(Clone, Copy)]
pub struct Arrived(pub Instant);

impl Started for Arrived {
    #[inline]
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

impl UsageSink for App {
    #[inline]
    fn enabled(&self) -> bool {
        self.usage.enabled()
    }

    #[inline]
    fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        self.metrics.observe(route, status, elapsed.as_secs_f64());
    }

    #[inline]
    fn keep(&self, status: u16, by_gateway: bool, at_ms: i64, token_id: &str) -> Keep {
        self.usage.keep(status, by_gateway, at_ms, token_id)
    }

    #[inline]
    fn record(
        &self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        self.usage
            .record(key, latency_us, request_bytes, response_bytes);
    }

    fn push_event(&self, keep: Keep, event: UsageEvent) {
        let at_ms = event.time_ms;
        self.usage.push_event(keep, to_pb(event), at_ms);
    }

    fn backend_failed(&self, route: &Route, request_id: &str, failure: &Failure<'_>) {
        match failure {
            Failure::Backend(e) => {
                self.metrics.backend_errors.inc();
                tracing::warn!(route = %route.name, request_id = %request_id, error = %e, "backend request failed");
            }
            Failure::Timeout => {
                self.metrics.backend_timeouts.inc();
                tracing::warn!(route = %route.name, request_id = %request_id, timeout_ms = route.timeout_ms, "backend timed out");
            }
            Failure::Unforwardable => {}
        }
    }
}

/// A raw event as the wire carries it (its strings move, none is copied).
fn to_pb(e: UsageEvent) -> pb::UsageEvent {
    pb::UsageEvent {
        time: Some(prost_types::Timestamp {
            seconds: e.time_ms.div_euclid(1000),
            nanos: (e.time_ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
        token_hash: e.token_hash,
        token_id: e.token_id,
        team_id: e.team_id,
        route: e.route,
        method: e.method,
        status: u32::from(e.status),
        error: e.error.to_owned(),
        latency_us: e.latency_us,
        client_ip: e.client_ip,
        user_agent: e.user_agent,
        config_revision: e.config_revision,
        request_id: e.request_id,
        request_bytes: e.request_bytes,
        response_bytes: e.response_bytes,
        ..Default::default()
    }
}
