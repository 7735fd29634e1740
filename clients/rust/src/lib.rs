//! A Rust client for floodgate: one connection, bearer-token auth, and
//! typed calls for frontends (the two admission levels), chat workers and
//! operators. The load generator and floodgate's own tests use it.

use std::time::Duration;

use tonic::codegen::Service;
use tonic::codegen::http::{self, HeaderValue};
use tonic::transport::{Channel, Endpoint};

/// Generated protobuf types and clients of `floodgate.v1`.
#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("floodgate.v1");
}

/// Generated types and client of Envoy's rate-limit service (RLS v3), which
/// floodgate serves for Envoy's ratelimit filter; nested as prost expects.
#[allow(clippy::all, missing_docs)]
pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod extensions {
        pub mod common {
            pub mod ratelimit {
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    pub mod service {
        pub mod ratelimit {
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }
}

pub use pb::{Decision, ProcessStatus, Transport, UserType};
pub use tonic::{Code, Status as RpcStatus};

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid target {0:?}")]
    Target(String),
    #[error("token is not valid header text")]
    Token,
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The connection with `authorization: Bearer <token>` added to every call
/// (none without a token). A plain tower wrapper: it sets one header in
/// place, where tonic's interceptor rebuilds every request around it.
#[derive(Clone, Debug)]
pub struct AuthChannel {
    channel: Channel,
    bearer: Option<HeaderValue>,
}

impl AuthChannel {
    fn new(channel: Channel, token: Option<&str>) -> Result<AuthChannel, ConnectError> {
        let bearer =
            token.map(|t| HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| ConnectError::Token)).transpose()?;
        Ok(AuthChannel { channel, bearer })
    }
}

impl Service<http::Request<tonic::body::Body>> for AuthChannel {
    type Response = <Channel as Service<http::Request<tonic::body::Body>>>::Response;
    type Error = <Channel as Service<http::Request<tonic::body::Body>>>::Error;
    type Future = <Channel as Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(bearer) = &self.bearer {
            request.headers_mut().insert(http::header::AUTHORIZATION, bearer.clone());
        }
        self.channel.call(request)
    }
}

/// Level 1 and Level 2 calls.
pub type AdmissionClient = pb::admission_client::AdmissionClient<AuthChannel>;
/// Heartbeats and the lease cycle.
pub type WorkersClient = pb::workers_client::WorkersClient<AuthChannel>;
/// The operator surface.
pub type AdminClient = pb::admin_client::AdminClient<AuthChannel>;
/// `envoy.service.ratelimit.v3.RateLimitService` (a frontend token).
pub type RateLimitClient =
    envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient<AuthChannel>;
/// `grpc.health.v1` (no auth needed).
pub type HealthClient = tonic_health::pb::health_client::HealthClient<Channel>;

/// One HTTP/2 connection to floodgate, cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    channel: AuthChannel,
}

impl Client {
    /// Connects to `target` (`host:port` or `http://host:port`).
    pub async fn connect(target: &str, token: Option<&str>) -> Result<Client, ConnectError> {
        let uri = if target.contains("://") { target.to_owned() } else { format!("http://{target}") };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|_| ConnectError::Target(target.to_owned()))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await?;
        Ok(Client { channel: AuthChannel::new(channel, token)? })
    }

    /// A client over a channel built by the caller (TLS, custom timeouts).
    pub fn from_channel(channel: Channel, token: Option<&str>) -> Result<Client, ConnectError> {
        Ok(Client { channel: AuthChannel::new(channel, token)? })
    }

    /// The same connection with another token.
    pub fn with_token(&self, token: Option<&str>) -> Result<Client, ConnectError> {
        Ok(Client { channel: AuthChannel::new(self.channel.channel.clone(), token)? })
    }

    /// The Admission service.
    pub fn admission(&self) -> AdmissionClient {
        pb::admission_client::AdmissionClient::new(self.channel.clone())
    }

    /// The Workers service.
    pub fn workers(&self) -> WorkersClient {
        pb::workers_client::WorkersClient::new(self.channel.clone())
    }

    /// The Admin service.
    pub fn admin(&self) -> AdminClient {
        pb::admin_client::AdminClient::new(self.channel.clone())
    }

    /// Envoy's rate-limit service, as Envoy's ratelimit filter calls it.
    pub fn rate_limit(&self) -> RateLimitClient {
        envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient::new(self.channel.clone())
    }

    /// `grpc.health.v1.Health`.
    pub fn health(&self) -> HealthClient {
        tonic_health::pb::health_client::HealthClient::new(self.channel.channel.clone())
    }
}

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

/// A chat REST heartbeat for `instance_id` / `process_id`.
pub fn chat_rest_heartbeat(
    instance_id: &str,
    process_id: &str,
    capacity: u32,
    status: ProcessStatus,
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
