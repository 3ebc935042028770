//! The native host of the request pipeline (`keygate-gateway-pipeline`), shared by both front
//! ends (the HTTP/1.1 fast path in [`crate::h1`] and hyper in [`crate::proxy`]): the state every
//! request shares ([`App`]), each worker thread's view of it ([`Worker`]: snapshot, request
//! ids, backend pool), the caller's connection ([`Peer`]), the request headers the core reads
//! ([`DecisionHeaders`]), and the pipeline's host traits: the clock reading ([`Arrived`]), the
//! rate limiter ([`Limits`]) and the usage sink (`impl UsageSink for App`: metrics, rollups,
//! raw events as `pb::UsageEvent`).
//!
//! Must not: hold a request rule (they are the core's and the pipeline's), or know HTTP
//! framing (the front ends do).

mod limits;
mod sink;

pub use limits::Limits;
pub use sink::Arrived;

use crate::metrics::Metrics;
use crate::snapshot::ConfigState;
use crate::usage::UsageHub;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use keygate_gateway_core as core;
pub use keygate_gateway_pipeline::DecisionHeaders;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A request's pipeline context on the native gateway.
pub type Exchange = keygate_gateway_pipeline::Exchange<Arrived>;

/// One worker's backend connections: its own pool for `http://`, the pooled legacy client for
/// the rest.
pub type Backends = crate::pool::Backends<crate::body::ReqBody>;

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Everything a request needs, shared by every connection.
pub struct App {
    pub state: Arc<ConfigState>,
    pub usage: Arc<UsageHub>,
    pub metrics: Arc<Metrics>,
    pub core: core::Config,
    pub public_url: Option<String>,
    /// Every token's rate-limit state.
    pub limits: Limits,
    boot: u32,
}

impl App {
    pub fn new(
        state: Arc<ConfigState>,
        usage: Arc<UsageHub>,
        metrics: Arc<Metrics>,
        core: core::Config,
        public_url: Option<String>,
    ) -> Self {
        Self {
            state,
            usage,
            metrics,
            core,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            limits: Limits::default(),
            boot: rand::random(),
        }
    }

    /// Forgets rate-limit states that are back to full (their tokens are idle).
    pub fn prune_limits(&self, now_ms: i64) {
        self.limits.prune(now_ms);
    }
}

/// One worker thread's view of the gateway: the shared [`App`], its own backend pool, request
/// id counter and handle to the current snapshot.
///
/// Nothing here is written by another worker, so a request touches no cache line another core
/// writes: two workers incrementing one shared counter (an `Arc`'s refcount, a request id
/// sequence) would pass that line back and forth between cores on every request, which on
/// this kind of machine costs more than the request's own decision. Per-request clones are of
/// the worker's own `Arc`s; the shared snapshot is re-fetched only when the loader replaced it.
pub struct Worker {
    pub app: Arc<App>,
    pub backends: Backends,
    /// The high 8 bits of this worker's request ids' counter part.
    index: u8,
    seq: AtomicU64,
    snapshot: std::sync::Mutex<Option<(u64, Arc<WorkerSnapshot>)>>,
}

/// The current snapshot as one worker holds it.
pub struct WorkerSnapshot {
    pub snap: Arc<crate::snapshot::Snapshot>,
    /// `X-Keygate-Revision`, formatted once per snapshot and worker.
    pub revision_header: HeaderValue,
}

impl Worker {
    pub fn new(app: Arc<App>, backends: Backends, index: usize) -> Self {
        Self {
            app,
            backends,
            index: (index % 256) as u8,
            seq: AtomicU64::new(0),
            snapshot: std::sync::Mutex::new(None),
        }
    }

    /// The current snapshot: this worker's handle, refreshed when the loader stored a new one.
    pub fn snapshot(&self) -> Option<Arc<WorkerSnapshot>> {
        let generation = self.app.state.generation();
        let mut cached = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((g, s)) = &*cached
            && *g == generation
        {
            return Some(s.clone());
        }
        let snap = self.app.state.load()?;
        let fresh = Arc::new(WorkerSnapshot {
            revision_header: HeaderValue::from(snap.revision),
            snap,
        });
        *cached = Some((generation, fresh.clone()));
        Some(fresh)
    }

