//! Client-visible errors. Every failure becomes an [`ApiError`]: one [`ErrorCode`] (mapped to
//! gRPC and HTTP in `keygate_contracts::error_code`) and a short message. Internal details are
//! logged with the request id and never sent.

use crate::store::StoreError;
use keygate_contracts::FieldError;
pub use keygate_contracts::error_code::ErrorCode;

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
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
        Self::new(ErrorCode::InvalidArgument, e.to_string())
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

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        tonic::Status::new(tonic::Code::from_i32(e.code.grpc_code()), e.message)
    }
}

/// Result of an RPC handler body.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_without_internals() {
        let s: tonic::Status = ApiError::from(StoreError::Internal(
            "syntax error at or near SELECT".into(),
        ))
        .into();
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(!s.message().contains("SELECT"));
        let s: tonic::Status = ApiError::from(FieldError::new("name", "is required")).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "name: is required");
        let s: tonic::Status = ApiError::from(StoreError::NotFound {
            entity: "token",
            id: "tok_1".into(),
        })
        .into();
        assert_eq!(s.code(), tonic::Code::NotFound);
    }
}
