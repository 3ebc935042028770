//! Forwarding with `fetch`: the backend request's headers from the core's rules, both bodies
//! streamed chunk by chunk (never buffered) and counted, redirects returned to the caller
//! (`redirect: "manual"`), and the route's `timeout_ms` enforced with an `AbortController`
//! until the response head arrives.

use futures_util::{FutureExt, Stream, StreamExt};
use keygate_gateway_core::{self as core, HeaderSink};
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasm_bindgen::JsCast;
use worker::{ByteStream, Delay, Headers};

/// `worker::Headers` as the core's [`HeaderSink`]: appended; a name or value the runtime
/// refuses is left out.
pub struct JsHeaders<'h>(pub &'h Headers);

impl HeaderSink for JsHeaders<'_> {
    fn put(&mut self, name: &str, value: &[u8]) {
        if let Ok(v) = std::str::from_utf8(value) {
            let _ = self.0.append(name, v);
        }
    }
}

/// The request headers for the backend: the caller's, filtered by the core's rule
/// ([`core::forwards_request_header`]), then the core's additions.
pub fn outgoing_headers(
    incoming: &[(String, String)],
    credential: Option<(&str, &str)>,
    client: &core::Client,
    request_id: &str,
) -> Headers {
    let named = core::connection_named(
        incoming
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.as_bytes()),
    );
    let credential_name = credential.map(|(n, _)| n);
    let out = Headers::new();
    for (k, v) in incoming {
        if core::forwards_request_header(k, &named, credential_name) {
            let _ = out.append(k, v);
        }
    }
    core::put_forward_additions(&mut JsHeaders(&out), client, request_id, credential);
    out
}

/// A body passing through, its bytes added to a shared counter; `on_end` runs once, when the
/// body ends, fails, or is dropped unfinished (the caller went away).
pub struct Counted<S> {
    inner: S,
    bytes: Rc<Cell<u64>>,
    on_end: Option<Box<dyn FnOnce()>>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, bytes: Rc<Cell<u64>>, on_end: Option<Box<dyn FnOnce()>>) -> Self {
        Self {
            inner,
            bytes,
            on_end,
        }
    }

    fn end(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<S: Stream<Item = worker::Result<Vec<u8>>> + Unpin> Stream for Counted<S> {
    type Item = worker::Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.poll_next_unpin(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => {
                self.bytes.set(self.bytes.get() + chunk.len() as u64);
            }
            Poll::Ready(Some(Err(_)) | None) => self.end(),
            Poll::Pending => {}
        }
        item
    }
}

/// The caller's body as a stream `fetch` can send, counted into `bytes`.
pub fn request_body(body: web_sys::ReadableStream, bytes: Rc<Cell<u64>>) -> wasm_bindgen::JsValue {
    let counted = Counted::new(ByteStream::from(body), bytes, None).map(|r| {
        r.map(|chunk| js_sys::Uint8Array::from(chunk.as_slice()).into())
            .map_err(|e| wasm_bindgen::JsValue::from(e.to_string()))
    });
    wasm_streams::ReadableStream::from_stream(counted)
        .into_raw()
        .unchecked_into::<web_sys::ReadableStream>()
        .into()
}

/// How a forward ended before a response head.
pub enum SendError {
    /// The backend did not answer within the route's timeout.
    Timeout,
    /// The request could not be built or the backend failed (text for the log only).
    Backend(String),
}

/// Sends `request` and waits for the response head at most `timeout`; on timeout the fetch is
/// aborted.
pub async fn send(
    url: &str,
    method: &str,
    headers: Headers,
    body: Option<wasm_bindgen::JsValue>,
    timeout: Duration,
) -> Result<web_sys::Response, SendError> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let controller = web_sys::AbortController::new()
        .map_err(|_| SendError::Backend("no AbortController".into()))?;
    init.set_signal(Some(&controller.signal()));
    if let Some(b) = &body {
        init.set_body(b);
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|e| SendError::Backend(format!("request not built: {e:?}")))?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let fetch = wasm_bindgen_futures::JsFuture::from(global.fetch_with_request(&request));
    let delay = Delay::from(timeout);
    futures_util::select_biased! {
        r = fetch.fuse() => match r {
            Ok(v) => v
                .dyn_into::<web_sys::Response>()
                .map_err(|_| SendError::Backend("fetch gave no Response".into())),
            Err(e) => Err(SendError::Backend(format!("{e:?}"))),
        },
        _ = delay.fuse() => {
            controller.abort();
            Err(SendError::Timeout)
        }
    }
}
