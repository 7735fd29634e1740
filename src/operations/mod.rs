//! The operator layer over the service (docs/architecture.md §7, §8; the seed's
//! "Monitoring Endpoints"): system status, circuit breakers, throttling
//! analytics, alerts, live configuration, environment and metrics, the
//! console's documents, and the housekeeping that keeps them current.
//! [`Operations`] holds what only operators need (the alert book, the
//! analytics windows, the config version in force); it reaches the service
//! through its methods only. gRPC and HTTP both serialise these documents;
//! nothing here is computed twice.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::alerting::{AlertBook, AlertView};
use crate::config::RuntimeConfig;
use crate::core::analytics::{self, PeriodStats, WINDOWS};
use crate::core::breaker::{BreakerState, BreakerStats, Circuit};
use crate::core::capacity;
use crate::core::health::{self, ChatHealth, Health};
use crate::core::window_cache::WindowCache;
use crate::core::{Millis, UserType};
use crate::protection::merge_cluster;
use crate::rls_rules::RulesView;
use crate::service::{Floodgate, ServiceError, Snapshot};
use crate::store::QueueStats;

mod capacity_report;
mod config;
mod console;
mod documents;
mod housekeeping;

pub use console::{
    CHART_MINUTES, CircuitRecovery, DEAD_LETTERS_SHOWN, MinutePoint, MinutesView, ProcessRow, ProcessesView,
    QueuesView, RecoveryView, RuntimeConfigView,
};
pub use documents::{
    ActualProcessesView, ActualRuntime, CapacityConfigurationView, CapacityMetrics, CapacityReport, CapacityTotals,
    CapacityTransparency, CircuitBreakersView, CircuitReset, CircuitSummary, ConfigReview, ConfigUpdate,
    ConfiguredCapacity, EnhancedQueueStats, EnvironmentValue, GlobalGroupStats, GroupCount, GroupStatus, HealthMetrics,
    ProcessesVsConfigured, SystemStatus,
};

/// Replicas whose breaker stats are older than this drop out of the cluster view.
const CLUSTER_VIEW_MS: Millis = 30_000;

/// What the operator layer is built with (the app reads it from the settings).
#[derive(Debug, Clone)]
pub struct OperationsOptions {
    /// This replica's id (the cluster's breaker view, config messages).
    pub replica_id: String,
    /// Where each static setting came from, for `/debug/environment`.
    pub environment: BTreeMap<String, (String, String)>,
    /// `max_payload_bytes` at start: the gRPC message limit is fixed by it,
    /// so a live update may not raise it.
    pub payload_limit_at_start: u32,
}

/// The operator's documents and actions over one replica's service.
/// Cheap to share: hold it in an `Arc`.
pub struct Operations {
    floodgate: Arc<Floodgate>,
    replica_id: String,
    environment: BTreeMap<String, (String, String)>,
    payload_limit_at_start: u32,
    /// The runtime config version in force (0 = from profile and file).
    config_version: AtomicU64,
    alerts: Mutex<AlertBook>,
    /// Decision counts of settled minutes, for /metrics and alerts.
    windows: Mutex<WindowCache>,
    /// The load at the last alert evaluation (large load changes).
    last_alert_load: AtomicU64,
}

/// Facts shared by the documents, gathered once per call.
struct Facts {
    snapshot: Arc<Snapshot>,
    stats: QueueStats,
    runtime: Arc<RuntimeConfig>,
    now: Millis,
}

impl Operations {
    /// The operator layer over `floodgate`, with no alert and no config
    /// update yet.
    pub fn new(floodgate: Arc<Floodgate>, options: OperationsOptions) -> Operations {
        let OperationsOptions { replica_id, environment, payload_limit_at_start } = options;
        Operations {
            floodgate,
            replica_id,
            environment,
            payload_limit_at_start,
            config_version: AtomicU64::new(0),
            alerts: Mutex::new(AlertBook::default()),
            windows: Mutex::new(WindowCache::for_operator_views()),
            last_alert_load: AtomicU64::new(0),
        }
    }

    /// The service this operates on.
    pub fn floodgate(&self) -> &Arc<Floodgate> {
        &self.floodgate
    }

    /// A fresh snapshot (processes and queue depths in one refresh).
    async fn facts(&self) -> Result<Facts, ServiceError> {
        Ok(self.facts_from(self.floodgate.refresh_snapshot().await?))
    }

