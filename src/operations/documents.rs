//! The operator documents (the seed's JSON shapes): what gRPC and HTTP
//! both serialise. Built by the `Floodgate` methods in the parent module.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alerting::AlertView;
use crate::config::{FieldError, RuntimeConfig};
use crate::core::analytics::PeriodStats;
use crate::core::breaker::BreakerStats;
use crate::core::capacity::Breakdown;

/// The seed's circuit-breaker document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CircuitBreakersView {
    /// Counts of circuits by state.
    pub summary: CircuitSummary,
    /// Each circuit's fields, merged over the replicas.
    pub circuits: BTreeMap<String, BreakerStats>,
}

/// Counts of circuits by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CircuitSummary {
    /// Circuits in all.
    pub total_circuits: u32,
    /// Circuits open now.
    pub open_circuits: u32,
    /// Circuits half-open now.
    pub half_open_circuits: u32,
    /// Circuits closed now.
    pub closed_circuits: u32,
}

/// The answer of `ResetCircuitBreaker`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitReset {
    /// The circuit's name.
    pub circuit_name: String,
    /// Its fields as this replica's breakers read them after the reset
    /// (the edges answer its `state`).
    pub circuit: BreakerStats,
}

/// One service group on one instance (seed `instances.*.*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    /// Processes expected in the group on this instance.
    pub processes: u32,
    /// Processes heard from (not STALE).
    pub actual_processes: u32,
    /// HEALTHY or DEGRADED processes.
    pub healthy_processes: u32,
    /// Tasks the processes report working on.
    pub load: u64,
    /// Tasks the processes can work on at once.
    pub capacity: u64,
    /// The group's health word (`healthy`, `degraded`, `unhealthy`).
    pub health: String,
    /// Whether this is the chat REST group capacity is computed from.
    pub is_chat_rest: bool,
}

/// One service group over all instances (seed `global_stats.*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalGroupStats {
    /// Processes expected over every instance.
    pub expected: u32,
    /// Processes heard from (not STALE).
    pub actual: u32,
    /// HEALTHY or DEGRADED processes.
    pub healthy: u32,
    /// Tasks the processes report working on.
    pub load: u64,
    /// Tasks the processes can work on at once.
    pub capacity: u64,
    /// Load over capacity, percent.
    pub utilization_percent: f64,
}

/// The seed's `enhanced_queue_stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnhancedQueueStats {
    /// Tasks admitted and not yet completed (`L`).
    pub total_queue: u64,
    /// The system total capacity (`T`).
    pub weighted_max_capacity: u64,
    /// `L / T`.
    pub pressure_ratio: f64,
    /// Whether an anonymous request would be admitted now.
    pub accepting_anonymous: bool,
    /// Whether a registered request would be admitted now.
    pub accepting_registered: bool,
    /// Whether a privileged request would be admitted now.
    pub accepting_privileged: bool,
    /// Privileged tasks waiting for a worker.
    pub queued_privileged: u64,
    /// Registered tasks waiting for a worker.
    pub queued_registered: u64,
    /// Anonymous tasks waiting for a worker.
    pub queued_anonymous: u64,
    /// Tasks leased to a worker and not yet completed.
    pub leased: u64,
    /// Tasks dead-lettered after too many deliveries.
    pub dead_letters: u64,
}

/// The seed's `capacity_transparency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityTransparency {
    /// Configured against actual capacity.
    pub capacity_metrics: CapacityMetrics,
    /// What an operator should look at (see `core::warnings`).
    pub performance_warnings: Vec<String>,
}

/// `capacity_transparency.capacity_metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityMetrics {
    /// What the settings say.
    pub configuration: ConfiguredCapacity,
    /// What the healthy processes give.
    pub actual_runtime: ActualRuntime,
    /// How many expected processes are healthy.
    pub health_metrics: HealthMetrics,
}

/// `capacity_metrics.configuration`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfiguredCapacity {
    /// `concurrent_per_process` in force.
    pub configured_concurrent_per_process: u32,
    /// `processes_per_instance` in force.
    pub configured_processes_per_instance: u32,
    /// `capacity_buffer` in force, percent.
    pub capacity_buffer_percent: f64,
}

/// `capacity_metrics.actual_runtime`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActualRuntime {
    /// Healthy chat REST processes per detected instance.
    pub actual_healthy_processes_per_instance: f64,
    /// System total capacity per detected instance.
    pub actual_total_capacity_per_instance: f64,
}

/// `capacity_metrics.health_metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthMetrics {
    /// Healthy chat REST processes over expected (0–1).
    pub process_health_ratio: f64,
    /// Expected against actual chat REST processes.
    pub processes_vs_configured: ProcessesVsConfigured,
}

