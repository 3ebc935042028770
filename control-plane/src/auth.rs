//! The one layer every request passes: assigns a request id, resolves the caller from
//! `authorization: Bearer <management key>`, opens the request's tracing span, and stamps
//! `x-request-id` on every response (errors included). Handlers find the caller in the
//! request extensions as a [`RequestContext`]; they never parse credentials themselves.
//!
//! Public (no credentials): `grpc.health.v1.*` and `grpc.reflection.*`.

use crate::context::{Actor, RequestContext};
use crate::error::ApiError;
use crate::store::DynStore;
use crate::time::now_ms;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response};
use keygate_contracts::token::{MANAGEMENT_KEY_PREFIX, check_format, sha256_hex};
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::{Layer, Service};
use tracing::Instrument;

/// Request-id header, read from clients when well-formed and always set on responses.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Clone)]
pub struct AuthLayer {
    store: DynStore,
}

impl AuthLayer {
    pub fn new(store: DynStore) -> Self {
        Self { store }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            store: self.store.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    store: DynStore,
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string())
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(300).collect())
        .unwrap_or_default()
}

/// Resolves the caller or says why not. Messages never echo the credential.
async fn authenticate(store: &DynStore, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let Some(raw) = headers.get(http::header::AUTHORIZATION) else {
        return Err(ApiError::unauthenticated(
            "missing credentials: send \"authorization: Bearer <management key>\"",
        ));
    };
    let presented = raw
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthenticated("authorization must be \"Bearer <management key>\"")
        })?;
    let invalid = || ApiError::unauthenticated("invalid, expired or revoked management key");
    check_format(presented, MANAGEMENT_KEY_PREFIX, &[]).map_err(|_| invalid())?;
    let key = store
        .find_management_key(&sha256_hex(presented))
        .await
        .map_err(ApiError::from)?
        .ok_or_else(invalid)?;
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now_ms()) {
        return Err(invalid());
    }
    Ok(Actor {
        kind: "key",
        id: key.id.0,
        name: key.name,
    })
}

fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

fn with_request_id(mut resp: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

impl<S, B> Service<Request<B>> for AuthService<S>
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call; keep a fresh clone for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        Box::pin(async move {
            let started = Instant::now();
            let id = request_id(req.headers());
            let method = req.uri().path().to_owned();
            let source_ip = req
                .extensions()
                .get::<TcpConnectInfo>()
                .and_then(|i| i.remote_addr())
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            let user_agent = header_str(req.headers(), "user-agent");
            let span = tracing::info_span!("rpc", method = %method, request_id = %id, actor = tracing::field::Empty);
            if !is_public(&method) {
                match authenticate(&store, req.headers())
                    .instrument(span.clone())
                    .await
                {
                    Ok(actor) => {
                        span.record("actor", tracing::field::display(actor.reference()));
                        req.extensions_mut().insert(RequestContext {
                            request_id: id.clone(),
                            actor,
                            source_ip,
                            user_agent,
                        });
                    }
                    Err(e) => {
                        span.in_scope(|| tracing::warn!(code = %e.code, "request refused"));
                        let status: tonic::Status = e.into();
                        return Ok(with_request_id(status.into_http(), &id));
                    }
                }
            }
            let resp = inner.call(req).instrument(span.clone()).await?;
            let grpc_status = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            span.in_scope(|| {
                tracing::info!(
                    grpc_status = %grpc_status,
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "rpc done"
                )
            });
            Ok(with_request_id(resp, &id))
        })
    }
}
