//! The connection: one HTTP/2 channel with the caller's bearer token, how it
//! is built ([`ClientBuilder`]), and the generated clients over it.

use std::time::Duration;

use tonic::codegen::Service;
use tonic::codegen::http::{self, HeaderValue};
use tonic::transport::{Channel, Endpoint};

use crate::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use crate::pb;
use crate::retry::RetryPolicy;

/// The deadline of a typed call, retries included, unless the builder sets
/// another ([`ClientBuilder::timeout`], [`Client::with_timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long establishing the connection may take by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The target is not `host:port` or a valid URI.
    #[error("invalid target {0:?}")]
    Target(String),
    /// The token cannot be sent as an HTTP header value.
    #[error("token is not valid header text")]
    Token,
    /// The TCP, TLS or HTTP/2 connection could not be established.
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
        let bearer = token
            .map(|t| {
                let mut value = HeaderValue::try_from(format!("Bearer {t}")).map_err(|_| ConnectError::Token)?;
                value.set_sensitive(true);
                Ok::<_, ConnectError>(value)
            })
            .transpose()?;
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

/// The generated Admission client (Level 1 and Level 2), frontend token.
pub type AdmissionClient = pb::admission_client::AdmissionClient<AuthChannel>;
/// The generated Workers client (heartbeats and the lease cycle), worker token.
pub type WorkersClient = pb::workers_client::WorkersClient<AuthChannel>;
/// The generated Admin client (the operator surface), admin token.
pub type AdminClient = pb::admin_client::AdminClient<AuthChannel>;
/// `envoy.service.ratelimit.v3.RateLimitService` (a frontend token).
pub type RateLimitClient = RateLimitServiceClient<AuthChannel>;
/// `grpc.health.v1` (no auth needed).
pub type HealthClient = tonic_health::pb::health_client::HealthClient<Channel>;

/// One HTTP/2 connection to floodgate with a token, a per-call deadline and
/// a retry policy. Cheap to clone: clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) channel: AuthChannel,
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

/// Builds a [`Client`]: `Client::builder(target).token(..).timeout(..).connect()`.
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    target: String,
    token: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` on every call: a frontend token
    /// for Admission, a worker token for Workers, an admin token for all.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The deadline of every typed call, retries included (default
    /// [`DEFAULT_TIMEOUT`]). `lease_tasks` adds its long-poll wait to it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long establishing the connection may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How `UNAVAILABLE` is retried (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Connects with TLS (`https://` is assumed for a bare `host:port`).
    /// Give the CA with [`tls::ClientTlsConfig::ca_certificate`](crate::tls::ClientTlsConfig::ca_certificate)
    /// and, for mutual TLS, the client's certificate with `identity`.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::tls::ClientTlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    fn endpoint(&self) -> Result<Endpoint, ConnectError> {
        let uri = if self.target.contains("://") {
            self.target.clone()
        } else {
            #[cfg(feature = "tls")]
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            #[cfg(not(feature = "tls"))]
            let scheme = "http";
            format!("{scheme}://{}", self.target)
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|_| ConnectError::Target(self.target.clone()))?
            .tcp_nodelay(true)
            .connect_timeout(self.connect_timeout);
        #[cfg(feature = "tls")]
        let endpoint = match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone())?,
            None => endpoint,
        };
        Ok(endpoint)
    }

    fn client(self, channel: Channel) -> Result<Client, ConnectError> {
        Ok(Client {
            channel: AuthChannel::new(channel, self.token.as_deref())?,
            timeout: self.timeout,
            retry: self.retry,
        })
    }

    /// Connects now; fails if floodgate cannot be reached.
    pub async fn connect(self) -> Result<Client, ConnectError> {
        let channel = self.endpoint()?.connect().await?;
        self.client(channel)
    }

    /// A client that connects on its first call (and reconnects after a
    /// failure): for a frontend that may start before floodgate.
    pub fn connect_lazy(self) -> Result<Client, ConnectError> {
        let channel = self.endpoint()?.connect_lazy();
        self.client(channel)
    }
}

impl Client {
    /// A builder for a client of `target` (`host:port`, `http://host:port`
    /// or `https://host:port`).
    pub fn builder(target: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            target: target.into(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Connects to `target` with `token` and the defaults (plaintext).
    pub async fn connect(target: &str, token: Option<&str>) -> Result<Client, ConnectError> {
        let builder = Client::builder(target);
        match token {
            Some(token) => builder.token(token).connect().await,
            None => builder.connect().await,
        }
    }

    /// A client over a channel built by the caller (custom TLS or transport
    /// settings), with the default deadline and retry policy.
    pub fn from_channel(channel: Channel, token: Option<&str>) -> Result<Client, ConnectError> {
        Ok(Client {
            channel: AuthChannel::new(channel, token)?,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        })
    }

    /// The same connection with another token.
    pub fn with_token(&self, token: Option<&str>) -> Result<Client, ConnectError> {
        Ok(Client { channel: AuthChannel::new(self.channel.channel.clone(), token)?, ..self.clone() })
    }

    /// The same connection with another per-call deadline.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client { timeout, ..self.clone() }
    }

    /// The same connection with another retry policy.
    pub fn with_retry(&self, retry: RetryPolicy) -> Client {
        Client { retry, ..self.clone() }
    }

    /// The per-call deadline of typed calls.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The generated Admission client on this connection and token.
    pub fn admission(&self) -> AdmissionClient {
        pb::admission_client::AdmissionClient::new(self.channel.clone())
    }

    /// The generated Workers client on this connection and token.
    pub fn workers(&self) -> WorkersClient {
        pb::workers_client::WorkersClient::new(self.channel.clone())
    }

    /// The generated Admin client on this connection and token.
    pub fn admin(&self) -> AdminClient {
        pb::admin_client::AdminClient::new(self.channel.clone())
    }

    /// Envoy's rate-limit service, as Envoy's ratelimit filter calls it.
    pub fn rate_limit(&self) -> RateLimitClient {
        RateLimitServiceClient::new(self.channel.clone())
    }

    /// `grpc.health.v1.Health` on this connection (no token sent).
    pub fn health(&self) -> HealthClient {
        tonic_health::pb::health_client::HealthClient::new(self.channel.channel.clone())
    }
}