/// `health_metrics.processes_vs_configured`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessesVsConfigured {
    /// Chat REST processes the settings expect.
    pub expected_processes: u64,
    /// Chat REST processes heard from (not STALE).
    pub actual_processes: u64,
    /// Expected minus actual (negative when there are more).
    pub process_deficit: i64,
}

/// The seed's `/monitoring/system` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemStatus {
    /// Per instance, per service group (`chat_rest`, …).
    pub instances: BTreeMap<String, BTreeMap<String, GroupStatus>>,
    /// Per service group, summed over instances.
    pub global_stats: BTreeMap<String, GlobalGroupStats>,
    /// Load, capacity, pressure and queues.
    pub enhanced_queue_stats: EnhancedQueueStats,
    /// Throttling per window (`1h`, `3h`, `6h`, `12h`, `24h`).
    pub throttling_by_period: BTreeMap<String, PeriodStats>,
    /// Configured against actual capacity, with warnings.
    pub capacity_transparency: CapacityTransparency,
    /// The circuit-breaker document.
    pub circuit_breakers: CircuitBreakersView,
    /// Active alerts and recent events.
    pub alerts: Vec<AlertView>,
}

/// The answer of `ValidateConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigReview {
    /// Whether the change may be applied.
    pub valid: bool,
    /// Each refused field and why (empty when valid).
    pub errors: Vec<FieldError>,
    /// What the change would do that an operator should know.
    pub warnings: Vec<String>,
    /// The capacity calculation the change would give (absent when invalid).
    pub preview: Option<CapacityReport>,
    /// The whole config the change would give (absent when invalid).
    #[serde(skip)]
    pub config: Option<RuntimeConfig>,
}

/// The answer of `UpdateConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigUpdate {
    /// Whether the change is in force.
    pub applied: bool,
    /// The stored config version (0 when not applied).
    pub version: u64,
    /// Each refused field and why (empty when applied).
    pub errors: Vec<FieldError>,
    /// What the change does that an operator should know.
    pub warnings: Vec<String>,
    /// The capacity document after the change (absent when not applied).
    pub capacity: Option<CapacityReport>,
}

/// One `/debug/environment` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentValue {
    /// The value in force (secrets redacted).
    pub value: String,
    /// Where it came from: `default`, `profile`, `file`, `flag_or_env` or `update`.
    pub source: String,
}

/// One service group's healthy count on an instance (seed `actual_processes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupCount {
    /// Service type, e.g. `chat`.
    pub service_type: String,
    /// Service name, e.g. `rest`.
    pub service_name: String,
    /// HEALTHY or DEGRADED processes of the group on the instance.
    pub healthy_processes: u64,
    /// Whether this is the chat REST group capacity is computed from.
    pub is_chat_rest: bool,
}

/// The seed's `/debug/capacity-calculation` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityReport {
    /// The settings the calculation used.
    pub configuration: CapacityConfigurationView,
    /// The instances and processes found.
    pub actual_processes: ActualProcessesView,
    /// The seed's eight steps as sentences (`step_1_…` to `step_8_…`).
    pub calculations_breakdown: Breakdown,
    /// The numbers behind the sentences.
    pub totals: CapacityTotals,
}

/// `configuration` of the capacity document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityConfigurationView {
    /// Concurrent chat tasks one process serves.
    pub concurrent_per_process: u32,
    /// Chat REST processes expected per instance.
    pub processes_per_instance: u32,
    /// Fraction of concurrency held back (0–1).
    pub capacity_buffer: f64,
    /// Queue slots per effective slot.
    pub queue_multiplier: u32,
}

/// `actual_processes` of the capacity document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActualProcessesView {
    /// Instances with at least one process record.
    pub instances_found: Vec<String>,
    /// Per instance, each service group's healthy count.
    pub processes_per_instance: BTreeMap<String, Vec<GroupCount>>,
}

/// The numbers behind the breakdown's sentences.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityTotals {
    /// Step 2: healthy chat REST processes over all instances.
    pub healthy_chat_rest_processes: u64,
    /// Step 3: total concurrency.
    pub total_concurrent: u64,
    /// Step 4: concurrency less the buffer.
    pub effective: u64,
    /// Step 5: queue capacity.
    pub queue_capacity: u64,
    /// Step 6: each instance's total.
    pub total_per_instance: Vec<u64>,
    /// Instances counted (step 7).
    pub instances: u64,
    /// Step 8: the system total `T`.
    pub system_total: u64,
    /// Load up to which anonymous users are admitted.
    pub anonymous_limit: u64,
    /// Load up to which registered users are admitted.
    pub registered_limit: u64,
    /// Load up to which privileged users are admitted (the hard limit).
    pub privileged_limit: u64,
}
