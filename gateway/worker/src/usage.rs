//! Usage on the Worker: every answered request is counted in this isolate's rollup
//! accumulator (`keygate-rollup`, the native gateway's), and sent to the control plane's
//! `UsageService.IngestUsage` over grpc-web from `ctx.waitUntil`, at most one call in flight
//! per isolate, under the gateway name `worker/<colo>`.
//!
//! Loss bound: an evicted isolate loses what it counted since its last flush (at most one
//! flush interval, `KEYGATE_USAGE_FLUSH_MS`, plus a batch held after a failed send), and
//! `waitUntil` work is cut 30 s after the response. Raw events are not sent from the Worker
//! (rollups only). A failure never touches the response.

use crate::settings::UsageTarget;
use keygate_gateway_core::Route;
use keygate_gateway_pipeline::{Failure, Keep, UsageEvent, UsageSink};
use keygate_proto::v1 as pb;
use keygate_rollup::{Accumulator, RollupKeyRef};
use prost::Message;
use std::cell::{Cell, RefCell};
use std::time::Duration;
use wasm_bindgen::JsCast;

/// Rollup keys one call carries (the control plane's cap); beyond it, requests are dropped
/// and counted as `rollups_dropped`.
pub const MAX_KEYS: usize = 20_000;

/// This isolate's usage state.
#[derive(Default)]
pub struct Usage {
    acc: RefCell<Accumulator>,
    /// Requests not counted because the accumulator was full.
    dropped: Cell<u64>,
    /// A call that failed, resent identical (same batch id) before anything new.
    held: RefCell<Option<pb::IngestUsageRequest>>,
    /// A flush is scheduled or in flight.
    flushing: Cell<bool>,
    batches: Cell<u64>,
    /// The config revision last served (sent with each call).
    pub revision: Cell<i64>,
    pub sent_calls: Cell<u64>,
    pub failed_calls: Cell<u64>,
}

/// The pipeline's usage sink on the Worker: rollups only.
pub struct Sink<'u> {
    pub usage: Option<&'u Usage>,
}

impl UsageSink for Sink<'_> {
    fn enabled(&self) -> bool {
        self.usage.is_some()
    }

    fn observe(&self, _route: &str, _status: u16, _elapsed: Duration) {}

    fn keep(&self, _status: u16, _by_gateway: bool, _at_ms: i64, _token_id: &str) -> Keep {
        Keep::No
    }

    fn record(
        &self,
        key: RollupKeyRef<'_>,
        latency_us: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let Some(u) = self.usage else { return };
        let mut acc = u.acc.borrow_mut();
        if acc.len() >= MAX_KEYS {
            u.dropped.set(u.dropped.get() + 1);
            return;
        }
        acc.record(key, latency_us, request_bytes, response_bytes);
    }

    fn push_event(&self, _keep: Keep, _event: UsageEvent) {}

    fn backend_failed(&self, route: &Route, request_id: &str, failure: &Failure<'_>) {
        match failure {
            Failure::Unforwardable => worker::console_warn!(
                "backend URL cannot be sent: route={} request_id={request_id}",
                route.name
            ),
            Failure::Timeout => worker::console_warn!(
                "backend timed out: route={} request_id={request_id} timeout_ms={}",
                route.name,
                route.timeout_ms
            ),
            Failure::Backend(e) => worker::console_warn!(
                "backend request failed: route={} request_id={request_id} error={e}",
                route.name
            ),
        }
    }
}

impl Usage {
    /// Whether this call should schedule the isolate's flush (none is scheduled yet); marks
    /// it scheduled.
    pub fn claim_flush(&self) -> bool {
        !self.flushing.replace(true)
    }

    /// Waits the flush interval, then sends what was counted (and a held batch first). Runs
    /// inside `waitUntil`; clears the mark when done.
    pub async fn flush_later(&self, target: &UsageTarget, gateway: &str, boot: &str) {
        worker::Delay::from(Duration::from_millis(target.flush_ms)).await;
        self.flush(target, gateway, boot).await;
        self.flushing.set(false);
    }

    async fn flush(&self, target: &UsageTarget, gateway: &str, boot: &str) {
        // Taken out first: no borrow is held across the call.
        let held = self.held.borrow_mut().take();
        if let Some(held) = held
            && !self.send(target, held).await
        {
            return;
        }
        let rows = self.acc.borrow_mut().drain();
        let dropped = self.dropped.replace(0);
        if rows.is_empty() && dropped == 0 {
            return;
        }
        let n = self.batches.get() + 1;
        self.batches.set(n);
        let req = pb::IngestUsageRequest {
            gateway: gateway.to_owned(),
            rollups: rows.into_iter().map(keygate_proto::usage_rollup).collect(),
            batch_id: format!("{boot}-{n}"),
            config_revision: self.revision.get().max(0),
            gateway_version: env!("CARGO_PKG_VERSION").into(),
            events_sampled: true,
            rollups_dropped: dropped,
            ..Default::default()
        };
        self.send(target, req).await;
    }

