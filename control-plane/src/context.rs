//! Who is calling and from where: attached to every request by the [`crate::auth`] layer and
//! copied into every audit row.

use crate::error::ApiError;
use crate::policy::Caller;
use serde::Serialize;

/// The actor recorded in audit rows and `created_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `user`, `service_account`, `system` or `anonymous`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

impl Actor {
    /// The control plane itself (bootstrap, maintenance).
    pub fn system() -> Self {
        Self {
            kind: "system",
            id: "system".into(),
            name: "keygate".into(),
        }
    }

    /// A caller without credentials (sign-in, setup, accepting an invitation).
    pub fn anonymous() -> Self {
        Self {
            kind: "anonymous",
            id: String::new(),
            name: String::new(),
        }
    }

    /// `kind:id`, stored as `created_by`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// Per-request facts recorded with every change.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub actor: Actor,
    pub source_ip: String,
    pub user_agent: String,
}

impl RequestContext {
    /// Context for changes the control plane makes on its own.
    pub fn system(reason: &str) -> Self {
        Self {
            request_id: reason.to_owned(),
            actor: Actor::system(),
            source_ip: String::new(),
            user_agent: String::new(),
        }
    }

    /// The same request, acting as `actor` (e.g. the user an anonymous sign-in resolved to).
    pub fn as_actor(&self, actor: Actor) -> Self {
        Self {
            actor,
            ..self.clone()
        }
    }
}

/// Request id and peer facts, known before authentication.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    /// Whether a browser made the call (and so gets cookies), and over TLS.
    pub transport: crate::browser::Transport,
}

/// The request's context: its caller as actor, or anonymous on public RPCs.
pub fn from_request<T>(req: &tonic::Request<T>) -> Result<RequestContext, tonic::Status> {
    let meta = req
        .extensions()
        .get::<RequestMeta>()
        .ok_or_else(|| ApiError::internal(&"request metadata missing"))?;
    let actor = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.actor.clone())
        .unwrap_or_else(Actor::anonymous);
    Ok(RequestContext {
        request_id: meta.request_id.clone(),
        actor,
        source_ip: meta.source_ip.clone(),
        user_agent: meta.user_agent.clone(),
    })
}

/// How the request reached us (browser or not, TLS or not).
pub fn transport<T>(req: &tonic::Request<T>) -> crate::browser::Transport {
    req.extensions()
        .get::<RequestMeta>()
        .map(|m| m.transport)
        .unwrap_or_default()
}

/// The authenticated caller and the request context, or Unauthenticated.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<(Caller, RequestContext), tonic::Status> {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthenticated("missing credentials"))?;
    Ok((caller, from_request(req)?))
}
