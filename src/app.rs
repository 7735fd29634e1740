//! Wiring: store, service, background refresh, the gRPC server (with
//! health and reflection), the HTTP shim, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;

use crate::auth::{Authenticator, Role};
use crate::clock::{Clock, SystemClock};
use crate::config::{Settings, StoreUrl};
use crate::grpc::admin::AdminService;
use crate::grpc::admission::AdmissionService;
use crate::grpc::pb::{admin_server::AdminServer, admission_server::AdmissionServer, workers_server::WorkersServer};
use crate::grpc::rls::RateLimitService;
use crate::grpc::rls::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use crate::grpc::workers::WorkersService;
use crate::grpc::{FILE_DESCRIPTOR_SET, RequireRole};
use crate::operations::{Operations, OperationsOptions};
use crate::service::{Floodgate, ServiceOptions};
use crate::store::{AnyStore, MemoryStore, RedisOptions, RedisStore};
use crate::tls::Tls;

/// Starting or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The settings were refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A listener could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A server stopped with an error.
    #[error("server failed: {0}")]
    Serve(String),
    /// The background task (snapshot refresh, housekeeping, config sync)
    /// panicked: the replica stopped serving rather than go on with a
    /// capacity snapshot that no longer refreshes.
    #[error("background task panicked: {0}")]
    Background(String),
    /// The TLS files could not be used.
    #[error("tls: {0}")]
    Tls(String),
}

/// A bound, not yet serving, floodgate.
pub struct App {
    settings: Settings,
    floodgate: Arc<Floodgate>,
    operations: Arc<Operations>,
    grpc: TcpListener,
    http: TcpListener,
    tls: Option<Tls>,
}

/// The gRPC service names that health reports on.
pub const SERVICE_NAMES: [&str; 4] =
    ["floodgate.v1.Admission", "floodgate.v1.Workers", "floodgate.v1.Admin", crate::grpc::rls::SERVICE_NAME];

/// What the service is built with, from the settings.
pub fn service_options(settings: &Settings) -> ServiceOptions {
    ServiceOptions {
        runtime: settings.runtime.clone(),
        shield_capacity: settings.shield_capacity(),
        rls: settings.rls.clone(),
        rls_options: settings.rls_options.clone(),
    }
}

