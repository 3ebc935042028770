//! The admin UI, served from the control plane's own port: one tower layer in front of
//! gRPC and grpc-web. A `GET`/`HEAD` that is not gRPC (no `application/grpc*` content type) is
//! answered here; everything else goes on to tonic untouched.
//!
//! - Files come from `admin-web/dist` embedded in the binary (`rust-embed`: release builds
//!   hold the bytes, debug builds read the folder `build.rs` chose), or from a directory given
//!   with `--admin-web-dir` / `KEYGATE_ADMIN_WEB_DIR` (development).
//! - Paths that name a file get it; `/assets/…` and paths with a static-file extension that
//!   name none get 404; every other path gets `index.html` (the single-page app's router
//!   takes it from there).
//! - Hashed assets (`/assets/…`) are cached for a year (`immutable`); everything else is
//!   `no-cache` (revalidated, so a new UI shows at once).
//! - Every answer carries the strict [`CONTENT_SECURITY_POLICY`] and the other
//!   [`SECURITY_HEADERS`].
//! - Without a built UI, every UI path answers 503 with a plain page saying how to build it.
//!
//! Must not: answer a gRPC or grpc-web request, or serve a file outside the UI's folder.

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::body::Body;
use tower::{Layer, Service};

/// The UI's Content-Security-Policy: only this origin's scripts, styles, fonts and API
/// (grpc-web to the same port), images also as `data:` URLs, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Headers on every UI answer besides the CSP.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// `Cache-Control` of hashed assets (their names change with their content).
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else (`index.html` first of all).
pub const CACHE_REVALIDATE: &str = "no-cache";

/// The page every UI path answers when no UI was built into this binary.
pub const NOT_BUILT: &str = "\
The Keygate admin UI is not built into this control plane.

Build it, then build the control plane again (release builds embed admin-web/dist):

    cd admin-web && npm ci && npm run build
    cargo build --release -p keygate-control-plane

or serve a built UI from a directory:

    keygate-control-plane --admin-web-dir admin-web/dist   (KEYGATE_ADMIN_WEB_DIR)

The gRPC and grpc-web API on this port works without it.
";

#[derive(rust_embed::RustEmbed)]
#[folder = "$KEYGATE_ADMIN_WEB_EMBED_DIR"]
struct Embedded;

/// Where the UI's files come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AdminWebSource {
    /// `admin-web/dist` as built into the binary (nothing when it was not built).
    #[default]
    Embedded,
    /// A directory read at each request (development).
    Dir(PathBuf),
}

impl AdminWebSource {
    /// Whether an `index.html` is there to serve.
    pub async fn is_built(&self) -> bool {
        self.read("index.html").await.is_some()
    }

    /// The file at `rel` (a checked relative path), if any.
    async fn read(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Self::Embedded => Embedded::get(rel).map(|f| f.data),
            Self::Dir(dir) => {
                let path = dir.join(rel);
                match tokio::fs::metadata(&path).await {
                    Ok(m) if m.is_file() => tokio::fs::read(&path).await.ok().map(Cow::Owned),
                    _ => None,
                }
            }
        }
    }
}

/// The layer (put it outermost, in front of CORS and grpc-web).
#[derive(Clone)]
pub struct AdminWebLayer {
    source: Arc<AdminWebSource>,
}

impl AdminWebLayer {
    pub fn new(source: AdminWebSource) -> Self {
        Self {
            source: Arc::new(source),
        }
    }
}

impl<S> Layer<S> for AdminWebLayer {
    type Service = AdminWebService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdminWebService {
            inner,
            source: self.source.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AdminWebService<S> {
    inner: S,
    source: Arc<AdminWebSource>,
}

/// A request for the UI: `GET`/`HEAD` without a gRPC content type.
pub fn is_ui_request<B>(req: &Request<B>) -> bool {
    let grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    !grpc && (req.method() == Method::GET || req.method() == Method::HEAD)
}

impl<S, B> Service<Request<B>> for AdminWebService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if !is_ui_request(&req) {
            return Box::pin(self.inner.call(req));
        }
        let source = self.source.clone();
        let head = req.method() == Method::HEAD;
        let path = req.uri().path().to_owned();
        Box::pin(async move { Ok(answer(&source, &path, head).await) })
    }
}

/// What a UI path resolves to.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// This file (a checked path relative to the UI's folder).
    File(String),
    /// A missing asset.
    NotFound,
}

