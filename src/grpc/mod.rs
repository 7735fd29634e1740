//! The gRPC edge: generated types, proto ↔ domain conversion, and the one
//! place where service errors become `tonic::Status`.

pub mod admin;
pub mod admission;
pub mod rls;
pub mod workers;

use std::future::Ready;

use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk};
use tonic::Status;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

use crate::auth::{Authenticator, Role};
use crate::classify::Classify;
use crate::core::health::ProcessStatus;
use crate::core::{Decision, Transport, UserType};
use crate::service::ServiceError;

/// Code generated from `proto/floodgate/v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("floodgate.v1");
}

/// Code generated from the vendored `google/api` subset.
#[allow(clippy::all, missing_docs)]
pub mod google_api {
    tonic::include_proto!("google.api");
}

/// The encoded descriptor set, for server reflection and route checks.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("floodgate_descriptor");

/// Answers an error at the gRPC edge: classified, and logged as its class
/// says, once, here.
pub(crate) fn status(e: &impl Classify) -> Status {
    let class = e.classify_and_log();
    Status::new(class.grpc, class.message)
}

/// `result.or_status()?` in a handler: a service error becomes the call's
/// answer through [`status`] (an explicit step, not a logging `From`).
pub(crate) trait OrStatus<T> {
    /// The value, or the error answered as a `Status`.
    fn or_status(self) -> Result<T, Status>;
}

impl<T, E: Classify> OrStatus<T> for Result<T, E> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| status(&e))
    }
}

/// Admits callers whose token carries `role` before the wrapped gRPC
/// service sees the request; others get UNAUTHENTICATED or PERMISSION_DENIED.
/// A plain tower wrapper: it reads the `authorization` header in place,
/// where tonic's `InterceptedService` rebuilds every request around it.
#[derive(Clone)]
pub struct RequireRole<S> {
    inner: S,
    auth: Authenticator,
    role: Role,
}

impl<S> RequireRole<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, auth: Authenticator, role: Role) -> RequireRole<S> {
        RequireRole { inner, auth, role }
    }
}

impl<S, B> Service<http::Request<B>> for RequireRole<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, MapOk<S::Future, Reclassify>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let header = request.headers().get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
        match self.auth.authorize(header, self.role) {
            Ok(_) => Either::Right(self.inner.call(request).map_ok(reclassify as Reclassify)),
            Err(e) => Either::Left(std::future::ready(Ok(status(&e).into_http()))),
        }
    }
}

type Reclassify = fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>;

/// tonic answers bad input it meets before a handler runs with codes the
/// gRPC status-code rules reserve for other cases: a message over the size
/// limit with OUT_OF_RANGE (the rules say RESOURCE_EXHAUSTED) and bytes that
/// are not the request's protobuf with INTERNAL (they are INVALID_ARGUMENT).
/// floodgate's handlers never answer OUT_OF_RANGE, and their INTERNAL
/// answers never carry tonic's decode message, so both are rewritten here.
/// A header look-up per response; no allocation.
fn reclassify(mut response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    const STATUS: &str = "grpc-status";
    let headers = response.headers_mut();
    let code = match headers.get(STATUS).map(http::HeaderValue::as_bytes) {
        Some(b"11") => Some("8"),
        Some(b"13")
            if headers.get("grpc-message").is_some_and(|m| {
                let m = m.as_bytes();
                m.starts_with(b"failed%20to%20decode%20Protobuf") || m.starts_with(b"failed to decode Protobuf")
            }) =>
        {
            Some("3")
        }
        _ => None,
    };
    if let Some(code) = code {
        headers.insert(STATUS, http::HeaderValue::from_static(code));
    }
    response
}

impl<S: NamedService> NamedService for RequireRole<S> {
    const NAME: &'static str = S::NAME;
}

/// Proto user type → domain; UNSPECIFIED is bad input.
pub fn user_type(raw: i32) -> Result<UserType, ServiceError> {
    match pb::UserType::try_from(raw) {
        Ok(pb::UserType::Anonymous) => Ok(UserType::Anonymous),
        Ok(pb::UserType::Registered) => Ok(UserType::Registered),
        Ok(pb::UserType::Privileged) => Ok(UserType::Privileged),
        _ => Err(ServiceError::invalid(
            "user_type",
            "must be USER_TYPE_ANONYMOUS, USER_TYPE_REGISTERED or USER_TYPE_PRIVILEGED",
        )),
    }
}

