//! Prometheus metrics: counters and histograms kept in atomics on the hot
//! path, gauges computed at scrape time; rendered in the text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::core::analytics::{self, CELLS};
use crate::core::{Decision, Transport, UserType};

/// RPCs whose latency is measured.
pub const METHODS: [&str; 16] = [
    "CheckCapacity",
    "EnqueueAtomic",
    "Heartbeat",
    "LeaseTasks",
    "CompleteTask",
    "ExtendLease",
    "GetSystemStatus",
    "ListCircuitBreakers",
    "ResetCircuitBreaker",
    "ValidateConfig",
    "UpdateConfig",
    "GetCapacityCalculation",
    "GetThrottlingStats",
    "ListAlerts",
    "GetEnvironment",
    "ShouldRateLimit",
];

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// Store operations whose errors are counted (the ones the service counts:
/// the admission steps and the analytics flush).
pub const STORE_OPERATIONS: [&str; 3] = ["rate_limit", "enqueue", "analytics"];

struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The process's counters and histograms.
pub struct Metrics {
    /// Decisions by level (1, 2) × analytics cell.
    decisions: [[AtomicU64; CELLS]; 2],
    rpc: Vec<Histogram>,
    store_errors: [AtomicU64; STORE_OPERATIONS.len()],
    /// Envoy `ShouldRateLimit` answers: OK, OVER_LIMIT.
    rls_answers: [AtomicU64; 2],
    /// Descriptors over their limit in shadow mode (let through).
    rls_shadow_over_limit: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            rpc: METHODS.iter().map(|_| Histogram::new()).collect(),
            store_errors: std::array::from_fn(|_| AtomicU64::new(0)),
            rls_answers: std::array::from_fn(|_| AtomicU64::new(0)),
            rls_shadow_over_limit: AtomicU64::new(0),
        }
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub capacity_total: u64,
    pub load: u64,
    pub pressure_ratio: f64,
    pub utilization_percent: f64,
    pub queue_depth: [u64; 3],
    pub leased: u64,
    pub dead_letters: u64,
    pub circuits: Vec<(String, u8)>,
    /// (group, health, count)
    pub processes: Vec<(String, String, u64)>,
    pub healthy_chat_rest_processes: u64,
    pub process_health_ratio: f64,
    pub process_deficit: i64,
    /// (window, percent)
    pub throttle_rates: Vec<(String, f64)>,
    /// (severity, code)
    pub alerts: Vec<(String, String)>,
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Counts a decision of level 1 or 2.
    pub fn decision(&self, level: u8, decision: Decision, user_type: UserType, transport: Transport) {
        let level = usize::from(level.clamp(1, 2) - 1);
        self.decisions[level][analytics::cell(decision, user_type, transport)].fetch_add(1, Ordering::Relaxed);
    }

    /// Observes one RPC's latency.
    pub fn rpc(&self, method: &str, elapsed: Duration) {
        if let Some(i) = METHODS.iter().position(|m| *m == method) {
            self.rpc[i].observe(elapsed);
        }
    }

    /// Counts an Envoy `ShouldRateLimit` answer.
    pub fn rls(&self, answer: &crate::core::rls::Answer) {
        let code = usize::from(answer.overall == crate::core::rls::Code::OverLimit);
        self.rls_answers[code].fetch_add(1, Ordering::Relaxed);
        if answer.shadow_over_limit > 0 {
            self.rls_shadow_over_limit.fetch_add(u64::from(answer.shadow_over_limit), Ordering::Relaxed);
        }
    }

    /// Counts a store error.
    pub fn store_error(&self, operation: &str) {
        if let Some(i) = STORE_OPERATIONS.iter().position(|o| *o == operation) {
            self.store_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let o = &mut out;
        let _ = writeln!(
            o,
            "# HELP floodgate_decisions_total Admission decisions by level, decision, user type and transport."
        );
        let _ = writeln!(o, "# TYPE floodgate_decisions_total counter");
        for (li, level) in self.decisions.iter().enumerate() {
            for d in Decision::ALL {
                for u in UserType::ALL {
                    for t in Transport::ALL {
                        let n = level[analytics::cell(d, u, t)].load(Ordering::Relaxed);
                        let _ = writeln!(
                            o,
                            "floodgate_decisions_total{{level=\"{}\",decision=\"{}\",user_type=\"{}\",transport=\"{}\"}} {n}",
                            li + 1,
                            d.as_str(),
                            u.as_str(),
                            t.as_str()
                        );
                    }
                }
            }
        }
        let _ = writeln!(o, "# HELP floodgate_rpc_duration_seconds Latency of floodgate's RPCs.");
        let _ = writeln!(o, "# TYPE floodgate_rpc_duration_seconds histogram");
        for (method, h) in METHODS.iter().zip(&self.rpc) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    o,
                    "floodgate_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(o, "floodgate_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(o, "floodgate_rpc_duration_seconds_sum{{method=\"{method}\"}} {sum}");
            let _ = writeln!(o, "floodgate_rpc_duration_seconds_count{{method=\"{method}\"}} {count}");
        }
        let _ = writeln!(o, "# HELP floodgate_store_errors_total State store errors by operation.");
        let _ = writeln!(o, "# TYPE floodgate_store_errors_total counter");
        for (op, n) in STORE_OPERATIONS.iter().zip(&self.store_errors) {
            let _ = writeln!(o, "floodgate_store_errors_total{{operation=\"{op}\"}} {}", n.load(Ordering::Relaxed));
        }
        let _ = writeln!(o, "# HELP floodgate_rls_answers_total Envoy ShouldRateLimit answers by overall code.");
        let _ = writeln!(o, "# TYPE floodgate_rls_answers_total counter");
        for (code, n) in ["ok", "over_limit"].iter().zip(&self.rls_answers) {
            let _ = writeln!(o, "floodgate_rls_answers_total{{code=\"{code}\"}} {}", n.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            o,
            "# HELP floodgate_rls_shadow_over_limit_total Envoy descriptors over their limit in shadow mode (let through)."
        );
        let _ = writeln!(o, "# TYPE floodgate_rls_shadow_over_limit_total counter");
        let _ =
            writeln!(o, "floodgate_rls_shadow_over_limit_total {}", self.rls_shadow_over_limit.load(Ordering::Relaxed));
        let mut gauge = |name: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(o, "{name}{labels} {value}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        gauge("floodgate_capacity_total", "System total capacity T.", one(g.capacity_total.to_string()));
        gauge("floodgate_load", "Tasks admitted and not completed (queued + leased).", one(g.load.to_string()));
        gauge(
            "floodgate_pressure_ratio",
            "Load over capacity (1 when capacity is 0).",
            one(g.pressure_ratio.to_string()),
        );
        gauge("floodgate_utilization_percent", "Load over capacity, percent.", one(g.utilization_percent.to_string()));
        gauge(
            "floodgate_queue_depth",
            "Queued tasks by user type.",
            UserType::ALL
                .iter()
                .map(|u| (format!("{{user_type=\"{}\"}}", u.as_str()), g.queue_depth[u.index()].to_string()))
                .collect(),
        );
        gauge("floodgate_leased_tasks", "Tasks leased to workers.", one(g.leased.to_string()));
        gauge("floodgate_dead_letters", "Tasks dead-lettered after max deliveries.", one(g.dead_letters.to_string()));
        gauge(
            "floodgate_circuit_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            g.circuits.iter().map(|(c, s)| (format!("{{circuit=\"{}\"}}", label(c)), s.to_string())).collect(),
        );
        gauge(
            "floodgate_processes",
            "Worker processes by service group and health.",
            g.processes
                .iter()
                .map(|(group, health, n)| {
                    (format!("{{group=\"{}\",health=\"{}\"}}", label(group), health), n.to_string())
                })
                .collect(),
        );
        gauge(
            "floodgate_healthy_chat_rest_processes",
            "Healthy or degraded chat REST processes.",
            one(g.healthy_chat_rest_processes.to_string()),
        );
        gauge(
            "floodgate_process_health_ratio",
            "Healthy over expected chat REST processes.",
            one(g.process_health_ratio.to_string()),
        );
        gauge("floodgate_process_deficit", "Expected chat REST processes missing.", one(g.process_deficit.to_string()));
        gauge(
            "floodgate_throttle_rate_percent",
            "Share of requests refused, by window.",
            g.throttle_rates.iter().map(|(w, r)| (format!("{{window=\"{w}\"}}"), r.to_string())).collect(),
        );
        gauge(
            "floodgate_alerts_active",
            "Active alerts by severity and code.",
            g.alerts
                .iter()
                .map(|(s, c)| (format!("{{severity=\"{s}\",code=\"{}\"}}", label(c)), "1".to_owned()))
                .collect(),
        );
        out
    }
}
