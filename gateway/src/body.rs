//! Bodies that stream through untouched while counting their bytes, and a hook that runs
//! once a response body is finished (or dropped by a client that went away): that is where
//! a request's usage event is completed.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// What a forwarded request streams on the hyper path.
pub type ReqBody = Counted<hyper::body::Incoming>;

pin_project_lite::pin_project! {
    /// Passes `inner` through, adding each data frame's length to `count` (if any).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        count: Option<Arc<AtomicU64>>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            count: Some(count),
        }
    }

    /// Passes `inner` through without counting (nothing to report the bytes to).
    pub fn uncounted(inner: B) -> Self {
        Self { inner, count: None }
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if let Some(count) = this.count
            && let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            count.fetch_add(d.len() as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Runs `done` exactly once: when the body ends, fails, or is dropped unfinished.
    pub struct OnDone<B, F: FnOnce()> {
        #[pin]
        inner: B,
        done: Option<F>,
    }

    impl<B, F: FnOnce()> PinnedDrop for OnDone<B, F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().done.take() {
                f();
            }
        }
    }
}

impl<B, F: FnOnce()> OnDone<B, F> {
    pub fn new(inner: B, done: F) -> Self {
        Self {
            inner,
            done: Some(done),
        }
    }

    /// Passes `inner` through with nothing to run.
    pub fn inert(inner: B) -> Self {
        Self { inner, done: None }
    }
}

impl<B: Body<Data = Bytes>, F: FnOnce()> Body for OnDone<B, F> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            && let Some(f) = this.done.take()
        {
            f();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn counts_streamed_bytes_and_fires_once() {
        let count = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicU64::new(0));
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"hello "))),
            Ok(Frame::data(Bytes::from_static(b"world"))),
        ];
        let stream = futures_like(chunks);
        let f2 = fired.clone();
        let body = OnDone::new(Counted::new(stream, count.clone()), move || {
            f2.fetch_add(1, Ordering::Relaxed);
        });
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello world");
        assert_eq!(count.load(Ordering::Relaxed), 11);
        assert_eq!(fired.load(Ordering::Relaxed), 1);

        // Dropped before the end: still fires once.
        let f3 = fired.clone();
        let body = OnDone::new(Full::new(Bytes::from_static(b"x")), move || {
            f3.fetch_add(1, Ordering::Relaxed);
        });
        drop(body);
        assert_eq!(fired.load(Ordering::Relaxed), 2);
    }

    type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

    fn futures_like(v: Vec<Chunk>) -> StreamBody<futures::stream::Iter<std::vec::IntoIter<Chunk>>> {
        StreamBody::new(futures::stream::iter(v))
    }
}
