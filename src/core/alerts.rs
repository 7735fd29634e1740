//! The seed's alert conditions (docs/architecture.md §7), evaluated from a snapshot of
//! capacity, processes, breakers and throttle rates.

use serde::Serialize;

/// The spans (minutes) of the throttle rates the alerts watch: the last
/// 15 minutes and the last hour.
pub const THROTTLE_SPANS: [u64; 2] = [15, 60];

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now: requests are being refused or will be.
    Critical,
    /// Look soon: the system is degraded.
    Warning,
    /// A notable event, e.g. a circuit changing state.
    Info,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// How urgent it is.
    pub severity: Severity,
    /// Stable identifier, e.g. `no_healthy_chat_rest_processes`.
    pub code: String,
    /// What an operator reads.
    pub message: String,
}

/// What the rules look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertInputs {
    /// Circuits that are open now.
    pub open_circuits: Vec<String>,
    /// HEALTHY or DEGRADED chat REST processes.
    pub healthy_chat_rest_processes: u64,
    /// Load over capacity, percent (`capacity::utilization_percent`).
    pub utilization_percent: f64,
    /// Throttle rate over the last 15 minutes and the last hour, percent.
    pub throttle_rate_15m: f64,
    /// Throttle rate over the last hour, percent.
    pub throttle_rate_1h: f64,
    /// Requests in the last 15 minutes (rates over nothing don't alert).
    pub requests_15m: u64,
    /// Healthy chat REST processes over expected (0–1).
    pub process_health_ratio: f64,
    /// Load over the system total.
    pub pressure_ratio: f64,
    /// Expected chat REST processes missing.
    pub process_deficit: i64,
    /// While the last load of the Envoy rule files failed: what failed.
    pub rls_reload_failure: Option<String>,
    /// The system total (capacity T). Zero makes every ratio undefined:
    /// then no utilization, pressure or process-ratio alert is raised and
    /// the one alert is `no_healthy_chat_rest_processes`.
    pub capacity: u64,
}

/// Utilization above this is critical.
pub const CRITICAL_UTILIZATION: f64 = 90.0;
/// Throttling above this, sustained over 15 min and 1 h, is critical.
pub const CRITICAL_THROTTLE_RATE: f64 = 20.0;
/// Throttling above this over the last 15 min is a warning.
pub const WARNING_THROTTLE_RATE: f64 = 10.0;
/// Health ratio below this is a warning.
pub const WARNING_HEALTH_RATIO: f64 = 0.8;
/// Pressure above this is a warning.
pub const WARNING_PRESSURE: f64 = 0.8;

/// Whether the load moving from `previous` to `load` is a large load
/// change (an info event): more than half the system capacity at once.
/// No capacity, no event (the "no healthy process" alert covers it).
pub fn is_large_load_change(previous: u64, load: u64, capacity: u64) -> bool {
    capacity > 0 && previous.abs_diff(load).saturating_mul(2) > capacity
}

