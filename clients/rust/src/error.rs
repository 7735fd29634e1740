//! What can go wrong with a typed call, by what happened (not by gRPC code):
//! the caller was refused, floodgate was unavailable or too slow, the
//! request was invalid, or the state did not allow it.

use std::time::Duration;

use tonic::{Code, Status};

/// A typed call failed. A rate-limit or backpressure refusal is *not* an
/// error: it is a [`Verdict`](crate::Verdict) that is not admitted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// floodgate refused the caller: a missing or unknown token
    /// (`UNAUTHENTICATED`) or a token without the role this call needs
    /// (`PERMISSION_DENIED`). Never retried: fix the token.
    #[error("{method}: refused by floodgate ({code:?}): {message}")]
    Refused {
        /// The RPC, e.g. `CheckCapacity`.
        method: &'static str,
        /// `Unauthenticated` or `PermissionDenied`.
        code: Code,
        /// floodgate's explanation.
        message: String,
    },
    /// floodgate (or the way to it) was unavailable on every attempt the
    /// retry policy and the deadline allowed.
    #[error("{method}: floodgate unavailable after {attempts} attempt(s): {message}")]
    Unavailable {
        /// The RPC, e.g. `CheckCapacity`.
        method: &'static str,
        /// How many times the call was sent (1 when it is not retried).
        attempts: u32,
        /// The last attempt's error.
        message: String,
    },
    /// The call's deadline passed before floodgate answered.
    #[error("{method}: no answer from floodgate within {deadline:?} ({attempts} attempt(s))")]
    Timeout {
        /// The RPC, e.g. `CheckCapacity`.
        method: &'static str,
        /// How many times the call was sent.
        attempts: u32,
        /// The call's deadline.
        deadline: Duration,
    },
    /// floodgate rejected the request's fields (`INVALID_ARGUMENT`,
    /// `OUT_OF_RANGE`); the message names the field. Nothing changed.
    #[error("{method}: invalid request: {message}")]
    Invalid {
        /// The RPC, e.g. `EnqueueAtomic`.
        method: &'static str,
        /// floodgate's explanation, naming the field.
        message: String,
    },
    /// The request was well formed but the state does not allow it, e.g.
    /// completing a task whose lease is no longer held
    /// (`FAILED_PRECONDITION`) or an unknown circuit (`NOT_FOUND`).
    #[error("{method}: rejected ({code:?}): {message}")]
    Rejected {
        /// The RPC, e.g. `CompleteTask`.
        method: &'static str,
        /// `FailedPrecondition` or `NotFound`.
        code: Code,
        /// floodgate's explanation.
        message: String,
    },
    /// Any other gRPC status.
    #[error("{method}: {status}")]
    Rpc {
        /// The RPC, e.g. `GetSystemStatus`.
        method: &'static str,
        /// The status as received.
        status: Status,
    },
}

/// What a tonic server answers (as `CANCELLED`) when the `grpc-timeout` we
/// sent expires a moment before our own timer does.
const SERVER_TIMEOUT: &str = "Timeout expired";

impl Error {
    /// The error for a status, after `attempts` attempts within `deadline`.
    pub(crate) fn from_status(method: &'static str, status: Status, attempts: u32, deadline: Duration) -> Error {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => Error::Refused { method, code: status.code(), message },
            Code::Unavailable => Error::Unavailable { method, attempts, message },
            Code::DeadlineExceeded => Error::Timeout { method, attempts, deadline },
            Code::Cancelled if message == SERVER_TIMEOUT => Error::Timeout { method, attempts, deadline },
            Code::InvalidArgument | Code::OutOfRange => Error::Invalid { method, message },
            Code::FailedPrecondition | Code::NotFound => Error::Rejected { method, code: status.code(), message },
            _ => Error::Rpc { method, status },
        }
    }

    /// The gRPC code this error stands for.
    pub fn code(&self) -> Code {
        match self {
            Error::Refused { code, .. } | Error::Rejected { code, .. } => *code,
            Error::Unavailable { .. } => Code::Unavailable,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Invalid { .. } => Code::InvalidArgument,
            Error::Rpc { status, .. } => status.code(),
        }
    }

    /// True when floodgate could not answer in time (unavailable or timed
    /// out): the case where a frontend chooses between failing closed (503)
    /// and, for Level 1 only, failing open.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout { .. })
    }
}
