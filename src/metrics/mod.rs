//! Prometheus metrics by the conventions, through prometheus-client's
//! registry and text encoding: counters and the RPC histogram resolved
//! once at startup so that recording stays a relaxed atomic add or two;
//! gauges, process metrics and the rule counters built at scrape time.

mod process;
mod rpc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::core::analytics::{self, CELLS};
use crate::core::{Decision, Transport, UserType};
pub(crate) use rpc::{RpcDurations, RpcMetricsLayer};

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Store operations whose errors are counted (the ones the service counts:
/// the admission steps and the analytics flush).
pub(crate) const STORE_OPERATIONS: [&str; 3] = ["rate_limit", "enqueue", "analytics"];

/// Labels of a scrape-time sample.
pub(crate) type Labels = Vec<(&'static str, String)>;

/// One family's samples in a fixed order: label sets with their values,
/// scrape-time `ConstGauge`s and `ConstCounter`s or live `Counter` handles.
#[derive(Debug)]
pub(crate) struct Samples<M>(pub Vec<(Labels, M)>);

impl<M: EncodeMetric + TypedMetric> EncodeMetric for Samples<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            value.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// The process's counters and histogram, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Decisions by level (1, 2) × analytics cell.
    decisions: [[Counter; CELLS]; 2],
    rpc: RpcDurations,
    store_errors: [Counter; STORE_OPERATIONS.len()],
    /// The rate-limit store errors of one Cluster shard (a part of `store_errors`).
    store_shard_errors: Counter,
    /// Envoy `ShouldRateLimit` answers: OK, OVER_LIMIT.
    rls_answers: [Counter; 2],
    /// Descriptors over their limit in shadow mode (let through).
    rls_shadow_over_limit: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let build = Info::new([
            ("version", env!("CARGO_PKG_VERSION")),
            ("os", std::env::consts::OS),
            ("arch", std::env::consts::ARCH),
            ("build_profile", if cfg!(debug_assertions) { "debug" } else { "release" }),
        ]);
        registry.register(
            "floodgate_build",
            "The running floodgate build: version, OS, architecture and cargo build profile",
            build,
        );
        // Every child resolved here, in a fixed order: recording is an
        // indexed atomic add, and the exposition reads the same every time.
        let mut samples = Vec::with_capacity(2 * CELLS);
        let decisions = std::array::from_fn(|level| {
            let row: [Counter; CELLS] = std::array::from_fn(|_| Counter::default());
            for d in Decision::ALL {
                for u in UserType::ALL {
                    for t in Transport::ALL {
                        let labels = vec![
                            ("level", (level + 1).to_string()),
                            ("decision", d.as_str().to_owned()),
                            ("user_type", u.as_str().to_owned()),
                            ("transport", t.as_str().to_owned()),
                        ];
                        samples.push((labels, row[analytics::cell(d, u, t)].clone()));
                    }
                }
            }
            row
        });
        registry.register(
            "floodgate_decisions",
            "Admission decisions by level, decision, user type and transport",
            Samples(samples),
        );
        let rpc = RpcDurations::default();
        registry.register(
            "floodgate_rpc_duration_seconds",
            "Latency of floodgate's RPCs by gRPC service, method and status code, as the server saw it",
            rpc.clone(),
        );
        let (store_errors, samples) = counters("operation", STORE_OPERATIONS);
        registry.register("floodgate_store_errors", "State store errors by operation", samples);
        let (store_shard_errors, samples) = counters("operation", ["rate_limit"]);
        let [store_shard_errors] = store_shard_errors;
        registry.register(
            "floodgate_store_shard_errors",
            "State store errors of one Redis Cluster shard while the others answered (also counted in floodgate_store_errors_total); they leave the store circuit closed",
            samples,
        );
        let (rls_answers, samples) = counters("code", ["ok", "over_limit"]);
        registry.register("floodgate_rls_answers", "Envoy ShouldRateLimit answers by overall code", samples);
        let rls_shadow_over_limit = Counter::default();
        registry.register(
            "floodgate_rls_shadow_over_limit",
            "Envoy descriptors over their limit in shadow mode (let through)",
            rls_shadow_over_limit.clone(),
        );
        Metrics { registry, decisions, rpc, store_errors, store_shard_errors, rls_answers, rls_shadow_over_limit }
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gauges {
    /// System total capacity T.
    pub capacity_system: u64,
    /// Tasks admitted and not yet completed.
    pub load: u64,
    /// Load over the system total.
    pub pressure_ratio: f64,
    /// Load over capacity, 0–1 (0 with no capacity and no load).
    pub utilization_ratio: f64,
    /// Waiting tasks per user type, indexed by `UserType::index`.
    pub queue_depth: [u64; 3],
    /// Tasks leased and not yet completed.
    pub leased: u64,
    /// Dead-lettered tasks.
    pub dead_letters: u64,
    /// (circuit, 0 closed / 1 half-open / 2 open)
    pub circuits: Vec<(String, u8)>,
    /// (group, health, count)
    pub processes: Vec<(String, String, u64)>,
    /// HEALTHY or DEGRADED chat REST processes.
    pub healthy_chat_rest_processes: u64,
    /// Healthy chat REST processes over expected (0–1).
    pub process_health_ratio: f64,
    /// Expected chat REST processes missing.
    pub process_deficit: i64,
    /// (window, share of requests refused, 0–1)
    pub throttle_ratios: Vec<(String, f64)>,
    /// (severity, code)
    pub alerts: Vec<(String, String)>,
}

/// One counter per value of `label`, and their family.
fn counters<const N: usize>(label: &'static str, values: [&str; N]) -> ([Counter; N], Samples<Counter>) {
    let counters: [Counter; N] = std::array::from_fn(|_| Counter::default());
    let samples = values.iter().zip(&counters).map(|(v, c)| (vec![(label, (*v).to_owned())], c.clone()));
    let samples = Samples(samples.collect());
    (counters, samples)
}

/// A family of one unlabelled sample.
fn one<M>(value: M) -> Samples<M> {
    Samples(vec![(Vec::new(), value)])
}

impl Gauges {
    /// Registers the gauges in a scrape's registry.
    pub(crate) fn register(&self, r: &mut Registry) {
        r.register(
            "floodgate_capacity_system",
            "System total capacity T, in tasks",
            one(ConstGauge::new(self.capacity_system)),
        );
        r.register(
            "floodgate_load",
            "Tasks admitted and not completed (queued + leased)",
            one(ConstGauge::new(self.load)),
        );
        r.register(
            "floodgate_pressure_ratio",
            "Load over capacity (1 when capacity is 0)",
            one(ConstGauge::new(self.pressure_ratio)),
        );
        r.register(
            "floodgate_utilization_ratio",
            "Load over capacity, 0-1 (0 when both are 0)",
            one(ConstGauge::new(self.utilization_ratio)),
        );
        let depth = UserType::ALL
            .iter()
            .map(|u| (vec![("user_type", u.as_str().to_owned())], ConstGauge::new(self.queue_depth[u.index()])));
        r.register("floodgate_queue_depth", "Queued tasks by user type", Samples(depth.collect()));
        r.register("floodgate_leased_tasks", "Tasks leased to workers", one(ConstGauge::new(self.leased)));
        r.register(
            "floodgate_dead_letters",
            "Tasks dead-lettered after max deliveries",
            one(ConstGauge::new(self.dead_letters)),
        );
        let circuits =
            self.circuits.iter().map(|(c, s)| (vec![("circuit", c.clone())], ConstGauge::new(u64::from(*s))));
        r.register(
            "floodgate_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            Samples(circuits.collect()),
        );
        let processes = self.processes.iter().map(|(group, health, n)| {
            (vec![("group", group.clone()), ("health", health.clone())], ConstGauge::new(*n))
        });
        r.register("floodgate_processes", "Worker processes by service group and health", Samples(processes.collect()));
        r.register(
            "floodgate_healthy_chat_rest_processes",
            "Healthy or degraded chat REST processes",
            one(ConstGauge::new(self.healthy_chat_rest_processes)),
        );
        r.register(
            "floodgate_process_health_ratio",
            "Healthy over expected chat REST processes",
            one(ConstGauge::new(self.process_health_ratio)),
        );
        r.register(
            "floodgate_process_deficit",
            "Expected chat REST processes missing",
            one(ConstGauge::new(self.process_deficit)),
        );
        let throttle =
            self.throttle_ratios.iter().map(|(w, ratio)| (vec![("window", w.clone())], ConstGauge::new(*ratio)));
        r.register(
            "floodgate_throttle_ratio",
            "Share of requests refused (429 and 503), 0-1, by window",
            Samples(throttle.collect()),
        );
        let alerts = self
            .alerts
            .iter()
            .map(|(s, c)| (vec![("severity", s.clone()), ("code", c.clone())], ConstGauge::new(1u64)));
        r.register("floodgate_alerts_active", "Active alerts by severity and code", Samples(alerts.collect()));
    }
}

/// Registers the process metrics (Linux; nothing elsewhere).
fn register_process(r: &mut Registry) {
    let Some(p) = process::read() else { return };
    r.register(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        one(ConstCounter::new(p.cpu_seconds)),
    );
    r.register(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        one(ConstGauge::new(p.resident_memory_bytes)),
    );
    r.register("process_open_fds", "Number of open file descriptors", one(ConstGauge::new(p.open_fds)));
    if let Some(max) = p.max_fds {
        r.register("process_max_fds", "Maximum number of open file descriptors", one(ConstGauge::new(max)));
    }
    r.register(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        one(ConstGauge::new(p.start_time_seconds)),
    );
}

impl Metrics {
    /// Counts a decision of level 1 or 2.
    pub fn decision(&self, level: u8, decision: Decision, user_type: UserType, transport: Transport) {
        let level = usize::from(level.clamp(1, 2) - 1);
        self.decisions[level][analytics::cell(decision, user_type, transport)].inc();
    }

    /// The tower layer that times the gRPC server's calls.
    pub fn rpc_layer(&self) -> RpcMetricsLayer {
        RpcMetricsLayer::new(self.rpc.clone())
    }

    /// Counts an Envoy `ShouldRateLimit` answer.
    pub fn rls(&self, answer: &crate::core::rls::Answer) {
        let code = usize::from(answer.overall == crate::core::rls::Code::OverLimit);
        self.rls_answers[code].inc();
        if answer.shadow_over_limit > 0 {
            self.rls_shadow_over_limit.inc_by(u64::from(answer.shadow_over_limit));
        }
    }

    /// Counts a store error of `operation`, and apart as well when it was
    /// one Cluster shard's (`shard_local`: `StoreError::is_shard_local`).
    pub fn store_error(&self, operation: &str, shard_local: bool) {
        if let Some(i) = STORE_OPERATIONS.iter().position(|o| *o == operation) {
            self.store_errors[i].inc();
        }
        if shard_local {
            self.store_shard_errors.inc();
        }
    }

    /// The text exposition: these counters and histogram, then the
    /// scrape-time families of `scrape`, then the process metrics.
    pub fn render(&self, mut scrape: Registry) -> String {
        register_process(&mut scrape);
        let mut text = String::with_capacity(32 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &scrape);
        text
    }
}
