//! State stores: one trait, an embedded in-memory backend and a shared
//! Redis backend. Stores persist and apply atomically; the rules they apply
//! (limits, GCRA, health) come from `crate::core`.

pub mod memory;
pub mod rate;
pub mod redis;

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;
use tracing::Instrument as _;

use crate::core::analytics::Cells;
use crate::core::gcra::{GcraOutcome, RateLimit};
use crate::core::health::ProcessRecord;
use crate::core::rls::Check;
use crate::core::{Millis, UserType};

pub use self::redis::{RedisOptions, RedisStore, RedisTlsFiles, TimeSource};
pub use memory::MemoryStore;

/// Process records with the store's clock reading, so that health is
/// judged against the same clock that stamped the heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessView {
    /// Every live process record.
    pub records: Vec<ProcessRecord>,
    /// The store's clock when they were read.
    pub now_ms: Millis,
}

/// A chat task to enqueue if the limit allows.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The task's class (its queue).
    pub user_type: UserType,
    /// The chat task, handed to a worker as is.
    pub payload: Vec<u8>,
    /// When set, a second enqueue with the same key returns the first answer.
    pub idempotency_key: Option<String>,
    /// How long the key remembers that answer.
    pub idempotency_ttl_ms: Millis,
}

/// The answer of the atomic check-and-enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Counted and queued; `load` is the load including this task.
    Admitted {
        /// The new task.
        task_id: String,
        /// Tasks ahead of it in its queue.
        queue_position: u64,
        /// The load with this task.
        load: u64,
    },
    /// The idempotency key was seen: the first answer, nothing enqueued.
    Duplicate {
        /// The task the first call admitted.
        task_id: String,
        /// Tasks ahead of it in its queue.
        queue_position: u64,
        /// The load now.
        load: u64,
    },
    /// `load` had reached the limit; nothing changed.
    Refused {
        /// The load that was at the limit.
        load: u64,
    },
}

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    /// Most tasks to hand out.
    pub max_tasks: u32,
    /// How long the worker holds them.
    pub lease_ms: Millis,
    /// Deliveries after which an expired lease dead-letters its task.
    pub max_deliveries: u32,
}

/// A task handed to a worker until `lease_expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedTask {
    /// The task.
    pub task_id: String,
    /// This delivery's lease; completing or extending needs it.
    pub lease_id: String,
    /// The chat task as enqueued.
    pub payload: Vec<u8>,
    /// The task's class.
    pub user_type: UserType,
    /// When it was admitted.
    pub enqueued_at_ms: Millis,
    /// Deliveries so far, this one included.
    pub delivery_count: u32,
    /// When the lease ends unless extended.
    pub lease_expires_at_ms: Millis,
}

/// A task that exhausted its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The task.
    pub task_id: String,
    /// The task's class.
    pub user_type: UserType,
    /// When it was admitted.
    pub enqueued_at_ms: Millis,
    /// Deliveries it had.
    pub delivery_count: u32,
    /// When it was dead-lettered.
    pub dead_at_ms: Millis,
}

/// A fresh task or lease id: a random UUID, 32 hex digits.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Dead letters kept for inspection (the oldest are dropped past this),
/// so a burst of poison tasks cannot grow memory without bound.
pub const DEAD_LETTERS_KEPT: usize = 10_000;

/// Queue depths: what makes up the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct QueueStats {
    /// Waiting tasks per user type, indexed by [`UserType::index`].
    pub queued: [u64; 3],
    /// Tasks leased and not yet completed.
    pub leased: u64,
    /// Dead-lettered tasks kept.
    pub dead_letters: u64,
    /// When the task at the head of each queue (the next leased, the
    /// longest waiting) was enqueued, indexed like `queued`; None when empty.
    pub oldest_enqueued_at_ms: [Option<Millis>; 3],
}

impl QueueStats {
    /// `L` = queued + leased.
    pub fn load(&self) -> u64 {
        self.queued.iter().sum::<u64>() + self.leased
    }

    /// How long each queue's oldest task has waited at `now_ms` (None when
    /// the queue is empty; 0 for a time ahead of `now_ms`).
    pub fn oldest_task_age_ms(&self, now_ms: Millis) -> [Option<Millis>; 3] {
        self.oldest_enqueued_at_ms.map(|at| at.map(|at| now_ms.saturating_sub(at)))
    }
}

