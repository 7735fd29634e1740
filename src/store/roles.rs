//! The store's interfaces, one small trait per role: rate limits, the task
//! queue, housekeeping, the process registry, cluster state and analytics.
//! Callers ask only for the roles they use; each backend implements all.

use std::collections::BTreeMap;
use std::future::Future;

use crate::core::analytics::Cells;
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::ProcessRecord;
use crate::core::rls::Check;
use crate::core::{Millis, UserType};

use super::{
    AnalyticsView, DeadLetter, EnqueueOutcome, LeaseRequest, LeasedTask, NewTask, ProcessView, QueueStats, RateBatch,
    RateKey, StoreResult, StoredConfig,
};

/// GCRA arrival times: Level 1's per-subject limits and Envoy's
/// descriptor counters. Each call is atomic on its own.
pub trait RateLimiter: Send + Sync + 'static {
    /// One GCRA step for `subject` of `user_type`, taking `cost` requests.
    fn rate_limit(
        &self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        cost: u32,
        now_us: u64,
    ) -> impl Future<Output = StoreResult<GcraOutcome>> + Send;

    /// One request's GCRA checks decided together and atomically, by the
    /// rule of `core::rls::decide_all`: nothing is written when an
    /// enforcing check is limited or `dry_run` is set. One script call on Redis.
    fn rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> impl Future<Output = StoreResult<RateBatch>> + Send;
}

/// Level 2's task queue: the atomic check-and-enqueue and the lease cycle.
/// Each call is atomic on its own.
pub trait TaskQueue: Send + Sync + 'static {
    /// The atomic check-and-enqueue: admits while `load < limit`.
    fn enqueue(
        &self,
        task: NewTask,
        limit: u64,
        now: Millis,
    ) -> impl Future<Output = StoreResult<EnqueueOutcome>> + Send;

    /// Requeues expired leases, then leases up to `max_tasks`, privileged
    /// first and FIFO within a class, to the request's holder.
    fn lease(&self, request: LeaseRequest, now: Millis) -> impl Future<Output = StoreResult<Vec<LeasedTask>>> + Send;

    /// Completes a task whose lease is held; false when it is not.
    fn complete(&self, task_id: &str, lease_id: &str, now: Millis) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Extends a held lease to `now + lease_ms`; None when it is not held.
    fn extend(
        &self,
        task_id: &str,
        lease_id: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> impl Future<Output = StoreResult<Option<Millis>>> + Send;

    /// Queue depths, leases and dead letters.
    fn queue_stats(&self) -> impl Future<Output = StoreResult<QueueStats>> + Send;

    /// The most recent dead letters, newest first.
    fn dead_letters(&self, limit: usize) -> impl Future<Output = StoreResult<Vec<DeadLetter>>> + Send;

    /// The last load this instance knows of, without I/O (Level 1's view).
    fn cached_load(&self) -> u64;
}

/// The periodic sweep that keeps the store bounded. A role of its own
/// because it spans the others: the queue's leases and idempotency keys,
/// and the rate limits' idle keys.
pub trait Housekeeping: Send + Sync + 'static {
    /// Requeues or dead-letters expired leases, forgets idle rate-limit
    /// keys and expired idempotency keys.
    fn maintain(&self, now: Millis, max_deliveries: u32) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Worker processes' heartbeats, read back for capacity and health.
pub trait ProcessRegistry: Send + Sync + 'static {
    /// Upserts a process record. The backend stamps the receive time
    /// (`now` here; Redis uses its server time).
    fn heartbeat(&self, record: ProcessRecord, now: Millis) -> impl Future<Output = StoreResult<()>> + Send;

    /// All process records not older than `expire_after_ms`; older ones are dropped.
    fn processes(&self, now: Millis, expire_after_ms: Millis) -> impl Future<Output = StoreResult<ProcessView>> + Send;
}

/// What the replicas of a deployment share besides traffic: circuit
/// breaker resets and views, and the runtime config.
pub trait ClusterState: Send + Sync + 'static {
    /// Asks every replica to reset a circuit; answers the new generation.
    fn reset_breaker(&self, name: &str) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Reset generations per circuit.
    fn breaker_generations(&self) -> impl Future<Output = StoreResult<BTreeMap<String, u64>>> + Send;

    /// Publishes this replica's breaker stats (JSON) for the cluster view.
    fn publish_breakers(
        &self,
        replica: &str,
        json: String,
        now: Millis,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every replica's breaker stats published since `since`.
    fn cluster_breakers(&self, since: Millis) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Stores a new runtime config version; the previous one is kept for rollback.
    fn store_config(&self, json: String) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The current runtime config version, if one was ever stored.
    fn load_config(&self) -> impl Future<Output = StoreResult<Option<StoredConfig>>> + Send;
}

/// Throttling analytics: per-minute counts and per-hour heavy hitters, 24 h.
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Adds one flush of local analytics: counts for `minute`, throttled
    /// sessions for that minute's hour. Keeps 24 h.
    fn flush_analytics(
        &self,
        minute: u64,
        cells: Cells,
        sessions: Vec<(String, u64)>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The analytics of the `span_minutes` (at most 24 h) ending with `now_minute`.
    fn analytics(&self, now_minute: u64, span_minutes: u64) -> impl Future<Output = StoreResult<AnalyticsView>> + Send;
}
