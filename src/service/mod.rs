//! The floodgate service: validates domain requests, asks the core for the
//! rules and the store for state. gRPC and the HTTP shim both call this, so
//! every answer is computed once, here. Level 1 and Level 2 live in
//! `admission`, the Envoy RLS path in `rls`, the worker calls in `workers`;
//! this module holds the shared state and the capacity snapshot.

mod admission;
mod rls;
mod workers;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, Notify};

use crate::alerting::AlertBook;
use crate::clock::Clock;
use crate::config::{RlsOptions, RuntimeConfig};
use crate::core::Millis;
use crate::core::admission::Pressure;
use crate::core::capacity::{self, CapacityCalculation, Limits};
use crate::core::health::{self, ProcessRecord};
use crate::core::rls::Rules;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::protection::Breakers;
use crate::store::rate::RateTable;
use crate::store::{AnyStore, QueueStats, Store};
use crate::throttling::Recorder;

pub use admission::{AdmissionRequest, EnqueueAnswer, EnqueueRequest};
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
    /// This replica's id (cluster breaker view, environment).
    pub replica_id: String,
    /// Refused subjects the local shield remembers per user type (0: off).
    pub shield_capacity: usize,
    /// The Envoy rate-limit rules of the config file.
    pub rls: Arc<Rules>,
    /// The live-reloaded Envoy rules' directory and modes.
    pub rls_options: RlsOptions,
    /// Where each setting came from, and the static settings, for GetEnvironment.
    pub environment: BTreeMap<String, (String, String)>,
}

/// The service. Cheap to share: hold it in an `Arc`.
pub struct Floodgate {
    store: AnyStore,
    runtime: ArcSwap<RuntimeConfig>,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises snapshot refreshes so an older one never overwrites a newer.
    refreshing: Mutex<()>,
    /// Level 1's rate limiter when the store fails (fail open, design §6).
    fallback_rates: RateTable,
    /// Refusals remembered until their retry time (Redis only: see `shield`).
    pub shield: crate::shield::Shield,
    /// Wakes a long-polling `LeaseTasks` call when a task is enqueued here.
    task_ready: Notify,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) breakers: Breakers,
    pub(crate) recorder: Recorder,
    pub(crate) metrics: Metrics,
    /// Decision counts of settled minutes, for /metrics and alerts (see `operations`).
    pub(crate) windows: std::sync::Mutex<crate::core::window_cache::WindowCache>,
    pub(crate) alerts: std::sync::Mutex<AlertBook>,
    /// This replica's id (cluster breaker view, environment).
    pub(crate) replica_id: String,
    /// The runtime config version in force (0 = from profile and file).
    pub(crate) config_version: std::sync::atomic::AtomicU64,
    /// Where each setting came from, and the static settings, for GetEnvironment.
    pub(crate) environment: BTreeMap<String, (String, String)>,
    /// The load at the last alert evaluation (large load changes).
    pub(crate) last_alert_load: std::sync::atomic::AtomicU64,
    /// Envoy rate-limit service descriptor rules (TOML and live-reloaded YAML).
    rls: Arc<crate::rls_rules::RlsRules>,
    /// `max_payload_bytes` at start: the gRPC message limit is fixed by it.
    pub(crate) payload_limit_at_start: u32,
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
        let ServiceOptions { runtime, replica_id, shield_capacity, rls, rls_options, environment } = options;
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
            shield: crate::shield::Shield::new(shield_capacity),
            task_ready: Notify::new(),
            clock,
            breakers: Breakers::new(&runtime.breakers),
            recorder: Recorder::new(runtime.analytics_enabled),
            metrics: Metrics::default(),
            windows: std::sync::Mutex::new(crate::core::window_cache::WindowCache::for_operator_views()),
            alerts: std::sync::Mutex::new(AlertBook::default()),
            replica_id,
            config_version: std::sync::atomic::AtomicU64::new(0),
            environment,
            last_alert_load: std::sync::atomic::AtomicU64::new(0),
            rls: Arc::new(crate::rls_rules::RlsRules::new(rls, rls_options)),
            payload_limit_at_start: runtime.max_payload_bytes,
            runtime: ArcSwap::from_pointee(runtime),
        }
    }

    /// The Envoy rate-limit rules in force and their counters.
    pub fn rls_rules(&self) -> &Arc<crate::rls_rules::RlsRules> {
        &self.rls
    }

    /// The runtime config in force.
    pub fn runtime(&self) -> Arc<RuntimeConfig> {
        self.runtime.load_full()
    }

    /// Replaces the runtime config (live update).
    pub(crate) fn set_runtime(&self, config: RuntimeConfig) {
        self.runtime.store(Arc::new(config));
    }

    /// The capacity snapshot Level 1 decides against.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The store (for housekeeping and tests).
    pub fn store(&self) -> &AnyStore {
        &self.store
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
}