/// A store operation failed. The core's policy decides what that means.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or timed out; retrying may work.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// One shard of a Redis Cluster could not be reached or timed out
    /// while another shard answered within the last second: the keys of
    /// that shard fail, the store as a whole does not. Only a Cluster's
    /// rate-limit calls (Level 1, Envoy RLS) say so; retrying may work.
    #[error("state store shard unavailable: {0}")]
    ShardUnavailable(String),
    /// The store answered something floodgate cannot read.
    #[error("state store answered unexpectedly: {0}")]
    Protocol(String),
}

impl StoreError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::ShardUnavailable(_))
    }

    /// Whether only one shard's keys failed (the store as a whole answers).
    pub fn is_shard_local(&self) -> bool {
        matches!(self, StoreError::ShardUnavailable(_))
    }
}

/// Throttling analytics as the store holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnalyticsView {
    /// (minute since the epoch, counts) for the last 24 h.
    pub minutes: Vec<(u64, Cells)>,
    /// (hour since the epoch, heavy hitters) for the last 24 h.
    pub top_by_hour: Vec<(u64, Vec<(String, u64)>)>,
}

/// The runtime config version stored for every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    /// The version, increasing with every update.
    pub version: u64,
    /// The runtime config as JSON.
    pub json: String,
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Whose arrival time a GCRA check reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey<'a> {
    /// Level 1's key of a user type and subject (the one `rate_limit` uses).
    User(UserType, &'a str),
    /// An Envoy descriptor's counter (`core::rls::counter_key`).
    Descriptor(&'a str),
}

impl<'a> RateKey<'a> {
    /// The subject or counter, without its group.
    pub fn name(&self) -> &'a str {
        match self {
            RateKey::User(_, subject) => subject,
            RateKey::Descriptor(counter) => counter,
        }
    }
}

/// The outcomes of one request's GCRA checks, in order, and the store's
/// clock reading they were decided at (Redis TIME on a shared store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBatch {
    /// One outcome per check, in order.
    pub outcomes: Vec<GcraOutcome>,
    /// The store's clock, µs.
    pub now_us: u64,
}

/// The operations every backend provides, each atomic on its own.
pub trait Store: Send + Sync + 'static {
    /// Upserts a process record. The backend stamps the receive time
    /// (`now` here; Redis uses its server time).
    fn heartbeat(&self, record: ProcessRecord, now: Millis) -> impl Future<Output = StoreResult<()>> + Send;

    /// All process records not older than `expire_after_ms`; older ones are dropped.
    fn processes(&self, now: Millis, expire_after_ms: Millis) -> impl Future<Output = StoreResult<ProcessView>> + Send;

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

    /// The atomic check-and-enqueue: admits while `load < limit`.
    fn enqueue(
        &self,
        task: NewTask,
        limit: u64,
        now: Millis,
    ) -> impl Future<Output = StoreResult<EnqueueOutcome>> + Send;

    /// Requeues expired leases, then leases up to `max_tasks`, privileged
    /// first and FIFO within a class.
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

    /// Housekeeping: requeue or dead-letter expired leases, forget idle
    /// rate-limit keys and expired idempotency keys.
    fn maintain(&self, now: Millis, max_deliveries: u32) -> impl Future<Output = StoreResult<()>> + Send;

    /// The last load this instance knows of, without I/O (Level 1's view).
    fn cached_load(&self) -> u64;

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

/// The store chosen at startup. An enum rather than a trait object so the
/// hot path pays no boxing; every variant implements [`Store`].
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

impl Store for AnyStore {
    async fn heartbeat(&self, record: ProcessRecord, now: Millis) -> StoreResult<()> {
        dispatch!(self, "EVALSHA heartbeat", s => s.heartbeat(record, now))
    }
    async fn processes(&self, now: Millis, expire_after_ms: Millis) -> StoreResult<ProcessView> {
        dispatch!(self, "EVALSHA processes", s => s.processes(now, expire_after_ms))
    }
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
    async fn maintain(&self, now: Millis, max_deliveries: u32) -> StoreResult<()> {
        dispatch!(self, "EVALSHA lease", s => s.maintain(now, max_deliveries))
    }
    fn cached_load(&self) -> u64 {
        match self {
            AnyStore::Memory(s) => s.cached_load(),
            AnyStore::Redis(s) => s.cached_load(),
        }
    }
    async fn flush_analytics(&self, minute: u64, cells: Cells, sessions: Vec<(String, u64)>) -> StoreResult<()> {
        dispatch!(self, "PIPELINE", s => s.flush_analytics(minute, cells, sessions))
    }
    async fn analytics(&self, now_minute: u64, span_minutes: u64) -> StoreResult<AnalyticsView> {
        dispatch!(self, "PIPELINE", s => s.analytics(now_minute, span_minutes))
    }
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
