//! The store chosen at startup, [`AnyStore`]: every role dispatched to the
//! embedded or the Redis backend, with a tracing span around Redis calls.

use std::collections::BTreeMap;

use tracing::Instrument as _;

use crate::core::analytics::Cells;
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::ProcessRecord;
use crate::core::rls::Check;
use crate::core::{Millis, UserType};

use super::{
    AnalyticsStore, AnalyticsView, ClusterState, DeadLetter, EnqueueOutcome, Housekeeping, LeaseRequest, LeasedTask,
    MemoryStore, NewTask, ProcessRegistry, ProcessView, QueueStats, RateBatch, RateKey, RateLimiter, RedisStore,
    StoreResult, StoredConfig, TaskQueue,
};

/// The store chosen at startup. An enum rather than a trait object so the
/// hot path pays no boxing; every variant implements every role.
#[allow(clippy::large_enum_variant)] // one per process, never moved on the hot path
pub enum AnyStore {
    /// The embedded store.
    Memory(MemoryStore),
    /// The Redis store.
    Redis(RedisStore),
}

/// Calls the backend. A Redis call made inside a traced call runs in a
/// CLIENT span named by what it sends (`operation`: the command, then the
/// script's name); a memory call gets none, since a span would cost more
/// than the call it describes.
macro_rules! dispatch {
    ($self:ident, $operation:literal, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($store) => $call.await,
            AnyStore::Redis($store) => $call.instrument(crate::rpc_trace::redis_span($operation)).await,
        }
    };
}

impl RateLimiter for AnyStore {
    async fn rate_limit(
        &self,
        user_type: UserType,
        subject: &str,
        limit: RateLimit,
        cost: u32,
        now_us: u64,
    ) -> StoreResult<GcraOutcome> {
        dispatch!(self, "EVALSHA gcra", s => s.rate_limit(user_type, subject, limit, cost, now_us))
    }
    async fn rate_limit_all(
        &self,
        checks: &[(RateKey<'_>, Check)],
        dry_run: bool,
        now_us: u64,
    ) -> StoreResult<RateBatch> {
        dispatch!(self, "EVALSHA rls", s => s.rate_limit_all(checks, dry_run, now_us))
    }
}

impl TaskQueue for AnyStore {
    async fn enqueue(&self, task: NewTask, limit: u64, now: Millis) -> StoreResult<EnqueueOutcome> {
        dispatch!(self, "EVALSHA enqueue", s => s.enqueue(task, limit, now))
    }
    async fn lease(&self, request: LeaseRequest, now: Millis) -> StoreResult<Vec<LeasedTask>> {
        dispatch!(self, "EVALSHA lease", s => s.lease(request, now))
    }
    async fn complete(&self, task_id: &str, lease_id: &str, now: Millis) -> StoreResult<bool> {
        dispatch!(self, "EVALSHA complete", s => s.complete(task_id, lease_id, now))
    }
    async fn extend(
        &self,
        task_id: &str,
        lease_id: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> StoreResult<Option<Millis>> {
        dispatch!(self, "EVALSHA extend", s => s.extend(task_id, lease_id, lease_ms, now))
    }
    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        dispatch!(self, "EVALSHA stats", s => s.queue_stats())
    }
    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        dispatch!(self, "LRANGE", s => s.dead_letters(limit))
    }
    fn cached_load(&self) -> u64 {
        match self {
            AnyStore::Memory(s) => s.cached_load(),
            AnyStore::Redis(s) => s.cached_load(),
        }
    }
}

impl Housekeeping for AnyStore {
    async fn maintain(&self, now: Millis, max_deliveries: u32) -> StoreResult<()> {
        dispatch!(self, "EVALSHA lease", s => s.maintain(now, max_deliveries))
    }
}

impl ProcessRegistry for AnyStore {
    async fn heartbeat(&self, record: ProcessRecord, now: Millis) -> StoreResult<()> {
        dispatch!(self, "EVALSHA heartbeat", s => s.heartbeat(record, now))
    }
    async fn processes(&self, now: Millis, expire_after_ms: Millis) -> StoreResult<ProcessView> {
        dispatch!(self, "EVALSHA processes", s => s.processes(now, expire_after_ms))
    }
}

impl ClusterState for AnyStore {
    async fn reset_breaker(&self, name: &str) -> StoreResult<u64> {
        dispatch!(self, "HINCRBY", s => s.reset_breaker(name))
    }
    async fn breaker_generations(&self) -> StoreResult<BTreeMap<String, u64>> {
        dispatch!(self, "HGETALL", s => s.breaker_generations())
    }
    async fn publish_breakers(&self, replica: &str, json: String, now: Millis) -> StoreResult<()> {
        dispatch!(self, "HSET", s => s.publish_breakers(replica, json, now))
    }
    async fn cluster_breakers(&self, since: Millis) -> StoreResult<Vec<String>> {
        dispatch!(self, "HGETALL", s => s.cluster_breakers(since))
    }
    async fn store_config(&self, json: String) -> StoreResult<u64> {
        dispatch!(self, "EVALSHA config", s => s.store_config(json))
    }
    async fn load_config(&self) -> StoreResult<Option<StoredConfig>> {
        dispatch!(self, "GET", s => s.load_config())
    }
}

impl AnalyticsStore for AnyStore {
    async fn flush_analytics(&self, minute: u64, cells: Cells, sessions: Vec<(String, u64)>) -> StoreResult<()> {
        dispatch!(self, "PIPELINE", s => s.flush_analytics(minute, cells, sessions))
    }
    async fn analytics(&self, now_minute: u64, span_minutes: u64) -> StoreResult<AnalyticsView> {
        dispatch!(self, "PIPELINE", s => s.analytics(now_minute, span_minutes))
    }
}
