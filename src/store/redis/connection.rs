//! The connection to the Redis store: one node (`redis://`, `rediss://`,
//! `redis+unix://`), a Cluster (`redis-cluster://`, `rediss-cluster://`) or
//! the master a Sentinel names (`redis+sentinel://`, `rediss+sentinel://`).
//! The URL is parsed in `config::redis`; here its forms are handed to the
//! crate's one-node, cluster and sentinel clients (no protocol code of our own).
//!
//! Every form connects lazily: opening the store never fails because Redis
//! is down; calls fail (within the store's timeout) until it is back.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::sync::lock;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates,
    TlsMode, Value,
};

use crate::config::redis::{RedisTlsFiles, RedisUrl, SentinelUrl};

/// Reads the TLS files; `None` when none is set (the crate's defaults).
fn certificates(files: &RedisTlsFiles) -> Result<Option<TlsCertificates>, String> {
    if !files.is_set() {
        return Ok(None);
    }
    let read = |field: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))
    };
    let root_cert = files.ca.as_ref().map(|p| read("redis_ca_file", p)).transpose()?;
    let client_tls = match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("redis_client_cert", cert)?,
            client_key: read("redis_client_key", key)?,
        }),
        (None, None) => None,
        _ => return Err("redis_client_cert and redis_client_key: set both or neither".into()),
    };
    Ok(Some(TlsCertificates { client_tls, root_cert }))
}

/// The connection of the store: cheap to clone, multiplexed, reconnecting.
#[derive(Clone)]
pub(crate) enum Connection {
    /// One node behind the crate's auto-reconnecting manager.
    Single(ConnectionManager),
    /// The crate's cluster client: routes each command by its first key's
    /// slot and follows MOVED / ASK and topology changes.
    Cluster(ClusterConnection),
    /// The master that the Sentinels name, looked up again after a failure.
    Sentinel(SentinelConnection),
}

impl Connection {
    /// A lazy connection for `url`: nothing is dialled until the first call.
    pub(crate) fn open(url: &RedisUrl, tls: &RedisTlsFiles, timeout: Duration) -> Result<Connection, String> {
        if tls.is_set() && !url.tls() {
            return Err(
                "redis_ca_file / redis_client_cert / redis_client_key are for TLS URLs (rediss://, rediss-cluster://, rediss+sentinel://)".into(),
            );
        }
        let certificates = certificates(tls)?;
        let bad = |e: RedisError| format!("bad Redis settings: {e}");
        match url {
            RedisUrl::Single { url, .. } => {
                let client = match certificates {
                    Some(certificates) => redis::Client::build_with_tls(url.as_str(), certificates),
                    None => redis::Client::open(url.as_str()),
                }
                .map_err(bad)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(2));
                Ok(Connection::Single(ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?))
            }
            RedisUrl::Cluster { nodes, .. } => {
                let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .retries(3)
                    .min_retry_wait(20)
                    .max_retry_wait(200)
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client = builder.build().map_err(bad)?;
                let config = ClusterConfig::new().set_connection_timeout(timeout).set_response_timeout(timeout);
                Ok(Connection::Cluster(client.get_pending_async_connection_with_config(config)))
            }
            RedisUrl::Sentinel(s) => Ok(Connection::Sentinel(SentinelConnection::new(s, certificates, timeout)?)),
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => {
                Box::pin(c.call(move |mut master| async move { master.req_packed_command(cmd).await }))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Sentinel(c) => Box::pin(
                c.call(move |mut master| async move { master.req_packed_commands(pipeline, offset, count).await }),
            ),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
            Connection::Sentinel(c) => c.shared.db,
        }
    }
}

/// A multiplexed connection to the master the Sentinels name. A connection
/// error, a timeout, or a READONLY / LOADING / MASTERDOWN answer (the node
/// was demoted or is restarting) drops it; the next call asks the Sentinels
/// again, so after a failover the store follows the new master.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<SentinelShared>,
}

struct SentinelShared {
    /// Looks up the master; used by one lookup task at a time.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    /// The current master connection and its generation.
    master: std::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Generations only grow, so a late failure of an old connection
    /// never drops a newer one.
    generations: AtomicU64,
    /// Whether a lookup task is running.
    looking: AtomicBool,
    /// Counts finished lookups; callers wait on it.
    lookups: tokio::sync::watch::Sender<u64>,
    /// Why the last lookup failed, for the callers that waited on it.
    last_failure: std::sync::Mutex<Option<RedisError>>,
    /// The store's bound on a call: an abandoned call that waited this long
    /// is taken for a hung master.
    timeout: Duration,
    db: i64,
}