/// Extensions of static files: a missing one is a 404, not the app.
const ASSET_EXTENSIONS: &[&str] = &[
    "js",
    "mjs",
    "css",
    "map",
    "json",
    "txt",
    "ico",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "svg",
    "webp",
    "avif",
    "woff",
    "woff2",
    "ttf",
    "otf",
    "wasm",
    "webmanifest",
    "xml",
    "html",
];

/// Decodes and checks a request path; `None` for anything that could leave the folder or is
/// not plain (dot segments, backslashes, control characters, hidden names).
fn relative_path(path: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let rel = decoded.trim_start_matches('/');
    if rel.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let mut segments = Vec::new();
    for segment in rel.split('/') {
        if segment.is_empty() {
            continue;
        }
        if segment.starts_with('.') {
            return None;
        }
        segments.push(segment);
    }
    Some(segments.join("/"))
}

fn is_asset_path(rel: &str) -> bool {
    rel.starts_with("assets/")
        || rel
            .rsplit('/')
            .next()
            .and_then(|name| name.rsplit_once('.'))
            .is_some_and(|(_, ext)| ASSET_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

fn content_type(rel: &str) -> &'static str {
    let ext = rel
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

async fn resolve(source: &AdminWebSource, path: &str) -> (Target, Option<Cow<'static, [u8]>>) {
    let Some(rel) = relative_path(path) else {
        return (Target::NotFound, None);
    };
    if !rel.is_empty()
        && let Some(bytes) = source.read(&rel).await
    {
        return (Target::File(rel), Some(bytes));
    }
    if is_asset_path(&rel) {
        return (Target::NotFound, None);
    }
    let index = source.read("index.html").await;
    (Target::File("index.html".into()), index)
}

/// The answer to a UI request for `path`.
async fn answer(source: &AdminWebSource, path: &str, head: bool) -> Response<Body> {
    let (status, rel, body, cache) = match resolve(source, path).await {
        (Target::File(rel), Some(bytes)) => {
            let cache = if rel.starts_with("assets/") {
                CACHE_IMMUTABLE
            } else {
                CACHE_REVALIDATE
            };
            (StatusCode::OK, rel, Bytes::from(bytes.into_owned()), cache)
        }
        // The app itself is missing: nothing was built.
        (Target::File(_), None) if !source.is_built().await => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not-built.txt".into(),
            Bytes::from_static(NOT_BUILT.as_bytes()),
            "no-store",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "not-found.txt".into(),
            Bytes::from_static(b"not found\n"),
            CACHE_REVALIDATE,
        ),
    };
    let mut resp = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type(&rel))
        .header(CACHE_CONTROL, cache)
        .header(CONTENT_LENGTH, body.len())
        .header("content-security-policy", CONTENT_SECURITY_POLICY);
    for (name, value) in SECURITY_HEADERS {
        resp = resp.header(name, HeaderValue::from_static(value));
    }
    let body = if head {
        Body::empty()
    } else {
        Body::new(Full::new(body))
    };
    resp.body(body).unwrap_or_else(|e| {
        tracing::error!(error = %e, "could not build a UI answer");
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(relative_path("/").as_deref(), Some(""));
        assert_eq!(
            relative_path("/assets/app-1.js").as_deref(),
            Some("assets/app-1.js")
        );
        assert_eq!(relative_path("//tokens//x").as_deref(), Some("tokens/x"));
        for bad in [
            "/../etc/passwd",
            "/assets/%2e%2e/%2e%2e/x",
            "/a\\b",
            "/.env",
            "/a/%00",
            "/%ff",
        ] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn assets_and_types() {
        assert!(is_asset_path("assets/x"));
        assert!(is_asset_path("favicon.ico"));
        assert!(is_asset_path("robots.txt"));
        assert!(!is_asset_path("tokens/tok_123"));
        assert!(!is_asset_path("users/ada@example.com"));
        assert_eq!(content_type("a/b.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn ui_requests_are_only_non_grpc_gets() {
        let req = |method: Method, ct: Option<&str>| {
            let mut b = Request::builder().method(method).uri("/x");
            if let Some(ct) = ct {
                b = b.header(CONTENT_TYPE, ct);
            }
            b.body(()).unwrap()
        };
        assert!(is_ui_request(&req(Method::GET, None)));
        assert!(is_ui_request(&req(Method::HEAD, Some("text/html"))));
        assert!(!is_ui_request(&req(Method::POST, None)));
        assert!(!is_ui_request(&req(Method::OPTIONS, None)));
        assert!(!is_ui_request(&req(Method::GET, Some("application/grpc"))));
        assert!(!is_ui_request(&req(
            Method::GET,
            Some("application/grpc-web+proto")
        )));
    }
}