    fn facts_from(&self, snapshot: Arc<Snapshot>) -> Facts {
        Facts { stats: snapshot.stats, snapshot, runtime: self.floodgate.runtime(), now: self.floodgate.now_ms() }
    }

    /// Expected / actual (not stale) / healthy chat REST processes.
    fn chat_health(&self, facts: &Facts) -> ChatHealth {
        let timing = facts.runtime.health_timing();
        ChatHealth::of(
            &facts.snapshot.processes,
            facts.runtime.processes_per_instance,
            facts.snapshot.taken_at_ms,
            timing,
        )
    }

    /// Queue depths, leases and dead letters; answers only when the store
    /// does (readiness).
    pub async fn queue_stats(&self) -> Result<QueueStats, ServiceError> {
        self.floodgate.queue_stats().await
    }

    /// Flushes local analytics and reads the windows `1h` … `24h`.
    pub async fn throttling_stats(&self) -> Result<BTreeMap<String, PeriodStats>, ServiceError> {
        let now = self.floodgate.now_ms();
        self.floodgate.flush_analytics(now).await?;
        let now_minute = now / 60_000;
        let view = self.floodgate.analytics(now_minute, analytics::HISTORY_MINUTES).await?;
        Ok(WINDOWS
            .iter()
            .map(|(name, span)| {
                let cells = analytics::window_sum(&view.minutes, now_minute, *span);
                let top = analytics::window_top(&view.top_by_hour, now_minute, *span);
                ((*name).to_owned(), analytics::period_stats(&cells, *span, top))
            })
            .collect())
    }

    /// This replica's breakers merged with every other replica's published view.
    pub async fn circuit_breakers(&self) -> Result<CircuitBreakersView, ServiceError> {
        let now = self.floodgate.now_ms();
        let local = self.floodgate.breakers().stats(now);
        let mut views = vec![local];
        for json in self.floodgate.cluster_breakers(now.saturating_sub(CLUSTER_VIEW_MS)).await? {
            if let Ok(published) = serde_json::from_str::<PublishedBreakers>(&json)
                && published.replica != self.replica_id
            {
                views.push(published.circuits);
            }
        }
        let circuits = merge_cluster(&views);
        let count = |state| circuits.values().filter(|c| c.state == state).count() as u32;
        Ok(CircuitBreakersView {
            summary: CircuitSummary {
                total_circuits: circuits.len() as u32,
                open_circuits: count(BreakerState::Open),
                half_open_circuits: count(BreakerState::HalfOpen),
                closed_circuits: count(BreakerState::Closed),
            },
            circuits,
        })
    }

    /// Resets a circuit here and, through the store, on every replica;
    /// answers the circuit as this replica's breakers read after the reset.
    pub async fn reset_circuit_breaker(&self, name: &str) -> Result<CircuitReset, ServiceError> {
        let circuit = Circuit::from_name(name).ok_or_else(|| {
            let known: Vec<_> = Circuit::ALL.iter().map(|c| c.name()).collect();
            ServiceError::NotFound(format!("no circuit named {name:?} (known: {})", known.join(", ")))
        })?;
        let after = self.floodgate.reset_breaker(circuit).await?;
        let now = self.floodgate.now_ms();
        self.lock_alerts().info("circuit_reset", format!("circuit {name} reset by an operator"), now);
        Ok(CircuitReset { circuit_name: circuit.name().to_owned(), circuit: after })
    }

