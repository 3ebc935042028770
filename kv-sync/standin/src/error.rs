//! The one table of error answers (HTTP status, v4 error code, message) and the v4 envelope.
//!
//! Codes with evidence in the reference sheet (§11): 10000, 6003 (+6111/6103 in
//! `error_chain`), 7003, 10009, 10013, 10014, 971. Validation failures use 10001, the code
//! Miniflare's REST emulation uses for them; the real API's codes for those are unverified.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Code the stand-in uses for validation failures and injected server errors (unverified).
pub const CODE_INVALID: u32 = 10001;

/// Every way the stand-in refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 403, 10000: missing, unknown or wrong token.
    #[error("Authentication error")]
    Auth,
    /// 400, 6003 with `error_chain` 6111 (Authorization) or 6103 (X-Auth-Key).
    #[error("Invalid request headers")]
    BadAuthHeader { chain_code: u32 },
    /// 404, 7003: no such route (path shape or method).
    #[error("No route for the URI")]
    NoRoute,
    /// 404, 7003: an account other than the stand-in's.
    #[error("Could not route to {path}, perhaps your object identifier is invalid?")]
    UnknownAccount { path: String },
    /// 404, 10013.
    #[error("{op}: 'namespace not found'")]
    NamespaceNotFound { op: &'static str },
    /// 404, 10009.
    #[error("{op}: 'key not found'")]
    KeyNotFound { op: &'static str },
    /// 400, 10014.
    #[error("{op}: 'A namespace with this account ID and title already exists'")]
    DuplicateTitle { op: &'static str },
    /// 429, 971, with `retry-after` in whole seconds.
    #[error("Please wait and consider throttling your request speed")]
    RateLimited { retry_after_secs: u64 },
    /// 400, 413 or 414 with [`CODE_INVALID`].
    #[error("{message}")]
    Invalid { status: u16, message: String },
    /// A failure injected by a test: 5xx with an envelope, or any status with an HTML body.
    #[error("injected failure")]
    Injected {
        status: u16,
        non_json: bool,
        retry_after_secs: Option<u64>,
    },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            status: 400,
            message: message.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::Invalid {
            status: 413,
            message: message.into(),
        }
    }

    /// HTTP status and v4 error code.
    pub fn status_and_code(&self) -> (u16, u32) {
        match self {
            ApiError::Auth => (403, 10000),
            ApiError::BadAuthHeader { .. } => (400, 6003),
            ApiError::NoRoute | ApiError::UnknownAccount { .. } => (404, 7003),
            ApiError::NamespaceNotFound { .. } => (404, 10013),
            ApiError::KeyNotFound { .. } => (404, 10009),
            ApiError::DuplicateTitle { .. } => (400, 10014),
            ApiError::RateLimited { .. } => (429, 971),
            ApiError::Invalid { status, .. } => (*status, CODE_INVALID),
            ApiError::Injected { status, .. } if *status == 429 => (429, 971),
            ApiError::Injected { status, .. } => (*status, CODE_INVALID),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Injected {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        };
        let mut resp = self.body_response(status, code);
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl ApiError {
    fn body_response(self, status: StatusCode, code: u32) -> Response {
        if let ApiError::Injected { non_json: true, .. } = self {
            let page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
                        <body>stand-in: injected non-JSON answer</body></html>";
            let mut resp = (status, page).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=UTF-8"),
            );
            resp.headers_mut()
                .insert("cf-mitigated", HeaderValue::from_static("challenge"));
            return resp;
        }
        let mut error = json!({"code": code, "message": self.to_string()});
        if let ApiError::BadAuthHeader { chain_code } = &self {
            let text = if *chain_code == 6103 {
                "Invalid format for X-Auth-Key header"
            } else {
                "Invalid format for Authorization header"
            };
            error["error_chain"] = json!([{"code": chain_code, "message": text}]);
        }
        let body = json!({"success": false, "errors": [error], "messages": [], "result": null});
        (status, axum::Json(body)).into_response()
    }
}

/// `200 {"success":true,"errors":[],"messages":[],"result":…}`
pub fn ok(result: Value) -> Response {
    axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
        .into_response()
}

/// [`ok`] with a `result_info`.
pub fn ok_with_info(result: Value, info: Value) -> Response {
    axum::Json(json!({
        "success": true, "errors": [], "messages": [], "result": result, "result_info": info
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (ApiError::Auth, 403, 10000),
            (ApiError::BadAuthHeader { chain_code: 6111 }, 400, 6003),
            (ApiError::NoRoute, 404, 7003),
            (ApiError::NamespaceNotFound { op: "list keys" }, 404, 10013),
            (ApiError::KeyNotFound { op: "get" }, 404, 10009),
            (
                ApiError::DuplicateTitle {
                    op: "create namespace",
                },
                400,
                10014,
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                971,
            ),
            (ApiError::too_large("x"), 413, CODE_INVALID),
            (
                ApiError::Injected {
                    status: 429,
                    non_json: false,
                    retry_after_secs: Some(1),
                },
                429,
                971,
            ),
            (
                ApiError::Injected {
                    status: 503,
                    non_json: false,
                    retry_after_secs: None,
                },
                503,
                CODE_INVALID,
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status_and_code(), (status, code), "{err:?}");
        }
        assert_eq!(
            ApiError::KeyNotFound { op: "get" }.to_string(),
            "get: 'key not found'"
        );
    }
}
