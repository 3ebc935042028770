//! The one layer every request passes: assigns a request id, resolves the caller from
//! `authorization: Bearer <session token | management key>` or, for browsers, the session
//! cookie under [`crate::browser`]'s CSRF rule, opens the request's tracing span, and stamps
//! `x-request-id` on every response (errors included). Handlers find the caller in the
//! request extensions as a [`Caller`] (with its team roles) and [`RequestMeta`]; they never
//! parse credentials themselves. Permission checks are [`crate::policy`]'s; the one asked
//! here is [`policy::may_call`] (a SYNC key calls the sync service only), refused and
//! audited as `authz.denied` before any handler runs.
//!
//! Public (no credentials): health, reflection, `AuthService.SignIn`, `CompleteSetup`,
//! `AcceptInvitation`, and `SystemService.GetServerInfo`.

use crate::browser::{self, BrowserSettings, Transport};
use crate::context::{Actor, RequestContext, RequestMeta};
use crate::error::{ApiError, ErrorCode};
use crate::policy::{self, Caller, Principal};
use crate::sessions::SESSION_PREFIX;
use crate::store::{AuditRecord, DynStore};
use crate::time::now_ms;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response};
use keygate_contracts::token::{MANAGEMENT_KEY_PREFIX, check_format, sha256_hex};
use std::sync::Arc;
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
    browser: Arc<BrowserSettings>,
}

impl AuthLayer {
    pub fn new(store: DynStore, browser: BrowserSettings) -> Self {
        Self {
            store,
            browser: Arc::new(browser),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            store: self.store.clone(),
            browser: self.browser.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    store: DynStore,
    browser: Arc<BrowserSettings>,
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

/// Where the credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Bearer,
    Cookie,
}

/// The presented credential: the bearer when there is one, else the session cookie (only
/// under the CSRF rule). Messages never echo the credential.
fn credential(
    uri: &http::Uri,
    headers: &HeaderMap,
    settings: &BrowserSettings,
) -> Result<(String, Source), ApiError> {
    if let Some(raw) = headers.get(http::header::AUTHORIZATION) {
        let presented = raw
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthenticated("authorization must be \"Bearer <credential>\"")
            })?;
        return Ok((presented.to_owned(), Source::Bearer));
    }
    if let Some(cookie) = browser::session_from_cookies(headers) {
        browser::check_cookie_request(uri, headers, settings)?;
        return Ok((cookie, Source::Cookie));
    }
    Err(ApiError::unauthenticated(
        "missing credentials: send \"authorization: Bearer <session token or management key>\"",
    ))
}

/// Resolves the caller from a presented credential or says why not. A cookie may only hold
/// a session. Messages never echo the credential.
async fn authenticate(
    store: &DynStore,
    presented: &str,
    source: Source,
) -> Result<Caller, ApiError> {
    let invalid = || ApiError::unauthenticated("invalid, expired or revoked credentials");
    let now = now_ms();
    if check_format(presented, SESSION_PREFIX, &[]).is_ok() {
        let (session, user) = store
            .find_session(&sha256_hex(presented))
            .await
            .map_err(ApiError::from)?
            .ok_or_else(invalid)?;
        if session.revoked_at.is_some() || session.expires_at <= now || user.disabled {
            return Err(invalid());
        }
        if session.last_used_at.is_none_or(|t| t < now - 60_000)
            && let Err(e) = store.touch_session(&session.id).await
        {
            tracing::warn!(error = %e, "could not record session use");
        }
        let roles = store.user_roles(&user.id).await.map_err(ApiError::from)?;
        return Ok(Caller {
            actor: Actor {
                kind: "user",
                id: user.id.0.clone(),
                name: user.email.clone(),
            },
            principal: Principal::User {
                id: user.id,
                session: session.id,
            },
            system_admin: user.system_admin,
            roles: roles.into_iter().collect(),
            capability: crate::service_accounts::Capability::None,
        });
    }
    if source == Source::Cookie {
        return Err(invalid());
    }
    check_format(presented, MANAGEMENT_KEY_PREFIX, &[]).map_err(|_| invalid())?;
    let key = store
        .find_management_key(&sha256_hex(presented))
        .await
        .map_err(ApiError::from)?
        .ok_or_else(invalid)?;
    if key.revoked_at.is_some() || key.expires_at.is_some_and(|e| e <= now) {
        return Err(invalid());
    }
    let sa_id = key.service_account_id.clone().ok_or_else(invalid)?;
    let sa = match store.get_service_account(&sa_id).await {
        Ok(sa) => sa,
        Err(crate::store::StoreError::NotFound { .. }) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    };
    if key.last_used_at.is_none_or(|t| t < now - 60_000)
        && let Err(e) = store.touch_management_key(&key.id).await
    {
        tracing::warn!(error = %e, "could not record key use");
    }
    Ok(Caller {
        actor: Actor {
            kind: "service_account",
            id: sa.id.0.clone(),
            name: sa.name.clone(),
        },
        principal: Principal::ServiceAccount {
            id: sa.id,
            key: key.id,
        },
        system_admin: false,
        capability: sa.capability,
        roles: [(sa.team_id, sa.role)].into_iter().collect(),
    })
}

