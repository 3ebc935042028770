//! The gateway's stable error codes (one table: code, HTTP status, default message, category
//! in the workspace-wide [`ErrorCode`] table), the [`Reject`] decision and the JSON error body.

use keygate_contracts::error_code::ErrorCode;

/// Every error a gateway answers with. The `as_str` names are a public contract: clients and
/// dashboards match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayError {
    /// No `X-API-Key` and no `Authorization: Bearer`.
    MissingKey,
    /// Malformed, bad checksum (decided without a lookup), unknown or revoked.
    InvalidKey,
    /// The token's expiry is at or before now.
    ExpiredKey,
    /// Several `X-API-Key` values or several Bearer values, or an `X-API-Key` and a Bearer
    /// value that differ.
    AmbiguousKey,
    /// The token's scopes or team do not allow the route; or a CORS preflight from an origin
    /// or for a method the route does not allow.
    Forbidden,
    /// No route prefix matches the path.
    RouteNotFound,
    /// The route does not allow the method (the reject carries `Allow`).
    MethodNotAllowed,
    /// Unsafe path or query, or a forwarded URL that would leave the backend.
    BadRequest,
    /// Host side: a rate limit refused the request.
    RateLimited,
    /// Host side: the backend could not be reached or answered garbage.
    BadGateway,
    /// Host side: the backend did not answer within the route's timeout.
    GatewayTimeout,
    /// Host side: no route table or token store loaded yet.
    NotReady,
}

impl GatewayError {
    /// Every code, for tables and tests.
    pub const ALL: [GatewayError; 12] = [
        Self::MissingKey,
        Self::InvalidKey,
        Self::ExpiredKey,
        Self::AmbiguousKey,
        Self::Forbidden,
        Self::RouteNotFound,
        Self::MethodNotAllowed,
        Self::BadRequest,
        Self::RateLimited,
        Self::BadGateway,
        Self::GatewayTimeout,
        Self::NotReady,
    ];

    /// The stable snake_case code of JSON error bodies.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingKey => "missing_key",
            Self::InvalidKey => "invalid_key",
            Self::ExpiredKey => "expired_key",
            Self::AmbiguousKey => "ambiguous_key",
            Self::Forbidden => "forbidden",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadRequest => "bad_request",
            Self::RateLimited => "rate_limited",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
            Self::NotReady => "not_ready",
        }
    }

    /// The category in the workspace-wide error table; the HTTP status comes from it.
    pub const fn category(self) -> ErrorCode {
        match self {
            Self::MissingKey | Self::InvalidKey | Self::ExpiredKey | Self::AmbiguousKey => {
                ErrorCode::Unauthenticated
            }
            Self::Forbidden => ErrorCode::PermissionDenied,
            Self::RouteNotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::BadRequest => ErrorCode::InvalidArgument,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::BadGateway => ErrorCode::BadGateway,
            Self::GatewayTimeout => ErrorCode::GatewayTimeout,
            Self::NotReady => ErrorCode::Unavailable,
        }
    }

    /// HTTP status: 401, 403, 404, 405, 400, 429, 502, 504, 503.
    pub fn status(self) -> u16 {
        self.category().http_status()
    }

    /// The message used when the caller has nothing more specific (and never anything secret).
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::MissingKey => "an API key is required (X-API-Key or Authorization: Bearer)",
            Self::InvalidKey => "the API key is not valid",
            Self::ExpiredKey => "the API key has expired",
            Self::AmbiguousKey => "more than one API key was presented",
            Self::Forbidden => "this API key may not use this route",
            Self::RouteNotFound => "no route matches this path",
            Self::MethodNotAllowed => "this method is not allowed on this route",
            Self::BadRequest => "the request path or query is not allowed",
            Self::RateLimited => "rate limit exceeded; retry later",
            Self::BadGateway => "the backend could not be reached",
            Self::GatewayTimeout => "the backend did not answer in time",
            Self::NotReady => "the gateway has not loaded its configuration yet",
        }
    }

    /// The code named `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == code)
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The codes as constants, for hosts that build host-side errors.
pub mod code {
    use super::GatewayError as E;
    pub const MISSING_KEY: &str = E::MissingKey.as_str();
    pub const INVALID_KEY: &str = E::InvalidKey.as_str();
    pub const EXPIRED_KEY: &str = E::ExpiredKey.as_str();
    pub const AMBIGUOUS_KEY: &str = E::AmbiguousKey.as_str();
    pub const FORBIDDEN: &str = E::Forbidden.as_str();
    pub const ROUTE_NOT_FOUND: &str = E::RouteNotFound.as_str();
    pub const METHOD_NOT_ALLOWED: &str = E::MethodNotAllowed.as_str();
    pub const BAD_REQUEST: &str = E::BadRequest.as_str();
    pub const RATE_LIMITED: &str = E::RateLimited.as_str();
    pub const BAD_GATEWAY: &str = E::BadGateway.as_str();
    pub const GATEWAY_TIMEOUT: &str = E::GatewayTimeout.as_str();
    pub const NOT_READY: &str = E::NotReady.as_str();
}