    /// `gw-` + 8 hex digits of this process's boot id + 12 of the worker index (2) and its
    /// counter (10): unique per process run, cheap (no formatting machinery on the hot path).
    pub fn request_id(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = (u64::from(self.index) << 40)
            | (self.seq.fetch_add(1, Ordering::Relaxed) & 0xff_ffff_ffff);
        let boot = self.app.boot;
        let mut out = [0u8; 23];
        out[..3].copy_from_slice(b"gw-");
        for i in 0..8 {
            out[3 + i] = HEX[((boot >> (28 - 4 * i)) & 0xf) as usize];
        }
        for i in 0..12 {
            out[11 + i] = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
        }
        String::from_utf8(out.to_vec()).expect("ASCII")
    }
}

/// The caller's connection, formatted once per connection rather than per request.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub ip: Arc<str>,
}

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            ip: addr.ip().to_string().into(),
        }
    }
}

/// The arrival time: ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The request headers the decision reads ([`DecisionHeaders`], the pipeline's), gathered in
/// one pass over the map (typed name comparisons: cheaper than one hashed lookup per name).
pub fn decision_headers(h: &HeaderMap) -> DecisionHeaders<'_> {
    let mut d = DecisionHeaders::default();
    for (name, value) in h {
        let v = value.as_bytes();
        if name == X_API_KEY {
            d.api_key.push(v);
        } else if name == header::AUTHORIZATION {
            d.authorization.push(v);
        } else if name == header::ORIGIN {
            d.origin.get_or_insert(v);
        } else if name == header::ACCESS_CONTROL_REQUEST_METHOD {
            d.preflight_method.get_or_insert(v);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass gathering gives what `get_all` / `get` give, for repeated names too.
    #[test]
    fn decision_headers_equal_lookups() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("x-api-key", "a"), ("accept", "*/*")],
            &[("x-api-key", "a"), ("x-api-key", "b"), ("x-api-key", "c")],
            &[
                ("authorization", "Basic x"),
                ("origin", "https://a"),
                ("authorization", "Bearer k"),
                ("origin", "https://b"),
                ("access-control-request-method", "PUT"),
                ("authorization", "Bearer j"),
            ],
        ];
        for case in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *case {
                h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
            let d = decision_headers(&h);
            let all = |n: &HeaderName| -> Vec<&[u8]> {
                h.get_all(n).iter().map(|v| v.as_bytes()).collect()
            };
            assert_eq!(d.api_key.as_slice(), all(&X_API_KEY), "{case:?}");
            assert_eq!(d.authorization.as_slice(), all(&header::AUTHORIZATION));
            assert_eq!(d.origin, h.get(header::ORIGIN).map(|v| v.as_bytes()));
            assert_eq!(
                d.preflight_method,
                h.get(header::ACCESS_CONTROL_REQUEST_METHOD)
                    .map(|v| v.as_bytes())
            );
        }
    }

    #[test]
    fn request_ids_are_unique_and_well_formed() {
        let app = App::new(
            Arc::new(ConfigState::default()),
            Arc::new(UsageHub::disabled()),
            Arc::new(Metrics::new()),
            core::Config::default(),
            None,
        );
        let app = Arc::new(app);
        let pool = || Backends::new(crate::pool::backend_client());
        let (w0, w1) = (
            Worker::new(app.clone(), pool(), 0),
            Worker::new(app, pool(), 1),
        );
        let a = w0.request_id();
        let b = w0.request_id();
        let c = w1.request_id();
        assert_ne!(a, b);
        assert_ne!(a, c, "workers count apart");
        assert_eq!(a[..11], c[..11], "same boot id");
        assert_eq!(a.len(), 23);
        assert!(a.starts_with("gw-"));
        assert!(a[3..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
