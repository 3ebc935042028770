//! Who is calling and from where: attached to every request by the [`crate::auth`] layer and
//! copied into every audit row.

use serde::Serialize;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `key`, `user`, `service_account` or `system`.
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
}

/// Request id and peer facts, known before authentication.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
}

/// Reads the context the auth layer put in the request's extensions.
pub fn from_request<T>(req: &tonic::Request<T>) -> Result<RequestContext, tonic::Status> {
    req.extensions()
        .get::<RequestContext>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing credentials"))
}