impl SentinelConnection {
    fn new(url: &SentinelUrl, certificates: Option<TlsCertificates>, timeout: Duration) -> Result<Self, String> {
        let addresses = url.sentinels.iter().map(|(host, port)| {
            if url.tls {
                ConnectionAddr::TcpTls { host: host.clone(), port: *port, insecure: false, tls_params: None }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut builder = SentinelClientBuilder::new(addresses, &url.service, SentinelServerType::Master)
            .map_err(|e| format!("bad Sentinel settings: {e}"))?
            .set_client_to_redis_db(url.db);
        if let Some(username) = &url.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &url.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(username) = &url.sentinel_username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = &url.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if url.tls {
            builder =
                builder.set_client_to_redis_tls_mode(TlsMode::Secure).set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(certificates) = certificates {
                builder = builder
                    .set_client_to_redis_certificates(certificates.clone())
                    .set_client_to_sentinel_certificates(certificates);
            }
        }
        let sentinel = builder.build().map_err(|e| format!("bad Sentinel settings: {e}"))?;
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
        Ok(SentinelConnection {
            shared: Arc::new(SentinelShared {
                sentinel: tokio::sync::Mutex::new(sentinel),
                config,
                master: std::sync::Mutex::new(None),
                generations: AtomicU64::new(0),
                looking: AtomicBool::new(false),
                lookups: tokio::sync::watch::Sender::new(0),
                last_failure: std::sync::Mutex::new(None),
                timeout,
                db: url.db,
            }),
        })
    }

    /// Runs `call` on the master's connection, dropping that connection
    /// when the call shows it no longer leads to a master (or is abandoned
    /// after waiting half the store's timeout: a hung master).
    async fn call<T, F, Fut>(&self, call: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, master) = self.shared.master().await?;
        let started = std::time::Instant::now();
        let mut pending = Pending { shared: &self.shared, generation, started, settled: false };
        let result = call(master).await;
        pending.settled = true;
        if let Err(e) = &result
            && master_lost(e)
        {
            self.shared.forget(generation);
        }
        result
    }
}

/// Forgets the master connection if its call is dropped before it ends
/// after a long wait (the store's timeout gave up on it). A call its caller
/// cancelled early says nothing about the master.
struct Pending<'a> {
    shared: &'a SentinelShared,
    generation: u64,
    started: std::time::Instant,
    settled: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled && self.started.elapsed() >= self.shared.timeout / 2 {
            self.shared.forget(self.generation);
        }
    }
}

impl SentinelShared {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        lock(&self.master).clone()
    }

    /// The master's connection, asking the Sentinels when there is none.
    /// The lookup runs in a task of its own, so that it finishes even when
    /// the callers waiting on it give up (a dead Sentinel listed first can
    /// make one lookup outlast a call's timeout).
    async fn master(self: &Arc<Self>) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut finished = self.lookups.subscribe();
        if !self.looking.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().look_up());
        }
        // A lookup may have ended between the first look and subscribing.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _ = finished.changed().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let failure = lock(&self.last_failure).clone();
        Err(failure.unwrap_or_else(|| (redis::ErrorKind::Io, "no master connection").into()))
    }

    /// Asks the Sentinels for the master and connects to it (bounded by
    /// `LOOKUP_LIMIT`); wakes the waiting callers either way.
    async fn look_up(self: Arc<Self>) {
        let lookup = async {
            let mut sentinel = self.sentinel.lock().await;
            let client = sentinel.async_get_client().await?;
            client.get_multiplexed_async_connection_with_config(&self.config).await
        };
        let result = match tokio::time::timeout(LOOKUP_LIMIT, lookup).await {
            Ok(result) => result,
            Err(_) => Err((redis::ErrorKind::Io, "Sentinel lookup timed out").into()),
        };
        match result {
            Ok(connection) => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                *lock(&self.master) = Some((generation, connection));
            }
            Err(e) => {
                tracing::warn!(error = %e, "Redis Sentinel: no master found; asking again on the next call");
                *lock(&self.last_failure) = Some(e);
            }
        }
        self.looking.store(false, Ordering::Release);
        self.lookups.send_modify(|n| *n += 1);
    }

    /// Drops the connection of `generation` (not a newer one).
    fn forget(&self, generation: u64) {
        let mut master = lock(&self.master);
        if master.as_ref().is_some_and(|(g, _)| *g == generation) {
            *master = None;
        }
    }
}

/// Longest a Sentinel lookup (ask the Sentinels, connect to the master) may take.
const LOOKUP_LIMIT: Duration = Duration::from_secs(10);

/// Whether an error means the connection no longer leads to a master.
fn master_lost(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown)
        )
        || matches!(e.code(), Some("READONLY" | "LOADING" | "MASTERDOWN"))
}
