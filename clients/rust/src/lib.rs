//! The Rust client of floodgate, the admission-control service of a chat
//! platform: frontends ask it whether a user may chat (Level 1,
//! [`Client::check_capacity`]) and enqueue the chat task atomically
//! (Level 2, [`Client::enqueue_atomic`]); chat workers report health and
//! take tasks ([`Client::heartbeat`], [`Client::lease_tasks`],
//! [`Client::complete_task`]); operators read the system's state.
//!
//! The typed calls carry a per-call deadline (retries included, default
//! [`DEFAULT_TIMEOUT`]) and retry `UNAVAILABLE` only where repeating is safe
//! (see [`RetryPolicy`]). A refusal (429, 503) is a [`Verdict`], not an
//! error; [`Error`] says what went wrong with the call itself.
//!
//! # Admission (frontends)
//!
//! ```no_run
//! use std::time::Duration;
//! use floodgate_client::{CapacityCheck, Client, Enqueue, Transport, UserType};
//!
//! # async fn frontend() -> Result<(), Box<dyn std::error::Error>> {
//! let floodgate = Client::builder("127.0.0.1:50051")
//!     .token("frontend-token")
//!     .timeout(Duration::from_millis(500))
//!     .connect()
//!     .await?;
//!
//! // Level 1, right after authentication: reserves nothing.
//! let check = CapacityCheck::new(UserType::Registered, "user-42").transport(Transport::Rest).route("/landing/chat");
//! let verdict = floodgate.check_capacity(check).await?;
//! if !verdict.is_admitted() {
//!     // Answer verdict.http_status() (429 or 503) with Retry-After.
//!     println!("refused: {} {:?} retry in {:?}", verdict.http_status(), verdict.decision(), verdict.retry_after());
//!     return Ok(());
//! }
//!
//! // Level 2, when creating the chat task: the key makes a retry safe.
//! let task = Enqueue::new(UserType::Registered, "user-42", b"hello".to_vec()).idempotency_key("message-1");
//! let admission = floodgate.enqueue_atomic(task).await?;
//! match admission.task_id() {
//!     Some(id) => println!("queued {id} at position {}", admission.queue_position()),
//!     None => println!("refused with {}", admission.http_status()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Workers
//!
//! ```no_run
//! use std::time::Duration;
//! use floodgate_client::{Client, Heartbeat, Lease};
//!
//! # async fn worker() -> Result<(), Box<dyn std::error::Error>> {
//! let floodgate = Client::builder("127.0.0.1:50051").token("worker-token").connect().await?;
//! // Every few seconds: this chat REST process can take 5 chats at once.
//! let ack = floodgate.heartbeat(Heartbeat::chat_rest("home-instance-1", "pid-7", 5).load(0)).await?;
//! println!("system capacity {}", ack.system_capacity);
//!
//! let lease = Lease::new("home-instance-1", "pid-7").max_tasks(5).wait(Duration::from_secs(5));
//! for task in floodgate.lease_tasks(lease).await? {
//!     // ... answer the chat (task.payload) ...
//!     floodgate.complete_task(&task.task_id, &task.lease_id).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Admin (operators)
//!
//! ```no_run
//! use floodgate_client::Client;
//!
//! # async fn operator() -> Result<(), Box<dyn std::error::Error>> {
//! let floodgate = Client::builder("127.0.0.1:50051").token("admin-token").connect().await?;
//! let capacity = floodgate.capacity_calculation().await?;
//! println!("system total {:?}", capacity.totals.map(|t| t.system_total));
//! floodgate.reset_circuit_breaker("backpressure").await?;
//!
//! // Everything else through the generated client, on the same connection.
//! let alerts = floodgate.admin().list_alerts(floodgate_client::pb::ListAlertsRequest {}).await?.into_inner();
//! println!("{} alerts", alerts.alerts.len());
//! # Ok(())
//! # }
//! ```
//!
//! # Generated code
//!
//! [`pb`] (`floodgate.v1`) and [`envoy`] (Envoy's rate-limit service) are
//! generated from the protos shipped in this crate's `proto/` and checked in,
//! so building this crate needs neither protoc nor a build script.
//! [`Client::admission`], [`Client::workers`], [`Client::admin`],
//! [`Client::rate_limit`] and [`Client::health`] hand out the generated
//! clients on the client's connection and token (no deadline or retry added).
#![warn(missing_docs)]

mod calls;
mod connection;
mod error;
mod retry;
mod types;

/// Generated protobuf types and clients of `floodgate.v1`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!("generated/floodgate.v1.rs");
}

/// Generated types and client of Envoy's rate-limit service (RLS v3), which
/// floodgate serves for Envoy's ratelimit filter; nested as prost expects.
#[allow(clippy::all, missing_docs)]
pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                include!("generated/envoy.config.core.v3.rs");
            }
        }
    }
    pub mod extensions {
        pub mod common {
            pub mod ratelimit {
                pub mod v3 {
                    include!("generated/envoy.extensions.common.ratelimit.v3.rs");
                }
            }
        }
    }
    pub mod service {
        pub mod ratelimit {
            pub mod v3 {
                include!("generated/envoy.service.ratelimit.v3.rs");
            }
        }
    }
}

/// TLS settings for [`ClientBuilder::tls`] (tonic's, re-exported).
#[cfg(feature = "tls")]
pub mod tls {
    pub use tonic::transport::{Certificate, ClientTlsConfig, Identity};
}

pub use connection::{
    AdminClient, AdmissionClient, AuthChannel, Client, ClientBuilder, ConnectError, DEFAULT_TIMEOUT, HealthClient,
    RateLimitClient, WorkersClient,
};
pub use error::Error;
pub use retry::RetryPolicy;
pub use tonic::{Code, Status as RpcStatus};
pub use types::{
    Admission, CapacityCheck, Decision, Enqueue, Heartbeat, HeartbeatAck, Lease, LeasedTask, ProcessStatus, Transport,
    UserType, Verdict,
};

/// An Envoy rate-limit request: `descriptors` as lists of (key, value).
pub fn rate_limit_request(
    domain: &str,
    descriptors: &[&[(&str, &str)]],
    hits_addend: u32,
) -> envoy::service::ratelimit::v3::RateLimitRequest {
    use envoy::extensions::common::ratelimit::v3::{RateLimitDescriptor, rate_limit_descriptor::Entry};
    envoy::service::ratelimit::v3::RateLimitRequest {
        domain: domain.into(),
        descriptors: descriptors
            .iter()
            .map(|entries| RateLimitDescriptor {
                entries: entries.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect(),
            })
            .collect(),
        hits_addend,
    }
}

/// A raw chat REST heartbeat for `instance_id` / `process_id` (the typed
/// equivalent is [`Heartbeat::chat_rest`]).
pub fn chat_rest_heartbeat(
    instance_id: &str,
    process_id: &str,
    capacity: u32,
    status: pb::ProcessStatus,
) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        instance_id: instance_id.into(),
        process_id: process_id.into(),
        service_type: "chat".into(),
        service_name: "rest".into(),
        load: 0,
        capacity,
        status: status.into(),
    }
}