/// A refused request: what to answer and what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    /// A stable code from [`GatewayError`].
    pub error: &'static str,
    /// Short, safe for clients: never a key, a scope list or a secret.
    pub message: String,
    /// SHA-256 of the presented key, once it was well-formed enough to hash (for logs and
    /// usage); `None` for missing, ambiguous or malformed keys.
    pub token_hash: Option<crate::TokenHash>,
    /// The matched route's name, once routing happened (never for 401s).
    pub route: Option<String>,
    /// The `Allow` header value of a 405.
    pub allow: Option<String>,
    /// `Access-Control-Allow-Origin` for the error response, when the request came from an
    /// origin that the path's route allows (so browsers can read the error).
    pub cors_origin: Option<String>,
}

impl Reject {
    /// A reject with `kind`'s status and code and its default message.
    pub fn of(kind: GatewayError) -> Self {
        Self::new(kind, kind.default_message())
    }

    /// A reject with `kind`'s status and code and a specific message.
    pub fn new(kind: GatewayError, message: impl Into<String>) -> Self {
        Self {
            status: kind.status(),
            error: kind.as_str(),
            message: message.into(),
            token_hash: None,
            route: None,
            allow: None,
            cors_origin: None,
        }
    }

    /// The code as an enum (always `Some` for rejects built here).
    pub fn kind(&self) -> Option<GatewayError> {
        GatewayError::from_code(self.error)
    }

    /// The JSON body to send: see [`error_body`].
    pub fn body(&self, request_id: &str) -> String {
        error_body(self.error, &self.message, request_id)
    }

    pub(crate) fn with_hash(mut self, hash: &crate::TokenHash) -> Self {
        self.token_hash = Some(*hash);
        self
    }

    pub(crate) fn with_route(mut self, name: &str) -> Self {
        self.route = Some(name.to_owned());
        self
    }
}

/// `{"error":"<code>","message":"<message>","request_id":"<id>"}` with JSON string escaping.
pub fn error_body(error: &str, message: &str, request_id: &str) -> String {
    let mut out = String::with_capacity(48 + error.len() + message.len() + request_id.len());
    out.push_str("{\"error\":");
    push_json_string(&mut out, error);
    out.push_str(",\"message\":");
    push_json_string(&mut out, message);
    out.push_str(",\"request_id\":");
    push_json_string(&mut out, request_id);
    out.push('}');
    out
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other controls, and U+2028/U+2029 (valid JSON but not valid JavaScript source).
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_stable() {
        let want = [
            ("missing_key", 401),
            ("invalid_key", 401),
            ("expired_key", 401),
            ("ambiguous_key", 401),
            ("forbidden", 403),
            ("route_not_found", 404),
            ("method_not_allowed", 405),
            ("bad_request", 400),
            ("rate_limited", 429),
            ("bad_gateway", 502),
            ("gateway_timeout", 504),
            ("not_ready", 503),
        ];
        assert_eq!(GatewayError::ALL.len(), want.len());
        for (e, (name, status)) in GatewayError::ALL.into_iter().zip(want) {
            assert_eq!(e.as_str(), name);
            assert_eq!(e.status(), status, "{name}");
            assert_eq!(GatewayError::from_code(name), Some(e));
            assert_eq!(Reject::of(e).kind(), Some(e));
        }
        assert_eq!(code::RATE_LIMITED, "rate_limited");
    }

    #[test]
    fn error_body_is_valid_json_whatever_the_message() {
        let nasty = "quote \" backslash \\ newline \n nul \0 bell \u{7} sep \u{2028} é";
        let body = error_body("bad_request", nasty, "req-1\"}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "bad_request");
        assert_eq!(v["message"], nasty);
        assert_eq!(v["request_id"], "req-1\"}");
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert!(!body.contains('\u{2028}'));
        assert_eq!(
            error_body("not_ready", "m", "r"),
            r#"{"error":"not_ready","message":"m","request_id":"r"}"#
        );
    }
}
