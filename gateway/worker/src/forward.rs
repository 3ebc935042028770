//! Forwarding with `fetch`: the backend request's headers from the core's rules, both bodies
//! streamed chunk by chunk (never buffered) and counted, redirects returned to the caller
//! (`redirect: "manual"`), and the route's `timeout_ms` enforced with an `AbortController`
//! until the response head arrives.

use futures_util::{Stream, StreamExt};
use keygate_gateway_core::{self as core, HeaderSink};
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::{ByteStream, Headers};

#[wasm_bindgen(module = "/js/io.js")]
extern "C" {
    #[wasm_bindgen(js_name = headersText)]
    fn headers_text(headers: &web_sys::Headers) -> String;
    #[wasm_bindgen(js_name = fetchHead)]
    fn fetch_head(
        url: &str,
        method: &str,
        headers: &web_sys::Headers,
        body: Option<&web_sys::ReadableStream>,
        ms: f64,
    ) -> js_sys::Promise;
}

/// A head's headers as the runtime lists them (lower-case names; repeated headers joined by
/// `, ` except `set-cookie`), read in one call (`js/io.js`).
pub struct HeaderList(String);

impl HeaderList {
    pub fn of(headers: &web_sys::Headers) -> Self {
        Self(headers_text(headers))
    }

    /// `(name, value)` pairs in the runtime's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut lines = self.0.split('\n');
        std::iter::from_fn(move || Some((lines.next()?, lines.next()?)))
    }

    /// The first value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

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

/// The request headers for the backend: the caller's `Headers` copied by the runtime in one
/// step, less every name the core's rule ([`core::forwards_request_header`]) does not forward
/// (`entries`: the same headers as read), then the core's additions.
pub fn outgoing_headers(
    caller: &web_sys::Headers,
    entries: &HeaderList,
    credential: Option<(&str, &str)>,
    client: &core::Client,
    request_id: &str,
) -> worker::Result<Headers> {
    let named = core::connection_named(
        entries
            .iter()
            .filter(|(k, _)| *k == "connection")
            .map(|(_, v)| v.as_bytes()),
    );
    let credential_name = credential.map(|(n, _)| n);
    let out = Headers(web_sys::Headers::new_with_headers(caller)?);
    for (k, _) in entries.iter() {
        if !core::forwards_request_header(k, &named, credential_name) {
            out.delete(k)?;
        }
    }
    core::put_forward_additions(&mut JsHeaders(&out), client, request_id, credential);
    Ok(out)
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

/// `body` passing through a [`Counted`] stream, as a stream the runtime can send or answer
/// with.
pub fn counted(
    body: web_sys::ReadableStream,
    bytes: Rc<Cell<u64>>,
    on_end: Option<Box<dyn FnOnce()>>,
) -> web_sys::ReadableStream {
    let counted = Counted::new(ByteStream::from(body), bytes, on_end).map(|r| {
        r.map(|chunk| js_sys::Uint8Array::from(chunk.as_slice()).into())
            .map_err(|e| wasm_bindgen::JsValue::from(e.to_string()))
    });
    wasm_streams::ReadableStream::from_stream(counted)
        .into_raw()
        .unchecked_into::<web_sys::ReadableStream>()
}

/// How a forward ended before a response head.
pub enum SendError {
    /// The backend did not answer within the route's timeout.
    Timeout,
    /// The request could not be built or the backend failed (text for the log only).
    Backend(String),
}

/// Sends the request and waits for the response head at most `timeout`; on timeout the fetch
/// is aborted (`js/io.js` `fetchHead`: the timer lives beside the fetch, in one call).
pub async fn send(
    url: &str,
    method: &str,
    headers: Headers,
    body: Option<web_sys::ReadableStream>,
    timeout: Duration,
) -> Result<web_sys::Response, SendError> {
    let ms = timeout.as_millis() as f64;
    let head = wasm_bindgen_futures::JsFuture::from(fetch_head(
        url,
        method,
        &headers.0,
        body.as_ref(),
        ms,
    ));
    match head.await {
        Ok(v) if v.is_undefined() => Err(SendError::Timeout),
        Ok(v) => v
            .dyn_into::<web_sys::Response>()
            .map_err(|_| SendError::Backend("fetch gave no Response".into())),
        Err(e) => Err(SendError::Backend(format!("{e:?}"))),
    }
}
