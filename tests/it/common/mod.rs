//! Test harness: the real server on 127.0.0.1:0 with real tonic clients,
//! on the embedded store or on a private redis-server.

pub mod http;
pub mod pki;
pub mod process;
pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;

use floodgate::app::App;
use floodgate::auth::Tokens;
use floodgate::clock::{Clock, SystemClock};
use floodgate::config::{Profile, RuntimeConfig, Settings, StoreUrl};
use floodgate::operations::Operations;
use floodgate::service::Floodgate;
use floodgate_client::{AdminClient, AdmissionClient, Client, WorkersClient, pb};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin-token";
pub const FRONTEND: &str = "frontend-token";
pub const WORKER: &str = "worker-token";

pub fn tokens() -> Tokens {
    Tokens { admin: vec![ADMIN.into()], frontend: vec![FRONTEND.into()], worker: vec![WORKER.into()] }
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
}

/// A running floodgate; stopped gracefully on drop of the sender.
pub struct Server {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub floodgate: Arc<Floodgate>,
    pub operations: Arc<Operations>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    /// The private redis-server, stopped after the floodgate.
    pub redis: Option<redis::RedisServer>,
}

impl Server {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Settings for a test: port 0, tokens on, the profile's runtime with
/// `overrides` (TOML) merged over it.
pub fn settings(profile: Profile, overrides: &str) -> Settings {
    let mut settings = Settings::for_profile(profile);
    settings.grpc_addr = "127.0.0.1:0".parse().unwrap();
    settings.http_addr = "127.0.0.1:0".parse().unwrap();
    settings.tokens = tokens();
    settings.snapshot_refresh_ms = 50;
    // Replicas in one test process need distinct ids (the default is host + pid).
    static REPLICA: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    settings.replica_id = format!("test-replica-{}", REPLICA.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    // Tests that overload on purpose must not trip the backpressure circuit
    // unless they are about it: they set [breakers.backpressure] themselves.
    let harness: toml::Table = toml::from_str("[breakers.backpressure]\nfailure_threshold = 1000000").unwrap();
    let overrides: toml::Table = toml::from_str(overrides).expect("overrides are TOML");
    settings.runtime =
        RuntimeConfig::for_profile(profile).merged(harness).and_then(|r| r.merged(overrides)).expect("valid overrides");
    settings
}

pub async fn start(profile: Profile, overrides: &str) -> Server {
    start_on(Backend::Memory, profile, overrides).await
}

/// Starts floodgate on `backend`; Redis gets its own fresh server.
pub async fn start_on(backend: Backend, profile: Profile, overrides: &str) -> Server {
    backend_server(backend, settings(profile, overrides), Arc::new(SystemClock)).await
}

/// [`start_with`] on `backend`.
pub async fn backend_server(backend: Backend, mut settings: Settings, clock: Arc<dyn Clock>) -> Server {
    let redis = (backend == Backend::Redis).then(redis::RedisServer::start);
    if let Some(redis) = &redis {
        settings.store = StoreUrl::Redis(redis.url());
    }
    let mut server = start_with(settings, clock).await;
    server.redis = redis;
    server
}

pub async fn start_with(settings: Settings, clock: Arc<dyn Clock>) -> Server {
    let app = App::bind_with_clock(settings, clock).await.expect("server binds");
    let (grpc, http, floodgate, operations) = (app.grpc_addr(), app.http_addr(), app.floodgate(), app.operations());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.serve(async move {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    Server { grpc, http, floodgate, operations, stop: Some(stop), handle: Some(handle), redis: None }
}

pub async fn connect(server: &Server, token: Option<&str>) -> Client {
    Client::connect(&server.grpc.to_string(), token).await.expect("connects")
}

pub struct Clients {
    pub admission: AdmissionClient,
    pub workers: WorkersClient,
    pub admin: AdminClient,
}

pub async fn clients(server: &Server) -> Clients {
    let client = connect(server, None).await;
    Clients {
        admission: client.with_token(Some(FRONTEND)).unwrap().admission(),
        workers: client.with_token(Some(WORKER)).unwrap().workers(),
        admin: client.with_token(Some(ADMIN)).unwrap().admin(),
    }
}

pub fn heartbeat(instance: &str, process: &str, status: pb::ProcessStatus) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        instance_id: instance.into(),
        process_id: process.into(),
        service_type: "chat".into(),
        service_name: "rest".into(),
        load: 0,
        capacity: 5,
        status: status.into(),
    }
}

pub fn enqueue(user_type: pb::UserType, subject: &str) -> pb::EnqueueAtomicRequest {
    pb::EnqueueAtomicRequest {
        user_type: user_type.into(),
        subject: subject.into(),
        transport: pb::Transport::Rest.into(),
        route: "/landing/chat".into(),
        payload: subject.as_bytes().to_vec(),
        ..Default::default()
    }
}

pub fn check(user_type: pb::UserType, subject: &str) -> pb::CheckCapacityRequest {
    pb::CheckCapacityRequest {
        user_type: user_type.into(),
        subject: subject.into(),
        transport: pb::Transport::Websocket.into(),
        route: "/socket.io/chat".into(),
        ..Default::default()
    }
}

pub fn lease(max_tasks: u32, lease_ms: u64) -> pb::LeaseTasksRequest {
    pb::LeaseTasksRequest { instance_id: "i1".into(), process_id: "p1".into(), max_tasks, lease_ms, wait_ms: 0 }
}

/// The live load, from the store.
pub async fn load(server: &Server) -> u64 {
    server.floodgate.queue_stats().await.unwrap().load()
}

/// Sends `n` registered enqueues at once (subjects `r{round}-{i}`), the
/// i-th through `admission[i % admission.len()]`; answers how many were
/// admitted. The race every exactness test runs.
pub async fn concurrent_enqueues(admission: &[AdmissionClient], round: usize, n: usize) -> usize {
    let calls = (0..n).map(|i| {
        let mut admission = admission[i % admission.len()].clone();
        tokio::spawn(async move {
            admission
                .enqueue_atomic(enqueue(pb::UserType::Registered, &format!("r{round}-{i}")))
                .await
                .unwrap()
                .into_inner()
        })
    });
    let answers = futures_util::future::join_all(calls).await;
    answers.into_iter().filter(|a| a.as_ref().unwrap().decision() == pb::Decision::Admit).count()
}

/// Expands each named test body (`async fn name(backend: Backend)`) into a
/// `memory::name` and a `redis::name` test: one contract, both stores.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Memory).await } )*
        }
        mod redis {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Redis).await } )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_stores;
