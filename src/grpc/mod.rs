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

use crate::auth::{AuthError, Authenticator, Role};
use crate::core::health::ProcessStatus;
use crate::core::{Decision, Transport, UserType};
use crate::error::{Classify, ServiceError};

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

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        let class = e.classify_and_log();
        Status::new(class.grpc, class.message)
    }
}

impl From<AuthError> for Status {
    fn from(e: AuthError) -> Status {
        let class = e.classify_and_log();
        Status::new(class.grpc, class.message)
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
            Err(e) => Either::Left(std::future::ready(Ok(Status::from(e).into_http()))),
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
