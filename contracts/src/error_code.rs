//! The one error-code table: every error a client can see has one of these codes, and this
//! file alone maps a code to its gRPC status code and HTTP status.

/// `google.rpc.ErrorInfo.domain` of every Keygate error.
pub const ERROR_DOMAIN: &str = "keygate";

/// Client-visible error categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Input broke a validation rule; the message names the field and the rule.
    InvalidArgument,
    /// No credentials, or credentials that are malformed, unknown, expired or revoked.
    Unauthenticated,
    /// The caller is known but may not do this.
    PermissionDenied,
    /// The entity does not exist (or the caller may not know it exists).
    NotFound,
    /// A unique name, path or id is already taken.
    AlreadyExists,
    /// The entity is in a state that refuses the operation (e.g. rotating a revoked token).
    FailedPrecondition,
    /// The request method is not allowed on this route (gateway).
    MethodNotAllowed,
    /// Too many requests; retry later.
    RateLimited,
    /// A follower asked for revisions older than the change-feed retention; take a snapshot.
    ResyncRequired,
    /// The upstream backend failed (gateway).
    BadGateway,
    /// The upstream backend timed out (gateway).
    GatewayTimeout,
    /// Temporarily unable to serve (no configuration loaded, database unreachable).
    Unavailable,
    /// A bug or an unexpected failure; details are only in the server log.
    Internal,
}

impl ErrorCode {
    /// Stable snake_case identifier used in JSON error bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::ResyncRequired => "resync_required",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// `google.rpc.ErrorInfo.reason` of an error with this code (UPPER_SNAKE_CASE, per the
    /// gRPC error model), in the `keygate` [`ERROR_DOMAIN`]. Clients branch on this, never on
    /// message text (kv-sync's "resync required" is `RESYNC_REQUIRED`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::RateLimited => "RATE_LIMITED",
            Self::ResyncRequired => "RESYNC_REQUIRED",
            Self::BadGateway => "BAD_GATEWAY",
            Self::GatewayTimeout => "GATEWAY_TIMEOUT",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    /// The code whose [`Self::reason`] is `reason`.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.reason() == reason)
    }

    /// Every code.
    pub const ALL: [ErrorCode; 13] = [
        Self::InvalidArgument,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::MethodNotAllowed,
        Self::RateLimited,
        Self::ResyncRequired,
        Self::BadGateway,
        Self::GatewayTimeout,
        Self::Unavailable,
        Self::Internal,
    ];

    /// HTTP status for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidArgument => 400,
            Self::Unauthenticated => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyExists => 409,
            Self::FailedPrecondition => 412,
            Self::ResyncRequired => 410,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::Unavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }

    /// gRPC status code number (see `google.rpc.Code`), so this crate needs no tonic.
    pub fn grpc_code(self) -> i32 {
        match self {
            Self::InvalidArgument => 3,
            Self::GatewayTimeout => 4,
            Self::NotFound => 5,
            Self::AlreadyExists => 6,
            Self::PermissionDenied => 7,
            Self::RateLimited => 8,
            Self::FailedPrecondition => 9,
            // ABORTED: the follower's position is gone; it must restart from a snapshot.
            Self::ResyncRequired => 10,
            Self::MethodNotAllowed => 12,
            Self::Internal => 13,
            Self::Unavailable | Self::BadGateway => 14,
            Self::Unauthenticated => 16,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_distinct_name_and_sane_statuses() {
        let all = ErrorCode::ALL;
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for c in all {
            assert_eq!(c.reason(), c.as_str().to_ascii_uppercase());
            assert_eq!(ErrorCode::from_reason(c.reason()), Some(c));
            assert!((400..600).contains(&c.http_status()), "{c}");
            assert!((1..=16).contains(&c.grpc_code()), "{c}");
        }
    }
}