/// Domain user type → proto.
pub fn user_type_to_pb(user_type: UserType) -> pb::UserType {
    match user_type {
        UserType::Anonymous => pb::UserType::Anonymous,
        UserType::Registered => pb::UserType::Registered,
        UserType::Privileged => pb::UserType::Privileged,
    }
}

/// Proto transport → domain; UNSPECIFIED (a frontend that does not say)
/// is allowed, a value the proto does not define is bad input.
pub fn transport(raw: i32) -> Result<Transport, ServiceError> {
    match pb::Transport::try_from(raw) {
        Ok(pb::Transport::Unspecified) => Ok(Transport::Unspecified),
        Ok(pb::Transport::Rest) => Ok(Transport::Rest),
        Ok(pb::Transport::Websocket) => Ok(Transport::Websocket),
        Err(_) => Err(ServiceError::invalid(
            "transport",
            "must be TRANSPORT_UNSPECIFIED, TRANSPORT_REST or TRANSPORT_WEBSOCKET",
        )),
    }
}

/// Domain decision → proto.
pub fn decision_to_pb(decision: Decision) -> pb::Decision {
    match decision {
        Decision::Admit => pb::Decision::Admit,
        Decision::RateLimited => pb::Decision::RateLimited,
        Decision::Backpressure => pb::Decision::Backpressure,
        Decision::CircuitOpen => pb::Decision::CircuitOpen,
    }
}

/// Proto process status → domain; UNSPECIFIED is bad input.
pub fn process_status(raw: i32) -> Result<ProcessStatus, ServiceError> {
    match pb::ProcessStatus::try_from(raw) {
        Ok(pb::ProcessStatus::Healthy) => Ok(ProcessStatus::Healthy),
        Ok(pb::ProcessStatus::Degraded) => Ok(ProcessStatus::Degraded),
        Ok(pb::ProcessStatus::Unhealthy) => Ok(ProcessStatus::Unhealthy),
        _ => Err(ServiceError::invalid("status", "must be PROCESS_STATUS_HEALTHY, _DEGRADED or _UNHEALTHY")),
    }
}

#[cfg(test)]
mod tests {
    //! One test per error class at the gRPC edge: the code and the message
    //! the caller reads.
    use tonic::Code;

    use super::*;
    use crate::auth::AuthError;
    use crate::store::StoreError;

    fn answered(e: &impl Classify) -> (Code, String) {
        let s = status(e);
        (s.code(), s.message().to_owned())
    }

    #[test]
    fn grpc_answers_bad_input_with_invalid_argument_naming_the_field() {
        let e = ServiceError::invalid("subject", "must not be empty");
        assert_eq!(answered(&e), (Code::InvalidArgument, "subject: must not be empty".into()));
    }

    #[test]
    fn grpc_answers_a_lease_not_held_with_failed_precondition() {
        let e = ServiceError::FailedPrecondition("task t is not leased by lease l".into());
        assert_eq!(answered(&e), (Code::FailedPrecondition, "task t is not leased by lease l".into()));
    }

    #[test]
    fn grpc_answers_an_unknown_name_with_not_found() {
        let e = ServiceError::NotFound("no circuit named \"x\"".into());
        assert_eq!(answered(&e), (Code::NotFound, "no circuit named \"x\"".into()));
    }

    #[test]
    fn grpc_answers_an_unreachable_store_with_unavailable_and_no_detail() {
        let e = ServiceError::from(StoreError::Unavailable("connection refused at 10.0.0.7:6379".into()));
        assert_eq!(answered(&e), (Code::Unavailable, "state store unavailable; retry later".into()));
    }

    #[test]
    fn grpc_answers_an_unreadable_store_reply_with_internal_and_no_detail() {
        let e = ServiceError::from(StoreError::Protocol("unexpected reply: Int(7)".into()));
        assert_eq!(answered(&e), (Code::Internal, "internal error".into()));
    }

    #[test]
    fn grpc_answers_a_missing_token_with_unauthenticated() {
        assert_eq!(
            answered(&AuthError::Unauthenticated),
            (Code::Unauthenticated, "missing or unknown bearer token".into())
        );
    }

    #[test]
    fn grpc_answers_a_wrong_role_with_permission_denied() {
        assert_eq!(
            answered(&AuthError::PermissionDenied),
            (Code::PermissionDenied, "this token's role may not call this service".into())
        );
    }

    #[test]
    fn or_status_passes_a_value_through_and_answers_an_error() {
        assert_eq!(Ok::<u8, ServiceError>(7).or_status().unwrap(), 7);
        let e = Err::<u8, _>(ServiceError::invalid("route", "too long")).or_status().unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "route: too long"));
    }
}
