//! The connection link every script call goes through: the timeout on
//! each call, the short-circuit while Redis is failing, and WAIT for
//! replicas where admissions must reach them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
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
    /// While Redis is failing, calls fail at once until this instant (ms
    /// since the store was opened) instead of each waiting for the timeout;
    /// the first call after it is the probe.
    pub(super) down_until_ms: AtomicU64,
    pub(super) opened: std::time::Instant,
    /// Replicas each script call's writes must reach (Redis WAIT, on the
    /// same connection) before the call counts as done; 0 = none.
    pub(super) replicas: u32,
    /// How long a failure short-circuits further calls: [`DOWN_WINDOW`], or
    /// zero for rate-limit calls on a Cluster, whose keys live on every
    /// primary: one primary down must not fail the keys of the others.
    pub(super) down_window: Duration,
    /// On a Cluster's rate-limit link only: when a call last succeeded (ms
    /// since the store was opened, plus one; 0 = never). A failure within
    /// [`SHARD_WITNESS`] of it is one shard's ([`StoreError::ShardUnavailable`]):
    /// another primary answered, so the store as a whole is up. One node
    /// (standalone, Sentinel) has no such witness: its failure is the store's.
    pub(super) last_success: Option<AtomicU64>,
    /// On a Cluster's rate-limit link only: the per-primary short-circuit
    /// ([`ShardGate`]) that `run_in` consults.
    pub(super) gate: Option<Arc<ShardGate>>,
}

/// How long a failure short-circuits further calls (one node's worth of keys).
pub(super) const DOWN_WINDOW: Duration = Duration::from_millis(500);

/// How recent a success must be for a failure to count as one shard's (ms).
pub(super) const SHARD_WITNESS: u64 = 1_000;

/// Whether a failure at `now_ms` is one shard's: a call succeeded at most
/// [`SHARD_WITNESS`] before it (`last_success` is that instant plus one,
/// 0 for never). The success may have been on the failing shard itself just
/// before it died: then the first second of a whole-Cluster outage is
/// taken for one shard's and the store circuit hears of it a second late.
pub(super) fn shard_local(last_success: u64, now_ms: u64) -> bool {
    last_success != 0 && now_ms < last_success + SHARD_WITNESS
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl Link {
    /// A link over `connection`, its short-circuit closed.
    pub(super) fn new(connection: Connection, options: RedisOptions, replicas: u32, down_window: Duration) -> Link {
        Link {
            connection,
            options,
            down_until_ms: AtomicU64::new(0),
            opened: std::time::Instant::now(),
            replicas,
            down_window,
            last_success: None,
            gate: None,
        }
    }

    /// The rate-limit link of a Cluster: no short-circuit (one primary down
    /// must not fail the keys of the others), and failures while other
    /// shards answer are told apart ([`StoreError::ShardUnavailable`]).
    /// A primary whose call failed so is short-circuited on its own
    /// ([`ShardGate`]); the slot map is read here, from a task.
    pub(super) fn sharded_rate_limits(connection: Connection, options: RedisOptions) -> Link {
        let gate = Arc::new(ShardGate::default());
        if let Connection::Cluster(cluster) = &connection {
            gate.refresh(cluster.clone(), options.timeout);
        }
        Link {
            last_success: Some(AtomicU64::new(0)),
            gate: Some(gate),
            ..Link::new(connection, options, 0, Duration::ZERO)
        }
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
        let since_open = self.opened.elapsed().as_millis() as u64;
        if since_open < self.down_until_ms.load(Ordering::Relaxed) {
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
            let until = self.opened.elapsed() + self.down_window;
            self.down_until_ms.store(until.as_millis() as u64, Ordering::Relaxed);
        }
        match &self.last_success {
            Some(last_success) => self.witness(last_success, result),
            None => result,
        }
    }

    /// On a Cluster's rate-limit link: notes a success, or names a failure
    /// one shard's when a call succeeded within [`SHARD_WITNESS`] before it.
    fn witness<T>(&self, last_success: &AtomicU64, result: StoreResult<T>) -> StoreResult<T> {
        let now_ms = self.opened.elapsed().as_millis() as u64;
        match result {
            Ok(value) => {
                // A read first, not a read-modify-write per call: calls that
                // finish within the same millisecond share one store. Two
                // racing stores may set it back a millisecond; harmless.
                if last_success.load(Ordering::Relaxed) <= now_ms {
                    last_success.store(now_ms + 1, Ordering::Relaxed);
                }
                Ok(value)
            }
            Err(StoreError::Unavailable(e)) if shard_local(last_success.load(Ordering::Relaxed), now_ms) => {
                Err(StoreError::ShardUnavailable(e))
            }
            Err(e) => Err(e),
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
    /// short-circuited, and short-circuits it (reading the slot map again
    /// when the slot's primary is not known) when the call fails as one
    /// shard's ([`StoreError::ShardUnavailable`]).
    pub(super) async fn run_in(
        &self,
        slot: Option<Slot>,
        invocation: redis::ScriptInvocation<'_>,
    ) -> StoreResult<Value> {
        let (Some(gate), Some(slot)) = (&self.gate, slot) else { return self.run(invocation).await };
        let since_open = || self.opened.elapsed().as_millis() as u64;
        if gate.is_down(slot, since_open()) {
            return Err(StoreError::ShardUnavailable(format!(
                "this key's primary failed within the last {DOWN_WINDOW:?}; retrying shortly"
            )));
        }
        let result = self.run(invocation).await;
        if matches!(result, Err(StoreError::ShardUnavailable(_)))
            && !gate.failed(slot, since_open())
            && let Connection::Cluster(cluster) = &self.connection
        {
            gate.refresh(cluster.clone(), self.options.timeout);
        }
        result
    }

    /// Runs a pipeline (one round trip), bounded by the timeout.
    pub(super) async fn query<T: redis::FromRedisValue>(&self, pipeline: &redis::Pipeline) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        self.bounded(pipeline.query_async(&mut connection)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_shards_only_within_a_second_of_a_success() {
        assert!(!shard_local(0, 0), "nothing ever answered: the store's failure");
        assert!(!shard_local(0, 5_000));
        // A success at 2 000 ms is stored as 2 001.
        assert!(shard_local(2_001, 2_000), "a failure at the same instant");
        assert!(shard_local(2_001, 2_500));
        assert!(shard_local(2_001, 3_000), "exactly a second later");
        assert!(!shard_local(2_001, 3_001), "more than a second later: the store's failure");
        assert!(!shard_local(2_001, 60_000));
    }
}