    fn lock_alerts(&self) -> MutexGuard<'_, AlertBook> {
        crate::sync::lock(&self.alerts)
    }

    /// Active alerts, then recent info events.
    pub fn alerts(&self) -> Vec<AlertView> {
        self.lock_alerts().list()
    }

    /// The seed's `/monitoring/system` document.
    pub async fn system_status(&self) -> Result<SystemStatus, ServiceError> {
        let facts = self.facts().await?;
        let (snapshot, runtime) = (&facts.snapshot, &facts.runtime);
        let timing = runtime.health_timing();
        let mut instances: BTreeMap<String, BTreeMap<String, GroupStatus>> = BTreeMap::new();
        let mut global: BTreeMap<String, GlobalGroupStats> = BTreeMap::new();
        for record in &snapshot.processes {
            let health = health::classify(record, snapshot.taken_at_ms, timing);
            let group =
                instances.entry(record.instance_id.clone()).or_default().entry(record.group()).or_insert(GroupStatus {
                    processes: 0,
                    actual_processes: 0,
                    healthy_processes: 0,
                    load: 0,
                    capacity: 0,
                    health: String::new(),
                    is_chat_rest: record.is_chat_rest(),
                });
            group.actual_processes += u32::from(health != Health::Stale);
            group.healthy_processes += u32::from(health.counts_for_capacity());
            group.load += u64::from(record.load);
            group.capacity += u64::from(record.capacity);
        }
        for groups in instances.values_mut() {
            for (name, g) in groups.iter_mut() {
                g.processes = if g.is_chat_rest { runtime.processes_per_instance } else { g.actual_processes };
                g.health =
                    health::group_health(g.healthy_processes, g.actual_processes, g.processes).as_str().to_owned();
                let total = global.entry(name.clone()).or_insert(GlobalGroupStats {
                    expected: 0,
                    actual: 0,
                    healthy: 0,
                    load: 0,
                    capacity: 0,
                    utilization_percent: 0.0,
                });
                total.expected += g.processes;
                total.actual += g.actual_processes;
                total.healthy += g.healthy_processes;
                total.load += g.load;
                total.capacity += g.capacity;
            }
        }
        for total in global.values_mut() {
            total.utilization_percent = capacity::utilization_percent(total.load, total.capacity);
        }
        let load = facts.stats.load();
        let total = snapshot.calculation.system_total;
        let accepting = |u: UserType| crate::core::admission::admits(load, snapshot.limits.for_user(u));
        let chat = self.chat_health(&facts);
        let detected = snapshot.calculation.instances.len().max(1) as f64;
        let warnings = crate::core::warnings::system(&chat, capacity::pressure_ratio(load, total));
        Ok(SystemStatus {
            instances,
            global_stats: global,
            enhanced_queue_stats: EnhancedQueueStats {
                total_queue: load,
                weighted_max_capacity: total,
                pressure_ratio: capacity::pressure_ratio(load, total),
                accepting_anonymous: accepting(UserType::Anonymous),
                accepting_registered: accepting(UserType::Registered),
                accepting_privileged: accepting(UserType::Privileged),
                queued_privileged: facts.stats.queued[UserType::Privileged.index()],
                queued_registered: facts.stats.queued[UserType::Registered.index()],
                queued_anonymous: facts.stats.queued[UserType::Anonymous.index()],
                leased: facts.stats.leased,
                dead_letters: facts.stats.dead_letters,
            },
            throttling_by_period: self.throttling_stats().await?,
            capacity_transparency: CapacityTransparency {
                capacity_metrics: CapacityMetrics {
                    configuration: ConfiguredCapacity {
                        configured_concurrent_per_process: runtime.concurrent_per_process,
                        configured_processes_per_instance: runtime.processes_per_instance,
                        capacity_buffer_percent: capacity::as_percent(runtime.capacity_buffer),
                    },
                    actual_runtime: ActualRuntime {
                        actual_healthy_processes_per_instance: snapshot.calculation.healthy_processes() as f64
                            / detected,
                        actual_total_capacity_per_instance: total as f64 / detected,
                    },
                    health_metrics: HealthMetrics {
                        process_health_ratio: chat.ratio(),
                        processes_vs_configured: ProcessesVsConfigured {
                            expected_processes: chat.expected,
                            actual_processes: chat.actual,
                            process_deficit: chat.deficit(),
                        },
                    },
                },
                performance_warnings: warnings,
            },
            circuit_breakers: self.circuit_breakers().await?,
            alerts: self.alerts(),
        })
    }

    /// The loaded Envoy rules (`/debug/rls-config`).
    pub fn rls_config(&self) -> RulesView {
        self.floodgate.rls_rules().view()
    }

    /// Why the replica must not take traffic for its Envoy rules (their
    /// path loads no domain), if it must not.
    pub fn rls_not_ready(&self) -> Option<String> {
        self.floodgate.rls_rules().not_ready()
    }
}

/// What a replica publishes for the cluster's breaker view.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct PublishedBreakers {
    replica: String,
    circuits: BTreeMap<String, BreakerStats>,
}
