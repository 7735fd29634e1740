//! State stores: one small trait per role (`roles`), an embedded in-memory
//! backend and a shared Redis backend, and the domain types they exchange.
//! Stores persist and apply atomically; the rules they apply (limits, GCRA,
//! health) come from `crate::core`.

mod any;
pub mod memory;
pub mod rate;
pub mod redis;
mod roles;

use serde::{Deserialize, Serialize};

use crate::core::analytics::Cells;
use crate::core::gcra::GcraOutcome;
use crate::core::health::ProcessRecord;
use crate::core::{Millis, UserType};

pub use self::redis::{RedisOptions, RedisStore, RedisTlsFiles, TimeSource};
pub use any::AnyStore;
pub use memory::MemoryStore;
pub use roles::{AnalyticsStore, ClusterState, Housekeeping, ProcessRegistry, RateLimiter, TaskQueue};

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
    /// The worker the leases are handed to; stored with each lease.
    pub holder: LeaseHolder,
}

/// The worker process a lease is handed to, as it named itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseHolder {
    /// The worker's instance.
    pub instance_id: String,
    /// The worker process.
    pub process_id: String,
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
    /// The worker that held its last lease and let it expire (None in a
    /// dead letter written before leases recorded their holder).
    pub last_holder: Option<LeaseHolder>,
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
    /// The store broke one of its own invariants (a bug); retrying will not help.
    #[error("state store invariant broken: {0}")]
    Internal(String),
}

impl From<rate::ShardNotHeld> for StoreError {
    fn from(e: rate::ShardNotHeld) -> Self {
        StoreError::Internal(e.to_string())
    }
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
    /// (minute since the epoch, counts) for the last 24 h, newest first;
    /// minutes without counts are left out.
    pub minutes: Vec<(u64, Cells)>,
    /// (hour since the epoch, heavy hitters, most throttled first) for the
    /// last 24 h, newest first; hours without throttled sessions are left out.
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
