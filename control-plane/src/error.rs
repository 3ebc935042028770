//! Client-visible errors. Every failure becomes an [`ApiError`]: one [`ErrorCode`] (mapped to
//! gRPC and HTTP in `keygate_contracts::error_code`), a short message and, for invalid input,
//! every field violation. Internal details are logged with the request id and never sent.
//!
//! This file holds the one conversion to `tonic::Status` (the gRPC richer error model via
//! `tonic-types`): every status carries `google.rpc.ErrorInfo { reason: <ErrorCode::reason>,
//! domain: "keygate" }`, and invalid input also `google.rpc.BadRequest` with one field
//! violation per broken rule.

use crate::store::StoreError;
use keygate_contracts::error_code::ERROR_DOMAIN;
use keygate_contracts::{FieldError, FieldErrors};
use std::collections::HashMap;
use tonic_types::{ErrorDetails, StatusExt};

pub use keygate_contracts::error_code::ErrorCode;

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Every rule the input broke (empty unless `code` is `InvalidArgument`).
    pub violations: Vec<FieldError>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError::new(field, rule).into()
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// A failure whose detail must not reach the client: logs it, returns a generic message.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            ErrorCode::Internal,
            "internal error; see server logs for this request id",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        FieldErrors::from(e).into()
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> Self {
        Self {
            code: ErrorCode::InvalidArgument,
            message: e.to_string(),
            violations: e.into_iter().collect(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity, id } => {
                Self::new(ErrorCode::NotFound, format!("{entity} \"{id}\" not found"))
            }
            StoreError::AlreadyExists(msg) => Self::new(ErrorCode::AlreadyExists, msg),
            StoreError::Invalid(fe) => fe.into(),
            StoreError::Precondition(msg) => Self::new(ErrorCode::FailedPrecondition, msg),
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "storage unavailable");
                Self::new(
                    ErrorCode::Unavailable,
                    "storage temporarily unavailable; retry",
                )
            }
            StoreError::Internal(detail) => Self::internal(&detail),
        }
    }
}

/// The one conversion to the wire: code, message, `ErrorInfo` and (for invalid input)
/// `BadRequest` with every violation.
impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let mut details =
            ErrorDetails::with_error_info(e.code.reason(), ERROR_DOMAIN, HashMap::new());
        for v in &e.violations {
            details.add_bad_request_violation(v.field.clone(), v.rule.clone());
        }
        tonic::Status::with_error_details(
            tonic::Code::from_i32(e.code.grpc_code()),
            e.message,
            details,
        )
    }
}

/// Result of an RPC handler body.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &tonic::Status) -> String {
        s.get_details_error_info().expect("error info").reason
    }

    #[test]
    fn store_errors_map_without_internals() {
        let s: tonic::Status = ApiError::from(StoreError::Internal(
            "syntax error at or near SELECT".into(),
        ))
        .into();
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("SELECT"));
        assert_eq!(reason(&s), "INTERNAL");
        let s: tonic::Status = ApiError::from(FieldError::new("name", "is required")).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "name: is required");
        let s: tonic::Status = ApiError::from(StoreError::NotFound {
            entity: "token",
            id: "tok_1".into(),
        })
        .into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(reason(&s), "NOT_FOUND");
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.domain, "keygate");
    }

    #[test]
    fn every_violation_reaches_bad_request() {
        let mut v = FieldErrors::new();
        v.push(FieldError::new("name", "is required"));
        v.push(FieldError::new("scopes[0]", "is not a scope"));
        let s: tonic::Status = ApiError::from(v).into();
        assert_eq!(s.message(), "name: is required (and 1 more)");
        assert_eq!(reason(&s), "INVALID_ARGUMENT");
        let br = s.get_details_bad_request().expect("bad request");
        let got: Vec<(&str, &str)> = br
            .field_violations
            .iter()
            .map(|f| (f.field.as_str(), f.description.as_str()))
            .collect();
        assert_eq!(
            got,
            [("name", "is required"), ("scopes[0]", "is not a scope")]
        );
        let s: tonic::Status = ApiError::new(ErrorCode::ResyncRequired, "resync required").into();
        assert_eq!(s.code(), tonic::Code::Aborted);
        assert_eq!(reason(&s), "RESYNC_REQUIRED");
        assert!(s.get_details_bad_request().is_none());
    }
}