/// RPCs that need no credentials.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.")
        || path.starts_with("/grpc.reflection.")
        || matches!(
            path,
            "/keygate.v1.AuthService/SignIn"
                | "/keygate.v1.AuthService/CompleteSetup"
                | "/keygate.v1.AuthService/AcceptInvitation"
                | "/keygate.v1.SystemService/GetServerInfo"
        )
}

/// Records a call refused by [`policy::may_call`] as `authz.denied` (reads too: a key used
/// outside its service is worth an audit row whatever it asked).
async fn refuse_service(
    store: &DynStore,
    caller: &Caller,
    meta: Option<RequestMeta>,
    method: &str,
    denied: &policy::Denied,
) {
    tracing::warn!(reason = %denied, "permission denied");
    let meta = meta.unwrap_or(RequestMeta {
        request_id: String::new(),
        source_ip: String::new(),
        user_agent: String::new(),
        transport: Transport::default(),
    });
    let ctx = RequestContext {
        request_id: meta.request_id,
        actor: caller.actor.clone(),
        source_ip: meta.source_ip,
        user_agent: meta.user_agent,
    };
    let record = AuditRecord {
        action: "authz.denied",
        entity_type: "service",
        entity_id: method.trim_start_matches('/').to_owned(),
        team_id: String::new(),
        detail: serde_json::json!({"attempted": [null, method], "reason": [null, denied.0]}),
    };
    if let Err(e) = store.record_event(&ctx, record).await {
        tracing::error!(error = %e, "could not audit a refused call");
    }
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
        let settings = self.browser.clone();
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
            let transport = Transport::of(req.uri(), req.headers(), &settings);
            req.extensions_mut().insert(RequestMeta {
                request_id: id.clone(),
                source_ip,
                user_agent,
                transport,
            });
            if !is_public(&method) {
                let resolved = match credential(req.uri(), req.headers(), &settings) {
                    Ok((presented, source)) => authenticate(&store, &presented, source)
                        .instrument(span.clone())
                        .await
                        .map_err(|e| (e, source == Source::Cookie)),
                    Err(e) => Err((e, false)),
                };
                match resolved {
                    Ok(caller) => {
                        span.record("actor", tracing::field::display(caller.actor.reference()));
                        let service = method.trim_start_matches('/').split('/').next();
                        if let Err(denied) = policy::may_call(&caller, service.unwrap_or("")) {
                            let meta = req.extensions().get::<RequestMeta>().cloned();
                            refuse_service(&store, &caller, meta, &method, &denied)
                                .instrument(span.clone())
                                .await;
                            let status: tonic::Status =
                                ApiError::new(ErrorCode::PermissionDenied, denied.to_string())
                                    .into();
                            return Ok(with_request_id(status.into_http(), &id));
                        }
                        req.extensions_mut().insert(caller);
                    }
                    Err((e, stale_cookie)) => {
                        span.in_scope(|| tracing::warn!(code = %e.code, "request refused"));
                        let status: tonic::Status = e.into();
                        let mut resp = status.into_http();
                        // A cookie whose session is gone is removed from the browser.
                        if stale_cookie {
                            resp.headers_mut().append(
                                http::header::SET_COOKIE,
                                browser::clear_cookie(transport.secure),
                            );
                        }
                        return Ok(with_request_id(resp, &id));
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
