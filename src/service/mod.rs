//! The floodgate service: validates domain requests, asks the core for the
//! rules and the store for state. gRPC and the HTTP shim both call this, so
//! every answer is computed once, here. Level 1 and Level 2 live in
//! `admission`, the Envoy RLS path in `rls`, the worker calls in `workers`;
//! this module holds the shared state, the capacity snapshot and the
//! narrow calls the operator layer (`operations`) makes into them.

mod admission;
mod error;
mod rls;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, Notify};

use crate::clock::Clock;
use crate::config::{RlsOptions, RuntimeConfig};
use crate::core::Millis;
use crate::core::admission::Pressure;
use crate::core::breaker::{BreakerStats, Circuit};
use crate::core::capacity::{self, CapacityCalculation, Limits};
use crate::core::health::{self, ProcessRecord};
use crate::core::rls::Rules;
use crate::metrics::Metrics;
use crate::protection::Breakers;
use crate::rls_rules::RlsRules;
use crate::shield::Shield;
use crate::store::rate::RateTable;
use crate::store::{
    AnalyticsStore, AnalyticsView, AnyStore, ClusterState, DeadLetter, Housekeeping, ProcessRegistry, QueueStats,
    StoredConfig, TaskQueue,
};
use crate::throttling::Recorder;

pub use admission::{AdmissionRequest, EnqueueAnswer, EnqueueRequest};
pub use error::ServiceError;
pub use workers::{HeartbeatAck, LeaseQuery};

/// Longest subject, session id, request id, task id or idempotency key.
pub const MAX_ID_BYTES: usize = 256;
/// Longest route.
pub const MAX_ROUTE_BYTES: usize = 1_024;
/// Largest load or capacity a heartbeat may report.
pub const MAX_PROCESS_LOAD: u32 = 1_000_000;

/// The capacity view that Level 1 decides against, at most one refresh
/// interval old.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The 8-step calculation over the healthy processes.
    pub calculation: CapacityCalculation,
    /// The load each user type may fill the system to.
    pub limits: Limits,
    /// Every process record read.
    pub processes: Vec<ProcessRecord>,
    /// Queue depths read with the processes (the load behind the capacity).
    pub stats: QueueStats,
    /// When the snapshot was taken.
    pub taken_at_ms: Millis,
}

/// What the service is built with (the app reads it from the settings).
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The runtime config to start from.
    pub runtime: RuntimeConfig,
    /// Refused subjects the local shield remembers per user type (0: off).
    pub shield_capacity: usize,
    /// The Envoy rate-limit rules of the config file.
    pub rls: Arc<Rules>,
    /// The live-reloaded Envoy rules' directory and modes.
    pub rls_options: RlsOptions,
}

/// The service. Cheap to share: hold it in an `Arc`.
pub struct Floodgate {
    store: AnyStore,
    runtime: ArcSwap<RuntimeConfig>,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises snapshot refreshes so an older one never overwrites a newer.
    refreshing: Mutex<()>,
    /// Level 1's rate limiter when the store fails (fail open, docs/architecture.md §6).
    fallback_rates: RateTable,
    /// Refusals remembered until their retry time (Redis only: see `shield`).
    shield: Shield,
    /// Wakes a long-polling `LeaseTasks` call when a task is enqueued here.
    task_ready: Notify,
    clock: Arc<dyn Clock>,
    breakers: Breakers,
    recorder: Recorder,
    metrics: Metrics,
    /// Envoy rate-limit service descriptor rules (TOML and live-reloaded YAML).
    rls: Arc<RlsRules>,
}

fn check_id(field: &str, value: &str, required: bool) -> Result<(), ServiceError> {
    if required && value.is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ServiceError::invalid(field, format!("must be at most {MAX_ID_BYTES} bytes")));
    }
    Ok(())
}