/// Every critical and warning condition that holds.
pub fn evaluate(i: &AlertInputs) -> Vec<Condition> {
    let mut out = Vec::new();
    let mut raise = |severity, code: &str, message: String| {
        out.push(Condition { severity, code: code.to_owned(), message });
    };
    for circuit in &i.open_circuits {
        raise(Severity::Critical, &format!("circuit_open_{circuit}"), format!("circuit breaker {circuit} is open"));
    }
    if i.healthy_chat_rest_processes == 0 {
        raise(
            Severity::Critical,
            "no_healthy_chat_rest_processes",
            "no healthy chat REST processes detected: capacity is 0".into(),
        );
    }
    // No capacity or no healthy process: the ratios below are over zero and
    // say nothing true; the alert above covers it.
    let defined = i.capacity > 0 && i.healthy_chat_rest_processes > 0;
    if defined && i.utilization_percent > CRITICAL_UTILIZATION {
        raise(
            Severity::Critical,
            "utilization_high",
            format!("system utilization {:.1}% > 90%", i.utilization_percent),
        );
    }
    let sustained = i.throttle_rate_15m > CRITICAL_THROTTLE_RATE && i.throttle_rate_1h > CRITICAL_THROTTLE_RATE;
    if i.requests_15m > 0 && sustained {
        raise(
            Severity::Critical,
            "throttle_rate_sustained",
            format!("throttle rate {:.1}% (1h {:.1}%) > 20% sustained", i.throttle_rate_15m, i.throttle_rate_1h),
        );
    } else if i.requests_15m > 0 && i.throttle_rate_15m > WARNING_THROTTLE_RATE {
        raise(Severity::Warning, "throttle_rate_high", format!("throttle rate {:.1}% > 10%", i.throttle_rate_15m));
    }
    if defined && i.process_health_ratio < WARNING_HEALTH_RATIO {
        raise(
            Severity::Warning,
            "process_health_low",
            format!("process health ratio {:.2} < 0.80", i.process_health_ratio),
        );
    }
    if defined && i.pressure_ratio > WARNING_PRESSURE {
        raise(Severity::Warning, "queue_pressure_high", format!("queue pressure ratio {:.2} > 0.80", i.pressure_ratio));
    }
    if defined && i.process_deficit > 0 {
        raise(
            Severity::Warning,
            "process_deficit",
            format!("{} expected chat REST processes missing", i.process_deficit),
        );
    }
    if let Some(failure) = &i.rls_reload_failure {
        // The rules before it stay in force, but the change an operator
        // made is not: warn until a load succeeds.
        raise(Severity::Warning, "rls_config_reload_failed", failure.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rule_reload_warns_until_a_load_succeeds() {
        let failing = AlertInputs { rls_reload_failure: Some("rules.yaml: unit: bad".into()), ..calm() };
        let raised = evaluate(&failing);
        assert_eq!(raised.len(), 1);
        assert_eq!((raised[0].severity, raised[0].code.as_str()), (Severity::Warning, "rls_config_reload_failed"));
        assert_eq!(raised[0].message, "rules.yaml: unit: bad");
        assert!(evaluate(&calm()).is_empty());
    }

    #[test]
    fn a_load_change_is_large_past_half_the_capacity_either_way() {
        assert!(!is_large_load_change(0, 7, 14), "exactly half");
        assert!(is_large_load_change(0, 8, 14));
        assert!(is_large_load_change(13, 5, 14), "falling counts too");
        assert!(!is_large_load_change(0, 100, 0), "no capacity, no event");
        assert!(!is_large_load_change(u64::MAX, 0, u64::MAX), "no overflow");
    }

    fn calm() -> AlertInputs {
        AlertInputs {
            healthy_chat_rest_processes: 1,
            process_health_ratio: 1.0,
            capacity: 100,
            ..AlertInputs::default()
        }
    }

    fn codes(i: &AlertInputs) -> Vec<String> {
        evaluate(i).into_iter().map(|c| c.code).collect()
    }

    #[test]
    fn a_calm_system_raises_nothing() {
        assert!(evaluate(&calm()).is_empty());
    }

    #[test]
    fn no_healthy_process_is_critical() {
        let i = AlertInputs { healthy_chat_rest_processes: 0, ..calm() };
        assert_eq!(evaluate(&i)[0].severity, Severity::Critical);
        assert_eq!(codes(&i), ["no_healthy_chat_rest_processes"]);
    }

    #[test]
    fn no_capacity_raises_only_the_no_healthy_process_alert() {
        // An idle server with no workers: the ratios are over zero.
        let idle = AlertInputs {
            healthy_chat_rest_processes: 0,
            capacity: 0,
            utilization_percent: 100.0,
            pressure_ratio: 1.0,
            process_health_ratio: 0.0,
            process_deficit: 2,
            ..calm()
        };
        assert_eq!(codes(&idle), ["no_healthy_chat_rest_processes"]);
        let no_total = AlertInputs { capacity: 0, pressure_ratio: 1.0, utilization_percent: 100.0, ..calm() };
        assert!(codes(&no_total).is_empty(), "{:?}", codes(&no_total));
    }

    #[test]
    fn utilization_over_ninety_is_critical_and_pressure_a_warning() {
        let i = AlertInputs { utilization_percent: 92.9, pressure_ratio: 0.929, ..calm() };
        assert_eq!(codes(&i), ["utilization_high", "queue_pressure_high"]);
    }

    #[test]
    fn throttling_warns_then_goes_critical_when_sustained() {
        let warn = AlertInputs { throttle_rate_15m: 15.0, throttle_rate_1h: 25.0, requests_15m: 10, ..calm() };
        assert_eq!(codes(&warn), ["throttle_rate_high"]);
        let crit = AlertInputs { throttle_rate_15m: 25.0, throttle_rate_1h: 21.0, requests_15m: 10, ..calm() };
        assert_eq!(codes(&crit), ["throttle_rate_sustained"]);
    }

    #[test]
    fn open_circuits_deficits_and_poor_health_are_reported() {
        let i = AlertInputs {
            open_circuits: vec!["backpressure".into()],
            process_health_ratio: 0.5,
            process_deficit: 1,
            ..calm()
        };
        assert_eq!(codes(&i), ["circuit_open_backpressure", "process_health_low", "process_deficit"]);
    }
}
