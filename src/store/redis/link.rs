//! The connection link every script call goes through: the timeout on
//! each call, the short-circuit while Redis is failing, and WAIT for
//! replicas where admissions must reach them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};

use super::connection::Connection;
use super::shards::ShardGate;
use super::{RedisOptions, TimeSource};
use crate::store::{StoreError, StoreResult};

/// The connection and its failure handling, shared with the GCRA batcher.
pub(super) struct Link {
    /// One node, a Cluster, or the master a Sentinel names.
    pub(super) connection: Connection,
    pub(super) options: RedisOptions,
    /// While Redis is failing, calls fail at once until this instant;
    /// the first call after it is the probe.
    pub(super) down_until: DownUntil,
    pub(super) opened: std::time::Instant,
    /// Replicas each script call's writes must reach (Redis WAIT, on the
    /// same connection) before the call counts as done; 0 = none.
    pub(super) replicas: u32,
    /// How long a failure short-circuits further calls: [`DOWN_WINDOW`], or
    /// zero for rate-limit calls on a Cluster, whose keys live on every
    /// primary: one primary down must not fail the keys of the others.
    pub(super) down_window: Duration,
    /// On a Cluster's rate-limit link only: failures told apart by shard,
    /// and each primary's own short-circuit ([`ShardGate`]).
    pub(super) gate: Option<Arc<ShardGate>>,
}

/// An instant (ms since the link was opened) until which calls fail at
/// once instead of each waiting for the timeout; 0 = none.
#[derive(Debug, Default)]
pub(super) struct DownUntil(AtomicU64);

impl DownUntil {
    /// Whether the window is open at `now_ms`.
    pub(super) fn is_down(&self, now_ms: u64) -> bool {
        now_ms < self.0.load(Ordering::Relaxed)
    }

    /// Opens the window for `window` from `now_ms`.
    pub(super) fn fail(&self, now_ms: u64, window: Duration) {
        self.0.store(now_ms + window.as_millis() as u64, Ordering::Relaxed);
    }
}

/// How long a failure short-circuits further calls (one node's worth of keys).
pub(super) const DOWN_WINDOW: Duration = Duration::from_millis(500);

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Link {
    /// A link over `connection`, its short-circuit closed.
    pub(super) fn new(connection: Connection, options: RedisOptions, replicas: u32, down_window: Duration) -> Link {
        Link {
            connection,
            options,
            down_until: DownUntil::default(),
            opened: std::time::Instant::now(),
            replicas,
            down_window,
            gate: None,
        }
    }

    /// The rate-limit link of a Cluster: no store-wide short-circuit (one
    /// primary down must not fail the keys of the others); failures while
    /// other shards answer are told apart ([`StoreError::ShardUnavailable`])
    /// and short-circuit their own primary ([`ShardGate`]).
    pub(super) fn sharded_rate_limits(cluster: ClusterConnection, options: RedisOptions) -> Link {
        let gate = ShardGate::new(cluster.clone(), options.timeout);
        Link { gate: Some(gate), ..Link::new(Connection::Cluster(cluster), options, 0, Duration::ZERO) }
    }

    /// Milliseconds since the link was opened: the clock of its windows.
    fn since_open_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    pub(super) fn now_arg(&self, now: u64) -> String {
        match self.options.time {
            TimeSource::Server => String::new(),
            TimeSource::Caller => now.to_string(),
        }
    }

    /// Whether keys live on several nodes (a Cluster): then one script call
    /// may only touch keys of one slot, and a batch is split by slot.
    pub(super) fn sharded(&self) -> bool {
        matches!(self.connection, Connection::Cluster(_))
    }

    /// Fails at once while a recent failure's window is open.
    pub(super) fn check_up(&self) -> StoreResult<()> {
        if self.down_until.is_down(self.since_open_ms()) {
            return Err(StoreError::Unavailable("Redis failed recently; retrying shortly".into()));
        }
        Ok(())
    }

    /// Bounds a Redis future by the timeout and classifies its error;
    /// a connection failure opens the short-circuit window.
    pub(super) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        self.check_up()?;
        let result = match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Err(StoreError::Protocol(e.to_string()))
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(StoreError::Unavailable(format!("no answer within {:?}", self.options.timeout))),
        };
        if matches!(result, Err(StoreError::Unavailable(_))) && !self.down_window.is_zero() {
            self.down_until.fail(self.since_open_ms(), self.down_window);
        }
        match &self.gate {
            Some(gate) => gate.witness(result, self.since_open_ms()),
            None => result,
        }
    }

    /// Runs a prepared script invocation (one EVALSHA), bounded by the timeout.
    /// With `replicas`, the call also waits (WAIT, half the timeout) until
    /// that many replicas hold its writes, and fails if they don't. Such a
    /// link runs admission scripts only: on a Cluster WAIT asks the primary
    /// of the admission slot (`options.prefix`'s hash tag).
    pub(super) async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> StoreResult<Value> {
        let mut connection = self.connection.clone();
        let replicas = self.replicas;
        let wait_ms = (self.options.timeout / 2).as_millis().max(1) as u64;
        self.bounded(async move {
            let value = invocation.invoke_async::<Value>(&mut connection).await?;
            if replicas > 0 {
                let wait = redis::cmd("WAIT").arg(replicas).arg(wait_ms).clone();
                let acked: u32 = match &mut connection {
                    // The cluster client would send WAIT to every primary
                    // and answer the fewest replicas: a replica lost on a
                    // rate-limit shard would fail admissions. Only the
                    // admission slot's primary holds this call's writes
                    // (and counts them per connection, the one that sent
                    // them), so WAIT goes to it alone.
                    Connection::Cluster(cluster) => {
                        let route = Route::with_key(&self.options.prefix, SlotAddr::Master);
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                        let reply = cluster.route_command(wait, routing).await?;
                        redis::from_redis_value(reply)?
                    }
                    one_node => wait.query_async(one_node).await?,
                };
                if acked < replicas {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "writes not replicated",
                        format!("{acked} of {replicas} replicas acknowledged within {wait_ms} ms"),
                    )));
                }
            }
            Ok(value)
        })
        .await
    }

    /// Runs a script invocation whose keys live in `slot`: on a Cluster's
    /// rate-limit link, fails at once while the slot's primary is
    /// short-circuited, and short-circuits it when the call fails as one
    /// shard's ([`StoreError::ShardUnavailable`]).
    pub(super) async fn run_in(
        &self,
        slot: Option<Slot>,
        invocation: redis::ScriptInvocation<'_>,
    ) -> StoreResult<Value> {
        let (Some(gate), Some(slot)) = (&self.gate, slot) else { return self.run(invocation).await };
        if gate.is_down(slot, self.since_open_ms()) {
            return Err(StoreError::ShardUnavailable(format!(
                "this key's primary failed within the last {DOWN_WINDOW:?}; retrying shortly"
            )));
        }
        let result = self.run(invocation).await;
        if matches!(result, Err(StoreError::ShardUnavailable(_))) {
            gate.failed(slot, self.since_open_ms());
        }
        result
    }

    /// Runs a pipeline (one round trip), bounded by the timeout.
    pub(super) async fn query<T: redis::FromRedisValue>(&self, pipeline: &redis::Pipeline) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        self.bounded(pipeline.query_async(&mut connection)).await
    }
}
