//! The service's error: what went wrong, in the domain's words, with its
//! source. It names no transport; the edges classify it (`crate::classify`).

use crate::store::StoreError;

/// Why a call did not produce an answer (rejections are answers, not errors).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bad input; `field` names it. Nothing was changed.
    #[error("{field}: {message}")]
    InvalidArgument {
        /// The field, as the caller named it.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The call is valid but the state does not allow it (e.g. a lease not held).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A dependency (the state store) is down; retrying later may work.
    #[error(transparent)]
    Unavailable(StoreError),
    /// A bug: the store answered what floodgate cannot read (a script or
    /// decoder mismatch). Retrying will not help.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl ServiceError {
    /// Bad input in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::InvalidArgument { field: field.to_owned(), message: message.into() }
    }
}

impl From<StoreError> for ServiceError {
    /// A transient store error may pass on retry; any other is a bug.
    fn from(e: StoreError) -> Self {
        if e.is_transient() { ServiceError::Unavailable(e) } else { ServiceError::Internal(e) }
    }
}