/// What the operator layer is built with, from the settings.
pub fn operations_options(settings: &Settings) -> OperationsOptions {
    OperationsOptions {
        replica_id: settings.replica_id.clone(),
        environment: settings.environment(),
        payload_limit_at_start: settings.runtime.max_payload_bytes,
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
}

impl App {
    /// Checks the settings, opens the store and binds both listeners
    /// (port 0 picks a free port; see [`App::grpc_addr`]).
    pub async fn bind(settings: Settings) -> Result<App, AppError> {
        App::bind_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`App::bind`] with a chosen clock.
    pub async fn bind_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        settings.check()?;
        let tls = settings.tls.as_ref().map(Tls::load).transpose().map_err(|e| AppError::Tls(e.to_string()))?;
        let store = match &settings.store {
            StoreUrl::Memory => AnyStore::Memory(MemoryStore::new()),
            StoreUrl::Redis(url) => {
                let options = RedisOptions {
                    prefix: settings.redis_prefix.clone(),
                    timeout: Duration::from_millis(settings.redis_timeout_ms),
                    min_replicas: settings.redis_min_replicas,
                    time: settings.redis_time,
                    tls: settings.redis_tls.clone(),
                };
                AnyStore::Redis(RedisStore::connect(url, options).await?)
            }
        };
        let floodgate = Arc::new(Floodgate::new(store, service_options(&settings), clock));
        let operations = Arc::new(Operations::new(floodgate.clone(), operations_options(&settings)));
        crate::rls_rules::start(floodgate.rls_rules())
            .map_err(|e| crate::config::ConfigError::Setting(e.to_string()))?;
        if let Err(e) = floodgate.refresh_snapshot().await {
            // Start anyway: health says NOT_SERVING until the store answers.
            tracing::error!(error = %e, "state store unreachable at startup");
        }
        let grpc = bind(settings.grpc_addr).await?;
        let http = bind(settings.http_addr).await?;
        Ok(App { settings, floodgate, operations, grpc, http, tls })
    }

    /// The gRPC listener's address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.settings.grpc_addr)
    }

    /// The HTTP shim's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.settings.http_addr)
    }

    /// The service behind both listeners.
    pub fn floodgate(&self) -> Arc<Floodgate> {
        self.floodgate.clone()
    }

    /// The operator layer over it (Admin RPCs, the HTTP shim, housekeeping).
    pub fn operations(&self) -> Arc<Operations> {
        self.operations.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight calls finish and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let App { settings, floodgate, operations, grpc, http, tls } = self;
        let auth = Authenticator::new(settings.tokens.clone());
        if auth.is_open() {
            tracing::warn!(
                "AUTH IS OFF: no caller tokens configured, every caller may use every RPC. Set FLOODGATE_*_TOKENS before exposing floodgate."
            );
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_on_signal = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_on_signal.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        for name in SERVICE_NAMES {
            health.set_service_status(name, tonic_health::ServingStatus::Serving).await;
        }
        let background =
            tokio::spawn(run_background(operations.clone(), health, settings.snapshot_refresh_ms, stop_rx.clone()));
        // A panic in the background task is reported and stops the server:
        // serving on with a snapshot that never refreshes would decide
        // against stale capacity forever.
        let supervisor = tokio::spawn(supervise(background, stop_tx.clone()));
        // v1 for current tools, v1alpha for grpcurl 1.8 and older clients.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(crate::grpc::rls::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().map_err(|e| AppError::Serve(e.to_string()))?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| AppError::Serve(e.to_string()))?;

        let max_message = settings.runtime.max_payload_bytes as usize + 64 * 1024;
        // A SERVER span per RPC while spans are exported (a pass-through otherwise).
        // And every call of floodgate's RPCs timed by status code.
        let mut builder = Server::builder()
            .layer(crate::rpc_trace::TraceLayer::new(tls.is_some()))
            .layer(floodgate.metrics().rpc_layer());
        if let Some(tls) = &tls {
            builder = builder.tls_config(tls.grpc()).map_err(|e| AppError::Tls(e.to_string()))?;
        }
        let grpc_server = builder
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .concurrency_limit_per_connection(settings.max_concurrent_requests)
            // Past the limit, shed at once (UNAVAILABLE) rather than queue.
            .load_shed(true)
            .add_service(RequireRole::new(
                AdmissionServer::new(AdmissionService::new(floodgate.clone())).max_decoding_message_size(max_message),
                auth.clone(),
                Role::Frontend,
            ))
            .add_service(RequireRole::new(
                WorkersServer::new(WorkersService::new(floodgate.clone())).max_decoding_message_size(max_message),
                auth.clone(),
                Role::Worker,
            ))
            .add_service(RequireRole::new(
                AdminServer::new(AdminService::new(operations.clone())).max_decoding_message_size(max_message),
                auth.clone(),
                Role::Admin,
            ))
            // Envoy's rate-limit filter is a frontend: it decides admission for
            // the chat frontends behind it, with a frontend token sent as
            // static `initial_metadata` of its `grpc_service`.
            .add_service(RequireRole::new(
                RateLimitServiceServer::new(RateLimitService::new(floodgate.clone()))
                    .max_decoding_message_size(max_message),
                auth.clone(),
                Role::Frontend,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(grpc_incoming(grpc), stopped(stop_rx.clone()));

        let router =
            crate::http::router(operations.clone(), auth).layer(crate::rpc_trace::TraceLayer::new(tls.is_some()));
        let http_server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match &tls {
            Some(tls) => Box::pin(
                axum::serve(tls.listener(http), router).with_graceful_shutdown(stopped(stop_rx.clone())).into_future(),
            ),
            None => Box::pin(
                axum::serve(http.tap_io(crate::net::no_delay), router)
                    .with_graceful_shutdown(stopped(stop_rx.clone()))
                    .into_future(),
            ),
        };

        // In-flight calls finish, but a client that never lets its
        // connection go cannot hold the process past the grace period.
        let servers = async { tokio::join!(grpc_server, http_server) };
        let grace = Duration::from_millis(settings.shutdown_grace_ms);
        let deadline = async move {
            stopped(stop_rx.clone()).await;
            tokio::time::sleep(grace).await;
        };
        let (grpc_result, http_result) = tokio::select! {
            results = servers => results,
            _ = deadline => {
                tracing::warn!(grace_ms = settings.shutdown_grace_ms, "connections still open after the grace period; exiting");
                (Ok(()), Ok(()))
            }
        };
        supervisor.await.map_err(|e| AppError::Background(panic_message(e)))??;
        grpc_result.map_err(|e| AppError::Serve(e.to_string()))?;
        http_result.map_err(|e| AppError::Serve(e.to_string()))?;
        tracing::info!("floodgate stopped");
        Ok(())
    }
}

/// The gRPC listener's connections, with `TCP_NODELAY` on (see `net::no_delay`).
fn grpc_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Waits for the background task. It ends by itself only when told to stop;
/// a panic is logged, stops the servers (gracefully) and becomes the
/// error `serve` returns, so the process exits non-zero.
async fn supervise(background: tokio::task::JoinHandle<()>, stop: watch::Sender<bool>) -> Result<(), AppError> {
    match background.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let message = panic_message(e);
            tracing::error!(panic = %message, "background task panicked: stopping the server");
            let _ = stop.send(true);
            Err(AppError::Background(message))
        }
    }
}

/// What a task's panic said (or that it was cancelled).
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// Keeps the capacity snapshot fresh, reports store reachability through
/// `grpc.health.v1`, and runs housekeeping until stopped.
async fn run_background(
    operations: Arc<Operations>,
    health: tonic_health::server::HealthReporter,
    refresh_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut serving = true;
    let mut refresh = tokio::time::interval(Duration::from_millis(refresh_ms.max(10)));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = refresh.tick() => {}
        }
        ticks += 1;
        let reachable = match operations.floodgate().refresh_snapshot().await {
            Ok(_) => true,
            Err(e) => {
                if serving {
                    tracing::error!(error = %e, "state store unreachable: Admission NOT_SERVING, Level 1 fails open, Level 2 fails closed");
                }
                false
            }
        };
        if reachable != serving {
            serving = reachable;
            let status =
                if serving { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
            for name in SERVICE_NAMES {
                health.set_service_status(name, status).await;
            }
            if serving {
                tracing::info!("state store reachable again: serving");
            }
        }
        if !reachable {
            continue;
        }
        // Live config from other replicas applies within one refresh.
        if let Err(e) = operations.sync_config().await {
            tracing::warn!(error = %e, "config sync failed");
        }
        // Housekeeping about once a second.
        if ticks.is_multiple_of((1_000 / refresh_ms.clamp(10, 1_000)).max(1))
            && let Err(e) = operations.housekeeping().await
        {
            tracing::warn!(error = %e, "housekeeping failed");
        }
    }
}