/// An id that names a worker process (`instance_id`, `process_id`): as
/// [`check_id`], and no control characters, since the store joins the two
/// with a separator byte (`\x1f`) and `a\x1fb`+`c` must not name the same
/// process as `a`+`b\x1fc`.
fn check_process_id(field: &str, value: &str) -> Result<(), ServiceError> {
    check_id(field, value, true)?;
    if value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ServiceError> {
    if value < min || value > max {
        return Err(ServiceError::invalid(field, format!("must be {min}..={max}, got {value}")));
    }
    Ok(())
}

impl Floodgate {
    /// A service over `store`, starting from `options.runtime`, with an
    /// empty capacity snapshot until the first refresh.
    pub fn new(store: AnyStore, options: ServiceOptions, clock: Arc<dyn Clock>) -> Floodgate {
        let ServiceOptions { runtime, shield_capacity, rls, rls_options } = options;
        let now = clock.now_ms();
        let calculation = capacity::calculate(&runtime.capacity(), &BTreeMap::new());
        let limits = Limits::from_thresholds(&runtime.thresholds(), 0);
        Floodgate {
            store,
            snapshot: ArcSwap::from_pointee(Snapshot {
                calculation,
                limits,
                processes: Vec::new(),
                stats: QueueStats::default(),
                taken_at_ms: now,
            }),
            refreshing: Mutex::new(()),
            fallback_rates: RateTable::default(),
            shield: Shield::new(shield_capacity),
            task_ready: Notify::new(),
            clock,
            breakers: Breakers::new(&runtime.breakers),
            recorder: Recorder::new(runtime.analytics_enabled),
            metrics: Metrics::default(),
            rls: Arc::new(RlsRules::new(rls, rls_options)),
            runtime: ArcSwap::from_pointee(runtime),
        }
    }

    /// The Envoy rate-limit rules in force and their counters.
    pub fn rls_rules(&self) -> &Arc<RlsRules> {
        &self.rls
    }

    /// The runtime config in force.
    pub fn runtime(&self) -> Arc<RuntimeConfig> {
        self.runtime.load_full()
    }

    /// Puts a runtime config in force (live update): the breakers' tuning,
    /// whether analytics are counted, and every rule read from the config.
    pub(crate) fn apply_runtime(&self, config: RuntimeConfig) {
        self.breakers.reconfigure(&config.breakers);
        self.recorder.set_enabled(config.analytics_enabled);
        self.runtime.store(Arc::new(config));
    }

    /// The capacity snapshot Level 1 decides against.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Re-reads process records and recomputes capacity and limits.
    pub async fn refresh_snapshot(&self) -> Result<Arc<Snapshot>, ServiceError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let runtime = self.runtime();
        let view = self.store.processes(self.clock.now_ms(), runtime.expire_after_ms).await?;
        // Keep Level 1's load fresh too (a shared store changes under us).
        let stats = self.store.queue_stats().await?;
        let (processes, now) = (view.records, view.now_ms);
        let healthy = health::healthy_chat_rest_by_instance(&processes, now, runtime.health_timing());
        let calculation = capacity::calculate(&runtime.capacity(), &healthy);
        let limits = Limits::from_thresholds(&runtime.thresholds(), calculation.system_total);
        let ratio = capacity::pressure_ratio(self.store.cached_load(), calculation.system_total);
        let snapshot = Arc::new(Snapshot { calculation, limits, processes, stats, taken_at_ms: now });
        self.snapshot.store(snapshot.clone());
        // Queue-aware recovery: an open circuit may half-open as pressure falls.
        self.breakers.tick(self.clock.now_ms(), ratio);
        Ok(snapshot)
    }

    /// Housekeeping: lease expiry, idle keys, expired idempotency keys.
    pub async fn maintain(&self) -> Result<(), ServiceError> {
        let runtime = self.runtime();
        self.store.maintain(self.clock.now_ms(), runtime.max_deliveries).await?;
        self.fallback_rates.evict_idle(self.clock.now_us());
        Ok(())
    }

    fn pressure(&self, snapshot: &Snapshot, load: u64) -> Pressure {
        Pressure { load, system_total: snapshot.calculation.system_total, limits: snapshot.limits }
    }

    /// Queue depths, leases and dead letters.
    pub async fn queue_stats(&self) -> Result<QueueStats, ServiceError> {
        Ok(self.store.queue_stats().await?)
    }

    /// The newest dead letters, at most `limit`.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, ServiceError> {
        Ok(self.store.dead_letters(limit).await?)
    }

    /// Now, by the service's clock.
    pub fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    /// This replica's circuit breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// The process's counters and RPC histogram.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Requests the local shield refused without a store call.
    pub fn shield_hits(&self) -> u64 {
        self.shield.hits()
    }

    /// Writes this replica's pending decision counts to the store.
    pub(crate) async fn flush_analytics(&self, now: Millis) -> Result<(), ServiceError> {
        self.recorder.flush(&self.store, now).await.map_err(|e| {
            self.metrics.store_error("analytics", e.is_shard_local());
            ServiceError::from(e)
        })
    }

    /// The decision counts of the `span_minutes` minutes up to `now_minute`,
    /// as the store holds them (every replica's flushed counts).
    pub(crate) async fn analytics(&self, now_minute: u64, span_minutes: u64) -> Result<AnalyticsView, ServiceError> {
        Ok(self.store.analytics(now_minute, span_minutes).await?)
    }

    /// Resets `circuit` here and, through a new reset generation in the
    /// store, on every replica (each applies it at its next housekeeping).
    /// Answers the circuit as read after the reset: a failure that reopens
    /// it in between shows, rather than a `Closed` it no longer is.
    pub(crate) async fn reset_breaker(&self, circuit: Circuit) -> Result<BreakerStats, ServiceError> {
        let generation = self.store.reset_breaker(circuit.name()).await?;
        self.breakers.mark_generation(circuit, generation);
        self.breakers.reset(circuit, self.clock.now_ms());
        Ok(self.breakers.circuit_stats(circuit, self.clock.now_ms()))
    }

    /// Applies the reset generations other replicas stored.
    pub(crate) async fn apply_breaker_resets(&self, now: Millis) -> Result<(), ServiceError> {
        let generations = self.store.breaker_generations().await?;
        self.breakers.apply_generations(&generations, now);
        Ok(())
    }

    /// Publishes this replica's breaker view (`json`) for the cluster's.
    pub(crate) async fn publish_breakers(&self, replica: &str, json: String, now: Millis) -> Result<(), ServiceError> {
        Ok(self.store.publish_breakers(replica, json, now).await?)
    }

    /// Every replica's breaker view published since `since`.
    pub(crate) async fn cluster_breakers(&self, since: Millis) -> Result<Vec<String>, ServiceError> {
        Ok(self.store.cluster_breakers(since).await?)
    }

    /// Stores a runtime config for every replica; answers its version.
    pub(crate) async fn store_config(&self, json: String) -> Result<u64, ServiceError> {
        Ok(self.store.store_config(json).await?)
    }

    /// The runtime config last stored by any replica.
    pub(crate) async fn load_config(&self) -> Result<Option<StoredConfig>, ServiceError> {
        Ok(self.store.load_config().await?)
    }

    /// One circuit's local state name (tests).
    #[cfg(any(test, feature = "test-support"))]
    pub fn breaker_state(&self, name: &str) -> Option<&'static str> {
        self.breakers.stats(self.clock.now_ms()).get(name).map(|s| s.state.as_str())
    }

    /// Throttled sessions held locally until the next flush.
    #[cfg(any(test, feature = "test-support"))]
    pub fn pending_throttled_sessions(&self) -> usize {
        self.recorder.pending_sessions()
    }

    /// Throttled sessions the store tracks over the last 24 h.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn tracked_throttled_sessions(&self) -> usize {
        let now_minute = self.clock.now_ms() / 60_000;
        match self.store.analytics(now_minute, crate::core::analytics::HISTORY_MINUTES).await {
            Ok(view) => view.top_by_hour.iter().map(|(_, top)| top.len()).sum(),
            Err(_) => 0,
        }
    }
}
