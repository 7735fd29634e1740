//! The pure decision core: capacity, admission, health and GCRA rules as
//! plain functions over values. No I/O, no clock reads: `now` is an argument.

pub mod admission;
pub mod alerts;
pub mod analytics;
pub mod breaker;
pub mod capacity;
pub mod feedback;
pub mod gcra;
pub mod health;
pub mod lease;
pub mod rls;
pub mod warnings;
pub mod window_cache;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as every `now` in the core is given.
pub type Millis = u64;

/// Who a chat request is for; decides thresholds, rate limits and lease priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    /// Not signed in.
    Anonymous,
    /// Signed in.
    Registered,
    /// Paid or staff: held only to the hard limit.
    Privileged,
}

impl UserType {
    /// All user types, lowest priority first.
    pub const ALL: [UserType; 3] = [UserType::Anonymous, UserType::Registered, UserType::Privileged];

    /// The snake_case name used in JSON, metrics and store keys.
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Anonymous => "anonymous",
            UserType::Registered => "registered",
            UserType::Privileged => "privileged",
        }
    }

    /// Index into per-user-type arrays (0 = anonymous … 2 = privileged).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Inverse of [`UserType::index`].
    pub fn from_index(index: usize) -> Option<UserType> {
        UserType::ALL.get(index).copied()
    }
}

/// Which frontend entry point asked; it only matters to analytics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The frontend did not say.
    Unspecified,
    /// A REST request.
    Rest,
    /// A WebSocket message.
    Websocket,
}

impl Transport {
    /// All transports, in analytics order.
    pub const ALL: [Transport; 3] = [Transport::Unspecified, Transport::Rest, Transport::Websocket];

    /// The snake_case name used in JSON, metrics and analytics.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unspecified => "unspecified",
            Transport::Rest => "rest",
            Transport::Websocket => "websocket",
        }
    }
}

/// An admission answer. Rejections are decisions, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Admit,
    /// Refused by the user's rate limit (HTTP 429).
    RateLimited,
    /// Refused because the system is too full for this user type (HTTP 503).
    Backpressure,
    /// Refused because a circuit is open (HTTP 503).
    CircuitOpen,
}

impl Decision {
    /// All decisions.
    pub const ALL: [Decision; 4] =
        [Decision::Admit, Decision::RateLimited, Decision::Backpressure, Decision::CircuitOpen];

    /// The snake_case name used in JSON, metrics and Envoy headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Admit => "admit",
            Decision::RateLimited => "rate_limited",
            Decision::Backpressure => "backpressure",
            Decision::CircuitOpen => "circuit_open",
        }
    }

    /// The HTTP status a frontend should answer with.
    pub fn http_status(self) -> u16 {
        match self {
            Decision::Admit => 200,
            Decision::RateLimited => 429,
            Decision::Backpressure | Decision::CircuitOpen => 503,
        }
    }
}
