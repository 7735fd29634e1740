//! The service's error type: what a caller did wrong or what failed. It is
//! mapped to `tonic::Status` in `grpc` and to HTTP responses in `http`.

use crate::store::StoreError;

/// Why a call did not produce an answer (rejections are answers, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; `field` names it. Nothing was changed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// The call is valid but the state does not allow it (e.g. a lease not held).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A dependency (the state store) is down; retrying later may work.
    #[error(transparent)]
    Unavailable(StoreError),
}

impl ServiceError {
    /// Bad input in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::InvalidArgument { field: field.to_owned(), message: message.into() }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Unavailable(e)
    }
}