    /// One call; a failed one is held for the next flush. Whether it was stored.
    async fn send(&self, target: &UsageTarget, req: pb::IngestUsageRequest) -> bool {
        match ingest(target, &req).await {
            Ok(()) => {
                self.sent_calls.set(self.sent_calls.get() + 1);
                true
            }
            Err(e) => {
                self.failed_calls.set(self.failed_calls.get() + 1);
                worker::console_warn!("sending usage failed; held for the next flush: {e}");
                *self.held.borrow_mut() = Some(req);
                false
            }
        }
    }
}

/// `UsageService.IngestUsage` as a grpc-web call with `fetch`.
async fn ingest(target: &UsageTarget, req: &pb::IngestUsageRequest) -> Result<(), String> {
    let body = grpc_web_frame(&req.encode_to_vec());
    let headers = web_sys::Headers::new().map_err(|_| "headers")?;
    for (k, v) in [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("accept", "application/grpc-web+proto"),
    ] {
        headers.append(k, v).map_err(|_| "header")?;
    }
    headers
        .append("authorization", &format!("Bearer {}", target.key))
        .map_err(|_| "the gateway key is not valid header text".to_owned())?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(headers.as_ref());
    let bytes = js_sys::Uint8Array::from(body.as_slice());
    init.set_body(&bytes);
    let url = format!("{}/keygate.v1.UsageService/IngestUsage", target.base_url);
    let request = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|_| "request not built".to_owned())?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response =
        wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&request))
            .await
            .map_err(|e| format!("control plane unreachable: {e:?}"))?
            .unchecked_into();
    if resp.status() != 200 {
        return Err(format!("HTTP {}", resp.status()));
    }
    // Trailers-only answers carry the status in the headers.
    if let Ok(Some(s)) = resp.headers().get("grpc-status") {
        return grpc_status(&s, resp.headers().get("grpc-message").ok().flatten());
    }
    let buf = wasm_bindgen_futures::JsFuture::from(resp.array_buffer().map_err(|_| "body")?)
        .await
        .map_err(|_| "body not read".to_owned())?;
    let bytes = js_sys::Uint8Array::new(&buf).to_vec();
    let trailers = grpc_web_trailers(&bytes).ok_or("no grpc-web trailers".to_owned())?;
    let status = trailers
        .iter()
        .find(|(k, _)| k == "grpc-status")
        .map(|(_, v)| v.clone())
        .ok_or("no grpc-status".to_owned())?;
    let message = trailers
        .iter()
        .find(|(k, _)| k == "grpc-message")
        .map(|(_, v)| v.clone());
    grpc_status(&status, message)
}

fn grpc_status(status: &str, message: Option<String>) -> Result<(), String> {
    if status.trim() == "0" {
        Ok(())
    } else {
        Err(format!(
            "grpc-status {status}: {}",
            message.unwrap_or_default()
        ))
    }
}

/// A grpc-web data frame: flag 0, big-endian length, message.
pub fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The trailer frame (flag 0x80) of a grpc-web body, as lower-case name/value pairs.
pub fn grpc_web_trailers(mut body: &[u8]) -> Option<Vec<(String, String)>> {
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let frame = body.get(5..5 + len)?;
        if flag & 0x80 != 0 {
            let text = std::str::from_utf8(frame).ok()?;
            return Some(
                text.split("\r\n")
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect(),
            );
        }
        body = &body[5 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_trailers_round_trip() {
        let f = grpc_web_frame(b"abc");
        assert_eq!(f, [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let mut body = f.clone();
        let t = b"grpc-status: 0\r\ngrpc-message: \r\n";
        body.push(0x80);
        body.extend_from_slice(&(t.len() as u32).to_be_bytes());
        body.extend_from_slice(t);
        let trailers = grpc_web_trailers(&body).unwrap();
        assert!(trailers.contains(&("grpc-status".into(), "0".into())));
        assert_eq!(grpc_web_trailers(&f), None);
        assert_eq!(grpc_web_trailers(&[0x80, 0, 0, 0, 9, b'x']), None);
    }
}
