//! The one classifier both edges answer errors by: for each class of
//! error, the gRPC code, the HTTP status, the public message and whether it
//! is logged (as linkerd2-proxy's error rescue and axum's error-handling
//! example do it). The service's errors name no transport; `grpc` and
//! `http` call [`Classify::classify_and_log`] once, where they answer.

use std::borrow::Cow;

use axum::http::StatusCode;
use tonic::Code;

use crate::auth::AuthError;
use crate::service::ServiceError;

/// Whether and how loudly an error is logged where it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Log {
    /// The caller's doing: not logged.
    No,
    /// A dependency failed: a warning.
    Warn,
    /// A bug: an error, with its source.
    Error,
}

/// How an error is answered, at either edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    /// The gRPC status code.
    pub grpc: Code,
    /// The HTTP status.
    pub http: StatusCode,
    /// What the caller is told: bad input keeps its message, internals
    /// become a generic one.
    pub message: Cow<'static, str>,
    /// Whether and how loudly it is logged.
    pub log: Log,
}

/// The one classifier of errors that reach a caller.
pub(crate) trait Classify: std::error::Error {
    /// The answer for this error.
    fn classify(&self) -> Classified;

    /// Logs the error as its class says (with its source chain) and
    /// answers its class.
    fn classify_and_log(&self) -> Classified {
        let class = self.classify();
        match class.log {
            Log::No => {}
            Log::Warn => tracing::warn!(error = %Chain(self), "call failed: {}", class.message),
            Log::Error => tracing::error!(error = %Chain(self), "call failed: {}", class.message),
        }
        class
    }
}

/// Displays an error with its sources, `outer: inner: …`.
struct Chain<'a, E: ?Sized>(&'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for Chain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

fn class(grpc: Code, http: StatusCode, message: impl Into<Cow<'static, str>>, log: Log) -> Classified {
    Classified { grpc, http, message: message.into(), log }
}

impl Classify for ServiceError {
    fn classify(&self) -> Classified {
        match self {
            ServiceError::InvalidArgument { .. } => {
                class(Code::InvalidArgument, StatusCode::BAD_REQUEST, self.to_string(), Log::No)
            }
            ServiceError::FailedPrecondition(m) => {
                class(Code::FailedPrecondition, StatusCode::CONFLICT, m.clone(), Log::No)
            }
            ServiceError::NotFound(m) => class(Code::NotFound, StatusCode::NOT_FOUND, m.clone(), Log::No),
            ServiceError::Unavailable(_) => class(
                Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "state store unavailable; retry later",
                Log::Warn,
            ),
            ServiceError::Internal(_) => {
                class(Code::Internal, StatusCode::INTERNAL_SERVER_ERROR, "internal error", Log::Error)
            }
        }
    }
}

impl Classify for AuthError {
    fn classify(&self) -> Classified {
        match self {
            AuthError::Unauthenticated => {
                class(Code::Unauthenticated, StatusCode::UNAUTHORIZED, self.to_string(), Log::No)
            }
            AuthError::PermissionDenied => {
                class(Code::PermissionDenied, StatusCode::FORBIDDEN, self.to_string(), Log::No)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn answer(e: &dyn Classify) -> (Code, u16, String, Log) {
        let c = e.classify();
        (c.grpc, c.http.as_u16(), c.message.into_owned(), c.log)
    }

    #[test]
    fn bad_input_is_invalid_argument_with_its_field() {
        let e = ServiceError::invalid("subject", "must not be empty");
        assert_eq!(answer(&e), (Code::InvalidArgument, 400, "subject: must not be empty".into(), Log::No));
    }

    #[test]
    fn a_lease_not_held_is_failed_precondition() {
        let e = ServiceError::FailedPrecondition("task t is not leased".into());
        assert_eq!(answer(&e), (Code::FailedPrecondition, 409, "task t is not leased".into(), Log::No));
    }

    #[test]
    fn an_unknown_name_is_not_found() {
        let e = ServiceError::NotFound("no circuit named x".into());
        assert_eq!(answer(&e), (Code::NotFound, 404, "no circuit named x".into(), Log::No));
    }

    #[test]
    fn an_unreachable_store_is_unavailable_and_says_retry() {
        let e = ServiceError::from(StoreError::Unavailable("connection refused at 10.0.0.7".into()));
        assert!(matches!(e, ServiceError::Unavailable(_)));
        let (code, status, message, log) = answer(&e);
        assert_eq!((code, status, log), (Code::Unavailable, 503, Log::Warn));
        assert_eq!(message, "state store unavailable; retry later", "no store detail leaks");
    }

    #[test]
    fn one_unreachable_cluster_shard_is_answered_like_an_unreachable_store() {
        let e = ServiceError::from(StoreError::ShardUnavailable("connection refused at 10.0.0.8".into()));
        assert!(matches!(e, ServiceError::Unavailable(StoreError::ShardUnavailable(_))));
        let (code, status, message, log) = answer(&e);
        assert_eq!((code, status, log), (Code::Unavailable, 503, Log::Warn));
        assert_eq!(message, "state store unavailable; retry later", "no store detail leaks");
    }

    #[test]
    fn an_unreadable_store_answer_is_internal_and_hides_its_detail() {
        let e = ServiceError::from(StoreError::Protocol("unexpected stats reply: Int(7)".into()));
        assert!(matches!(e, ServiceError::Internal(_)));
        assert_eq!(answer(&e), (Code::Internal, 500, "internal error".into(), Log::Error));
        assert_eq!(
            Chain(&e).to_string(),
            "internal error: state store answered unexpectedly: unexpected stats reply: Int(7)"
        );
    }

    #[test]
    fn missing_tokens_are_unauthenticated_and_wrong_roles_forbidden() {
        assert_eq!(answer(&AuthError::Unauthenticated).0, Code::Unauthenticated);
        assert_eq!(answer(&AuthError::Unauthenticated).1, 401);
        assert_eq!(answer(&AuthError::PermissionDenied).0, Code::PermissionDenied);
        assert_eq!(answer(&AuthError::PermissionDenied).1, 403);
    }
}
